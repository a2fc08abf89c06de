"""`slimvec distill` and model2vec static models: distilled model round trip, loading by path, no torch at
encoding time, a collection on a static model, one-line CLI errors.

Distilling the whole MiniLM vocabulary (30,522 wordpieces) takes minutes on 2 cores, so the model distilled
here is the bundled MiniLM (its own weights, tokenizer rules and config, files linked) with its vocabulary cut
to the first 3,000 wordpieces (about 2,000 once the [unusedN] placeholders are dropped): every step of the real distillation runs, over fewer tokens. Quality figures
come from benchmarks/distill.py, which distills the full model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing here may reach the hub
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from slimvec import Collection, Document  # noqa: E402
from slimvec.cli import app  # noqa: E402
from slimvec.encoders.distill import bundled_minilm_path  # noqa: E402
from slimvec.encoders.registry import load_encoder  # noqa: E402
from slimvec.encoders.static import Model2VecEncoder  # noqa: E402

VOCABULARY = 3000
PCA_DIMS = 32
runner = CliRunner()
TEXTS = ["Vitamin D helps the body absorb calcium.", "the cat sat on the mat", "", "Tumours evade the immune system."]


def _cut_minilm(dst: Path, n: int) -> Path:
    """The bundled MiniLM with only its first `n` wordpieces (ids kept, so the weights still match)."""
    src = bundled_minilm_path()
    dst.mkdir()
    for f in src.iterdir():
        if f.name not in ("tokenizer.json", "vocab.txt"):
            os.symlink(f, dst / f.name)
    tok = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    tok["model"]["vocab"] = {t: i for t, i in tok["model"]["vocab"].items() if i < n}
    (dst / "tokenizer.json").write_text(json.dumps(tok), encoding="utf-8")
    lines = (src / "vocab.txt").read_text(encoding="utf-8").splitlines(keepends=True)[:n]
    (dst / "vocab.txt").write_text("".join(lines), encoding="utf-8")
    return dst


@pytest.fixture(scope="module")
def distilled(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("distill")
    source = _cut_minilm(base / "minilm-cut", VOCABULARY)
    out = base / "static"
    res = runner.invoke(app, ["distill", "--from", str(source), "--out", str(out), "--pca-dims", str(PCA_DIMS),
                              "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout[res.stdout.index("{"):])
    assert summary["dim"] == PCA_DIMS and summary["path"] == str(out)
    return out


def _reference_vectors(path: Path, texts: list[str]) -> np.ndarray:
    """Mean of the texts' token rows, L2-normalised: read straight from the saved files, not through model2vec."""
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    (table,) = load_file(str(path / "model.safetensors")).values()
    tok = Tokenizer.from_file(str(path / "tokenizer.json"))
    tok.no_truncation()
    out = np.zeros((len(texts), table.shape[1]), np.float32)
    for i, text in enumerate(texts):
        ids = tok.encode(text, add_special_tokens=False).ids
        if ids:
            v = table[ids].astype(np.float64).mean(axis=0)
            out[i] = v / np.linalg.norm(v)
    return out


def test_distilled_directory_is_a_model2vec_model(distilled):
    cfg = json.loads((distilled / "config.json").read_text())
    assert cfg["model_type"] == "model2vec" and cfg["hidden_dim"] == PCA_DIMS
    from safetensors.numpy import load_file

    (table,) = load_file(str(distilled / "model.safetensors")).values()
    assert table.dtype == np.float16 and table.shape[1] == PCA_DIMS
    # the cut vocabulary, less the [unusedN] placeholders model2vec drops
    assert 1500 < table.shape[0] < VOCABULARY
    assert not list(distilled.parent.glob(".static.tmp-*"))  # the temporary directory is gone


def test_round_trip_vectors_equal_model2vec_and_the_saved_table(distilled):
    from model2vec import StaticModel

    enc = load_encoder(str(distilled))
    assert isinstance(enc, Model2VecEncoder) and enc.dim == PCA_DIMS and enc.name == str(distilled)
    vecs = enc.encode_documents(TEXTS)
    assert vecs.shape == (len(TEXTS), PCA_DIMS) and vecs.dtype == np.float32
    wide = StaticModel.from_pretrained(distilled, quantize_to="float32").encode(TEXTS)
    np.testing.assert_array_equal(vecs, wide)
    # model2vec's default load (float16 arithmetic) agrees to float16 precision
    np.testing.assert_allclose(vecs, StaticModel.from_pretrained(distilled).encode(TEXTS).astype(np.float32), atol=2e-3)
    np.testing.assert_allclose(vecs, _reference_vectors(distilled, TEXTS), atol=1e-6)
    norms = np.linalg.norm(vecs, axis=1)
    np.testing.assert_allclose(norms[[0, 1, 3]], 1.0, rtol=1e-6)
    assert norms[2] == 0.0  # an empty text has no token
    np.testing.assert_array_equal(enc.encode_queries(TEXTS[:1]), vecs[:1])  # symmetric


def test_token_spans_cover_text_past_the_truncation_length(distilled):
    enc = load_encoder(str(distilled))
    text = "the " * (enc.max_tokens + 50)
    spans = enc.token_spans(text)
    assert len(spans) == enc.max_tokens + 50
    assert all(text[a:b] == "the" for a, b in spans)


def test_encoding_a_static_model_imports_no_torch(distilled):
    code = (
        "import sys\n"
        "from slimvec.encoders.registry import load_encoder\n"
        f"v = load_encoder({str(distilled)!r}).encode_documents(['a static model needs no torch'])\n"
        "print(v.shape[1], 'torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == [str(PCA_DIMS), "False", "False"]


def test_collection_on_the_static_model_finds_documents_sharing_the_query_words(tmp_path, distilled):
    docs = [
        Document("water", "The river carries water down to the sea.", "Rivers"),
        Document("music", "The band played music all night.", "Bands"),
        Document("school", "Children go to school in the morning.", "Schools"),
        Document("money", "The bank gives money to business people.", "Banks"),
    ]
    # words among the first 3,000 wordpieces, so each is one token of the cut vocabulary
    queries = {"water": "river water", "music": "band music", "school": "children school", "money": "bank money"}
    with Collection.create(tmp_path / "c", model=str(distilled)) as col:
        col.add(docs)
        found = {want: col.search(q, k=1)[0].id for want, q in queries.items()}
    assert found == {k: k for k in queries}
    with Collection.open(tmp_path / "c") as again:  # the manifest's model is the directory, loaded by path
        assert again.manifest["model"] == str(distilled)
        assert again.search("river water", k=1)[0].id == "water"


def test_hybrid_on_a_static_model_weights_its_ranking_below_bm25s_unless_told_otherwise(tmp_path, distilled):
    from slimvec.encoders.static import STATIC_FUSION_WEIGHT
    from slimvec.profiles import BUILTIN

    docs = [Document(f"d{i}", t) for i, t in enumerate([
        "The river carries water down to the sea.", "Children go to school by the river in the morning.",
        "The band played music all night by the water.", "The bank gives money to business people.",
        "Water and money: the school band went to the bank.", "People in the morning play music at school."])]
    with Collection.create(tmp_path / "c", model=str(distilled), profile="hybrid") as col:
        col.add(docs)
        assert col.info()["fusion"] == {"mode": "hybrid", "method": "softmax", "weights": [STATIC_FUSION_WEIGHT, 1.0]}
        assert STATIC_FUSION_WEIGHT == 0.2
        queries = ["river water music", "school morning", "money bank people", "band night water", "sea children"]
        default = [[(h.id, h.score) for h in col.search(q, k=6)] for q in queries]
        told = [[(h.id, h.score) for h in col.search(q, k=6, fusion_weights=[0.2, 1.0])] for q in queries]
        equal = [[(h.id, h.score) for h in col.search(q, k=6, fusion_weights=[1.0, 1.0])] for q in queries]
        assert default == told and default != equal  # searches use the recorded weights; a search's own still win
    with Collection.open(tmp_path / "c") as again:
        assert again.info()["fusion"]["weights"] == [0.2, 1.0]
    # a profile's own weights, another fusion, a profile without fusion, or a model without the weight: as given
    mine = BUILTIN["hybrid"].model_copy(update={"fusion_weights": (0.5, 1.0)})
    for name, kwargs, want in [("mine", {"profile": mine, "model": str(distilled)}, [0.5, 1.0]),
                               ("rrf", {"profile": BUILTIN["hybrid"].model_copy(update={"fusion": "rrf"}),
                                        "model": str(distilled)}, None),
                               ("dense", {"profile": "exact-f32", "model": str(distilled)}, "no fusion"),
                               ("minilm", {"profile": "hybrid", "model": "all-MiniLM-L6-v2"}, None),
                               # measured against BM25 only: dense + SPLADE keeps equal weights
                               ("sparse", {"profile": "hybrid-sparse", "model": str(distilled)}, None),
                               ("wordllama", {"profile": "hybrid", "model": "wordllama"}, [0.5, 1.0])]:
        with Collection.create(tmp_path / name, **kwargs) as col:
            assert col.info().get("fusion", {"weights": "no fusion"})["weights"] == want, name


@pytest.mark.parametrize("args, message", [
    (["--from", "no-such-model"], "unknown model 'no-such-model'"),
    (["--from", "wordllama"], "model 'wordllama' cannot be distilled"),
    (["--pca-dims", "385"], "pca_dims 385 must be between 1 and the model's dimension 384"),
    (["--pca-dims", "0"], "pca_dims 0 must be between 1"),
])
def test_cli_errors_are_one_line(tmp_path, args, message):
    res = runner.invoke(app, ["distill", "--out", str(tmp_path / "out"), *args])
    assert res.exit_code == 2
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_cli_refuses_a_non_empty_output_and_a_static_source(tmp_path, distilled):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    res = runner.invoke(app, ["distill", "--out", str(out)])
    assert res.exit_code == 2 and "output directory exists and is not empty" in res.stderr
    assert (out / "keep.txt").read_text() == "mine"
    res = runner.invoke(app, ["distill", "--from", str(distilled), "--out", str(tmp_path / "again")])
    assert res.exit_code == 2 and "already a model2vec static model" in res.stderr


def test_unknown_directory_layout_names_both_formats(tmp_path):
    from slimvec.errors import ConfigError

    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no sentence-transformers or model2vec model"):
        load_encoder(str(tmp_path / "empty"))


def test_distill_without_the_extra_says_which_to_install_before_loading_torch(tmp_path):
    # sys.modules[name] = None makes `import name` fail as if the package were not installed.
    code = ("import sys\nsys.modules['skeletoken'] = None\nsys.argv = ['slimvec', 'distill', '--out', sys.argv[1]]\n"
            "from slimvec.cli import app\ntry:\n    app()\nexcept SystemExit as e:\n"
            "    print('torch' in sys.modules, e.code)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out")], capture_output=True, text=True,
                         env=env, check=False)
    assert res.stdout.split() == ["False", "2"]
    assert res.stderr.strip().endswith("pip install 'slimvec[distill]'") and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_config_without_a_width_is_refused_in_one_line(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "bert"}')
    res = runner.invoke(app, ["distill", "--from", str(model), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "field hidden_size missing" in res.stderr and "config.json" in res.stderr
