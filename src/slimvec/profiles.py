"""Named, validated configurations: which model, chunking, retrievers, RAM codec and search stages.

A profile is saved in the collection manifest, so a collection always searches the way it was built.
Users pick one by name (`--profile binary-rescore`) or from a JSON file (`--profile-file my.json`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from slimvec import registry, strictjson
from slimvec.errors import ConfigError, validation_message
from slimvec.records import plain_value

BM25_METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")  # bm25s's score variants


class Profile(BaseModel):
    """How a collection is built and searched."""

    # Strict: lax mode read a profile file's "8" as nprobe 8, true as oversample 1, "yes"/"off" as a rescore flag
    # and 1.9-style typos into other settings than the ones written; NaN and infinity were refused with a range
    # message ("less than or equal to 1") that named no value. JSON lists and numpy scalars are taken (`_plain`).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = ""
    model: str | None = None  # None: the default model
    query_prompt: str | None = Field(default=None, max_length=512)  # None: the prompt the model's config declares
    document_prompt: str | None = Field(default=None, max_length=512)  # None: the model's configured document prompt
    chunk_mode: Literal["tokens", "truncate", "whole", "late"] = "tokens"  # late: chunks pooled from one document pass
    # Late chunking (slimvec.late); None: the measured default for the chunks at hand (late.default_config: token
    # chunks window 0 = the model's limit, weight 1.0; given sections window 256, weight 0.3, or the model's own
    # measured setting, late.section_default: bge-small-en-v1.5 window 128, weight 0.2).
    late_window: int | None = Field(default=None, ge=0, le=8192)  # macro window in tokens; 0: the model's limit
    late_overlap: int | None = Field(default=None, ge=0, le=8192)  # tokens shared by consecutive macro windows
    late_weight: float | None = Field(default=None, ge=0.0, le=1.0)  # mix: (1 - w) * chunk alone + w * late vector
    contextual_prefix: bool = False  # encode each chunk as "title > heading path" + chunk text
    chunk_tokens: int | None = Field(default=None, ge=8, le=8192)
    chunk_overlap: int = Field(default=32, ge=0, le=1024)
    retrievers: tuple[str, ...] = ("dense",)
    mode: str = "dense"  # default search mode
    # Candidate index: exact scan or HNSW for float32 codes; "ivf" = inverted lists over 1-bit binary or PQ codes,
    # used once a collection is large enough to train them (below that, an exact scan of the codes).
    index: Literal["exact", "hnsw", "ivf"] = "exact"
    nlist: int | None = Field(default=None, ge=1, le=1 << 16)  # ivf lists; None: ~4 sqrt(rows), retrained as it grows
    # ivf lists scanned per query; None: the smallest reaching target_recall on the collection's own rows
    nprobe: int | None = Field(default=None, ge=1, le=1 << 16)
    target_recall: float = Field(default=0.95, gt=0.0, le=1.0)  # Recall@10 a calibrated nprobe/ef_search must reach
    # hnsw candidates kept per query (faiss efSearch); None: the smallest reaching target_recall on the collection's
    # own rows (a collection made before this field keeps 128)
    ef_search: int | None = Field(default=None, ge=1, le=4096)
    codec: str = "float32"  # RAM-resident codes for dense candidates, e.g. "binary", "pca:192 > float8"
    rescore: bool = False  # re-rank candidates with float32 vectors read from disk
    oversample: int = Field(default=10, ge=1, le=1000)  # candidates = k * oversample when rescoring
    fusion: Literal["rrf", "weighted", "softmax"] = "softmax"  # how a hybrid mode merges its rankings
    fusion_weights: tuple[float, ...] | None = None  # weighted/softmax fusion: one per retriever of the mode, in order
    # softmax fusion: temperature in standard deviations of each ranking's head (None: search.softmax's default, 2)
    fusion_temperature: float | None = Field(default=None, gt=0.0, le=100.0)
    bm25: dict[str, Any] | None = None  # BM25 tokenisation and scoring, keys of index.bm25.Bm25Config
    rerank: str | None = None  # second stage, "kind[:argument]" (see slimvec.search.rerank), e.g. "dense"
    rerank_depth: int = Field(default=50, ge=1, le=1000)  # first-stage documents the reranker rescores
    # Multi-vector (late interaction, slimvec.multivector): the "multivector" retriever keeps every chunk's token
    # vectors in a token file on disk and reranks the `candidates` retriever's top `maxsim_depth` rows by MaxSim.
    tokens: str | None = None  # token storage: "float16", "float32" or a token code ("residual:512:2", "int8", "binary")
    token_pool: float = Field(default=1.0, ge=1.0, le=8.0)  # Ward pool factor at index time (2: about half the tokens)
    # how Ward sees and cuts the tokens (multivector/pooling.py): "ward-profile-capped" kept the most MaxSim on the
    # held-out queries of SciFact and NFCorpus (BENCHMARKS.md, multi-vector "Session 8")
    token_pool_method: Literal["ward", "ward-profile", "ward-profile-capped"] = "ward-profile-capped"
    token_prune: Literal["", "punctuation", "stopwords"] = ""  # document tokens dropped at index time
    candidates: str = "dense"  # the retriever whose top rows MaxSim reranks (dense, bm25, ...)
    maxsim_depth: int = Field(default=100, ge=1, le=1000)  # candidate chunk rows scored by MaxSim per query
    token_rescore: int = Field(default=0, ge=0, le=1000)  # coded tokens: also keep float16 ones, rescore this many rows
    # Compaction after a write (slimvec.compaction): when dead rows (of deleted or replaced documents) pass this
    # share of the rows and number at least compact_min_dead (Qdrant's vacuum settings); None: only on request
    compact_threshold: float | None = Field(default=0.3, gt=0.0, le=1.0)
    compact_min_dead: int = Field(default=1000, ge=1)
    muvera: dict[str, Any] | None = None  # dense vectors are MUVERA FDEs of the tokens (keys of MuveraConfig but dim)

    @field_validator("*", mode="before")
    @classmethod
    def _plain(cls, value: Any, info: ValidationInfo) -> Any:
        # A JSON array is a tuple field's value (the manifest stores tuples as lists), and an np.int64 from numpy
        # code is the int it holds: strict mode refuses both, which no user would call a typo.
        if isinstance(value, list) and info.field_name in ("retrievers", "fusion_weights"):
            return tuple(plain_value(v) for v in value)
        return plain_value(value)

    @field_validator("codec")
    @classmethod
    def _codec_parses(cls, spec: str) -> str:
        from slimvec.codecs import make_codec

        make_codec(spec)  # raises ConfigError with the bad part named
        return spec

    @model_validator(mode="after")
    def _index_fits_codec(self) -> "Profile":
        if self.index == "ivf" and not _ivf_codec(self.codec):
            raise ValueError(f"index 'ivf' needs codec 'binary' (1-bit codes) or 'pq:MxBITS', not {self.codec!r}")
        if self.fusion_weights is not None and (  # NaN passes `w < 0`: it would make every fused score NaN
                self.fusion == "rrf" or any(not math.isfinite(w) or w < 0 for w in self.fusion_weights)):
            raise ValueError("fusion_weights need fusion 'weighted' or 'softmax' and must be >= 0 and finite")
        self._mode_runs()
        # Collection.create cuts an overlap of half the chunk or more to fit (the default 32 must fit small chunks),
        # which turned a profile's own contradictory pair into another overlap than the one written; a command-line
        # --chunk-overlap is refused there for the same reason.
        if (self.chunk_tokens is not None and self.chunk_overlap >= self.chunk_tokens // 2
                and self.chunk_overlap != Profile.model_fields["chunk_overlap"].default):
            raise ValueError(f"chunk overlap {self.chunk_overlap} must be below half of the {self.chunk_tokens} "
                             "chunk tokens")
        if self.fusion_temperature is not None and self.fusion != "softmax":
            raise ValueError(f"fusion_temperature applies to fusion 'softmax', not {self.fusion!r}")
        if self.index == "hnsw" and self.compressed:
            raise ValueError(f"index 'hnsw' holds float32 vectors; codec {self.codec!r} scans its codes exactly")
        if "multivector" in self.retrievers:
            if self.tokens is None:
                raise ValueError("the multivector retriever needs token storage: set tokens (e.g. 'float16')")
            if self.candidates == "multivector" or self.candidates not in self.retrievers:
                raise ValueError(f"candidates {self.candidates!r} must be another retriever of this profile "
                                 f"({', '.join(r for r in self.retrievers if r != 'multivector')})")
        if self.tokens is not None and "multivector" not in self.retrievers and self.muvera is None:
            # Token vectors are read only by the multivector retriever (MaxSim) and MUVERA, and `enable` never adds
            # the multivector retriever later: the token file (often larger than every other file together) would
            # be written at each add and never read.
            raise ValueError(f"tokens {self.tokens!r} keeps token vectors for the multivector retriever, which this "
                             f"profile's retrievers ({', '.join(self.retrievers)}) lack: add 'multivector' to "
                             "retrievers (and mode 'multivector'), or leave tokens out")
        if self.token_rescore and self.tokens in (None, "float16", "float32"):
            raise ValueError("token_rescore rescores coded tokens with float16 ones: set tokens to a token code")
        if self.muvera is not None and self.tokens is None:
            raise ValueError("muvera encodes token vectors: set tokens too")
        return self

    def unused_options(self) -> list[tuple[str, str]]:
        """One line per setting given another value than its default where this profile never reads it (an
        oversample without rescoring, an nprobe without inverted lists, MaxSim settings without the multivector
        retriever, fusion settings with no fused mode...): kept silently, such a typo or misunderstanding would
        build and search as if it had not been written. The structure they depend on (index, codec, rescore,
        chunk mode, token storage, the profile's retrievers) is fixed when the collection is made. Settings of an
        index `enable` can add later (`bm25`) and `rerank_depth` (a search's own reranker reads it) count as used.
        `Collection.create` refuses the first, on the profile with its options applied (a profile file's late_*
        settings with `--chunk-mode late`, say, are read); a Profile itself may hold them, as a file read alone.
        Returns [(field, line)], in field order of the checks."""
        from slimvec.search.plan import FUSED_MODES, modes

        fused = [m for m in modes(list(self.retrievers)) if m in FUSED_MODES]
        kept = ", ".join(self.retrievers)
        needs = [
            (("codec", "index", "rescore"), "dense" in self.retrievers, f"the dense retriever, which this profile's retrievers ({kept}) "
             "lack"),
            (("oversample",), self.rescore, "rescore true (it sets how many candidates are rescored)"),
            (("nlist", "nprobe"), self.index == "ivf", f"index 'ivf', not {self.index!r}"),
            (("ef_search",), self.index == "hnsw", f"index 'hnsw', not {self.index!r}"),
            (("target_recall",), self.index in ("ivf", "hnsw"), f"index 'ivf' or 'hnsw' (it calibrates their nprobe or "
             f"efSearch), not {self.index!r}"),
            (("late_window", "late_overlap", "late_weight"), self.chunk_mode == "late",
             f"chunk_mode 'late', not {self.chunk_mode!r}"),
            (("token_pool", "token_pool_method", "token_prune"), self.tokens is not None, "token vectors: set tokens"),
            (("candidates", "maxsim_depth", "token_rescore"), "multivector" in self.retrievers,
             f"the multivector retriever (MaxSim), which this profile's retrievers ({kept}) lack"),
            (("fusion", "fusion_temperature"), bool(fused), f"a fused mode, and this profile's retrievers ({kept}) run "
             "none: add the retrievers it fuses (e.g. 'bm25'), or leave it out"),
            (("compact_min_dead",), self.compact_threshold is not None, "compact_threshold (None: no automatic "
             "compaction)"),
        ]
        out = []
        for fields, used, need in needs:
            for field in fields:
                if not used and getattr(self, field) != Profile.model_fields[field].default:
                    out.append((field, f"{field} {getattr(self, field)!r} is never used by this profile: it applies "
                                       f"to {need}"))
        return out

    def _mode_runs(self) -> None:
        # Search falls back to dense (or the first retriever) for a mode the collection cannot run, so a profile
        # file's misspelt or unrunnable mode, or weights no fused mode can take, would be dropped without a word or
        # fail every search of the collection built with it. The field's default "dense" on a profile without
        # dense vectors stays allowed: it means "no mode named", which search resolves to the first retriever.
        from slimvec.search.plan import FUSED_MODES, modes

        runnable = modes(list(self.retrievers))
        if self.mode != "dense" and self.mode not in runnable:
            known = "" if self.mode in modes() else "unknown "
            raise ValueError(f"{known}mode {self.mode!r} cannot run on this profile's retrievers "
                             f"({', '.join(self.retrievers)}): choose one of {', '.join(runnable)}")
        if self.fusion_weights is None:
            return
        if not any(self.fusion_weights):
            raise ValueError("fusion_weights: at least one weight must be > 0 (all zero scores every document 0)")
        fused = {m: FUSED_MODES[m] for m in runnable if m in FUSED_MODES}
        if self.mode in fused:
            fused = {self.mode: fused[self.mode]}
        if not any(len(names) == len(self.fusion_weights) for names in fused.values()):
            want = "; ".join(f"{len(n)} for mode {m!r} ({', '.join(n)})" for m, n in fused.items())
            raise ValueError(f"{len(self.fusion_weights)} fusion_weights, but "
                             + (f"a fused search takes one per retriever: {want}" if fused else
                                f"this profile's retrievers ({', '.join(self.retrievers)}) run no fused mode"))

    @field_validator("model")
    @classmethod
    def _model_named(cls, name: str | None) -> str | None:
        if name is not None and not name.strip():  # "" used to mean the default model, silently
            raise ValueError("must name a model (leave it out for the default)")
        return name

    @field_validator("tokens")
    @classmethod
    def _tokens_parse(cls, spec: str | None) -> str | None:
        if spec is None or spec in ("float16", "float32"):
            return spec
        from slimvec.codecs import make_codec

        make_codec(spec)  # raises ConfigError with the bad part named
        return spec

    @field_validator("muvera")
    @classmethod
    def _muvera_known(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        from slimvec.multivector.muvera import MuveraConfig

        fields = set(MuveraConfig.__dataclass_fields__) - {"dim"}
        unknown = sorted(set(value) - fields)
        if unknown:
            raise ValueError(f"unknown MUVERA setting {unknown[0]!r}: choose from {', '.join(sorted(fields))}")
        for key, v in value.items():  # JSON gives NaN, 2.5 or true where the FDE needs counts (range(reps))
            flag = key == "fill_empty"
            if not isinstance(v, bool if flag else int) or (not flag and isinstance(v, bool)):
                raise ValueError(f"MUVERA {key} must be {'true or false' if flag else 'an integer'}, got {v!r}")
        MuveraConfig(dim=1, **value)  # ranges checked here
        return dict(value)

    @field_validator("rerank")
    @classmethod
    def _rerank_parses(cls, spec: str | None) -> str | None:
        from slimvec.search.rerank import NONE, parse_spec

        if spec is None:
            return None
        try:
            kind, _ = parse_spec(spec)  # kind and syntax only: no model is loaded, no path is checked
        except ConfigError as e:
            raise ValueError(str(e)) from None
        return None if kind == NONE else spec.strip()

    @field_validator("bm25")
    @classmethod
    def _bm25_known(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        from slimvec.retrievers.bm25 import Bm25Config

        unknown = sorted(set(value) - set(Bm25Config.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown BM25 setting {unknown[0]!r}: choose from {', '.join(Bm25Config.__dataclass_fields__)}")
        from slimvec.retrievers.bm25 import Tokenizer

        config = Bm25Config.from_dict(value)
        for key in ("k1", "b"):  # a string, NaN or out-of-range value fails every search later, or finds nothing
            x = getattr(config, key)
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 <= x <= (1 if key == "b" else 1e3):
                raise ValueError(f"BM25 {key} must be a number in [0, {1 if key == 'b' else 1000}], got {x!r}")
        for key in ("lower", "cjk_bigrams"):
            if not isinstance(getattr(config, key), bool):
                raise ValueError(f"BM25 {key} must be true or false, got {getattr(config, key)!r}")
        if config.method not in BM25_METHODS:
            raise ValueError(f"unknown BM25 method {config.method!r}: choose from {', '.join(BM25_METHODS)}")
        try:
            Tokenizer(config)  # an unknown stemmer or stopword language fails here, not at the first add
        except Exception as e:  # noqa: BLE001 - PyStemmer raises KeyError, bm25s ValueError
            raise ValueError(f"invalid BM25 settings ({type(e).__name__}: {e})") from None
        return config.to_dict()

    @field_validator("retrievers")
    @classmethod
    def _retrievers_known(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        if not names:
            raise ValueError("at least one retriever is needed")
        # ["dense", "dense"] was kept as written (the manifest listed it twice, every sync ran it twice) where the
        # user most likely meant another retriever; a list of kinds names each once, as Qdrant's named vectors do.
        if twice := next((n for i, n in enumerate(names) if n in names[:i]), None):
            raise ValueError(f"retriever {twice!r} is named twice in {list(names)}; name each retriever once")
        return names

    @property
    def dense(self) -> bool:
        return "dense" in self.retrievers

    @property
    def compressed(self) -> bool:
        return self.codec != "float32"


def _ivf_codec(spec: str) -> bool:
    """Whether inverted lists can hold codec `spec`'s codes: 1-bit "binary", or a lone product quantizer "pq:MxBITS"."""
    from slimvec.codecs import make_codec
    from slimvec.codecs.pq import PQCodec

    return spec.strip() == "binary" or isinstance(make_codec(spec), PQCodec)


def _p(name: str, description: str, **kw: Any) -> Profile:
    return Profile(name=name, description=description, **kw)


_CJK_BM25 = {"cjk_bigrams": True, "stemmer": None, "stopwords": None}

# The built-in profiles; each is listed by name in slimvec.registry (kind "profile").
EXACT_F32 = _p("exact-f32", "float32 vectors in RAM, exact search (the reference)")
HNSW_F32 = _p("hnsw-f32", "float32 vectors in a faiss HNSW graph, efSearch calibrated on the rows to Recall@10 0.99",
              index="hnsw", target_recall=0.99)
F16 = _p("f16", "float16 codes in RAM, exact scan", codec="float16")
FLOAT8 = _p("float8", "float8 (e4m3) codes in RAM, exact scan: 4x smaller", codec="float8")
INT8 = _p("int8", "int8 codes with per-dimension calibrated ranges: 4x smaller", codec="int8")
PCA_HALF_FLOAT8 = _p("pca-half-float8", "PCA to half the dimensions, then float8: 8x smaller", codec="pca:192 > float8")
PCA_HALF_FLOAT8_RESCORE = _p("pca-half-float8-rescore", "PCA-half float8 candidates in RAM (8x smaller), rescored with float32 from disk",
    codec="pca:192 > float8", rescore=True, oversample=4)
INT4 = _p("int4", "4-bit codes with per-dimension calibrated ranges: 8x smaller, like pca-half-float8", codec="int4")
BINARY = _p("binary", "1-bit sign codes in RAM, Hamming scan, no rescoring: 32x smaller", codec="binary")
BINARY_RESCORE = _p("binary-rescore", "1-bit codes in RAM for candidates, rescored with float32 read from disk",
    codec="binary", rescore=True, oversample=10)
BINARY_IVF_RESCORE = _p("binary-ivf-rescore", "1-bit codes in inverted lists (from 100k rows; exact scan below), rescored with "
    "float32 from disk: the large-collection profile", codec="binary", index="ivf", rescore=True,
    oversample=40)
INT8_RESCORE = _p("int8-rescore", "int8 candidates rescored with float32 from disk", codec="int8", rescore=True, oversample=4)
PQ_RESCORE = _p("pq-rescore", "product-quantized (48 bytes) candidates rescored with float32 from disk",
    codec="pq:48x8", rescore=True, oversample=10)
# 1M rows: 41 B/doc resident at R@10 0.868 (LanceDB IVF-PQ: 54 at 0.828); SciFact/NFCorpus nDCG@10 as exact search
# (BENCHMARKS.md, "document ids in RAM"); oversample 40 reaches 0.928 at 1M for ~1.3x the p50.
PQ16_RESCORE = _p("pq16-rescore", "product-quantized (16 bytes) candidates rescored with float32 from disk: the least "
    "RAM for millions of rows", codec="pq:16x8", rescore=True, oversample=20)
PQ16_IVF_RESCORE = _p("pq16-ivf-rescore", "16-byte PQ codes in inverted lists (from 100k rows; exact scan below), "
    "rescored with float32 from disk: pq16-rescore's RAM without scanning every code", codec="pq:16x8", index="ivf",
    rescore=True, oversample=20)
BM25 = _p("bm25", "BM25 only (bm25s, English stemming and stopwords) over whole documents: no vectors",
    retrievers=("bm25",), mode="bm25", chunk_mode="whole")
SPLADE = _p("splade", "learned sparse only (SPLADE-tiny) over chunks", retrievers=("sparse",), mode="sparse")
HYBRID = _p("hybrid", "dense float32 + BM25, fused by summed per-query softmax of standardised scores",
    retrievers=("dense", "bm25"), mode="hybrid", fusion="softmax")
HYBRID_WEIGHTED = _p("hybrid-weighted", "dense float32 + BM25, fused by the sum of per-query min-max normalised scores",
    retrievers=("dense", "bm25"), mode="hybrid", fusion="weighted")
HYBRID_BINARY = _p("hybrid-binary", "binary-rescore dense + BM25, fused (softmax): hybrid quality at 1/16 of the dense RAM",
    retrievers=("dense", "bm25"), mode="hybrid", codec="binary", rescore=True, oversample=10, fusion="softmax")
BM25_CJK = _p("bm25-cjk", "BM25 for Chinese, Japanese, Korean: CJK runs as character bigrams, no stemming or stopwords",
    retrievers=("bm25",), mode="bm25", chunk_mode="whole", bm25=_CJK_BM25)
HYBRID_CJK = _p("hybrid-cjk", "dense float32 + CJK-bigram BM25, fused (softmax)", retrievers=("dense", "bm25"), mode="hybrid",
    bm25=_CJK_BM25, fusion="softmax")
MULTIVECTOR = _p("multivector", "MiniLM dense float32 candidates, reranked by MaxSim over float16 token vectors on disk",
    model="minilm-tokens", retrievers=("dense", "multivector"), mode="multivector", tokens="float16")
MULTIVECTOR_BINARY = _p("multivector-binary", "1-bit dense codes in RAM pick candidates (rescored with float32 from "
    "disk), MaxSim over float16 tokens from disk: late-interaction quality at binary RAM", model="minilm-tokens",
    retrievers=("dense", "multivector"), mode="multivector", tokens="float16", codec="binary", rescore=True,
    oversample=10, maxsim_depth=300)
MULTIVECTOR_POOLED = _p("multivector-pooled", "as multivector, tokens Ward-pooled by 2 at index time: half the token bytes",
    model="minilm-tokens", retrievers=("dense", "multivector"), mode="multivector", tokens="float16", token_pool=2.0)
MULTIVECTOR_COMPRESSED = _p("multivector-compressed", "binary dense codes + MaxSim over pooled (3) residual "
    "token codes (512 centroids, 2 bits): about 4% of float16 token bytes", model="minilm-tokens",
    retrievers=("dense", "multivector"), mode="multivector", tokens="residual:512:2", token_pool=3.0, codec="binary",
    rescore=True, oversample=10, maxsim_depth=300, token_pool_method="ward")  # its measured setting (BENCHMARKS.md)
MULTIVECTOR_MUVERA = _p("multivector-muvera", "MUVERA fixed-dimensional encodings of the tokens as the dense "
    "vectors (exact float32 FDEs in RAM: 40 KB/row), reranked by MaxSim over float16 tokens", model="minilm-tokens",
    retrievers=("dense", "multivector"), mode="multivector", tokens="float16",
    muvera={"reps": 20, "ksim": 5, "dproj": 16}, maxsim_depth=1000)
HYBRID_MULTIVECTOR = _p("hybrid-multivector", "multivector (dense candidates + MaxSim) fused with BM25 (softmax)",
    model="minilm-tokens", retrievers=("dense", "bm25", "multivector"), mode="hybrid-multivector", tokens="float16",
    fusion="softmax", fusion_temperature=1.0)  # T = 1: within 0.01 of the better part on all six sets (BENCHMARKS.md)
HYBRID_SPARSE = _p("hybrid-sparse", "dense float32 + SPLADE-tiny, fused (softmax)", retrievers=("dense", "sparse"),
    mode="hybrid-sparse", fusion="softmax")


class _Builtin(Mapping[str, Profile]):
    """The registered profiles by name, in registration order (a read-only view of slimvec.registry)."""

    def __getitem__(self, name: str) -> Profile:
        if not registry.has("profile", name):
            raise KeyError(name)
        return registry.load("profile", name)

    def __iter__(self) -> Iterator[str]:
        return iter(registry.names("profile"))

    def __len__(self) -> int:
        return len(registry.names("profile"))


BUILTIN: Mapping[str, Profile] = _Builtin()


def load_profile(name: str | None = None, file: str | Path | None = None) -> Profile:
    """A built-in profile by name, or one read from a JSON file; the default is exact-f32."""
    if file is not None:
        path = Path(file)
        try:
            data = strictjson.loads(path.read_text(encoding="utf-8"))
        except strictjson.RepeatedKeyError as e:
            raise ConfigError(f"{path}: {e}") from None
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such profile file") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: profile is not valid JSON ({e})") from None
        return profile_from_dict(data, source=str(path))
    name = name or "exact-f32"
    if name not in BUILTIN:
        raise ConfigError(f"unknown profile {name!r}: choose one of {', '.join(BUILTIN)}")
    return BUILTIN[name]


def profile_from_dict(data: Any, source: str = "profile") -> Profile:
    """Validate a profile given as a dict; errors name the field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a profile must be a JSON object")
    try:
        return Profile(**data)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(x) for x in first["loc"]) or "profile"
        # pydantic's own messages ("Input should be a valid integer") do not say what was given; ours do
        got = f", got {first['input']!r}" if first["loc"] and first["type"] != "value_error" else ""
        raise ConfigError(f"{source}: {field}: {validation_message(first)}{got}") from None


def recorded_profile(data: Any, chunking: Any, source: str = "profile") -> Profile:
    """`profile_from_dict` for a profile a collection recorded (its manifest's, an export's carried one), with
    `chunking` its record of how it cut chunks. Collections made before an overlap of half the chunk or more was
    refused (the profile validator) record the profile's overlap, which `Collection.create` cut to fit: the overlap
    they used, their chunking's, is taken instead, so their exports import and they migrate."""
    if isinstance(data, dict) and isinstance(data.get("retrievers"), list):
        # Recorded before a retriever named twice, or token vectors no retriever reads, were refused: the
        # collection ran each retriever once and never read the tokens, which is what this record now says.
        retrievers = list(dict.fromkeys(data["retrievers"]))
        data = {**data, "retrievers": retrievers}
        if data.get("tokens") is not None and "multivector" not in retrievers and data.get("muvera") is None:
            data = {**data, "tokens": None, "token_rescore": 0}
    if isinstance(data, dict):
        # Recorded before settings the profile never reads were refused (`Profile.unused_options`): they were
        # never used, so the record means the same with their defaults.
        data = _unused_dropped(data)
    if isinstance(data, dict) and isinstance(chunking, dict) and isinstance(chunking.get("overlap"), int):
        tokens, overlap = data.get("chunk_tokens"), data.get("chunk_overlap")
        if (isinstance(tokens, int) and isinstance(overlap, int) and overlap >= tokens // 2 > chunking["overlap"]
                and overlap != Profile.model_fields["chunk_overlap"].default):  # the default is cut, not refused
            data = {**data, "chunk_overlap": chunking["overlap"]}
    return profile_from_dict(data, source)


def _unused_dropped(data: dict[str, Any]) -> dict[str, Any]:
    """A recorded profile dict with each setting `Profile.unused_options` names put back to its default (read
    without validation: anything else wrong is validation's to report, as before), so a collection made before
    they were refused migrates and exports into one `Collection.create` takes."""
    try:
        unused = Profile.model_construct(**data).unused_options()
    except Exception:  # noqa: BLE001 - a record too broken to read: validation names the problem
        return data
    return {**data, **{field: Profile.model_fields[field].default for field, _ in unused}} if unused else data


def register_profile(profile: Profile) -> None:
    """Make a profile selectable by name. Raises ConfigError if the name is taken."""
    registry.register("profile", profile.name, profile)
