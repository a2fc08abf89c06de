"""BM25 over a collection's chunk rows, scored with bm25s's formulas from posting lists kept up to date.

Design (bm25s cannot add documents to a built index, and every precomputed score depends on N, the average
length and document frequencies, which each commit changes): a **cached tokenised corpus, its posting lists
appended commit by commit, and term scores computed at query time** (`retrievers/bm25_postings.py`).

- `sync` tokenises only the rows committed since the last call (the same `"{title} {chunk}"` text the
  dense model encodes) and appends their token ids to a cache: a flat int32 token array, per-row
  offsets, the row numbers, and a vocabulary that only grows. Their (row, term) counts are appended to the
  posting lists as one more segment, O(new rows). Nothing is scored yet.
- A `search` scores each of its terms' postings under the current statistics the first time a query asks
  for that term since they changed, bitwise as bm25s's matrix holds them, and keeps them for the next
  queries. Before the postings (session 19), the first search after every commit rebuilt bm25s's whole
  score matrix: 1.3 s at 100k rows.
- Deletes (and the old rows of an upsert) leave the statistics at the sync that sees them (the store's
  dead-row counter moved: the rows deleted since are read from its log, `Store.rows_deleted`, or, where the
  log has gaps, by reading every live row), so N, avgdl and document frequencies are always those
  of the live chunks and scores equal a fresh bm25s index built over them. Their tokens and postings stay
  (never returned: search keeps only allowed rows) until dead rows are COMPACT_AT (25%) of the cache, then
  go in one pass, so an upsert commit appends to the saved files instead of rewriting them.
- A sharded collection's router may inject corpus-wide statistics (`use_global`; `stats_key`, `local_stats`
  and `refresh_live` feed it, see `retrievers/bm25_global.py`): terms are then scored with the N, average
  length and document frequencies summed over every shard, so scores equal one collection's.
- `save` writes `index/bm25/` as append-only row files (`index.rowfiles`): a commit appends its rows' token
  ids, offsets and row numbers and the new vocabulary terms, then replaces the small index.json (the commit
  point); a cache that dropped its dead rows is rewritten whole. The posting lists go beside them, one file
  per segment not yet written (postings.json names them). A reopened index finds its dead rows from the
  store at its first sync, so it counts the rows this one counts. A reopened collection whose files lack the
  postings (saved before them, damaged) builds them from the cached tokens at its first BM25 search, without
  re-tokenising. A missing, unreadable or out-of-step (ahead of the commit log, other parameters) folder is
  rebuilt from the stored rows.

Defaults: English Snowball stemmer (PyStemmer), bm25s's English stopword list, lower-casing, bm25s's
token pattern `(?u)\\b\\w\\w+\\b`, k1=1.5, b=0.75, method "lucene" (Lucene's idf
log(1 + (N - df + 0.5) / (df + 0.5)) and tf saturation). A collection's manifest may override these
under "bm25" (keys of `Bm25Config`), set from a profile's "bm25" entry. For Chinese, Japanese and Korean,
`cjk_bigrams` splits each run of CJK characters into overlapping character bigrams (the classic CJK
analyzer of Lucene): the default token pattern would keep a whole run, often a clause, as one token.
"""

from __future__ import annotations

import json
import re
import uuid
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from slimvec.atomic import replaced_file, write_json_atomic
from slimvec.chunking import chunk_text
from slimvec.encoders.base import Encoder
from slimvec.errors import CollectionError
from slimvec.index import rowfiles
from slimvec.index.base import top_k
from slimvec.retrievers.base import Query, Retriever
from slimvec.retrievers.bm25_global import Bm25Stats, check_method, term_scorer
from slimvec.retrievers.bm25_postings import Postings, TermScorer
from slimvec.retrievers.postings import Segment, spans
from slimvec.store import Store

_DIR = "bm25"
_FORMAT = 1
_POSTINGS = "postings.json"
COMPACT_AT = 0.25  # dead rows are dropped from the cache and postings once they are this share of its rows


@dataclass(frozen=True)
class Bm25Config:
    """Tokenisation and scoring parameters of a BM25 index."""

    k1: float = 1.5
    b: float = 0.75
    method: str = "lucene"
    stemmer: str | None = "english"  # a PyStemmer language, or None for no stemming
    stopwords: str | list[str] | None = "en"  # a bm25s stopword language, a list of words, or None
    lower: bool = True
    token_pattern: str = r"(?u)\b\w\w+\b"
    cjk_bigrams: bool = False  # runs of CJK characters become overlapping character bigrams

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, value: dict[str, Any] | None) -> "Bm25Config":
        """A config from a (possibly partial) dict such as the manifest's "bm25" entry."""
        value = dict(value or {})
        known = {k: value[k] for k in cls.__dataclass_fields__ if k in value}
        return cls(**known)


# Han, kana, hangul and CJK compatibility ideographs.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_CJK_PARTS = re.compile(f"([{_CJK}]+)")
_HAS_CJK = re.compile(f"[{_CJK}]")


def cjk_bigrams(tokens: list[str]) -> list[str]:
    """Tokens with each run of CJK characters replaced by its overlapping bigrams (a lone character stays)."""
    out: list[str] = []
    for tok in tokens:
        if not _HAS_CJK.search(tok):
            out.append(tok)
            continue
        for part in _CJK_PARTS.split(tok):
            if not part:
                continue
            if _HAS_CJK.match(part):
                out.extend([part[i : i + 2] for i in range(len(part) - 1)] if len(part) > 1 else [part])
            else:
                out.append(part)
    return out


class Tokenizer:
    """Text to token strings: bm25s's tokenizer with the configured stemmer and stopwords."""

    def __init__(self, config: Bm25Config) -> None:
        self.config = config
        self._stemmer: Any = None
        if config.stemmer:
            import Stemmer

            self._stemmer = Stemmer.Stemmer(config.stemmer)
        self._split = re.compile(config.token_pattern).findall
        self._stop: set[str] = set()
        if config.stopwords:  # bm25s (and numba behind it) is only imported when there is work for it
            import bm25s

            self._stop = set(bm25s.tokenization._infer_stopwords(config.stopwords))

    def one(self, text: str) -> list[str]:
        """Tokens of one text, exactly as `__call__` gives them, without bm25s's per-call progress-bar set-up
        (which costs more than the tokenising on a short query)."""
        tokens = self._split(text.lower() if self.config.lower else text)
        if self.config.cjk_bigrams:
            tokens = cjk_bigrams(tokens)
        tokens = [t for t in tokens if t not in self._stop]
        return self._stemmer.stemWords(tokens) if self._stemmer is not None else tokens

    def __call__(self, texts: list[str]) -> list[list[str]]:
        """One list of (stemmed, stopword-free) tokens per text."""
        if not texts:
            return []
        c = self.config
        if c.cjk_bigrams:
            return [self.one(t) for t in texts]
        import bm25s

        out = bm25s.tokenize(
            texts, lower=c.lower, token_pattern=c.token_pattern, stopwords=c.stopwords or [],
            stemmer=self._stemmer, return_ids=False, show_progress=False,
        )
        return [list(t) for t in out]


class Bm25Retriever:
    """BM25 (bm25s's scoring) over chunk rows: incremental token cache and posting lists, term scores at query
    time, deletes by mask."""

    name = "bm25"

    def __init__(self, config: Bm25Config | None = None) -> None:
        self.config = config or Bm25Config()
        self.tokenize = Tokenizer(self.config)
        self._reset()

    def _reset(self) -> None:
        self.vocab: dict[str, int] = {}
        self._terms: list[str] = []  # the vocabulary in id order (saved append-only)
        self._fit = rowfiles.new_fit()  # names this cache on disk; new whenever rows leave it
        self._tokens = np.zeros(0, dtype=np.int32)  # token ids of every cached row, concatenated
        self._offsets = np.zeros(1, dtype=np.int64)  # row i's tokens: _tokens[_offsets[i]:_offsets[i+1]]
        self._row_ids = np.zeros(0, dtype=np.int64)  # store row of each cached row
        self._rows = 0  # store rows caught up with
        # Cached rows whose chunk is deleted (or replaced): kept in the cache and postings, out of the statistics,
        # until they reach COMPACT_AT of the cache (then dropped in one pass), so an upsert commit appends
        # instead of rewriting the index. `_dead_df` (int64, by term id) and `_dead_tokens` are their part of
        # the document frequencies and total length; `_dead_seen` is the store's dead-row count at the last
        # check (None: not checked yet in this process).
        self._dead = np.zeros(0, dtype=bool)
        self._dead_df = np.zeros(0, dtype=np.int64)
        self._buffers: dict[str, np.ndarray] = {}  # name -> the array the cache's arrays are views of (`_extended`)
        self._dead_tokens = 0
        self._dead_seen: int | None = None
        self._dead_checked = False
        self._postings: Postings | None = Postings()  # term-major counts of the cache (None: to build from it)
        self._scorer: TermScorer | None = None  # term scores under the current statistics, once asked for
        self._stale = True  # the statistics changed since the scorer was made
        self._dirty = True  # differs from what is on disk
        self._unsaved_postings = False  # postings the files lack; save_cache may write them
        # Corpus-wide statistics injected by a sharded collection's router (see `use_global`); None: own.
        self._global: Bm25Stats | None = None
        self._global_key: str | None = None
        self._global_for: str | None = None  # the `stats_key` the injected statistics were summed from
        self._uid, self._version = uuid.uuid4().hex, 0  # `stats_key`: this cache's identity and its changes

    # ---- Retriever protocol ----------------------------------------------------------------
    @property
    def rows(self) -> int:
        """Rows this retriever has caught up with."""
        return self._rows

    def sync(self, store: Store) -> None:
        """Tokenise and cache rows committed since the last call and append their postings; take in rows deleted
        since (out of the statistics from now on). Terms are scored under the new statistics when a query asks
        for them."""
        committed = store.committed_rows
        if self._rows > committed:  # derived data ahead of the commit log: start again
            self._reset()
        dead = store.dead_rows  # read before the rows, as RowMap does: a delete after this moves it again
        if self._rows < committed:
            new = list(range(self._rows, committed))
            chunks = store.chunks_for_rows(new)
            rows = [r for r in new if r in chunks]  # rows deleted before we saw them are skipped
            if len(rows) < len(new):
                # Another handle that saw them alive keeps them (dead) in its cache under the same fit, so the
                # same fit would name two different caches, and a save appends to the folder from its row count:
                # a new fit makes the next save rewrite it whole (the rows here differ from any saved by others).
                self._fit = rowfiles.new_fit()
                self._dirty = True
            texts = [chunk_text(chunks[r].title, chunks[r].text) for r in rows]
            self._append(rows, self.tokenize(texts))
            self._rows = committed
            self._stale = self._dirty = True
        if not self._dead_checked or dead is None or dead != self._dead_seen:  # None: an old read-only store
            # the rows deleted since the last look, from the store's log (O(deleted)); else every live row
            gone = store.rows_deleted(self._dead_seen, dead) if self._dead_checked else None
            if gone is not None:
                self._take_deletes(dead=gone)
            else:
                self._take_deletes(live=store.alive_rows())
            self._dead_seen, self._dead_checked = dead, True

    def search(self, query: Query, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, rows) among allowed rows that hold a query term, whatever the sign of their score;
        -1 pads."""
        scores_out = np.full(k, -np.inf, dtype=np.float32)
        rows_out = np.full(k, -1, dtype=np.int64)
        scorer = self._ensure_built()
        if scorer is None or not len(self._row_ids):
            return scores_out, rows_out
        # Terms only deleted rows hold are out, as they are out of a fresh index's vocabulary: they score no
        # live row, and BM25L/BM25+ would add their (zero) non-occurrence score into the sum at another place.
        ids = [t for t in self.query_ids(query.text) if scorer.own_df[t] > 0]
        if not ids:
            return scores_out, rows_out
        mask = np.zeros(len(self._row_ids), dtype=bool)
        in_range = (self._row_ids >= 0) & (self._row_ids < len(allowed))  # -1: a row compacted away
        mask[in_range] = allowed[self._row_ids[in_range]]
        scores = scorer.scores(ids, len(self._row_ids))
        # Membership, not the score's sign: a document matches when it holds a query term. Robertson's idf
        # is 0 (or below) for a term in over half the documents, BM25L/BM25+ shift scores, so `score > 0`
        # would drop genuine matches; and a filtered-out or deleted row is out whatever its score.
        hit = np.flatnonzero(self._members(ids) & mask)
        # Cached rows are in commit order, so a lower position in `hit` is a lower row: top_k's tie rule.
        vals, pos = top_k(scores[hit][None, :], k)
        found = pos[0] >= 0
        scores_out[found], rows_out[found] = vals[0][found], self._row_ids[hit[pos[0][found]]]
        return scores_out, rows_out

    def describe(self) -> dict[str, Any]:
        """{"kind": "bm25", "rows" (caught up with), "indexed_rows" (live rows whose tokens are cached: the N of
        the statistics), "tokens" (their total length), "dead_rows" (deleted or replaced rows still cached, out
        of the statistics, dropped once they reach COMPACT_AT of the cache), "vocabulary" (distinct terms cached,
        including terms only dead rows hold until those rows are dropped: it only grows between compactions),
        "postings_built" (the posting lists are built, or loaded, rather than pending a build from the token
        cache at the first search), "postings_segments", "k1", "b"}."""
        n_dead = int(np.count_nonzero(self._dead))
        return {"kind": "bm25", "rows": int(self._rows), "indexed_rows": len(self._row_ids) - n_dead,
                "tokens": len(self._tokens) - self._dead_tokens, "dead_rows": n_dead, "vocabulary": len(self.vocab),
                "postings_built": self._postings is not None,
                "postings_segments": len(self._postings.segments) if self._postings is not None else 0,
                "k1": self.config.k1, "b": self.config.b}

    def ram_bytes(self) -> int:
        """Bytes resident in RAM: token cache, posting lists and the term scores computed so far."""
        n = sum(a.base.nbytes if a.base is not None and a.base is self._buffers.get(name) else a.nbytes
                for name, a in (("tokens", self._tokens), ("offsets", self._offsets), ("row_ids", self._row_ids)))
        n += sum(len(t) + 64 for t in self.vocab)
        n += self._postings.nbytes if self._postings is not None else 0
        return n + (self._scorer.nbytes if self._scorer is not None else 0)

    # ---- corpus-wide statistics (sharded collections) -----------------------------------------
    def refresh_live(self, store: Store) -> None:
        """Take in rows deleted since the last look, as `sync` does: a sharded collection's router calls it on every
        shard after a write call, so that each shard counts the rows one collection would count."""
        self._take_deletes(store.alive_rows())

    def stats_key(self) -> str:
        """A string that changes whenever `local_stats` would (rows appended, deleted or compacted; a new instance)."""
        return f"{self._uid}:{self._version}"

    def local_stats(self) -> Bm25Stats:
        """N, total length and document frequencies of the live cached rows (this index's own statistics)."""
        n, tokens, df = self._own_stats()
        return Bm25Stats(n, tokens, {self._terms[i]: int(df[i]) for i in np.flatnonzero(df).tolist()})

    @property
    def global_key(self) -> str | None:
        """The key given with the corpus-wide statistics in use, None when scoring with this index's own."""
        return self._global_key

    def use_global(self, stats: Bm25Stats | None, key: str | None, summed_from: str | None) -> None:
        """Score with corpus-wide statistics `stats` (Bm25Stats.total of every shard's `local_stats`) from the
        next search on, None for this index's own. `key` names them; `summed_from` is the `stats_key` this
        index had when its part was counted: a search after this index changes raises CollectionError until new
        statistics are given. Raises ConfigError for a variant that cannot use them (bm25l, bm25+)."""
        if stats is not None:
            check_method(self.config.method)
        if key != self._global_key or summed_from != self._global_for:
            self._global, self._global_key, self._global_for = stats, key, summed_from
            self._stale = self._dirty = True

    def save(self, directory: Path) -> None:
        """Write `directory/bm25/` as row files (`index.rowfiles`): a commit appends its rows' tokens, offsets,
        row numbers and new terms, so it writes what it added, not the collection; a cache that lost rows (its
        dead rows dropped once they reached COMPACT_AT) is rewritten whole. The posting lists go beside them, one
        file per segment (a commit writes its own segment and any merged one; postings.json names them with the
        cache's fit and rows)."""
        target = directory / _DIR
        saved = rowfiles.read_meta(target)
        if not self._dirty and saved is not None:
            return
        first = int(saved.get("terms", 0)) if saved and saved.get("fit") == self._fit else 0

        def rows_from(start: int) -> dict[str, np.ndarray]:
            lines = "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in self._terms[first if start else 0 :])
            return {"tokens": self._tokens[self._offsets[start] :], "ends": self._offsets[start + 1 :],
                    "row_ids": self._row_ids[start:], "terms": np.frombuffer(lines.encode("utf-8"), np.uint8)}

        meta = {"kind": "bm25", "store_rows": self._rows, "config": self.config.to_dict(), "terms": len(self._terms)}
        rowfiles.save(target, self._fit, len(self._row_ids), rows_from, meta, lambda folder: None,
                      ragged=("tokens", "terms"))
        self._write_postings(target)
        self._dirty = False

    @property
    def cache_pending(self) -> bool:
        """Whether this index holds posting lists that are not on disk yet (`save_cache` writes them)."""
        return self._unsaved_postings

    def save_cache(self, directory: Path) -> None:
        """Write the posting lists a search built (or a handle that caught up with another's commits
        appended), beside the row files they were built from, when those are still the ones on disk (same fit
        and rows): a later open loads them instead of building them from the token cache, O(collection)
        (100k rows: ~1 s), at its first query. The caller holds the writer lock, so no commit changes the row
        files meanwhile."""
        target = directory / _DIR
        saved = rowfiles.read_meta(target)
        if saved is not None and saved.get("fit") == self._fit and saved.get("rows") == len(self._row_ids) \
                and int(saved.get("store_rows", -1)) == self._rows:
            self._write_postings(target)
        self._unsaved_postings = False

    def _write_postings(self, target: Path) -> None:
        """Each segment not on disk yet as postings-<name>.npz, then postings.json (the commit point: the
        cache's fit and rows and the segment names), then the files it no longer names."""
        postings = self._postings
        if postings is None or postings.rows != len(self._row_ids):
            return
        names = []
        for seg in postings.segments:
            if seg.name is None or not (target / f"postings-{seg.name}.npz").exists():
                name = uuid.uuid4().hex
                with replaced_file(target / f"postings-{name}.npz", target / f"postings-{name}.tmp.npz") as tmp:
                    np.savez(tmp, **seg.arrays())
                seg.name = name
            names.append(seg.name)
        write_json_atomic(target / _POSTINGS, {"fit": self._fit, "rows": len(self._row_ids), "segments": names})
        for old in [*target.glob("postings-*.npz"), target / "scores.npz", target / "scores.json"]:
            if old.name.startswith("postings-") and old.stem.removeprefix("postings-") in names:
                continue
            old.unlink(missing_ok=True)  # merged away, or the score matrix of the format before postings
        self._unsaved_postings = False

    def compacted(self, keep: np.ndarray) -> "Bm25Retriever":
        """This index over rows `keep` only, renumbered 0..n-1 in order (keep: (n,) int64 ascending, the rows a
        compaction keeps), with the same statistics, so every score stays the same, in one collection and in a
        sharded one alike: the dead rows (out of the statistics already) leave the cache and postings; a cached
        row not yet known dead whose chunk the compaction drops stays as row -1, counted as it was and never
        returned, until the next sync finds it dead. Needs the postings only, not a scorer: a shard whose rows
        changed since its router summed the corpus-wide statistics (deletes through another handle) compacts too."""
        self._built_postings()
        keep = np.asarray(keep, np.int64)
        at = np.minimum(np.searchsorted(keep, self._row_ids), max(len(keep) - 1, 0))
        found = keep[at] == self._row_ids if len(keep) else np.zeros(len(self._row_ids), bool)
        out = Bm25Retriever(self.config)
        out.vocab, out._terms = dict(self.vocab), list(self._terms)
        out._tokens, out._offsets, out._postings = self._tokens, self._offsets, self._postings.copy()
        out._row_ids = np.where(found, at, -1).astype(np.int64)
        out._dead, out._dead_df, out._dead_tokens = self._dead.copy(), self._dead_df.copy(), self._dead_tokens
        out._rows = len(keep)
        if self._dead.any():  # rows the compaction drops are dead here already: leave them out of RAM now
            out._compact()
        return out

    # ---- loading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, directory: Path, config: Bm25Config | None = None) -> "Bm25Retriever | None":
        """The index saved under `directory/bm25/` (row files, or the whole-file format of collections saved
        before them), or None when absent, unreadable or built with other parameters."""
        config = config or Bm25Config()
        path = directory / _DIR
        try:
            if rowfiles.read_meta(path) is None:
                return cls._load_whole(path, config)
            meta, arrays = rowfiles.load(path)
            if meta.get("kind") != "bm25" or Bm25Config.from_dict(meta["config"]) != config:
                return None
            r = cls(config)
            r._tokens, r._row_ids = arrays["tokens"].astype(np.int32), arrays["row_ids"].astype(np.int64)
            r._offsets = np.concatenate([[0], arrays["ends"]]).astype(np.int64)
            # "\n" only: terms are written unescaped (ensure_ascii=False), and a custom token_pattern can keep
            # U+2028, U+0085 or a form feed inside a term, where splitlines() would cut it in two.
            r._terms = [json.loads(line) for line in arrays["terms"].tobytes().decode("utf-8").split("\n")[:-1]]
            r.vocab = {t: i for i, t in enumerate(r._terms)}
            r._rows, r._fit = int(meta["store_rows"]), meta["fit"]
            if len(r._terms) != int(meta["terms"]) or int(r._offsets[-1]) != len(r._tokens):
                return None
            r._dead = np.zeros(len(r._row_ids), bool)  # which are dead: taken from the store at the first sync
            r._postings = r._load_postings(path)
            r._dirty = False
            return r
        except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError):
            return None

    @classmethod
    def _load_whole(cls, path: Path, config: Bm25Config) -> "Bm25Retriever | None":
        """A folder in the format before row files (tokens.npy, offsets.npy, row_ids.npy, vocab.json, meta.json);
        the next save rewrites it as row files."""
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        if meta.get("format") != _FORMAT or Bm25Config.from_dict(meta["config"]) != config:
            return None
        r = cls(config)
        r._tokens = np.load(path / "tokens.npy")
        r._offsets = np.load(path / "offsets.npy")
        r._row_ids = np.load(path / "row_ids.npy")
        r._terms = list(json.loads((path / "vocab.json").read_text(encoding="utf-8")))
        r.vocab = {t: i for i, t in enumerate(r._terms)}
        r._rows = int(meta["rows"])
        if len(r._offsets) != len(r._row_ids) + 1 or int(r._offsets[-1]) != len(r._tokens):
            return None
        r._dead = np.zeros(len(r._row_ids), bool)
        r._postings = None  # built from the token cache at the first search
        return r  # dirty: saved again in the current format

    def _load_postings(self, path: Path) -> Postings | None:
        """The posting lists saved beside the row files when postings.json names this cache (fit and rows) and
        every segment reads back whole and in step with it; else None, and the first search builds them from
        the token cache (a derived file, missing, damaged or cut short, or replaced by another handle's save)."""
        try:
            saved = json.loads((path / _POSTINGS).read_text())
            if not isinstance(saved, dict):  # valid JSON, but not what a save writes (null, a list)
                return None
            if saved.get("fit") != self._fit or saved.get("rows") != len(self._row_ids):
                return None
            segments = []
            for name in saved["segments"]:
                with np.load(path / f"postings-{name}.npz") as z:
                    seg = Segment.of_arrays(z, len(self.vocab))
                seg.name = name
                segments.append(seg)
            postings = Postings(segments, len(self._row_ids))
            postings.check(len(self.vocab), np.diff(self._offsets))
            return postings
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, json.JSONDecodeError):
            return None

    # ---- internals -------------------------------------------------------------------------
    def query_ids(self, text: str) -> list[int]:
        """Vocabulary ids of a query's tokens (unknown tokens dropped; repeats kept, as bm25s does)."""
        return [self.vocab[t] for t in self.tokenize.one(text) if t in self.vocab]

    def _members(self, ids: list[int]) -> np.ndarray:
        """Boolean mask over cached rows: True where the row holds at least one of the token ids (the union
        of their posting lists). A mask, not np.unique: marking is O(postings), unique sorts or hashes them."""
        assert self._postings is not None
        marked = np.zeros(len(self._row_ids), dtype=bool)
        for t in set(ids):
            for rows, _ in self._postings.term(t):
                marked[rows] = True
        return marked

    def _append(self, rows: list[int], tokens: list[list[str]]) -> None:
        if not rows:
            return
        vocab, terms, ids = self.vocab, self._terms, []
        for doc in tokens:
            for t in doc:
                i = vocab.get(t)
                if i is None:
                    i = vocab[t] = len(terms)
                    terms.append(t)
                ids.append(i)
        lengths = np.fromiter((len(doc) for doc in tokens), dtype=np.int64, count=len(tokens))
        new = np.asarray(ids, dtype=np.int32)
        if self._postings is not None:  # O(new rows); without postings the first search builds them all
            self._postings.append(new, np.concatenate([[0], np.cumsum(lengths)]), len(terms))
            self._unsaved_postings = True
        self._tokens = self._extended("tokens", self._tokens, new)
        self._offsets = self._extended("offsets", self._offsets, self._offsets[-1] + np.cumsum(lengths))
        self._row_ids = self._extended("row_ids", self._row_ids, np.asarray(rows, dtype=np.int64))
        self._dead = self._extended("dead", self._dead, np.zeros(len(rows), bool))
        self._version += 1

    def _extended(self, name: str, view: np.ndarray, new: np.ndarray) -> np.ndarray:
        """`view` followed by `new`, written into spare room of the buffer `view` is the start of (a new buffer a
        quarter larger than needed when it has none, or when `view` is not this index's buffer), so a commit copies
        its own rows, not the cache (1M rows: 600 MB of token ids), at the price of up to 25% spare room
        (amortised, each row is copied 4 more times at most); views handed out earlier keep their rows."""
        buf, end = self._buffers.get(name), len(view) + len(new)
        if buf is None or view.base is not buf or end > len(buf):
            grown = np.empty(max(end + end // 4, 1024), view.dtype)
            grown[: len(view)] = view
            buf = self._buffers[name] = grown
        buf[len(view) : end] = new
        return buf[:end]

    def _take_deletes(self, live: np.ndarray | None = None, dead: np.ndarray | None = None) -> None:
        """Mark dead the cached rows not in `live` (the store's live rows; a row -1, compacted away, is never
        live), or those in `dead` (rows deleted since the last look): out of N, the total length and their terms'
        document frequencies from now on, O(their tokens). Drops every dead row in one pass once they reach
        COMPACT_AT of the cache."""
        gone = ~np.isin(self._row_ids, live) if live is not None else np.isin(self._row_ids, dead)
        new = np.flatnonzero(gone & ~self._dead)
        if not len(new):
            return
        lengths = np.diff(self._offsets)[new]
        total = int(lengths.sum())
        at = spans(self._offsets[new], lengths)  # their token ids, without a pass over the whole cache
        owner = np.repeat(np.arange(len(new), dtype=np.int64), lengths)
        v = max(len(self.vocab), 1)
        terms = np.unique(owner * v + self._tokens[at].astype(np.int64)) % v  # each (row, term) once
        df = np.bincount(terms, minlength=len(self.vocab))
        self._dead_df = np.concatenate([self._dead_df, np.zeros(len(df) - len(self._dead_df), np.int64)]) + df
        self._dead[new] = True
        self._dead_tokens += total
        self._version += 1
        self._stale = self._dirty = True
        if np.count_nonzero(self._dead) >= COMPACT_AT * len(self._row_ids):
            self._compact()

    def _compact(self) -> None:
        """Drop the dead rows from the cache and the postings, renumbering the rest (the next save rewrites the
        folder whole); the statistics do not change."""
        keep = ~self._dead
        lengths = np.diff(self._offsets)
        self._tokens = self._tokens[np.repeat(keep, lengths)]
        self._row_ids = self._row_ids[keep]
        self._offsets = np.concatenate([[0], np.cumsum(lengths[keep])]).astype(np.int64)
        if self._postings is not None:
            self._postings = self._postings.kept(keep)
            self._unsaved_postings = True
        self._dead, self._dead_df, self._dead_tokens = np.zeros(len(self._row_ids), bool), np.zeros(0, np.int64), 0
        self._scorer, self._stale = None, True  # positions moved: term scores are scored again
        self._version += 1
        self._fit = rowfiles.new_fit()  # rows left: the next save rewrites the folder
        self._dirty = True

    def _own_stats(self) -> tuple[int, int, np.ndarray]:
        """(N, total length, (vocabulary,) int64 document frequencies) of the live cached rows."""
        n_terms = len(self.vocab)
        df = self._built_postings().df(n_terms)
        df[: len(self._dead_df)] -= self._dead_df[:n_terms]
        return len(self._row_ids) - int(np.count_nonzero(self._dead)), len(self._tokens) - self._dead_tokens, df

    def _ensure_built(self) -> TermScorer | None:
        """The scorer under the current statistics (None without live cached rows): the posting lists built from
        the token cache when absent (a loaded index whose files lacked them), and term scores reset when the
        statistics changed."""
        if self._global is not None and self._global_for != self.stats_key():
            raise CollectionError("BM25 corpus-wide statistics are out of date for this shard (its rows "
                                  "changed since the router summed them); search through the router")
        if self._stale or self._scorer is None:
            self._scorer = self._new_scorer()
            self._stale = False
        return self._scorer

    def _built_postings(self) -> Postings:
        """The posting lists, built from the token cache when absent (a loaded index whose files lacked them)."""
        if self._postings is None:
            self._postings = Postings.of_cache(self._tokens, self._offsets, len(self.vocab))
            self._unsaved_postings = True
        return self._postings

    def _new_scorer(self) -> TermScorer | None:
        """A TermScorer over the postings with the live rows' statistics, or the router's corpus-wide ones."""
        import bm25s

        own = self._own_stats()
        if not own[0]:
            return None
        c = self.config
        bm = bm25s.BM25(k1=c.k1, b=c.b, method=c.method)
        return term_scorer(bm, self._built_postings(), np.diff(self._offsets), self._terms, own, self._global)


def build(store: Store, encoder: Callable[[], Encoder]) -> Retriever:
    """The BM25 retriever of a collection (registered as "bm25"): its saved index, or a new one from the
    manifest's BM25 settings; it catches up with the store on `sync`. `encoder` is unused."""
    config = Bm25Config.from_dict(store.manifest.get("bm25"))
    loaded = Bm25Retriever.load(store.path / "index", config)
    return loaded if loaded is not None else Bm25Retriever(config)


