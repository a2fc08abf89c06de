"""slimvec: document embeddings and retrieval with the best quality per byte of RAM."""

from slimvec.collection import Collection
from slimvec.documents import Chunk, Document, Hit, Section
from slimvec.errors import SlimvecError

__all__ = ["Chunk", "Collection", "Document", "Hit", "Section", "SlimvecError"]
__version__ = "0.1.0"
