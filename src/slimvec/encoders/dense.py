"""Dense single-vector encoders backed by sentence-transformers, loaded from local directories only.

Queries of a model with a verified ONNX export (`encoders/onnx_export.py`: the bundled all-MiniLM-L6-v2 after
`make install` or its first ingest) run through ONNX Runtime and never import torch; the torch model is loaded
only to encode documents, for late chunking, or when no export exists (then with a one-line notice).
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path

import numpy as np

from slimvec.encoders.base import quiet_model_loading
from slimvec.encoders.threads import query_threads
from slimvec.errors import ConfigError
from slimvec.progress import progress_bar

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Texts handed to sentence-transformers per call: big enough for its length sorting to pay off,
# small enough for the progress bar to move.
_SLICE = 1024


# Prompt names models declare in config_sentence_transformers.json, per side (E5/BGE use query/passage or
# query/document, nomic search_query/search_document).
QUERY_PROMPT_NAMES = ("query", "search_query")
DOCUMENT_PROMPT_NAMES = ("document", "passage", "search_document", "corpus")


def configured_prompts(path: str | Path) -> tuple[str, str]:
    """(query prompt, document prompt) a sentence-transformers directory declares: its `prompts` by the names
    above, else its `default_prompt_name` prompt for both sides, else "" (as sentence-transformers' encode).

    Raises ConfigError when config_sentence_transformers.json is not valid JSON or names a missing prompt."""
    cfg = Path(path) / "config_sentence_transformers.json"
    if not cfg.exists():
        return "", ""
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{cfg}: not valid JSON ({e})") from None
    prompts = data.get("prompts") or {}
    if not isinstance(prompts, dict) or not all(isinstance(v, str) for v in prompts.values()):
        raise ConfigError(f"{cfg}: prompts must map names to strings")
    default_name = data.get("default_prompt_name")
    if default_name is not None and default_name not in prompts:
        raise ConfigError(f"{cfg}: default_prompt_name {default_name!r} is not one of its prompts")
    default = prompts.get(default_name, "") if default_name else ""

    def side(names: tuple[str, ...]) -> str:
        return next((prompts[n] for n in names if n in prompts), default)

    return side(QUERY_PROMPT_NAMES), side(DOCUMENT_PROMPT_NAMES)


class DenseEncoder:
    """A sentence-transformers model from a local directory; vectors L2-normalised.

    Prompts: query_prompt / document_prompt are prepended to each text; None (the default) takes the ones the
    model's config_sentence_transformers.json declares (`configured_prompts`), so E5/BGE-style models are used
    as trained.
    """

    kind = "dense"

    def __init__(self, path: str | Path, name: str | None = None, batch_size: int = 32,
                 query_prompt: str | None = None, document_prompt: str | None = None) -> None:
        self.path = Path(path)
        if not (self.path / "modules.json").exists() and not (self.path / "config.json").exists():
            raise ConfigError(f"{self.path}: not a sentence-transformers model directory (no modules.json)")
        self.name = name or str(self.path)
        self.batch_size = batch_size
        own_query, own_document = configured_prompts(self.path)
        self.query_prompt = own_query if query_prompt is None else query_prompt
        self.document_prompt = own_document if document_prompt is None else document_prompt

    @cached_property
    def _onnx(self):  # noqa: ANN202 - OnnxTransformerEncoder | None
        """The query encoder on the verified ONNX export of this model (None: queries use torch)."""
        from slimvec.encoders.onnx_export import onnx_encoder

        return onnx_encoder(self.path, self.name, "dense", query_prompt=self.query_prompt,
                            batch_size=self.batch_size)

    @property
    def query_runtime(self) -> str:
        """"onnxruntime" when queries run on the verified ONNX export (no torch), else "torch"."""
        return "onnxruntime" if self._onnx is not None else "torch"

    def with_prompts(self, query_prompt: str | None = None, document_prompt: str | None = None) -> DenseEncoder:
        """The same model (loaded once, shared) with other prompts; None keeps this encoder's."""
        other = DenseEncoder(self.path, self.name, self.batch_size,
                             self.query_prompt if query_prompt is None else query_prompt,
                             self.document_prompt if document_prompt is None else document_prompt)
        if "model" in self.__dict__:
            other.__dict__["model"] = self.__dict__["model"]
        return other

    @cached_property
    def model(self):  # noqa: ANN201 - SentenceTransformer, imported lazily so the CLI starts fast
        from sentence_transformers import SentenceTransformer

        quiet_model_loading()
        return SentenceTransformer(str(self.path), device="cpu", local_files_only=True)

    @cached_property
    def _tokenizer(self):  # noqa: ANN202
        from tokenizers import Tokenizer

        tok_file = self.path / "tokenizer.json"
        tok = Tokenizer.from_file(str(tok_file)) if tok_file.exists() else self.model.tokenizer.backend_tokenizer
        tok.no_truncation()
        tok.no_padding()
        return tok

    @cached_property
    def dim(self) -> int:  # type: ignore[override]
        if "model" not in self.__dict__ and self._onnx is not None:  # no torch just to learn the width
            return int(self._onnx.dim)
        return int(self.model.get_embedding_dimension())

    @cached_property
    def max_tokens(self) -> int:  # type: ignore[override]
        cfg = self.path / "sentence_bert_config.json"
        if cfg.exists():
            return int(json.loads(cfg.read_text()).get("max_seq_length", 256)) - 2
        return int(self.model.max_seq_length) - 2

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model's word-piece tokens."""
        return [tuple(o) for o in self._tokenizer.encode(text, add_special_tokens=False).offsets]  # type: ignore[misc]

    def _encode(self, texts: list[str], prompt: str, progress: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        texts = [prompt + t for t in texts] if prompt else list(texts)
        # Sort by length once over everything, so each batch pads little (as sentence-transformers does per call).
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with progress_bar("encoding", len(texts), enabled=progress and len(texts) > _SLICE) as advance:
            for s in range(0, len(texts), _SLICE):
                idx = order[s : s + _SLICE]
                out[idx] = self.model.encode(
                    [texts[i] for i in idx], batch_size=self.batch_size, normalize_embeddings=True,
                    convert_to_numpy=True, show_progress_bar=False,
                )
                advance(len(idx))
        return out

    def encode_documents(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Document/chunk vectors, float32, unit length (sentence-transformers on torch).

        The first call in a process exports the bundled MiniLM to ONNX when it has no export yet
        (`onnx_export.ensure_export`), since torch and the model are loaded anyway."""
        if texts:
            from slimvec.encoders.onnx_export import ensure_export

            ensure_export(self.path, self.model)
        return self._encode(texts, self.document_prompt, progress)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Query vectors, (n, dim) float32, unit length: ONNX Runtime on the verified export when there is one
        (no torch import; same tokenisation, prompt, truncation and mean pooling, cosine >= 0.9999 with
        sentence-transformers), else sentence-transformers with one torch thread for a few queries
        (encoders/threads.py)."""
        onnx = self._onnx
        if onnx is not None:
            return onnx.encode_queries(list(texts))
        from slimvec.encoders.onnx_export import fallback_notice

        fallback_notice(self.path)
        with query_threads(len(texts)):
            return self._encode(texts, self.query_prompt, False)

    # ---- token-level output (late chunking) ---------------------------------------------------------------
    @cached_property
    def max_positions(self) -> int:
        """Longest token sequence the network accepts, without special tokens (512 - 2 for MiniLM).

        sentence-transformers truncates at `max_seq_length` (256 for MiniLM); the position table is longer.
        """
        auto = self.model[0].auto_model
        return int(getattr(auto.config, "max_position_embeddings", self.max_tokens + 2)) - 2

    def tokenize(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """(word-piece ids, character span of each) for `text`, no special tokens, no truncation."""
        enc = self._tokenizer.encode(text, add_special_tokens=False)
        return list(enc.ids), [tuple(o) for o in enc.offsets]  # type: ignore[misc]

    def token_embeddings(self, sequences: list[list[int]]) -> list[np.ndarray]:
        """Contextual output vector of every token: one forward pass per sequence, [CLS]/[SEP] added then dropped.

        sequences: word-piece ids (from `tokenize`), each at most `max_positions` long.
        Returns one float32 array of shape (len(sequence), dim) per sequence: the last hidden state before
        pooling (sentence-transformers' `output_value="token_embeddings"`), not normalised.
        Raises ValueError for a sequence longer than `max_positions`.
        """
        import torch

        if any(len(s) > self.max_positions for s in sequences):
            raise ValueError(f"a sequence is longer than the model's {self.max_positions} positions")
        tok = self.model.tokenizer
        cls, sep, pad = tok.cls_token_id, tok.sep_token_id, tok.pad_token_id or 0
        out: list[np.ndarray] = [np.zeros((0, self.dim), np.float32)] * len(sequences)
        # Longest first, so each batch pads little.
        order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
        module = self.model[0]
        for s in range(0, len(order), self.batch_size):
            idx = [i for i in order[s : s + self.batch_size] if sequences[i]]
            if not idx:
                continue
            width = len(sequences[idx[0]]) + 2
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for r, i in enumerate(idx):
                seq = [cls, *sequences[i], sep]
                ids[r, : len(seq)] = torch.tensor(seq)
                mask[r, : len(seq)] = 1
            with torch.inference_mode():
                hidden = module({"input_ids": ids, "attention_mask": mask,
                                 "token_type_ids": torch.zeros_like(ids)})["token_embeddings"]
            hidden_np = hidden.float().numpy()
            for r, i in enumerate(idx):
                out[i] = np.ascontiguousarray(hidden_np[r, 1 : 1 + len(sequences[i])])
        return out
