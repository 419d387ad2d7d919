"""The stager: a second connection stages and checks the next files while the import's own
transaction writes the previous ones, so an import runs on two cores instead of one.

Checking a file (COPY, keys, rules, references, new ids, what an earlier import brought in)
needs only the files before it and what earlier imports committed; writing it needs the
import's transaction. The stager thread does the first part of every loader (up to its
``yield``) in UNLOGGED tables of the ``import_staging`` schema, committing each file, and
hands the loader to the main thread, which resumes it to write the CIMS rows.

``patients.csv`` never goes there: it holds identifiers in plain text. The main transaction
stages and writes it in a TEMP table, then passes the stager the id map only (Synthea key
-> CIMS id). Tables a killed import leaves behind are dropped when the next one starts.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

from sqlalchemy.engine import Engine

from cims.interop.synthea_layout import StagedFile, stage_file
from cims.interop.synthea_steps import Context, finish_checks

SCHEMA: Final = "import_staging"
PATIENT_MAP: Final = "map_patients"
Loader = Callable[[Context], Iterator[None]]
Staged = tuple[str, StagedFile | None, Iterator[None] | None]


def available(cursor: Any) -> bool:
    """Whether this import may check aside: the caller's transaction has written nothing.

    The stager sees only committed rows; rows an earlier import wrote in this same, still
    open transaction would be invisible to it. Then (and without the schema) the import
    checks on its own connection.
    """
    cursor.execute(
        "SELECT pg_current_xact_id_if_assigned() IS NULL AND CASE"
        f" WHEN to_regnamespace('{SCHEMA}') IS NULL THEN false"
        f" ELSE has_schema_privilege('{SCHEMA}', 'CREATE') END"
    )
    return bool(cursor.fetchone()[0])


class Stager:
    """Runs the checking half of each loader in a thread of its own, one file ahead."""

    def __init__(
        self,
        engine: Engine,
        ctx: Context,
        folder: Path,
        loaders: tuple[tuple[str, Callable[..., Iterator[None]]], ...],
    ) -> None:
        self.ctx, self.folder, self.loaders = ctx, folder, loaders
        self._ready: queue.Queue[Staged | BaseException] = queue.Queue()
        self._patients: list[tuple[Any, ...]] | None = None
        self._patients_given = threading.Event()
        self._early: dict[str, StagedFile | None] = {}  # copied in before their turn
        self._stop = threading.Event()
        self._proxy = engine.raw_connection()
        self._connection: Any = self._proxy.dbapi_connection
        self._thread = threading.Thread(target=self._run, name="synthea-stager", daemon=True)

    def start(self) -> None:
        """Start staging and checking from the first file."""
        self._thread.start()

    def next(self) -> Staged:
        """The next file's (stem, staged file or None, loader to resume); raises its error."""
        item = self._ready.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def give_patients(self, rows: list[tuple[Any, ...]]) -> None:
        """The id map of patients.csv: (src, new_id, linked_id) of every valid row."""
        self._patients = rows
        self._patients_given.set()

    def close(self, *, failed: bool) -> None:
        """Wait for the thread (cancelling its statement after a failure), free the connection."""
        if failed:
            self._stop.set()
            self._patients_given.set()
            if self._thread.is_alive():
                self._connection.cancel_safe()
        self._thread.join()
        self._proxy.close()

    def _begin(self, cursor: Any) -> None:
        cursor.execute(f"SET LOCAL search_path TO {SCHEMA}, public")
        cursor.execute("SET LOCAL work_mem = '128MB'")

    def _run(self) -> None:
        cursor = self._connection.cursor()
        try:
            with self.ctx.stager(cursor):
                self._begin(cursor)
                cursor.execute(f"SELECT tablename FROM pg_tables WHERE schemaname = '{SCHEMA}'")
                for (name,) in cursor.fetchall():
                    cursor.execute(f'DROP TABLE IF EXISTS {SCHEMA}."{name}"')
                self._connection.commit()
                for position, (stem, loader) in enumerate(self.loaders):
                    if self._stop.is_set():
                        return
                    if stem == "patients":
                        # Copy the next files in while the main transaction writes the patients.
                        for later, _loader in self.loaders[position + 1 :]:
                            if self._patients_given.is_set():
                                break
                            self._early[later] = self._stage(cursor, later)
                        self._map_patients(cursor)
                        continue
                    self._ready.put(self._check(cursor, stem, loader))
        except BaseException as error:
            self._connection.rollback()
            self._ready.put(error)

    def _stage(self, cursor: Any, stem: str) -> StagedFile | None:
        self._begin(cursor)
        staged = stage_file(cursor, self.folder, stem, kind="UNLOGGED")
        self._connection.commit()
        return staged

    def _check(self, cursor: Any, stem: str, loader: Callable[..., Iterator[None]]) -> Staged:
        self._begin(cursor)
        if stem in self._early:
            staged = self._early.pop(stem)
        else:
            staged = stage_file(cursor, self.folder, stem, kind="UNLOGGED")
        resume = None
        if staged is not None:
            resume = loader(self.ctx)
            next(resume)
            finish_checks(self.ctx, f"stg_{stem}")
        self._connection.commit()
        return stem, staged, resume

    def _map_patients(self, cursor: Any) -> None:
        self._patients_given.wait()
        if self._stop.is_set() or self._patients is None:
            return
        self._begin(cursor)
        cursor.execute(
            f"CREATE UNLOGGED TABLE {PATIENT_MAP} (src text, new_id bigint, linked_id bigint,"
            " reject text)"
        )
        with cursor.copy(f"COPY {PATIENT_MAP} (src, new_id, linked_id) FROM STDIN") as copy:
            for row in self._patients:
                copy.write_row(row)
        cursor.execute(f"ANALYZE {PATIENT_MAP}")
        self._connection.commit()
        self.ctx.maps["patients"] = (PATIENT_MAP, "new_id")
