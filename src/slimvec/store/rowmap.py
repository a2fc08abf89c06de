"""Which document owns each chunk row, kept in step with the store at O(new rows) per commit."""

from __future__ import annotations

from array import array

import numpy as np

from slimvec.store.store import Store


class DocIds:
    """Document number -> id, held as one UTF-8 buffer and the end offset of each id: 8 bytes plus the id's own
    bytes per document. A list of str and an id -> number dict took about 100 bytes more (1M documents: 105 MB
    against 15 MB), half of a binary-ivf-rescore collection's resident bytes. `ids[n]` decodes one id
    (~0.2 us; a search reads only its hits' ids); appending is amortised O(new ids)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._ends = array("q")  # int64 end offset of each id in _buf

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, n: int) -> str:
        ends = self._ends
        return self._buf[ends[n - 1] if n > 0 else 0 : ends[n]].decode("utf-8", "surrogatepass")

    def append(self, doc_id: str) -> None:
        self._buf += doc_id.encode("utf-8", "surrogatepass")
        self._ends.append(len(self._buf))

    @property
    def nbytes(self) -> int:
        return len(self._buf) + self._ends.itemsize * len(self._ends)


class RowMap:
    """Row -> document number for a collection's committed rows, and document number -> id (`DocIds`).

    Document numbers are small ints assigned in the order documents are first seen in this process (they are
    never reused in a process, never stored). `row_doc[r]` is -1 for a dead row (deleted or replaced).
    Rows are append-only and never reused, so known rows keep their document; an update reads the new rows
    and re-lists the known rows (row numbers only) only when the store's dead-row counter moved (something was
    deleted or replaced). A full read happens once.
    """

    def __init__(self) -> None:
        self.row_doc = np.zeros(0, dtype=np.int32)  # (rows,) int32 document number, -1: dead
        self.alive = np.zeros(0, dtype=bool)  # (rows,) bool
        self.n_alive = 0  # count of True in `alive`, so a search need not count 1M flags per call
        self.doc_ids = DocIds()  # document number -> id
        self._fresh = True
        self._dead: int | None = None  # the store's dead-row count when last updated

    def update(self, store: Store) -> None:
        """Catch up with the store's committed rows (a new array each time: holders of the old one keep it)."""
        rows, old = store.committed_rows, len(self.row_doc)
        dead = store.dead_rows  # read before the rows: a delete after this moves it again, seen next time
        row_doc = np.full(rows, -1, dtype=np.int32)
        if self._fresh or rows < old:
            self.doc_ids, old = DocIds(), 0
        elif old:
            row_doc[:old] = self.row_doc
            moved = dead is None or dead != self._dead  # None: a read-only old collection, count instead
            # the rows deleted since, from the store's log (O(deleted)), when it holds them all
            gone = store.rows_deleted(self._dead, dead) if moved else None
            if gone is not None:
                row_doc[gone[gone < old]] = -1
            elif moved and store.alive_count_below(old) != int(np.count_nonzero(self.alive)):
                kept = np.zeros(old, dtype=bool)
                alive = store.alive_rows()  # the read BM25's sync may have made for this commit already
                kept[alive[alive < old]] = True
                row_doc[:old][~kept] = -1
        # Numbers of the documents whose rows this update reads. A document seen in an earlier update is not
        # looked up: every commit stores new documents (an upsert deletes the old version in the same
        # transaction, so its earlier rows are dead above), so no id -> number map is kept between updates.
        numbers: dict[str, int] = {}
        ids = self.doc_ids
        for row, doc_id in store.chunk_owners_from(old):
            n = numbers.get(doc_id)
            if n is None:
                n = numbers[doc_id] = len(ids)
                ids.append(doc_id)
            row_doc[row] = n
        self.row_doc, self.alive, self._fresh, self._dead = row_doc, row_doc >= 0, False, dead
        self.n_alive = int(np.count_nonzero(self.alive))
        self.alive.flags.writeable = False  # replaced by the next update, never changed: indexes may cache facts about it

    def reset(self) -> None:
        """Forget everything: the next update reads every row."""
        self.__init__()

    @property
    def nbytes(self) -> int:
        """RAM held by the per-row arrays (5 bytes per row) and the document ids (`DocIds.nbytes`)."""
        return int(self.row_doc.nbytes + self.alive.nbytes) + self.doc_ids.nbytes
