"""Vector codecs: compact codes with fit / encode / decode / score, from specs like "pca:192 > float8"."""

from slimvec.codecs import binary, floats, pq, scalar, transforms  # noqa: F401 - fill the registries
from slimvec.codecs.base import CODECS, TRANSFORMS, Codec, Transform, codec_from_state, load, make_codec, save
from slimvec.codecs.chain import Chain

__all__ = [
    "CODECS",
    "TRANSFORMS",
    "Chain",
    "Codec",
    "Transform",
    "codec_from_state",
    "load",
    "make_codec",
    "save",
]
