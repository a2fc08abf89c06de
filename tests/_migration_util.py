"""Helper for the migration tests: a collection mid-migration beside a copy of it from before the migration."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fakes import registered_encoders

from slimvec import Collection
from slimvec.documents import Document
from slimvec.encoders.base import Encoder
from slimvec.migrate import runner
from slimvec.migrate.merged import MigratingCollection


@contextmanager
def migrating_beside_copy(tmp_path: Path, old: Encoder, new: Encoder,
                          docs: list[Document]) -> Iterator[tuple[MigratingCollection, Collection]]:
    """(collection migrating from `old` to `new`, its copy from before the migration started): `docs` added with
    `old`, the folder copied, then a migration started (30 sample pairs); both encoders registered throughout."""
    with registered_encoders(old, new):
        with Collection.create(tmp_path / "col", encoder=old) as col:
            col.add(docs)
        shutil.copytree(tmp_path / "col", tmp_path / "before")
        runner.start(tmp_path / "col", new.name, sample=30, encoder=new)
        with Collection.open(tmp_path / "col") as col, Collection.open(tmp_path / "before") as before:
            assert isinstance(col, MigratingCollection)
            yield col, before
