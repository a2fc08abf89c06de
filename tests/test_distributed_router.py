"""Routing of a sharded collection: stable across processes, total, and the router manifest's checks."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from slimvec.distributed.router import ROUTER_FILE, read_router, shard_of
from slimvec.errors import CollectionError

IDS = [f"doc-{i}" for i in range(2000)] + ["", "é", "日本語", "a" * 300, "4983", "PMID:123"]


def test_routing_is_blake2b_of_utf8_id_mod_n():
    # Independent reference: the first 8 digest bytes, big-endian, mod n.
    for doc_id in ("4983", "é", "日本語"):
        ref = int.from_bytes(hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest(), "big")
        for n in (1, 2, 3, 7):
            assert shard_of(doc_id, n) == ref % n


def test_routing_is_total_and_spreads():
    for n in (1, 2, 3, 8):
        owners = [shard_of(i, n) for i in IDS]
        assert all(0 <= s < n for s in owners)
        counts = [owners.count(s) for s in range(n)]
        assert min(counts) > len(IDS) / n * 0.8  # every shard gets its share


def test_routing_is_stable_across_processes_and_hash_seeds():
    code = "import json,sys; from slimvec.distributed.router import shard_of; print(json.dumps([shard_of(i, 5) for i in json.load(sys.stdin)]))"
    src = str(Path(__file__).resolve().parents[1] / "src")
    outs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": src}
        r = subprocess.run([sys.executable, "-c", code], input=json.dumps(IDS), capture_output=True, text=True,
                           env=env, check=True)
        outs.append(json.loads(r.stdout))
    assert outs[0] == outs[1] == [shard_of(i, 5) for i in IDS]


@pytest.mark.parametrize("change, message", [
    ({"format_version": 99}, "format version 99"),
    ({"routing": "python-hash"}, "routing rule 'python-hash'"),
    ({"shards": []}, "field 'shards'"),
])
def test_bad_router_manifest_is_refused_in_one_line(tmp_path, change, message):
    good = {"format_version": 1, "routing": "blake2b-64-mod", "shards": ["shards/000"]}
    (tmp_path / ROUTER_FILE).write_text(json.dumps({**good, **change}))
    with pytest.raises(CollectionError, match=message):
        read_router(tmp_path)


def test_broken_json_names_file_and_line(tmp_path):
    (tmp_path / ROUTER_FILE).write_text('{\n"format_version": 1,\n oops}')
    with pytest.raises(CollectionError, match=r"shards.json: not valid JSON \(line 3"):
        read_router(tmp_path)


def test_bad_shard_counts_workers_and_addresses_are_one_line_and_create_nothing(tmp_path):
    from typer.testing import CliRunner

    from slimvec.cli import app
    from slimvec.distributed import create_sharded
    from slimvec.errors import ConfigError

    for bad in (0, 100_000, True):
        with pytest.raises(ConfigError, match="shards must be an integer from 1 to 1024"):
            create_sharded(tmp_path / "s", shards=bad)
        assert not (tmp_path / "s").exists() or not any((tmp_path / "s").iterdir())
    source = tmp_path / "docs.jsonl"
    source.write_text(json.dumps({"id": "a", "text": "cats"}) + "\n")
    runner = CliRunner()
    for args, needle in ((["--workers", "3"], "--workers needs --ray"),
                         (["--address", " "], "--address is empty"),
                         (["--address", "not an address"], "cannot join the Ray cluster at 'not an address'")):
        res = runner.invoke(app, ["index", str(source), "-c", str(tmp_path / "c"), *args])
        assert res.exit_code == 2 and needle in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1, res.output
        assert not (tmp_path / "c").exists()
