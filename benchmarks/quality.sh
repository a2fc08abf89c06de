#!/usr/bin/env bash
# Quality and cost of every storage and hybrid profile on the BEIR sets in ../shared/data, BEIR protocol
# (one vector per document, the model truncates at 256 tokens, title + " " + text, queries as given).
# The corpus is encoded once per model thanks to the embedding cache; each profile builds its own collection.
#   bash benchmarks/quality.sh            # reports land in benchmarks/out/<dataset>/report.{md,html}, pareto.png
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${SLIMVEC_DATA:-../shared/data}"
BIN=.venv/bin
STORAGE=exact-f32,f16,float8,int8,pca-half-float8,int4,binary,binary-rescore,int8-rescore,pq-rescore,pca-half-float8-rescore,binary-ivf-rescore
HYBRID=bm25,hybrid,hybrid-binary
for ds in scifact nfcorpus; do
  $BIN/slimvec sweep "$DATA/$ds" --profiles "$STORAGE,$HYBRID" --chunk-mode whole \
    --out "benchmarks/out/$ds" --cache .slimvec-cache
done
for ds in xquad-de xquad-zh; do
  $BIN/slimvec sweep "$DATA/$ds" --profiles exact-f32,bm25,hybrid --chunk-mode whole \
    --out "benchmarks/out/$ds" --cache .slimvec-cache
done
