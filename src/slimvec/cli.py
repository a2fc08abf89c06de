"""The `slimvec` command line: a thin layer over Collection, ingest and evaluation."""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape as markup_escape
from rich.table import Table

from slimvec.errors import ConfigError, SlimvecError, no_room

# emoji=False: rich turns ":warning:" or "a:x:b" into an emoji wherever it occurs, in a stored document's text
# (`get`, `search`) or a file name in a message, and escape() does not stop it
out = Console(emoji=False)
err = Console(stderr=True, emoji=False)

# Terminal control characters (ESC, BEL, backspace, C1 controls...) but tab, newline and CR (which rich drops):
# shown as backslash-x and two hex digits, so a stored text, title or file name cannot drive the user's terminal
# (colours, window title, cursor moves that hide or fake output). --json output escapes them already (JSON's
# backslash-u escapes).
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x09), 0x0b, 0x0c, *range(0x0e, 0x20), *range(0x7f, 0xa0))}


def escape(text: str) -> str:
    """`text` safe to print: rich markup escaped (`[bold]` shown as written) and control characters shown as
    backslash-x and two hex digits (`_CONTROLS`)."""
    return markup_escape(text.translate(_CONTROLS))


class _OneLineErrors(typer.Typer):
    """The `slimvec` command: a usage error (unknown option, bad value, missing argument) prints one line.

    Typer draws such errors as a multi-line panel; every other user error is one `error:` line with status 2,
    and scripts read stderr line by line, so these follow the same form.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("standalone_mode", True) is False:
            return super().__call__(*args, **kwargs)
        try:
            code = super().__call__(*args, **{**kwargs, "standalone_mode": False})
        except typer.TyperException as e:  # typer's own click: UsageError, BadParameter, NoSuchOption...
            if type(e).__name__ == "NoArgsIsHelpError":  # the help, printed already by the rich formatter
                if e.format_message().strip():
                    err.print(e.format_message(), highlight=False, markup=False)
                sys.exit(e.exit_code)
            ctx = getattr(e, "ctx", None)
            where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            err.print(f"[red]error:[/red] {escape(e.format_message())}{escape(where)}", highlight=False,
                      soft_wrap=True)
            sys.exit(e.exit_code)
        except typer.Abort:
            err.print("aborted", highlight=False)
            sys.exit(1)
        # without standalone mode click returns a typer.Exit's code, and a command's return value (None)
        sys.exit(code if isinstance(code, int) else 0)


app = _OneLineErrors(add_completion=False, no_args_is_help=True, help="Document embeddings and retrieval, small and fast.")


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Print user errors as one line on stderr and exit 2, without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SlimvecError as e:
            err.print(f"[red]error:[/red] {escape(str(e))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError) as e:
            # pyarrow raises these without a filename, the path being in its message
            msg = f"{e.filename}: {e.strerror}" if e.filename is not None else str(e)
            err.print(f"[red]error:[/red] {escape(msg)}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except OSError as e:
            # a full disk or quota while writing derived files (index/, tokens/, a compaction's copy): one line
            if (msg := no_room(e)) is None:
                raise
            err.print(f"[red]error:[/red] {escape(msg)}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def _need(*modules: str) -> None:
    """Fail in one line, before any work, when an optional dependency of the command is missing."""
    from slimvec.extras import require

    for m in modules:
        require(m)


@app.callback()
def main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also show warnings and log messages of the libraries slimvec uses."),
) -> None:
    """Document embeddings and retrieval, small and fast."""
    from slimvec.console import quiet_libraries

    quiet_libraries(verbose)


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")


@app.command()
@user_errors
def index(
    sources: list[Path] = typer.Argument(..., help="Folders, files (.txt .md .html .pdf), tables (.jsonl .csv .parquet) or BEIR folders."),
    collection: Path = typer.Option(..., "--collection", "-c", help="Collection directory (created if missing)."),
    model: Optional[str] = typer.Option(None, help="Registered model name or a local sentence-transformers or model2vec directory."),
    chunk_tokens: Optional[int] = typer.Option(None, help="Max tokens per chunk (default: the model's maximum)."),
    chunk_overlap: Optional[int] = typer.Option(None, help="Tokens shared by consecutive chunks (default 32)."),
    chunk_mode: Optional[str] = typer.Option(None, help="tokens (default: split long text) | truncate | whole | late"),
    index: Optional[str] = typer.Option(None, "--index", help="exact | hnsw (default: the profile's, exact)"),
    profile: Optional[str] = typer.Option(None, "--profile", help="Built-in profile, e.g. binary-rescore (see `slimvec profiles`)."),
    profile_file: Optional[Path] = typer.Option(None, "--profile-file", help="Profile JSON file (as written by `slimvec plan`)."),
    bm25: bool = typer.Option(False, "--bm25", help="Also maintain a BM25 index (for --mode bm25 / hybrid)."),
    sparse: bool = typer.Option(False, "--sparse", help="Also maintain a SPLADE-tiny sparse index (for --mode sparse / hybrid-sparse)."),
    sparse_model: Optional[str] = typer.Option(None, "--sparse-model", help="SPLADE model for --sparse: splade-tiny (default) or a local model directory (implies --sparse)."),
    upsert: bool = typer.Option(True, help="Replace documents whose id is already stored (--no-upsert: error instead)."),
    strict: bool = typer.Option(False, help="Stop at the first bad file or record instead of skipping it."),
    id_field: str = typer.Option("_id", help="Id field of JSONL/CSV/Parquet records."),
    title_field: str = typer.Option("title", help="Title field of table records."),
    text_field: str = typer.Option("text", help="Text field of table records."),
    field_type: Optional[list[str]] = typer.Option(None, "--field-type", help="Metadata type FIELD=TYPE (int, float, bool, str), repeatable; overrides the types inferred for CSV columns and converts text values of other sources."),
    query_prompt: Optional[str] = typer.Option(None, "--query-prompt", help="Text put before every query (default: the prompt the model's config declares)."),
    document_prompt: Optional[str] = typer.Option(None, "--document-prompt", help="Text put before every document chunk (default: the model's configured prompt)."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary."),
    ray: bool = typer.Option(False, "--ray", help="Distributed ingest on Ray Data: encode on --workers actors, one writer per shard (extra 'ray')."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster to join (implies --ray; default: a local instance on loopback, shut down after)."),
    shards: Optional[int] = typer.Option(None, "--shards", help="With --ray: create a sharded collection of N shards (an existing one must have N)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="With --ray: encoder actors (the model is loaded once per actor; default 2)."),
) -> None:
    """Ingest SOURCES, chunk, embed and store them in a collection."""
    from slimvec.collection import Collection
    from slimvec.ingest import FieldMap, read_sources
    from slimvec.profiles import load_profile

    problems: list[str] = []

    def report(e: Exception) -> None:
        problems.append(str(e))
        err.print(f"[yellow]skipped:[/yellow] {escape(str(e))}", highlight=False, soft_wrap=True)

    notes: list[str] = []

    def note(text: str) -> None:
        # Files a folder walk passes over (a .jsonl export, a .docx, a linked folder) are not bad records, but a
        # summary of "0 skipped" with them logged only under -v hid that they were never read.
        notes.append(text)
        err.print(f"[cyan]note:[/cyan] {escape(text)}", highlight=False, soft_wrap=True)

    _one_profile_source(profile, profile_file)
    _no_empty(model=model, chunk_mode=chunk_mode, index=index, profile=profile, sparse_model=sparse_model)
    fields = FieldMap(id_field=id_field, title_field=title_field, text_field=text_field)
    if ray or address is not None:
        _index_on_ray(sources, collection, fields, strict, report, note, field_type, upsert, address, shards,
                      workers or 2, bm25 or sparse or sparse_model is not None, problems, notes, json_out,
                      {"model": model, "index": index, "chunk_tokens": chunk_tokens, "chunk_overlap": chunk_overlap,
                       "chunk_mode": chunk_mode, "query_prompt": query_prompt, "document_prompt": document_prompt,
                       "profile": load_profile(profile, profile_file) if (profile or profile_file) else None})
        return
    if shards is not None or workers is not None:
        raise ConfigError(f"{'--shards' if shards is not None else '--workers'} needs --ray (distributed ingest); "
                          "without it, index into one collection")
    if strict:
        # Every record is read once before anything is stored: the first bad one then stops the call with
        # nothing written, not after the batches before it were committed.
        for _ in read_sources([str(s) for s in sources], fields=fields, strict=True, field_types=field_type):
            pass
    docs = read_sources([str(s) for s in sources], fields=fields, strict=strict, on_error=report, on_skip=note,
                        field_types=field_type)
    chosen = load_profile(profile, profile_file) if (profile or profile_file) else None
    fresh = not (collection / "manifest.json").exists()
    dir_existed = collection.exists()
    col = Collection.open_or_create(
        collection, model=model, index=index, chunk_tokens=chunk_tokens, chunk_overlap=chunk_overlap,
        chunk_mode=chunk_mode, profile=chosen, query_prompt=query_prompt, document_prompt=document_prompt,
    )
    try:
        with col:
            for extra in [name for name, on in (("bm25", bm25), ("sparse", sparse or sparse_model)) if on]:
                # no-op when kept already; builds from stored rows otherwise
                col.enable(extra, sparse_model=sparse_model if extra == "sparse" else None)
            n = col.upsert(docs, progress=True) if upsert else col.add(docs, progress=True)
            info = col.info()
    except BaseException:
        if fresh:
            _drop_if_empty(collection, dir_existed)
        raise
    # Every record skipped (a CSV header naming no text column, a folder of scans) or every file passed over (a
    # folder holding only a .jsonl export): an empty collection left behind would pin this call's model and
    # profile, and the corrected rerun with other settings (naming the export) be refused.
    created = not (fresh and (problems or notes) and not info["documents"])
    if not created:
        _drop_if_empty(collection, dir_existed)
        created = (collection / "manifest.json").exists()
    _summarise(collection, n, problems, notes, info, created, json_out)


def _summarise(collection: Path, n: int, problems: list[str], notes: list[str], info: dict[str, Any], created: bool,
               json_out: bool) -> None:
    """Print what `index` did; exit 1 when something was skipped (a bad record, a file or folder passed over, an
    empty table) and nothing at all was stored or kept, so a script can tell a run that refused everything from one
    that stored something (partial skips, and a rerun whose documents are all unchanged, stay 0)."""
    summary = {"collection": str(collection), "indexed": n, "skipped": len(problems), "problems": problems,
               "notes": notes, "documents": info["documents"], "chunks": info["chunks"], "created": created}
    if json_out:
        _print_json(summary)
    elif not created:
        out.print(f"indexed 0 documents ({len(problems)} skipped); nothing was stored, so no collection was made "
                  f"at {collection}")
    else:
        out.print(f"indexed {n} documents ({len(problems)} skipped); collection holds "
                  f"{info['documents']} documents, {info['chunks']} chunks")
    if n == 0 and (problems or notes):
        raise typer.Exit(1)


def _drop_if_empty(collection: Path, dir_existed: bool) -> None:
    """Remove a collection this `index` call created when the call failed before storing any document: left
    behind, it would pin the model and profile of the failed call, and a corrected retry would be refused."""
    import shutil
    from contextlib import ExitStack

    from slimvec.collection import Collection

    try:
        # Under the writer lock and only while no other handle has it open: another `index` that opened it
        # meanwhile (it found this call's new collection) may be about to commit into it. A sharded one (--ray
        # --shards) is checked so on every shard.
        with Collection.open(collection) as col, ExitStack() as held:
            stores = [s.core.col.store for s in col.shards] if hasattr(col, "shards") else [col.store]
            for store in stores:
                held.enter_context(store.writer())
            if len(col) or not all(store.sole_handle() for store in stores):
                return
            shutil.rmtree(collection, ignore_errors=True)
    except (SlimvecError, OSError):
        return
    if dir_existed:  # it was an empty directory the user made: leave it as it was
        collection.mkdir(exist_ok=True)


def _index_on_ray(sources: list[Path], collection: Path, fields: Any, strict: bool, report: Callable[[Exception], None],
                  note: Callable[[str], None], field_type: Optional[list[str]], upsert: bool, address: Optional[str],
                  shards: Optional[int], workers: int, extras: bool, problems: list[str], notes: list[str],
                  json_out: bool, create: dict[str, Any]) -> None:
    """`index --ray`: slimvec.distributed.ingest.index, then the same summary as a single-process run."""
    from slimvec.collection import Collection
    _need("ray")
    if extras:
        raise ConfigError("--bm25 / --sparse are not built by --ray ingest yet; enable them without --ray")
    from slimvec.distributed.ingest import index as distributed_index

    fresh = not (collection / "manifest.json").exists() and not (collection / "shards.json").exists()
    dir_existed = collection.exists()
    n = distributed_index([str(s) for s in sources], collection, shards=shards, workers=workers, address=address,
                          upsert=upsert, fields=fields, strict=strict, field_types=field_type, on_error=report,
                          on_skip=note, progress=True, **create)
    with Collection.open(collection) as col:
        info = col.info()
    created = not (fresh and (problems or notes) and not info["documents"])  # as a single-process run
    if not created:
        _drop_if_empty(collection, dir_existed)
        created = (collection / "manifest.json").exists() or (collection / "shards.json").exists()
    _summarise(collection, n, problems, notes, info, created, json_out)


def _opt_help(name: str) -> str:
    """A search option's help text, from its one declaration in SearchOptions (read without importing torch)."""
    from slimvec.search.options import SearchOptions

    return SearchOptions.model_fields[name].description or ""


@app.command()
@user_errors
def search(
    collection: Path = typer.Argument(..., help="Collection directory."),
    query: str = typer.Argument(..., help="Query text."),
    k: int = typer.Option(10, "-k", "--k", help=_opt_help("k")),
    filter: Optional[str] = typer.Option(None, "--filter", help=_opt_help("filter")),
    mode: Optional[str] = typer.Option(None, "--mode", help=_opt_help("mode")),
    min_relevance: Optional[str] = typer.Option(None, "--min-relevance", help=_opt_help("min_relevance")),
    fusion: Optional[str] = typer.Option(None, "--fusion", help=_opt_help("fusion")),
    weights: Optional[str] = typer.Option(None, "--weights", help=_opt_help("fusion_weights") + " Comma-separated, e.g. 0.3,0.7."),
    temperature: Optional[float] = typer.Option(None, "--fusion-temperature", help=_opt_help("fusion_temperature")),
    rerank: Optional[str] = typer.Option(None, "--rerank", help=_opt_help("rerank")),
    rerank_depth: Optional[int] = typer.Option(None, "--rerank-depth", help=_opt_help("rerank_depth")),
    unit: Optional[str] = typer.Option(None, "--unit", help=_opt_help("unit")),
    json_out: bool = typer.Option(False, "--json", help="Print hits as JSON."),
) -> None:
    """Search a collection and print the best documents (or sections, with --unit section)."""
    from slimvec.collection import Collection
    from slimvec.search.options import SearchOptions, min_relevance_from_text
    from slimvec.store.filters import parse_filter

    if not query.strip():
        raise ConfigError("query is empty")
    fusion_weights = None
    if weights is not None:  # given but empty ("$WEIGHTS" unset) is an error, not "no weights"
        try:
            fusion_weights = [float(w) for w in weights.split(",")]
        except ValueError:
            raise ConfigError(f"--weights must be numbers separated by commas, got {weights!r}") from None
    # Only what was given: every default (mode, reranker, fusion...) is then the collection profile's.
    given = {"k": k, "filter": parse_filter(filter) if filter is not None else None, "mode": mode,
             "min_relevance": min_relevance_from_text(min_relevance) if min_relevance is not None else None,
             "fusion": fusion, "fusion_weights": fusion_weights, "rerank": rerank,
             "rerank_depth": rerank_depth, "unit": unit, "fusion_temperature": temperature}
    options = SearchOptions.of(**{name: v for name, v in given.items() if v is not None})
    with Collection.open(collection) as col:
        hits = col.search(query, options)
    if json_out:
        _print_json({"query": query, "hits": [h.to_dict() for h in hits]})
        return
    table = Table(title=escape(f"{len(hits)} hits for {query!r}"), show_lines=True)
    for col_name in ("#", "score", "id", "title / snippet"):
        table.add_column(col_name, overflow="fold")
    for i, h in enumerate(hits, 1):
        snippet = h.snippet if len(h.snippet) <= 300 else h.snippet[:300] + "…"
        where = h.id if options.unit == "document" else f"{h.id} § {h.section}" if h.section is not None else \
            f"{h.id} [{h.chunk_start}:{h.chunk_end}]"
        table.add_row(str(i), f"{h.score:.3f}", escape(where), f"[bold]{escape(h.title)}[/bold]\n{escape(snippet)}")
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
        if key == "shards":  # a sharded collection: each shard's own info is in --json
            value = f"{len(value)} (each shard's info: --json)"
        table.add_row(escape(key), f"{value:,.1f}" if isinstance(value, float) else escape(str(value)))
    out.print(table)


@app.command()
@user_errors
def delete(
    collection: Path = typer.Argument(..., help="Collection directory."),
    ids: Optional[list[str]] = typer.Argument(None, help="Document ids to delete."),
    filter: Optional[str] = typer.Option(None, "--filter", help="Delete every document matching this metadata "
                                         "filter (JSON, as search's --filter) instead of ids."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Delete documents by id, or those matching --filter (one transaction)."""
    from slimvec.collection import Collection
    from slimvec.store.filters import parse_filter

    _check_ids(ids or [])
    if filter is not None and ids:
        raise ConfigError("give ids or --filter, not both (put the ids in the filter: '{\"_id\": {\"$in\": [...]}}')")
    if filter is None and not ids:
        raise ConfigError("give the ids of the documents to delete, or --filter")
    with Collection.open(collection) as col:
        n = col.delete(filter=parse_filter(filter)) if filter is not None else col.delete(ids)
    if json_out:
        _print_json({"deleted": n} if filter is not None else {"deleted": n, "requested": len(ids or [])})
    elif filter is not None:
        out.print(f"deleted {n} documents matching the filter")
    else:
        out.print(f"deleted {n} of {len(ids or [])} requested documents")


def _check_ids(ids: list[str]) -> None:
    from slimvec.ids import lone_surrogate

    for i in ids:
        if lone_surrogate(i):  # command-line bytes that are not UTF-8 arrive as lone surrogates
            raise ConfigError(f"id {i!r} is not valid Unicode (is the terminal's encoding UTF-8?)")


@app.command()
@user_errors
def get(
    collection: Path = typer.Argument(..., help="Collection directory."),
    ids: Optional[list[str]] = typer.Argument(None, help="Document ids (none: list documents, see --filter)."),
    filter: Optional[str] = typer.Option(None, "--filter", help="List the documents matching this metadata filter "
                                         "(JSON, as search's --filter)."),
    limit: int = typer.Option(10, "--limit", min=1, help="Documents per page when listing."),
    offset: Optional[str] = typer.Option(None, "--offset", help="Id to start the page at (the next offset the "
                                         "previous page printed)."),
    count: bool = typer.Option(False, "--count", help="Print only how many documents match."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON record per line: _id, title, text, "
                                  "metadata (and sections), as `slimvec index` reads a .jsonl."),
) -> None:
    """Print stored documents by id, or list them (all or matching --filter) a page at a time, in id order."""
    from slimvec.collection import Collection
    from slimvec.store.filters import parse_filter

    _check_ids(ids or [])
    if ids and (filter is not None or offset is not None or count):
        raise ConfigError("--filter, --offset and --count list documents; leave them out when giving ids")
    flt = parse_filter(filter) if filter is not None else None
    nxt = None
    with Collection.open(collection) as col:
        if count:
            n = col.count(flt)
            _print_json({"count": n}) if json_out else out.print(str(n))
            return
        if ids:
            found = {i: col.get(i) for i in dict.fromkeys(ids)}
            docs = [d for d in found.values() if d is not None]
            missing = [i for i, d in found.items() if d is None]
        else:
            docs, nxt = col.scroll(flt, limit, offset)
            missing = []
    if json_out:
        for d in docs:
            sys.stdout.write(json.dumps(d.to_record(), ensure_ascii=False) + "\n")
    else:
        for d in docs:
            meta = json.dumps(d.metadata, ensure_ascii=False)
            # a page of many documents shows the start of each; a document asked for by id is shown whole
            text = d.text if ids or len(d.text) <= 300 else d.text[:300] + "…"
            out.print(f"[bold]{escape(d.id)}[/bold]  {escape(d.title)}  {escape(meta)}\n{escape(text)}\n")
    if nxt is not None:
        import shlex

        err.print(escape(f"more documents: run again with --offset {shlex.quote(nxt)}"))
    for i in missing:
        err.print(escape(f"not found: {i!r}"))
    if missing:
        raise typer.Exit(1)


@app.command("field-index")
@user_errors
def field_index(
    collection: Path = typer.Argument(..., help="Collection directory."),
    fields: Optional[list[str]] = typer.Argument(None, help="Metadata fields as filters name them (year, "
                                                 "meta.source); none: list the indexed fields."),
    drop: bool = typer.Option(False, "--drop", help="Remove these fields' indexes instead."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Index metadata fields so filters on them ($eq $in $gt $gte $lt $lte) skip the scan of every document."""
    from slimvec.collection import Collection

    with Collection.open(collection) as col:
        if fields:
            changed = col.drop_field_index(fields) if drop else col.create_field_index(fields)
        else:
            if drop:
                raise ConfigError("--drop takes the fields whose indexes to remove")
            changed = None
        indexed = col.field_indexes()
    if json_out:
        _print_json({"field_indexes": indexed, **({} if changed is None else {"dropped" if drop else "created": changed})})
    elif changed is not None:
        verb = "dropped" if drop else "indexed"
        out.print(escape(f"{verb}: {', '.join(changed) or 'none (nothing to change)'}; indexed fields: "
                         f"{', '.join(indexed) or 'none'}"))
    else:
        out.print(escape(f"indexed fields: {', '.join(indexed) or 'none'}"))


@app.command()
@user_errors
def compact(
    collection: Path = typer.Argument(..., help="Collection directory."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Rewrite a collection without the rows of deleted or replaced documents (atomic; same search results)."""
    from slimvec.collection import Collection

    with Collection.open(collection) as col:
        report = col.compact()
    if json_out:
        _print_json(report)
    elif not report["compacted"]:
        out.print("nothing to compact: no dead rows")
    else:
        saved = report["disk_bytes_before"] - report["disk_bytes_after"]
        out.print(f"compacted: dropped {report['dead_rows']:,} dead rows ({report['rows_before']:,} -> "
                  f"{report['rows_after']:,}), {saved / 2**20:,.1f} MiB freed on disk, RAM "
                  f"{report['ram_bytes_before'] / 2**20:,.1f} -> {report['ram_bytes_after'] / 2**20:,.1f} MiB, "
                  f"in {report['seconds']:.1f} s")


@app.command()
@user_errors
def tune(
    collection: Path = typer.Argument(..., help="Collection directory."),
    queries: Optional[Path] = typer.Option(None, "--queries", help="Sample queries: a text file (one per line), a "
                                           "JSONL file (a \"text\" field per line) or a BEIR folder."),
    split: Optional[str] = typer.Option(None, "--split", help="With a BEIR folder: only the queries judged in this "
                                        "split (tune on train or dev, report on test)."),
    reset: bool = typer.Option(False, "--reset", help="Forget the stored queries: calibrate on the rows again."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Calibrate the index's nprobe / efSearch on sample queries of your own (kept for later calibrations)."""
    from slimvec.collection import Collection
    from slimvec.ingest.queries import read_queries
    from slimvec.store.probes import MAX_QUERIES

    if (queries is None) == (not reset):
        raise ConfigError("give --queries FILE to tune, or --reset to forget the stored queries")
    if split is not None and queries is None:
        raise ConfigError("--split picks the queries of a BEIR folder given with --queries; --reset takes none")
    texts = read_queries(queries, split) if queries is not None else None
    with Collection.open(collection) as col:
        if reset:
            report: dict[str, Any] = {"reset": col.reset_tuning()}
        else:
            report = {"queries": min(len(texts or []), MAX_QUERIES), "indexes": col.tune(texts)}
    if json_out:
        _print_json(report)
    elif reset:
        out.print("stored queries forgotten: the index is calibrated on the rows again" if report["reset"] else
                  "no stored queries: the index was already calibrated on the rows")
    else:
        shards = report["indexes"].get("shards")
        for where, indexes in ([(f"shard {i} ", x) for i, x in enumerate(shards)] if shards is not None
                               else [("", report["indexes"])]):
            for name, d in indexes.items():
                cal = d.get("calibration")
                knob = f"nprobe {d['nprobe']}" if "nprobe" in d else f"efSearch {d.get('ef_search')}"
                reached = (f"{knob}: Recall@10 {cal['recall']:.3f} on {cal['queries']:,} of your queries (target "
                           f"{cal['target_recall']})" if cal else "stored; used when the inverted lists are built"
                           if d.get("kind") != "hnsw" else "stored; used when the collection has rows")
                out.print(f"{where}{name}: {reached}", markup=False)


@app.command()
@user_errors
def check(
    collection: Path = typer.Argument(..., help="Collection directory."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Verify a collection's integrity (database, vector rows, checksums); exit 1 if damaged."""
    from slimvec.collection import Collection

    try:
        col = Collection.open(collection)
    except (SlimvecError, OSError) as e:
        # Not a collection (no manifest file), or one of another format version: exit 2 as for any command.
        # A collection whose files are missing or damaged is what `check` reports: a problem, exit 1.
        if not (collection / "manifest.json").is_file() or "format version" in str(e):
            raise
        problems: list[str] = [f"cannot open the collection: {e.filename + ': ' if getattr(e, 'filename', None) else ''}"
                               f"{getattr(e, 'strerror', None) or e}"]
        counts: dict[str, Any] = {}
    else:
        with col:
            problems = col.check()
            counts = col.store.counts() if hasattr(col, "store") else col.counts()  # a sharded collection sums its shards
    if json_out:
        _print_json({"ok": not problems, "problems": problems, **counts})
    else:
        out.print("ok" if not problems else "\n".join(f"problem: {p}" for p in problems), markup=False)
    if problems:
        raise typer.Exit(1)


@app.command()
@user_errors
def migrate(
    collection: Path = typer.Argument(..., help="Collection directory."),
    to: Optional[str] = typer.Option(None, "--to", help="The new model (registered name or local directory)."),
    adapter: str = typer.Option("auto", "--adapter", help="Query adapter: auto (procrustes or procrustes-ridge, the one agreeing best with the new model on held-out pairs), procrustes, procrustes-ridge, affine or residual-mlp."),
    sample: int = typer.Option(5000, "--sample", help="Chunk pairs encoded with the new model to fit the adapter (20-5,000); their documents are stored natively at start and not re-embedded."),
    batch: int = typer.Option(64, "--batch", help="Documents re-embedded per commit (a kill loses at most one batch)."),
    fit_only: bool = typer.Option(False, "--fit-only", help="Fit the adapter and start serving through it; re-embed later."),
    queries: str = typer.Option("adapter", "--queries", help="How documents not yet re-embedded are searched: adapter "
                                "(the new model's query mapped into the old space) or old-model (the old model also "
                                "encodes each query: one more encoding per search, the old model's own quality)."),
    references: int = typer.Option(5000, "--references", help="Sample pairs the per-query score line keeps (1-5,000; "
                                   "5,000: every pair, the best start quality; 256: k-means medoids, ~0.03 ms a "
                                   "query instead of ~0.7, about 1.6 points of nDCG@10 lower at the start)."),
    status: bool = typer.Option(False, "--status", help="Only show the migration's progress."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Move a collection to a new model without downtime: fit a query adapter, re-embed in the background
    (rerun to continue after a kill), then switch atomically. Search answers throughout; writes are refused
    until it finishes."""
    from slimvec.migrate.state import progress

    if status:
        data: Any = progress(collection) or {"status": "none"}
    else:
        if not to:
            raise ConfigError("--to MODEL is required (or --status)")
        from slimvec.migrate.runner import migrate as run_migration
        from slimvec.progress import progress_bar

        # The bar is drawn at the first re-embedded batch: a refused call (an unknown model, a missing collection,
        # a bad option) prints its one line without an empty "0/?" bar above it.
        with contextlib.ExitStack() as stack:
            seen, bar = [0], []

            def moved(done: int, total: int) -> None:
                if not bar:
                    bar.append(stack.enter_context(progress_bar("re-embedding documents", 0, enabled=not json_out)))
                bar[0](done - seen[0], total=total)  # the bar shows done/total, not done/?
                seen[0] = done

            result = run_migration(collection, to, adapter=adapter, sample=sample, batch=batch, fit_only=fit_only,
                                   on_batch=moved, queries=queries, references=references)
        record = result.pop("record")
        data = {**result, "adapter": record["adapter"], "agreement": record["agreement"], "to": record["to"]}
    if json_out:
        _print_json(data)
    else:
        out.print(json.dumps(data, indent=2), markup=False)


@app.command()
@user_errors
def export(
    collection: Path = typer.Argument(..., help="Collection directory."),
    to: str = typer.Option(..., "--to", help="qdrant:PATH, lancedb:PATH or parquet:FILE, optionally #NAME (collection or table name, default slimvec)."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Export every document's chunks, spans, metadata and float32 vectors to Qdrant, LanceDB or Parquet."""
    from slimvec.collection import Collection
    from slimvec.interop import export_collection

    with Collection.open(collection) as col:
        summary = export_collection(col, to)
    if json_out:
        _print_json(summary)
    else:
        out.print(f"exported {summary['documents']} documents ({summary['records']} chunks) to {to}", markup=False)


@app.command(name="import")
@user_errors
def import_(
    source: str = typer.Argument(..., help="An export: qdrant:PATH, lancedb:PATH or parquet:FILE (optionally #NAME)."),
    collection: Path = typer.Option(..., "--collection", "-c", help="New collection directory."),
    profile: Optional[str] = typer.Option(None, "--profile", help="Profile of the new collection (default: the exported collection's)."),
    profile_file: Optional[Path] = typer.Option(None, "--profile-file", help="Profile JSON file of the new collection."),
    normalize: bool = typer.Option(False, "--normalize", help="Scale vectors to unit length (else a non-unit vector is refused)."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Build a new collection from an export, reusing its vectors (no re-encoding)."""
    from slimvec.interop import import_records
    from slimvec.profiles import load_profile

    _one_profile_source(profile, profile_file)
    chosen = load_profile(profile, profile_file) if (profile or profile_file) else None
    with import_records(source, collection, chosen, normalize=normalize) as col:
        info = col.info()
    summary = {"collection": str(collection), "documents": info["documents"], "chunks": info["chunks"]}
    if json_out:
        _print_json(summary)
    else:
        out.print(f"imported {info['documents']} documents ({info['chunks']} chunks) into {collection}", markup=False)


@app.command()
@user_errors
def serve(
    collections: list[Path] = typer.Argument(..., help="Collection directories; each is served under its directory name."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (non-loopback needs --api-key-file)."),
    port: int = typer.Option(8000, help="TCP port."),
    api_key_file: Optional[Path] = typer.Option(None, help="File holding the API key that writes must present."),
    keep_queries: int = typer.Option(0, "--keep-queries", help="Keep the vectors (not the text) of each "
                                     "collection's last N queries in RAM, to tune on them: POST "
                                     "/api/collections/NAME/tune {\"recent\": true}. 0: keep none."),
) -> None:
    """Serve collections over HTTP: JSON API under /api, search page at /."""
    _need("fastapi", "uvicorn")
    from slimvec.server import serve as run_server

    run_server([str(c) for c in collections], host=host, port=port, api_key_file=api_key_file,
               keep_queries=keep_queries)


@app.command()
@user_errors
def distill(
    out_dir: Path = typer.Option(..., "--out", help="New directory for the static model (must not exist or be empty)."),
    model: Optional[str] = typer.Option(None, "--from", help="Registered model name or local sentence-transformers directory (default the bundled all-MiniLM-L6-v2)."),
    pca_dims: int = typer.Option(256, "--pca-dims", help="Dimensions kept by PCA (at most the model's dimension)."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Distill a sentence-transformers model into a model2vec static model (offline); load it with --model DIR."""
    from slimvec.encoders.distill import distill as run_distill

    result = run_distill(out_dir, model, pca_dims)
    summary = {"path": str(result.path), "source": str(result.source), "dim": result.dim,
               "vocabulary": result.vocabulary, "seconds": round(result.seconds, 1)}
    if json_out:
        _print_json(summary)
    else:
        out.print(f"distilled {result.source} into {result.path}: {result.vocabulary:,} tokens x {result.dim} dims "
                  f"in {result.seconds:.0f} s", highlight=False, markup=False)


def _no_empty(**options: Optional[str]) -> None:
    """ConfigError for an option given as "" (`--model "$MODEL"` with MODEL unset): it would mean the default."""
    for name, value in options.items():
        if value is not None and not value.strip():
            raise ConfigError(f"--{name.replace('_', '-')} is empty: give a value or leave the option out")


def _one_profile_source(profile: Optional[str], profile_file: Optional[Path]) -> None:
    """ConfigError when both --profile and --profile-file are given: one of them would be silently ignored."""
    if profile is not None and profile_file is not None:
        raise ConfigError("--profile and --profile-file cannot be combined: give one of them")


def _profiles(profile: Optional[str], profile_file: Optional[Path], model: Optional[str] = None,
              chunk_mode: Optional[str] = None) -> list[Any]:
    from slimvec.profiles import load_profile, profile_from_dict

    _one_profile_source(profile, profile_file)
    _no_empty(model=model, chunk_mode=chunk_mode)

    names = [p.strip() for p in (profile or "").split(",") if p.strip()]
    if profile is not None and not names:
        raise ConfigError(f"--profile/--profiles names no profile: {profile!r}")
    if twice := next((n for i, n in enumerate(names) if n in names[:i]), None):  # evaluated twice, reported twice
        raise ConfigError(f"--profiles names {twice!r} twice")
    chosen = [load_profile(n) for n in names] or ([load_profile(file=profile_file)] if profile_file else [load_profile()])
    overrides = {k: v for k, v in (("model", model), ("chunk_mode", chunk_mode)) if v}
    if overrides:
        chosen = [profile_from_dict({**p.model_dump(), **overrides}, source="options") for p in chosen]
    return chosen


_UNIT_HELP = ("What a ranked id is: document (default; qrels keyed by document ids) | section (qrels keyed by "
              "section ids: each hit's given section id, or its document id where it has none).")
_CORPUS_HELP = ("Index this file or folder instead of the dataset's corpus.jsonl, e.g. articles.jsonl whose records "
                "carry sections (with --unit section).")


@app.command("eval")
@user_errors
def eval_cmd(
    dataset: Path = typer.Argument(..., help="BEIR-format folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv."),
    profile: Optional[str] = typer.Option(None, "--profile", help="Profile name (default exact-f32)."),
    profile_file: Optional[Path] = typer.Option(None, "--profile-file", help="Profile JSON file."),
    model: Optional[str] = typer.Option(None, "--model", help="Override the profile's model."),
    chunk_mode: Optional[str] = typer.Option(None, "--chunk-mode", help="Override chunking: tokens | truncate | whole | late."),
    split: str = typer.Option("test", "--split", help="Qrels split to evaluate on."),
    out_dir: Path = typer.Option(Path("slimvec-eval"), "--out", help="Folder for collections, TREC runs and reports."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Embedding cache folder (default ~/.cache/slimvec/embeddings)."),
    max_queries: Optional[int] = typer.Option(None, "--max-queries", help="Evaluate only the first N queries."),
    unit: str = typer.Option("document", "--unit", help=_UNIT_HELP),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help=_CORPUS_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Evaluate a profile on a BEIR dataset: nDCG@10, Recall@100, MRR@10, MAP@100, and cost."""
    _need("ranx")  # before any encoding
    from slimvec.evaluation.runner import run_eval

    chosen = _profiles(profile, profile_file, model, chunk_mode)
    if len(chosen) > 1:
        raise ConfigError(f"--profile takes one profile, got {len(chosen)} ({profile}): use `slimvec sweep "
                          "--profiles` to evaluate several")
    (prof,) = chosen
    result = run_eval(dataset, prof, split=split, out=out_dir, cache_dir=cache, max_queries=max_queries, progress=True,
                      unit=unit, corpus=corpus)
    if json_out:
        keep = ("dataset", "profile", "split", "unit", "metrics", "cost")
        _print_json({k: result[k] for k in keep})
        return
    _results_table([result])


@app.command()
@user_errors
def sweep(
    dataset: Path = typer.Argument(..., help="BEIR-format folder."),
    profiles: str = typer.Option("exact-f32,float8,int8,pca-half-float8,binary,binary-rescore", "--profiles",
                                 help="Comma-separated profile names."),
    chunk_mode: Optional[str] = typer.Option(None, "--chunk-mode", help="Override chunking: tokens | truncate | whole | late."),
    split: str = typer.Option("test", "--split"),
    out_dir: Path = typer.Option(Path("slimvec-eval"), "--out", help="Folder for collections, runs and the report."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Embedding cache folder."),
    max_queries: Optional[int] = typer.Option(None, "--max-queries"),
    unit: str = typer.Option("document", "--unit", help=_UNIT_HELP),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help=_CORPUS_HELP),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Evaluate several profiles; write report.md, results.csv, pareto.png and report.html under --out."""
    _need("ranx", "matplotlib")
    from slimvec.evaluation.runner import run_sweep

    results = run_sweep(dataset, _profiles(profiles, None, None, chunk_mode), split=split, out=out_dir, cache_dir=cache,
                        max_queries=max_queries, progress=True, unit=unit, corpus=corpus)
    if json_out:
        _print_json([{k: r[k] for k in ("dataset", "profile", "split", "unit", "metrics", "cost")} for r in results])
        return
    _results_table(results)
    where = out_dir.resolve()
    err.print(f"report: {where / 'report.html'}  table: {where / 'report.md'}  plot: {where / 'pareto.png'}",
              markup=False)


@app.command()
@user_errors
def plan(
    dataset: Path = typer.Argument(..., help="BEIR-format folder."),
    max_ram_bytes_per_doc: float = typer.Option(..., "--max-ram-bytes-per-doc", help="RAM budget per document."),
    profiles: Optional[str] = typer.Option(None, "--profiles", help="Candidate profiles (default: all storage profiles)."),
    chunk_mode: Optional[str] = typer.Option(None, "--chunk-mode", help="Override chunking: tokens | truncate | whole | late."),
    write: Path = typer.Option(Path("slimvec-profile.json"), "--write", help="Where to write the chosen profile."),
    out_dir: Path = typer.Option(Path("slimvec-eval"), "--out", help="Folder for collections and runs."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Embedding cache folder."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Pick the best profile within a RAM budget (chosen on dev or held-out queries) and write it to a file."""
    _need("ranx", "matplotlib")
    from slimvec.evaluation.planner import plan as make_plan
    from slimvec.evaluation.planner import write_profile

    _no_empty(chunk_mode=chunk_mode)
    cands = _profiles(profiles, None) if profiles is not None else None
    if write.is_dir() or not write.parent.is_dir():  # checked before the evaluations, not after them
        raise ConfigError(f"--write {write}: " + ("is a folder; name the profile file to write" if write.is_dir()
                                                  else f"folder {write.parent} does not exist"))
    result = make_plan(dataset, max_ram_bytes_per_doc, cands, out=out_dir, cache_dir=cache, chunk_mode=chunk_mode)
    path = write_profile(result.profile, write)
    if json_out:
        _print_json({"profile": result.profile.model_dump(mode="json"), "reason": result.reason, "file": str(path),
                     "selection": [{k: r[k] for k in ("profile", "split", "metrics", "cost")} for r in result.selection],
                     "report": {k: result.report[k] for k in ("profile", "split", "metrics", "cost")}})
        return
    _results_table(result.selection)
    out.print(f"chosen: {result.reason}", markup=False)
    _results_table([result.report])
    out.print(f"profile written to {path} (use: slimvec index SOURCE -c DIR --profile-file {path})", markup=False)


@app.command()
@user_errors
def calibrate(
    collection: Path = typer.Argument(..., help="Collection directory (built from the dataset's corpus)."),
    dataset: Path = typer.Argument(..., help="BEIR folder whose queries and qrels label the fit."),
    split: str = typer.Option("dev", "--split", help="Labelled split to fit on (not the one you report on)."),
    mode: Optional[str] = typer.Option(None, "--mode", help="Search mode to calibrate (default: the profile's)."),
    report_split: Optional[str] = typer.Option(None, "--report-split", help="Also report the 0.5 and the auto cut-off on this split."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Fit a relevance calibrator for `--min-relevance` and store it in the collection."""
    _need("sklearn")
    from slimvec.collection import Collection
    from slimvec.evaluation.calibrate import cutoff_report, fit_calibrator
    from slimvec.evaluation.datasets import load_dataset
    from slimvec.evaluation.preflight import check_judged
    from slimvec.search.plan import default_mode

    ds = load_dataset(dataset)
    # As eval's preflight: a query text the search refuses was "query is empty", naming no file or query id.
    queries, qrels = check_judged(ds, split, "calibrate on")
    reported = check_judged(ds, report_split, "report on") if report_split else None
    with Collection.open(collection) as col:
        mode = mode or default_mode(col.manifest.get("profile") or {}, col.manifest.get("retrievers", ["dense"]))
        cal = fit_calibrator(col, queries, qrels, mode=mode)
        report = auto = None
        if reported is not None:
            report = cutoff_report(col, *reported, mode=mode)
            auto = cutoff_report(col, *reported, mode=mode, threshold="auto")
    if json_out:
        _print_json({"mode": mode, "fitted_on": split, "threshold": cal.threshold, "report": report, "report_auto": auto})
    else:
        out.print(f"calibrator for mode {mode!r} fitted on {ds.name} {split} and stored in {collection}; "
                  f"--min-relevance auto cuts at {cal.threshold:.2f} (best mean F1 of the top 10 on {split})",
                  markup=False)
        if report:
            out.print({"min_relevance 0.5": report, "min_relevance auto": auto})


def _results_table(results: list[dict[str, Any]]) -> None:
    table = Table()
    for name in ("dataset", "split", "profile", "nDCG@10", "R@100", "MRR@10", "RAM B/doc", "disk B/doc", "p50 ms", "p95 ms"):
        table.add_column(name)
    for r in results:
        m, c = r["metrics"], r["cost"]
        table.add_row(escape(r["dataset"]), escape(r["split"]), escape(r["profile"]), f"{m['ndcg@10']:.4f}", f"{m['recall@100']:.4f}", f"{m['mrr@10']:.4f}",
                      f"{c['ram_bytes_per_doc']:,.0f}", f"{c['disk_bytes_per_doc']:,.0f}",
                      f"{c['query_ms_p50']:.1f}", f"{c['query_ms_p95']:.1f}")
    out.print(table)


def _name_column(table: Table, names: Any) -> None:
    """Put a never-cut "name" column first: the names are what users type, and an 80-column terminal (or a pipe)
    would otherwise end them in "…"; the other columns fold instead."""
    from rich.table import Column

    for column in table.columns:
        column.overflow = "fold"
    table.columns.insert(0, Column("name", no_wrap=True, min_width=max(len(n) for n in names)))


def _print_listing(table: Table) -> None:
    """Print `table` (`_name_column`'s) folded to a terminal's width, but each row on one line into a pipe or file:
    rich takes a pipe as 80 columns, so a kind ("multivector"), a source ("BAAI/bge-small-en-v1.5") or a header
    ("licence") was cut mid-word across lines, and `slimvec models | grep multivector` found nothing."""
    if out.is_terminal:
        out.print(table)
        return
    from rich.measure import Measurement

    width = Measurement.get(out, out.options.update_width(10**6), table).maximum
    Console(file=out.file, width=width, no_color=out.no_color, emoji=False).print(table)


@app.command("profiles")
def profiles_cmd(json_out: bool = typer.Option(False, "--json")) -> None:
    """List the built-in profiles."""
    from slimvec.profiles import BUILTIN

    if json_out:
        _print_json({n: p.model_dump(mode="json") for n, p in BUILTIN.items()})
        return
    table = Table("codec", "rescore", "retrievers", "description")
    _name_column(table, BUILTIN)
    for n, p in BUILTIN.items():
        table.add_row(n, p.codec, str(p.rescore), ",".join(p.retrievers), p.description)
    _print_listing(table)


@app.command("models")
def models_cmd(json_out: bool = typer.Option(False, "--json", help="Print the model cards as JSON.")) -> None:
    """List every model slimvec loads by name: kind, dimensions, maximum tokens, licence, source, package."""
    from slimvec.encoders.catalog import cards

    rows = [c.as_dict() for c in cards()]
    if json_out:
        _print_json(rows)
        return
    table = Table("kind", "dims", "max tokens", "licence", "source", "installed")
    names = [r["name"] + (" *" if r["default"] else "") for r in rows]
    _name_column(table, names)
    for name, r in zip(names, rows):
        table.add_row(escape(name), r["kind"], str(r["dims"]), str(r["max_tokens"]), escape(r["licence"]),
                      escape(r["source"]), "yes" if r["installed"] else "no")
    _print_listing(table)
    out.print("* default (dense model of new collections; model of the bare `cross-encoder` reranker)", highlight=False)
    for r in rows:
        if r["licence_note"]:
            out.print(f"{r['name']}: {r['licence_note']}", highlight=False, markup=False)
    for pkg in dict.fromkeys(r["package"] for r in rows if not r["installed"]):
        out.print(f"not installed: {pkg}", highlight=False, markup=False)


if __name__ == "__main__":
    app()
