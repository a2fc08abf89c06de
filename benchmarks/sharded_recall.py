"""Sharded vs one collection on SciFact: recall@10 of each profile per shard count, against one exact collection.

Every build stores the same vectors (the exact build's, replayed), so differences come from sharding and the
profile's index alone. "same top 10" counts queries whose ids and scores equal the one exact collection's.

    PYTHONPATH=src python benchmarks/sharded_recall.py --docs 1000 --queries 300
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, read_jsonl  # noqa: E402

from slimvec import Collection, Document  # noqa: E402
from slimvec.distributed import create_sharded  # noqa: E402
from slimvec.encoders.memo import MemoEncoder  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--profiles", default="exact-f32,hnsw-f32,binary-rescore,int8")
    ap.add_argument("--shards", default="1,2,4")
    a = ap.parse_args()
    docs = [Document(d["_id"], d["text"], d["title"]) for d in read_jsonl(DATA / "scifact" / "corpus.jsonl", a.docs)]
    queries = [q["text"] for q in read_jsonl(DATA / "scifact" / "queries.jsonl", a.queries)]
    with tempfile.TemporaryDirectory() as tmp:
        ref = Collection.create(Path(tmp) / "ref", profile="exact-f32")
        ref._encoder = enc = MemoEncoder(ref.encoder)
        ref.add(docs)
        qv = enc.encode_queries(queries)
        exact = ref.search_many(queries, k=10, vectors=qv, with_payload=False)
        print(f"SciFact: {len(docs)} docs, {len(queries)} queries, k=10; reference: one exact-f32 collection")
        print(f"{'profile':<16}{'shards':>7}{'recall@10':>11}{'same top 10':>13}")
        for prof in a.profiles.split(","):
            for n in (int(s) for s in a.shards.split(",")):
                col = create_sharded(Path(tmp) / f"{prof}-{n}", shards=n, profile=prof, encoder=enc)
                col.add(docs)
                got = col.search_many(queries, k=10, vectors=qv, with_payload=False)
                recall = np.mean([len({h.id for h in g} & {h.id for h in e}) / len(e) for g, e in zip(got, exact)])
                same = sum([(h.id, h.score) for h in g] == [(h.id, h.score) for h in e] for g, e in zip(got, exact))
                print(f"{prof:<16}{n:>7}{recall:>11.4f}{same:>8}/{len(queries)}")
                col.close()
        ref.close()


if __name__ == "__main__":
    main()
