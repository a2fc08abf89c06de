"""The `slimvec` command line: a thin layer over Collection, ingest and evaluation."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.table import Table

from slimvec.errors import SlimvecError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Document embeddings and retrieval, small and fast.")
out = Console()
err = Console(stderr=True)


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Print user errors as one line on stderr and exit 2, without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SlimvecError as e:
            err.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except (FileNotFoundError, PermissionError, IsADirectoryError) as e:
            err.print(f"[red]error:[/red] {e.filename}: {e.strerror}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")


@app.command()
@user_errors
def index(
    sources: list[Path] = typer.Argument(..., help="Folders, files (.txt .md .html .pdf), tables (.jsonl .csv .parquet) or BEIR folders."),
    collection: Path = typer.Option(..., "--collection", "-c", help="Collection directory (created if missing)."),
    model: Optional[str] = typer.Option(None, help="Registered model name or a local sentence-transformers directory."),
    chunk_tokens: Optional[int] = typer.Option(None, help="Max tokens per chunk (default: the model's maximum)."),
    chunk_overlap: int = typer.Option(32, help="Tokens shared by consecutive chunks."),
    chunk_mode: str = typer.Option("tokens", help="'tokens' splits long text; 'truncate' keeps only the first chunk."),
    index: str = typer.Option("exact", "--index", help="exact | hnsw"),
    upsert: bool = typer.Option(True, help="Replace documents whose id is already stored (--no-upsert: error instead)."),
    strict: bool = typer.Option(False, help="Stop at the first bad file or record instead of skipping it."),
    id_field: str = typer.Option("_id", help="Id field of JSONL/CSV/Parquet records."),
    title_field: str = typer.Option("title", help="Title field of table records."),
    text_field: str = typer.Option("text", help="Text field of table records."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Ingest SOURCES, chunk, embed and store them in a collection."""
    from slimvec.collection import Collection
    from slimvec.ingest import FieldMap, read_sources

    problems: list[str] = []

    def report(e: Exception) -> None:
        problems.append(str(e))
        err.print(f"[yellow]skipped:[/yellow] {e}", highlight=False, soft_wrap=True)

    fields = FieldMap(id_field=id_field, title_field=title_field, text_field=text_field)
    docs = read_sources([str(s) for s in sources], fields=fields, strict=strict, on_error=report)
    col = Collection.open_or_create(
        collection, model=model, index=index, chunk_tokens=chunk_tokens, chunk_overlap=chunk_overlap, chunk_mode=chunk_mode
    )
    with col:
        n = col.upsert(docs, progress=True) if upsert else col.add(docs, progress=True)
        info = col.info()
    summary = {"collection": str(collection), "indexed": n, "skipped": len(problems), "problems": problems,
               "documents": info["documents"], "chunks": info["chunks"]}
    if json_out:
        _print_json(summary)
    else:
        out.print(f"indexed {n} documents ({len(problems)} skipped); collection holds "
                  f"{info['documents']} documents, {info['chunks']} chunks")


@app.command()
@user_errors
def search(
    collection: Path = typer.Argument(..., help="Collection directory."),
    query: str = typer.Argument(..., help="Query text."),
    k: int = typer.Option(10, "-k", "--k", help="Number of documents to return."),
    filter: Optional[str] = typer.Option(None, "--filter", help='Metadata filter as JSON, e.g. {"year": {"$gte": 2020}}.'),
    json_out: bool = typer.Option(False, "--json", help="Print hits as JSON."),
) -> None:
    """Search a collection and print the best documents."""
    from slimvec.collection import Collection
    from slimvec.errors import ConfigError
    from slimvec.index.filters import parse_filter

    if not query.strip():
        raise ConfigError("query is empty")
    flt = parse_filter(filter) if filter else None
    with Collection.open(collection) as col:
        hits = col.search(query, k=k, filter=flt)
    if json_out:
        _print_json({"query": query, "hits": [h.to_dict() for h in hits]})
        return
    table = Table(title=f"{len(hits)} hits for {query!r}", show_lines=True)
    for col_name in ("#", "score", "id", "title / snippet"):
        table.add_column(col_name, overflow="fold")
    for i, h in enumerate(hits, 1):
        snippet = h.snippet if len(h.snippet) <= 300 else h.snippet[:300] + "…"
        table.add_row(str(i), f"{h.score:.3f}", h.id, f"[bold]{h.title}[/bold]\n{snippet}")
    out.print(table)


@app.command()
@user_errors
def info(
    collection: Path = typer.Argument(..., help="Collection directory."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Show counts, model, dimensions and bytes per document on disk and in RAM."""
    from slimvec.collection import Collection

    with Collection.open(collection) as col:
        data = col.info()
    if json_out:
        _print_json(data)
        return
    table = Table(show_header=False)
    for key, value in data.items():
        table.add_row(key, f"{value:,.1f}" if isinstance(value, float) else str(value))
    out.print(table)


@app.command()
@user_errors
def delete(
    collection: Path = typer.Argument(..., help="Collection directory."),
    ids: list[str] = typer.Argument(..., help="Document ids to delete."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Delete documents by id."""
    from slimvec.collection import Collection

    with Collection.open(collection) as col:
        n = col.delete(ids)
    if json_out:
        _print_json({"deleted": n, "requested": len(ids)})
    else:
        out.print(f"deleted {n} of {len(ids)} requested documents")


@app.command()
@user_errors
def check(
    collection: Path = typer.Argument(..., help="Collection directory."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Verify a collection's integrity (database, vector rows, checksums); exit 1 if damaged."""
    from slimvec.collection import Collection

    with Collection.open(collection) as col:
        problems = col.check()
        counts = col.store.counts()
    if json_out:
        _print_json({"ok": not problems, "problems": problems, **counts})
    else:
        out.print("ok" if not problems else "\n".join(f"problem: {p}" for p in problems))
    if problems:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
