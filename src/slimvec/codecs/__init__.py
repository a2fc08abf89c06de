"""Vector codecs: compact codes with fit / encode / decode / score, from specs like "pca:192 > float8".

Codecs are registered by name in `slimvec.registry` (kinds "codec" and "transform").
"""

from slimvec.codecs.base import Codec, Transform, codec_from_state, load, make_codec, save
from slimvec.codecs.chain import Chain

__all__ = ["Chain", "Codec", "Transform", "codec_from_state", "load", "make_codec", "save"]
