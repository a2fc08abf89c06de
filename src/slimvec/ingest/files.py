"""Read document files (.txt .md .html .htm .pdf), one at a time or a whole folder, into Documents."""

from __future__ import annotations

import codecs
import datetime as dt
import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from slimvec.documents import Document, has_content
from slimvec.errors import IngestError
from slimvec.ingest.arrowtime import finer_fraction
from slimvec.ingest.headings import html_sections, markdown_sections
from slimvec.ingest.html import html_to_text as _html_to_text
from slimvec.ingest.kinds import refuse_other_kind

TEXT_EXTS = frozenset({"txt", "md"})
HTML_EXTS = frozenset({"html", "htm"})
FILE_EXTS = TEXT_EXTS | HTML_EXTS | {"pdf"}
# Table files hold many records with their own ids, so a folder walk must not mistake them for one document.
_TABLE_EXTS = frozenset({"jsonl", "csv", "parquet"})
# Why a file's text came out empty, by extension: the report a user reads instead of a title-only document.
NO_TEXT = {
    "pdf": "no text extracted (a PDF without a text layer, e.g. a scan: run OCR first)",
    "html": "no visible text",
    "htm": "no visible text",
    "": "no text (empty, or only whitespace or invisible characters)",
}


def file_ext(path: Path) -> str:
    """Lower-case extension without the dot ("" when there is none)."""
    return path.suffix[1:].lower()


def read_file(path: str | Path, root: str | Path | None = None) -> Document:
    """Read one .txt/.md/.html/.htm/.pdf file; its id is its path relative to `root` (default: its folder)."""
    path = Path(path)
    ext = file_ext(path)
    if ext not in FILE_EXTS:
        raise IngestError(f"{path}: unsupported file type '.{ext}' (supported: {_names(FILE_EXTS)})")
    rel = path.relative_to(root).as_posix() if root is not None else path.name
    extra: dict[str, Any] = {}
    sections = None  # headings become given sections (slimvec.sections)
    _refuse_special(path)
    refuse_other_kind(path)
    if ext == "pdf":
        title, text = _read_pdf(path)
    elif ext in HTML_EXTS:
        title, text = _html_to_text(html := decode_html(_read_bytes(path), path))
        sections = html_sections(html, text)
    else:
        raw = decode_text(_read_bytes(path), path)
        extra, text = _split_front_matter(raw, path, {"path": rel, "ext": ext})
        # a title of only invisible characters (U+200B, BOM) is no title: the next source names the document
        title = next((t for t in (_front_matter_title(extra, raw), _markdown_title(text)) if has_content(t)), "")
        sections = markdown_sections(text) if ext == "md" else None
    return Document(id=rel, text=text, title=title if has_content(title) else path.stem, metadata={"path": rel, "ext": ext, **extra},
                    sections=sections)


# claim(path, root): None the first time a file is met, else (the path it was read under, the folder whose walk
# read it or None); `sources.FileClaims`
Claim = Callable[[Path, "Path | None"], "tuple[Path, Path | None] | None"]


def iter_folder(root: Path, on_skip: Callable[[str], None],
                claim: Claim | None = None) -> Iterator[tuple[Path, Document | IngestError]]:
    """Every supported file under `root` in sorted id order; hidden entries ignored, others noted once.

    claim: called with each file (and `root`) before it is read; when it says where the file was already read (the
    same file reached through a link, or by another source: `same_file_note`), the file is noted and passed over.
    """
    found: list[tuple[str, Path]] = []
    skipped: dict[str, list[str]] = {}
    walk_errors: list[OSError] = []
    # followlinks=False: a symlink loop must not hang ingest.
    linked: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=walk_errors.append):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        linked += [Path(dirpath, d).relative_to(root).as_posix() for d in dirnames if Path(dirpath, d).is_symlink()]
        for name in filenames:
            if name.startswith("."):
                continue
            path = Path(dirpath, name)
            rel = path.relative_to(root).as_posix()
            ext = file_ext(path)
            if ext in FILE_EXTS:
                found.append((rel, path))
            else:
                skipped.setdefault(ext, []).append(rel)
    if linked:  # os.walk does not follow them (a link loop would never end): say so rather than skip silently
        on_skip(f"{root}: skipped {len(linked)} linked folder(s), not followed, e.g. {min(linked)} (name the folder "
                "itself to read it)")
    for ext, rels in sorted(skipped.items()):
        kind = f"'.{ext}'" if ext else "no extension"
        hint = " (name a table file directly to read its records)" if ext in _TABLE_EXTS else ""
        on_skip(f"{root}: skipped {len(rels)} file(s) with {kind}, e.g. {min(rels)}{hint}")
    for err in walk_errors:
        yield Path(err.filename or root), IngestError(f"{err.filename}: cannot read folder: {err.strerror}")
    # A file claims its own name before any link to it in this folder does (links are claimed last): else a link
    # sorting first ('a.txt' -> 'b.txt') took the file's id, and a rerun after the link was made skipped 'b.txt',
    # whose stored document then never changed again (upsert keeps it, stale, beside the link's).
    taken: dict[Path, tuple[Path, Path | None]] = {}
    if claim is not None:
        for _, path in sorted(found, key=lambda f: (f[1].is_symlink(), f[0])):
            if (first := claim(path, root)) is not None:
                taken[path] = first
    for _, path in sorted(found):
        if path in taken:
            on_skip(same_file_note(path, *taken[path]))
            continue
        try:
            yield path, read_file(path, root)
        except IngestError as e:
            yield path, e


def file_identity(path: Path) -> tuple[int, int] | str:
    """What makes two paths one file: its device and inode (`os.stat` follows links), so a symbolic link, a hard
    link (`ln a.txt b.txt`: two names, no link to resolve) and another spelling of a path are one file; the
    resolved path where there is none to read (a dangling link, reported when read; a file system without inodes)."""
    try:
        st = os.stat(path)
    except OSError:
        return str(path.resolve())
    return (st.st_dev, st.st_ino) if st.st_ino else str(path.resolve())


def same_file_note(path: Path, first: Path, first_root: Path | None = None) -> str:
    """The note for a file `path` passed over because it was read already, under `first` (another spelling, a
    link, or the same path reached by another source), by the walk of the folder `first_root` or, None, as a path
    given on its own; names the id it was stored under."""
    first_id = first.relative_to(first_root).as_posix() if first_root is not None else first.name
    if str(path) == str(first):  # one spelling reached by two sources (a folder given and a file in it, or twice)
        how = f"by the walk of {first_root}" if first_root is not None else "as given before"
        return f"{path}: skipped, already read {how} (id {first_id}), read once (first path wins)"
    return (f"{path}: skipped, the same file as {first} (id {first_id}), read once (first path wins; in a folder, a "
            "file's own name)")


def decode_utf8(raw: bytes, path: Path) -> str:
    """Strict UTF-8 text with any BOM removed; the error names the line and byte offset."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise IngestError(f"{path}:{line}: invalid UTF-8 at byte {e.start} (0x{raw[e.start]:02x})") from None
    return text.removeprefix("\ufeff")


# Byte-order marks of the UTF-16/32 text editors write (Windows Notepad's "Unicode"): UTF-32 first, its
# little-endian mark starting with UTF-16's.
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
         (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))


def decode_text(raw: bytes, path: Path) -> str:
    """A .txt/.md file's text: UTF-16 or UTF-32 when it opens with that byte-order mark, else strict UTF-8
    (`decode_utf8`); the error names the encoding and byte offset."""
    for bom, name in _BOMS:
        if raw.startswith(bom):
            try:
                return raw[len(bom):].decode(name)
            except UnicodeDecodeError as e:
                raise IngestError(f"{path}: invalid {name.upper()} (byte-order mark) at byte {len(bom) + e.start}") \
                    from None
    return decode_utf8(raw, path)


def decode_html(raw: bytes, path: Path) -> str:
    """HTML text decoded with its byte-order mark, else its declared charset (`<meta charset>`), else UTF-8.

    Decoding is strict: a byte the charset cannot hold is an error naming the line and byte offset.
    Labels browsers read as windows-1252 (iso-8859-1, us-ascii: the WHATWG Encoding Standard) are read so.
    """
    from bs4.dammit import EncodingDetector  # deferred: bs4 is a slow import

    bom_label = EncodingDetector.strip_byte_order_mark(raw)[1]
    label = bom_label or EncodingDetector.find_declared_encoding(raw, is_html=True)
    if not label:
        return decode_utf8(raw, path)
    label = label.strip().lower()
    try:
        name = codecs.lookup(label).name
    except LookupError:
        raise IngestError(f"{path}: declared charset {label!r} is unknown") from None
    name = {"latin-1": "cp1252", "iso8859-1": "cp1252", "ascii": "cp1252"}.get(name, name)
    if not bom_label and name.startswith(("utf-16", "utf-32")):
        # A <meta> declaration that could be read byte by byte is not UTF-16/32 text: browsers read it as
        # UTF-8 (WHATWG HTML, "prescan a byte stream"); decoding it as declared gives CJK-looking garbage.
        return decode_utf8(raw, path)
    if name == "utf-8":
        return decode_utf8(raw, path)
    try:
        text = raw.decode(name)
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise IngestError(
            f"{path}:{line}: invalid {label} at byte {e.start} (0x{raw[e.start]:02x}), the declared charset"
        ) from None
    return text.removeprefix("\ufeff")


def _refuse_special(path: Path) -> None:
    """IngestError for a path that names no regular file: opening a named pipe (mkfifo docs/x.txt) waits for a
    writer, so a folder walk that met one hung, silently, and a device may never end."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # the reader reports it (a dangling link, no permission)
    if not stat.S_ISREG(mode):
        what = "a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else \
            "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"
        raise IngestError(f"{path}: {what}, not a regular file: only files are read")


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise IngestError(f"{path}: cannot read: {e.strerror}") from None


def _names(exts: frozenset[str]) -> str:
    return ", ".join(f".{e}" for e in sorted(exts))


# --- .txt / .md -------------------------------------------------------------------------------------------

_H1 = re.compile(r"^ {0,3}#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


_YAML_KINDS = {bool: "boolean", type(None): "null", int: "number", float: "number", dt.datetime: "timestamp"}


class _FineDatetime(dt.datetime):
    """A YAML timestamp written with more than 6 fraction digits: its ISO text keeps them all."""

    extra_digits = ""  # the fraction's digits past the microseconds, trailing zeros dropped

    def isoformat(self, sep: str = "T", timespec: str = "auto") -> str:
        return finer_fraction(super().isoformat(sep, "microseconds"), self.extra_digits)


def _front_matter_loader(yaml: Any, path: Path) -> type:
    """PyYAML's SafeLoader, refusing a mapping that names one key twice, or two keys that are one metadata key
    once made text (`1:` and `"1":`, `true:` and `"True":`): PyYAML keeps the last value without a word."""

    class Loader(yaml.SafeLoader):  # type: ignore[misc, name-defined]
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                seen: dict[Any, int] = {}
                for key_node, _ in node.value:  # the mapping's own keys, before `<<` merges add theirs
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    line = key_node.start_mark.line + 2  # 1-based, after the opening `---`
                    # str(key) is the metadata key; Python's dict also makes one key of 1, 1.0 and true
                    for probe in (str(key), (key,) if isinstance(key, (int, float)) else None):
                        if probe is not None and probe in seen:
                            raise IngestError(f"{path}:{line}: front matter: key {str(key)!r} is the key of line "
                                              f"{seen[probe]} again (YAML would keep only the last value)")
                    seen[str(key)] = line
                    if isinstance(key, (int, float)):
                        seen[(key,)] = line
                for key_node, _ in node.value:  # a key YAML reads as another type would be stored changed
                    if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                        continue
                    key = self.construct_object(key_node, deep=True)
                    if not isinstance(key, str) and str(key) != key_node.value:
                        raise IngestError(f"{path}:{key_node.start_mark.line + 2}: front matter: key {key_node.value!r} "
                                          f"is read by YAML as a {_YAML_KINDS.get(type(key), type(key).__name__)}, so "
                                          f"it would be stored as {str(key)!r}; put it in quotes to keep it as written")
            return super().construct_mapping(node, deep=deep)

    def as_written(typed: Any) -> Any:
        # YAML 1.1 reads `12:30` as the base-60 number 750 and `01234` as the octal number 668: such a plain
        # scalar stays the text written (a time, a code with its leading zero), as YAML 1.2 and the CSV reader read it.
        def construct(self: Any, node: Any) -> Any:
            text = node.value if isinstance(node.value, str) else ""
            if ":" in text or re.match(r"[-+]?0[0-9_]", text):
                return self.construct_scalar(node)
            return typed(self, node)
        return construct

    def boolean(self: Any, node: Any) -> Any:
        # YAML 1.1 also reads yes/no/on/off (`country: NO`) as booleans; as YAML 1.2 and the CSV reader, only
        # true/false are (`--field-type draft=bool` still turns "yes" into true)
        if isinstance(node.value, str) and node.value.lower() not in ("true", "false"):
            return self.construct_scalar(node)
        return yaml.SafeLoader.construct_yaml_bool(self, node)

    def timestamp(self: Any, node: Any) -> Any:
        # PyYAML cuts a fraction of a second to microseconds (`12:30:05.123456789` read as .123456): the digits
        # past the sixth are kept for the ISO text, as a Parquet timestamp[ns] keeps its nanoseconds.
        value = yaml.SafeLoader.construct_yaml_timestamp(self, node)
        m = self.timestamp_regexp.match(node.value) if isinstance(value, dt.datetime) else None
        extra = (m.group("fraction") or "")[6:].rstrip("0") if m else ""
        if not extra:
            return value
        fine = _FineDatetime(*value.timetuple()[:6], value.microsecond, value.tzinfo)
        fine.extra_digits = extra
        return fine

    Loader.add_constructor("tag:yaml.org,2002:timestamp", timestamp)
    Loader.add_constructor("tag:yaml.org,2002:int", as_written(yaml.SafeLoader.construct_yaml_int))
    Loader.add_constructor("tag:yaml.org,2002:float", as_written(yaml.SafeLoader.construct_yaml_float))
    Loader.add_constructor("tag:yaml.org,2002:bool", boolean)
    return Loader


def _split_front_matter(text: str, path: Path, own_meta: dict[str, str]) -> tuple[dict[str, Any], str]:
    """(metadata, body) for text that opens with a `---` block of YAML (a mapping), parsed by PyYAML."""
    import yaml  # deferred: only Markdown/text files with front matter need it

    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip() != "---":
        return {}, text
    end = next((i for i in range(1, len(lines)) if lines[i].rstrip() in ("---", "...")), None)
    if end is None:
        return {}, text  # never closed: a horizontal rule at the top, not front matter
    try:
        meta = yaml.load("".join(lines[1:end]), Loader=_front_matter_loader(yaml, path))  # noqa: S506 - a SafeLoader
    except RecursionError:
        raise IngestError(f"{path}: front matter: nested too deeply") from None
    except yaml.YAMLError as e:
        # A scanner error ("could not find expected ':'") is detected past the line that caused it; its
        # context mark is that line. +1 for 1-based lines, +1 for the opening `---`.
        mark = getattr(e, "context_mark", None) if isinstance(e, yaml.scanner.ScannerError) else None
        mark = mark or getattr(e, "problem_mark", None)
        line = f":{min(mark.line + 2, end)}" if mark is not None else ""
        problem = " ".join(str(getattr(e, "problem", None) or e).split())
        raise IngestError(f"{path}{line}: front matter: invalid YAML: {problem}") from None
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise IngestError(f"{path}:2: front matter: expected YAML 'key: value' lines, got {type(meta).__name__}")
    for own in ("path", "ext"):  # the file's own metadata: a different value in front matter would replace it
        if own in meta and meta[own] != own_meta[own]:
            raise IngestError(f"{path}: front matter: {own!r} is the file's own metadata ({own_meta[own]!r}), "
                              f"not {meta[own]!r:.60}; rename the key")
    try:
        meta = _json_ready(meta, path, budget=[MAX_FRONT_MATTER_VALUES])
    except RecursionError:  # deep nesting, or an alias inside its own anchor (`a: &a [*a]`)
        raise IngestError(f"{path}: front matter: nested too deeply (or a YAML alias refers to itself)") from None
    return meta, "".join(lines[end + 1 :]).lstrip("\r\n")


# Values (scalars, lists, mappings) front matter may expand to: YAML aliases let a few hundred bytes expand to
# billions of values ("billion laughs"), which would exhaust memory while they are copied into metadata.
MAX_FRONT_MATTER_VALUES = 100_000


def _json_ready(value: Any, path: Path, key: str = "", budget: list[int] | None = None) -> Any:
    """YAML values as JSON metadata: dates as ISO text, keys as text; other YAML types are an error, as is more
    than `budget[0]` values in all (counted down as they are copied)."""
    if budget is not None:
        budget[0] -= 1
        if budget[0] < 0:
            raise IngestError(f"{path}: front matter: more than {MAX_FRONT_MATTER_VALUES:,} values (after "
                              "expanding YAML aliases)")
    if isinstance(value, dict):
        return {str(k): _json_ready(v, path, f"{key}.{k}" if key else str(k), budget) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v, path, key, budget) for v in value]
    if isinstance(value, (dt.date, dt.time)):  # dt.datetime is a dt.date
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise IngestError(f"{path}: front matter: {key}: YAML {type(value).__name__} values cannot be metadata")


def _front_matter_title(meta: dict[str, Any], raw: str = "") -> str:
    title = meta.get("title")
    if isinstance(title, (int, float)) and not isinstance(title, bool):  # `title: 1984` is a title YAML reads as a number
        # As written, not as the number reads back: `title: 3.10` is "3.10", not "3.1", `0x1F` not "31". The file
        # opens with the front matter, so its first top-level `title:` line is the key's; a value that is not the
        # plain number there (an alias, a flow mapping) keeps the number's text.
        written = re.search(r"^title:[ \t]+([^\s#'\"][^#\r\n]*?)[ \t]*(?:#[^\r\n]*)?\r?$", raw, re.M)
        if written and _number_text(written.group(1)) == title:
            return written.group(1)
        return str(title)
    return title.strip() if isinstance(title, str) else ""


def _number_text(text: str) -> Any:
    """The number YAML reads `text` as, else None."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _markdown_title(text: str) -> str:
    """The first level-1 ATX heading outside code fences, or ""."""
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and (m := _H1.match(line)):
            return m[1].strip()
    return ""


# --- .pdf -------------------------------------------------------------------------------------------------


def _read_pdf(path: Path) -> tuple[str, str]:
    """(title from the PDF's metadata or "", page texts joined by blank lines)."""
    from slimvec.extras import require

    PdfReader = require("pypdf").PdfReader  # deferred: a slow import that most runs never need

    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            reader.decrypt("")  # many PDFs are "encrypted" with an empty user password
        # NUL is no text (an unmapped glyph, a UTF-16 title's terminator) and no store can hold it: dropped, so the
        # document is not refused for it
        pages = [(page.extract_text() or "").replace("\x00", "").strip() for page in reader.pages]
        info = reader.metadata
        title = info.title if info is not None else None
    except OSError as e:
        raise IngestError(f"{path}: cannot read: {e.strerror}") from None
    except Exception as e:  # noqa: BLE001 - pypdf raises many unrelated types on damaged files; all mean "unreadable"
        detail = " ".join(str(e).split()) or type(e).__name__
        raise IngestError(f"{path}: cannot read PDF: {detail}") from None
    title = " ".join(title.replace("\x00", "").split()) if isinstance(title, str) else ""
    return title, "\n\n".join(p for p in pages if p)
