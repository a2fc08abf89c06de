"""Report: Pareto flags on hand-made points, and the Markdown/CSV/PNG/HTML files."""

from __future__ import annotations

import base64
import csv
from pathlib import Path

import pytest

from slimvec.evaluation.report import (
    pareto_flags,
    pareto_front,
    plot_pareto,
    write_csv,
    write_markdown,
    write_report,
)


def test_pareto_front_hand_made_points() -> None:
    points = [
        (0.70, 1536),  # best quality at the lowest cost reaching it: optimal
        (0.68, 384),  # optimal: nothing with >= 0.68 is cheaper
        (0.65, 48),  # optimal: cheapest
        (0.60, 96),  # dominated by (0.65, 48): better and cheaper
        (0.70, 3072),  # dominated by (0.70, 1536): same quality, cheaper
        (0.65, 48),  # identical to an optimal point: ties do not dominate, so optimal too
        (None, 10),  # unmeasured: never optimal
    ]
    assert pareto_front(points) == [True, True, True, False, False, True, False]


def test_pareto_front_edge_cases() -> None:
    assert pareto_front([]) == []
    assert pareto_front([(0.5, 100)]) == [True]
    # Equal cost, lower quality is dominated; equal quality, higher cost is dominated.
    assert pareto_front([(0.5, 100), (0.4, 100), (0.5, 200)]) == [True, False, False]
    assert pareto_front([(float("nan"), 1.0), (0.1, 5.0)]) == [False, True]


def _result(dataset: str, profile: str, ndcg: float, ram: float, split: str = "test") -> dict:
    return {
        "dataset": dataset, "profile": profile, "split": split,
        "metrics": {"ndcg@10": ndcg, "recall@100": min(1.0, ndcg + 0.2), "mrr@10": ndcg - 0.02,
                    "map@100": ndcg - 0.05},
        "cost": {"ram_bytes_per_doc": ram, "disk_bytes_per_doc": ram * 1.5, "build_s": 12.5,
                 "query_ms_p50": 1.25, "query_ms_p95": 3.5},
    }


RESULTS = [
    _result("scifact", "minilm-f32", 0.645, 1536),
    _result("scifact", "minilm-int8", 0.640, 384),
    _result("scifact", "minilm-bin", 0.560, 48),
    _result("scifact", "bm25", 0.550, 900),  # dominated by minilm-int8
    _result("nfcorpus", "minilm-f32", 0.310, 1536),
    _result("nfcorpus", "bm25", 0.320, 900),  # dominates nfcorpus minilm-f32
    # Worse than every scifact point, but judged only against nfcorpus: cheapest there, so optimal.
    _result("nfcorpus", "minilm-bin", 0.250, 48),
]
EXPECTED_FLAGS = [True, True, True, False, False, True, True]


def test_pareto_is_per_dataset() -> None:
    assert pareto_flags(RESULTS) == EXPECTED_FLAGS


def test_write_report_writes_all_four(tmp_path: Path) -> None:
    paths = write_report(RESULTS, tmp_path / "out")
    assert set(paths) == {"markdown", "csv", "png", "html"}
    assert all(p.is_file() and p.parent == tmp_path / "out" for p in paths.values())

    png = paths["png"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) > 20_000  # a real plot, not an empty canvas
    from matplotlib.image import imread

    height, width = imread(paths["png"]).shape[:2]
    assert (width, height) == (9 * 120, 6 * 120)

    md = paths["markdown"].read_text()
    assert "## scifact (test)" in md and "## nfcorpus (test)" in md
    assert "| minilm-int8 | 0.6400 | 0.8400 | 0.6200 | 0.5900 | 384 | 576 | 12.5 | 1.25 | 3.50 | ★ |" in md
    assert "| bm25 | 0.5500 | 0.7500 | 0.5300 | 0.5000 | 900 | 1,350 | 12.5 | 1.25 | 3.50 |  |" in md
    assert "(pareto.png)" in md
    # Within a dataset, best nDCG@10 first.
    scifact = md.split("## scifact (test)")[1]
    order = [scifact.index(f"| {p} |") for p in ("minilm-f32", "minilm-int8", "minilm-bin", "bm25")]
    assert order == sorted(order)

    page = paths["html"].read_text()
    assert "data:image/png;base64," + base64.b64encode(png).decode() in page
    assert "<td>minilm-bin</td><td>0.5600</td>" in page
    assert page.count('<tr class="pareto">') == sum(EXPECTED_FLAGS)
    assert "<caption>nfcorpus (test)</caption>" in page
    assert "src=\"http" not in page and "<link" not in page  # nothing fetched from outside


def test_csv_holds_raw_numbers(tmp_path: Path) -> None:
    rows = list(csv.DictReader(write_csv(RESULTS, tmp_path / "r.csv").open()))
    assert len(rows) == len(RESULTS)
    assert list(rows[0])[:7] == ["dataset", "split", "profile", "ndcg@10", "recall@100", "mrr@10", "map@100"]
    assert [r["pareto"] for r in rows] == [str(f).lower() for f in EXPECTED_FLAGS]
    assert float(rows[1]["ndcg@10"]) == 0.640 and float(rows[1]["ram_bytes_per_doc"]) == 384


def test_extra_metrics_and_missing_values(tmp_path: Path) -> None:
    extra = _result("scifact", "odd|name", 0.5, 100)
    extra["metrics"]["ndcg@100"] = 0.6
    del extra["cost"]["build_s"]
    md = write_markdown([extra, _result("scifact", "full", 0.4, 200)], tmp_path / "r.md").read_text()
    assert "| nDCG@10 | Recall@100 | MRR@10 | MAP@100 | ndcg@100 |" in md
    assert "| odd\\|name | 0.5000 | 0.7000 | 0.4800 | 0.4500 | 0.6000 | 100 | 150 | – | 1.25 |" in md
    assert "| full | 0.4000 | 0.6000 | 0.3800 | 0.3500 | – | 200 | 300 | 12.5 |" in md
    # A column nobody has is left out.
    assert "Build s" not in write_markdown([extra], tmp_path / "s.md").read_text()


def test_plot_with_no_usable_points_still_writes_png(tmp_path: Path) -> None:
    bad = _result("scifact", "zero-ram", 0.5, 0)
    path = plot_pareto([bad], tmp_path / "p.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_malformed_result_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="metrics"):
        write_report([{"dataset": "d", "profile": "p", "split": "test", "cost": {}}], tmp_path)
