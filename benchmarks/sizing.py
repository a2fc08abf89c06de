"""Sizing on paper (issue 15 item 5): RAM and disk per document and per 100 M documents for each built-in
profile measured by benchmarks/peers.py, and documents per shard for a given node.

    PYTHONPATH=src python benchmarks/peers.py --datasets scale --rows 100000 --json /tmp/peers-cache/scale100k.json
    PYTHONPATH=src python benchmarks/sizing.py /tmp/peers-cache/scale100k.json --node-gib 64 --ram-share 0.5

Per-document figures are the measured bytes of a 100k-row collection (one 384-d MiniLM-like chunk per
document) divided by its rows: RAM is what the collection holds resident for search (`info()["ram_bytes"]`,
codes, lists, row map), disk is its directory (SQLite with the texts, float32 vectors, derived files). A shard
is given `--ram-share` of the node's memory for its index (the rest: the model, the page cache that
rescoring reads float32 rows through, the OS). Linear extrapolation: per-row costs do not shrink with size,
while fixed costs (codebooks, centroids) become negligible, so large collections cost at most this per row.
"""

from __future__ import annotations

import argparse
import json

from _common import print_table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", help="peers.py --json output holding a 'scale' dataset")
    ap.add_argument("--node-gib", type=float, default=64.0, help="RAM of one node, GiB")
    ap.add_argument("--ram-share", type=float, default=0.5, help="share of the node's RAM for one shard's index")
    args = ap.parse_args()
    runs = json.load(open(args.results))["scale"]
    budget = args.node_gib * 2**30 * args.ram_share
    rows = []
    for r in runs:
        if not r["engine"].startswith("slimvec:"):
            continue
        ram, disk = r["ram_bytes"] / r["n"], r["disk_bytes"] / r["n"]
        rows.append([r["engine"].split(":", 1)[1], f"{r['recall']:.3f}", f"{ram:,.0f}", f"{disk:,.0f}",
                     f"{ram * 1e8 / 2**30:,.1f}", f"{disk * 1e8 / 2**30:,.0f}", f"{budget / ram / 1e6:,.0f} M",
                     f"{max(1, -(-1e8 * ram // budget)):,.0f}"])
    print(f"node: {args.node_gib:g} GiB, {args.ram_share:.0%} of it for a shard's index; from {runs[0]['n']:,} rows")
    print_table(["profile", "R@10", "RAM B/doc", "disk B/doc", "RAM GiB per 100 M", "disk GiB per 100 M",
                 "documents per shard", "shards for 100 M"], rows)


if __name__ == "__main__":
    main()
