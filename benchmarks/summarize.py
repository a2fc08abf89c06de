"""Turn `slimvec sweep` results into the tables of BENCHMARKS.md: quality kept and RAM saved, as ratios to exact-f32.

    python benchmarks/summarize.py benchmarks/out/scifact benchmarks/out/nfcorpus
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import print_table  # noqa: E402


def main(folders: list[str]) -> None:
    for folder in folders:
        results = json.loads((Path(folder) / "results.json").read_text())
        ref = next(r for r in results if r["profile"] == "exact-f32")
        ref_ndcg, ref_ram = ref["metrics"]["ndcg@10"], ref["cost"]["ram_bytes_per_doc"]
        print(f"\n### {ref['dataset']} ({ref['split']}, {ref['queries']} queries, {ref['documents']} documents)\n")
        rows = []
        for r in results:
            m, c = r["metrics"], r["cost"]
            rows.append([r["profile"], f"{m['ndcg@10']:.4f}", f"{m['ndcg@10'] / ref_ndcg:.2%}", f"{m['recall@100']:.4f}",
                         f"{m['mrr@10']:.4f}", f"{c['ram_bytes_per_doc']:,.0f}", f"1/{ref_ram / c['ram_bytes_per_doc']:.1f}",
                         f"{c['disk_bytes_per_doc']:,.0f}", f"{c['search_ms_p50']:.1f}", f"{c['search_ms_p95']:.1f}"])
        print_table(["profile", "nDCG@10", "vs exact-f32", "Recall@100", "MRR@10", "RAM B/doc", "RAM vs f32",
                     "disk B/doc", "search p50 ms", "search p95 ms"], rows)
        enc = [r["cost"]["encode_ms_p50"] for r in results if r["cost"].get("encode_ms_p50")]
        if enc:
            print(f"\nquery encoding (MiniLM, one query at a time, 50 sampled per profile): median of medians "
                  f"{sorted(enc)[len(enc) // 2]:.1f} ms")


if __name__ == "__main__":
    main(sys.argv[1:])
