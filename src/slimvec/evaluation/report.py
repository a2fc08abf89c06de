"""Benchmark reports: the quality vs RAM Pareto front as Markdown, CSV, a PNG plot and a one-file HTML page.

A result is a dict:
{"dataset", "profile", "split", "metrics": {"ndcg@10", ...}, "cost": {"ram_bytes_per_doc", ...}}.
Pareto optimality is judged within one (dataset, split): nDCG on different datasets is not comparable.
"""

from __future__ import annotations

import base64
import csv
import html
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

Result = Mapping[str, Any]

QUALITY = "ndcg@10"
COST = "ram_bytes_per_doc"
STANDARD_METRICS = ("ndcg@10", "recall@100", "mrr@10", "map@100")
STANDARD_COSTS = ("ram_bytes_per_doc", "disk_bytes_per_doc", "build_s", "query_ms_p50", "query_ms_p95")
_HEADERS = {
    "ndcg@10": "nDCG@10", "recall@100": "Recall@100", "mrr@10": "MRR@10", "map@100": "MAP@100",
    "ram_bytes_per_doc": "RAM B/doc", "disk_bytes_per_doc": "Disk B/doc", "build_s": "Build s",
    "query_ms_p50": "Query ms p50", "query_ms_p95": "Query ms p95",
}
FILES = {"markdown": "report.md", "csv": "results.csv", "png": "pareto.png", "html": "report.html"}


def _number(value: Any) -> float | None:
    """A finite float, or None for missing/non-numeric/NaN values."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def pareto_front(points: Sequence[tuple[float | None, float | None]]) -> list[bool]:
    """For (quality, cost) points, True where no other point has quality >= and cost <= with one strict."""
    valid = [(_number(q), _number(c)) for q, c in points]
    flags = []
    for i, (q, c) in enumerate(valid):
        if q is None or c is None:
            flags.append(False)  # an unmeasured point can neither win nor be placed
            continue
        dominated = any(
            j != i and qj is not None and cj is not None and qj >= q and cj <= c and (qj > q or cj < c)
            for j, (qj, cj) in enumerate(valid)
        )
        # Identical points do not dominate each other, so ties on the front are all kept.
        flags.append(not dominated)
    return flags


def _check(results: Sequence[Result]) -> None:
    for i, r in enumerate(results):
        for key in ("dataset", "profile", "split"):
            if not isinstance(r.get(key), str):
                raise ValueError(f"result {i}: {key!r} must be a string, got {r.get(key)!r}")
        for key in ("metrics", "cost"):
            if not isinstance(r.get(key), Mapping):
                raise ValueError(f"result {i} ({r['dataset']}/{r['profile']}): {key!r} must be a dict")


def pareto_flags(results: Sequence[Result]) -> list[bool]:
    """Pareto optimality of each result (max nDCG@10, min RAM bytes/doc) within its dataset and split."""
    _check(results)
    flags = [False] * len(results)
    for members in _groups(results).values():
        points = [(results[i]["metrics"].get(QUALITY), results[i]["cost"].get(COST)) for i in members]
        for i, flag in zip(members, pareto_front(points)):
            flags[i] = flag
    return flags


def _groups(results: Sequence[Result]) -> dict[tuple[str, str], list[int]]:
    groups: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(results):
        groups.setdefault((r["dataset"], r["split"]), []).append(i)
    return dict(sorted(groups.items()))


def _columns(results: Sequence[Result], part: str, standard: Sequence[str]) -> list[str]:
    """Standard keys first (when any result has them), then any others in first-seen order."""
    seen = [k for k in standard if any(k in r[part] for r in results)]
    for r in results:
        seen.extend(k for k in r[part] if k not in seen)
    return seen


def _fmt(key: str, value: Any) -> str:
    v = _number(value)
    if v is None:
        return "–" if value is None else str(value)
    if key.endswith("bytes_per_doc"):
        return f"{v:,.0f}" if v >= 100 or v.is_integer() else f"{v:.1f}"
    if key.endswith("_s"):
        return f"{v:.1f}"
    if key.startswith("query_ms"):
        return f"{v:.2f}"
    return f"{v:.4f}"  # metrics: fractions in [0, 1]


def _rank_key(r: Result) -> tuple[bool, float, str]:
    # Best nDCG@10 first; unmeasured results last; profile name settles ties.
    q = _number(r["metrics"].get(QUALITY))
    return (q is None, -(q or 0.0), r["profile"])


def _tables(results: Sequence[Result]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(caption, header, rows) per dataset/split, best nDCG@10 first; shared by Markdown and HTML."""
    flags = pareto_flags(results)
    metrics = _columns(results, "metrics", STANDARD_METRICS)
    costs = _columns(results, "cost", STANDARD_COSTS)
    header = ["Profile"] + [_HEADERS.get(k, k) for k in metrics + costs] + ["Pareto"]
    tables = []
    for (dataset, split), members in _groups(results).items():
        members = sorted(members, key=lambda i: _rank_key(results[i]))
        rows = []
        for i in members:
            r = results[i]
            rows.append([r["profile"]] + [_fmt(k, r["metrics"].get(k)) for k in metrics]
                        + [_fmt(k, r["cost"].get(k)) for k in costs] + ["★" if flags[i] else ""])
        tables.append((f"{dataset} ({split})", header, rows))
    return tables


def _atomic_write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        tmp.write_text(data, encoding="utf-8", newline="")
    os.replace(tmp, path)
    return path


def write_markdown(results: Sequence[Result], path: str | os.PathLike[str],
                   png_path: str | os.PathLike[str] | None = None) -> Path:
    """One table per dataset/split (★ = Pareto-optimal), linking the plot if `png_path` is given."""
    path = Path(path)
    lines = ["# slimvec evaluation", "",
             "Metrics are fractions (BEIR/trec_eval conventions); ★ marks profiles on the nDCG@10 vs RAM "
             "Pareto front of their dataset.", ""]
    if png_path is not None:
        rel = os.path.relpath(Path(png_path).resolve(), path.resolve().parent)
        lines += [f"![nDCG@10 vs RAM bytes per document]({Path(rel).as_posix()})", ""]
    for caption, header, rows in _tables(results):
        lines += [f"## {caption}", "", "| " + " | ".join(header) + " |",
                  "| " + " | ".join(["---"] + ["---:"] * (len(header) - 2) + [":---:"]) + " |"]
        # A "|" in a profile name would otherwise split the cell.
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        lines.append("")
    if not results:
        lines.append("No results.")
    return _atomic_write(path, "\n".join(lines).rstrip("\n") + "\n")


def write_csv(results: Sequence[Result], path: str | os.PathLike[str]) -> Path:
    """One row per result: dataset, split, profile, every metric, every cost, pareto (raw numbers)."""
    flags = pareto_flags(results)
    metrics = _columns(results, "metrics", STANDARD_METRICS)
    costs = _columns(results, "cost", STANDARD_COSTS)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["dataset", "split", "profile", *metrics, *costs, "pareto"])
        for r, flag in zip(results, flags):
            writer.writerow([r["dataset"], r["split"], r["profile"],
                             *(_raw(r["metrics"].get(k)) for k in metrics),
                             *(_raw(r["cost"].get(k)) for k in costs), str(flag).lower()])
    os.replace(tmp, path)
    return path


def _raw(value: Any) -> str:
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)


def plot_pareto(results: Sequence[Result], path_png: str | os.PathLike[str]) -> Path:
    """PNG of nDCG@10 vs RAM bytes/doc (log x): labelled points, joined Pareto fronts, colour per dataset."""
    # The Agg canvas directly, not pyplot: no global backend switch, safe from a server thread.
    from slimvec.extras import require

    require("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    flags = pareto_flags(results)
    fig = Figure(figsize=(9, 6), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colours = [f"C{i}" for i in range(10)]
    datasets = sorted({r["dataset"] for r in results})
    colour = {d: colours[i % len(colours)] for i, d in enumerate(datasets)}
    splits = sorted({r["split"] for r in results})
    markers = "os^DvP*X"
    marker = {s: markers[i % len(markers)] for i, s in enumerate(splits)}

    plotted = 0
    for (dataset, split), members in _groups(results).items():
        pts = []
        for i in members:
            q, c = _number(results[i]["metrics"].get(QUALITY)), _number(results[i]["cost"].get(COST))
            if q is not None and c is not None and c > 0:  # a log axis cannot place 0 bytes
                pts.append((c, q, results[i]["profile"], flags[i]))
        if not pts:
            continue
        plotted += len(pts)
        col, mk = colour[dataset], marker[split]
        ax.scatter([p[0] for p in pts if not p[3]], [p[1] for p in pts if not p[3]],
                   color=col, marker=mk, s=36, alpha=0.55, zorder=2)
        front = sorted((p for p in pts if p[3]), key=lambda p: (p[0], -p[1]))
        ax.scatter([p[0] for p in front], [p[1] for p in front], color=col, marker=mk, s=90,
                   edgecolors="black", linewidths=1.2, zorder=3)
        if len(front) > 1:
            # steps-post: with a RAM budget x, the best reachable quality is the last front point left of x.
            ax.plot([p[0] for p in front], [p[1] for p in front], color=col, linewidth=1.5,
                    drawstyle="steps-post", zorder=1)
        for c, q, profile, _ in pts:
            ax.annotate(profile, (c, q), textcoords="offset points", xytext=(5, 4), fontsize=7, color=col)

    ax.set_xscale("log")
    ax.set_xlabel("RAM bytes per document (log scale)")
    ax.set_ylabel("nDCG@10")
    ax.set_title("Retrieval quality vs memory (larger outlined markers: Pareto-optimal)")
    ax.grid(True, which="both", alpha=0.3)
    if plotted:
        handles = [Line2D([], [], color=colour[d], marker="o", linestyle="", label=d) for d in datasets]
        if len(splits) > 1:
            handles += [Line2D([], [], color="grey", marker=marker[s], linestyle="", label=f"split: {s}")
                        for s in splits]
        ax.legend(handles=handles, loc="lower right", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no results with nDCG@10 and RAM bytes/doc", transform=ax.transAxes,
                ha="center", va="center")
        ax.set_xlim(1, 1e4)
    fig.tight_layout()
    path = Path(path_png)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, format="png")
    os.replace(tmp, path)
    return path


def write_html(
    results: Sequence[Result], png_path: str | os.PathLike[str], path: str | os.PathLike[str]
) -> Path:
    """A single self-contained HTML page: the tables and the plot embedded as a base64 PNG."""
    image = base64.b64encode(Path(png_path).read_bytes()).decode("ascii")
    esc = html.escape
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        "<title>slimvec evaluation</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}"
        "table{border-collapse:collapse;margin-bottom:2em}th,td{border:1px solid #ccc;padding:.3em .6em}"
        "td:not(:first-child){text-align:right;font-variant-numeric:tabular-nums}"
        "tr.pareto{background:#fff6d5}caption{text-align:left;font-weight:bold;padding:.4em 0}"
        "img{max-width:100%}</style>",
        "</head>", "<body>", "<h1>slimvec evaluation</h1>",
        "<p>Metrics are fractions (BEIR/trec_eval conventions). Highlighted rows (★) are on the "
        "nDCG@10 vs RAM Pareto front of their dataset.</p>",
        f'<img alt="nDCG@10 vs RAM bytes per document" src="data:image/png;base64,{image}">',
    ]
    for caption, header, rows in _tables(results):
        parts.append(f"<table><caption>{esc(caption)}</caption>")
        parts.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
        for row in rows:
            cls = ' class="pareto"' if row[-1] else ""
            parts.append(f"<tr{cls}>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
        parts.append("</table>")
    if not results:
        parts.append("<p>No results.</p>")
    parts += ["</body>", "</html>"]
    return _atomic_write(Path(path), "\n".join(parts) + "\n")


def write_report(results: Sequence[Result], out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write report.md, results.csv, pareto.png and report.html under `out_dir`; returns their paths."""
    _check(results)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = plot_pareto(results, out / FILES["png"])
    return {
        "markdown": write_markdown(results, out / FILES["markdown"], png_path=png),
        "csv": write_csv(results, out / FILES["csv"]),
        "png": png,
        "html": write_html(results, png, out / FILES["html"]),
    }
