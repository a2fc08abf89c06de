"""Which document owns each chunk row, kept in step with the store at O(new rows) per commit."""

from __future__ import annotations

import numpy as np

from slimvec.store.store import Store


class RowMap:
    """Row -> document number for a collection's committed rows, and document number -> id.

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
        self.doc_ids: list[str] = []  # document number -> id
        self.numbers: dict[str, int] = {}  # id -> document number
        self._fresh = True
        self._dead: int | None = None  # the store's dead-row count when last updated

    def update(self, store: Store) -> None:
        """Catch up with the store's committed rows (a new array each time: holders of the old one keep it)."""
        rows, old = store.committed_rows, len(self.row_doc)
        dead = store.dead_rows  # read before the rows: a delete after this moves it again, seen next time
        row_doc = np.full(rows, -1, dtype=np.int32)
        if self._fresh or rows < old:
            self.numbers, self.doc_ids, old = {}, [], 0
        elif old:
            row_doc[:old] = self.row_doc
            moved = dead is None or dead != self._dead  # None: a read-only old collection, count instead
            if moved and store.alive_count_below(old) != int(np.count_nonzero(self.alive)):
                kept = np.zeros(old, dtype=bool)
                kept[store.alive_rows_below(old)] = True
                row_doc[:old][~kept] = -1
        numbers, ids = self.numbers, self.doc_ids
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
        """RAM held by the per-row arrays (5 bytes per row)."""
        return int(self.row_doc.nbytes + self.alive.nbytes)
