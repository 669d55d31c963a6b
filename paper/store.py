"""SQLite persistence with write-behind.

The engine mutates objects in memory and calls :meth:`Store.put`; the objects are serialised and
written in one transaction by :meth:`Store.flush`, which the app runs a few milliseconds after the
first change (and at shutdown). WAL journal, ``synchronous=NORMAL``: a committed transaction
survives a process crash; an OS crash or power cut may lose the last commits.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import orjson

KINDS = ("accounts", "orders", "algos", "trades", "income", "funding", "meta")


class Row(Protocol):
    def row(self) -> dict[str, object]: ...


class Store:
    """Durable copy of the paper exchange's state."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        for kind in KINDS:
            key = "TEXT" if kind in ("accounts", "funding", "meta") else "INTEGER"
            self.db.execute(f"CREATE TABLE IF NOT EXISTS {kind} (id {key} PRIMARY KEY, data BLOB NOT NULL)")
        self.dirty: dict[str, dict[Any, Row | dict[str, object]]] = {k: {} for k in KINDS}
        self.pending = False

    def put(self, kind: str, key: Any, obj: Row | dict[str, object]) -> None:
        self.dirty[kind][key] = obj
        self.pending = True

    def load(self, kind: str) -> Iterator[dict[str, Any]]:
        for (data,) in self.db.execute(f"SELECT data FROM {kind} ORDER BY id"):
            yield orjson.loads(data)

    def flush(self) -> int:
        """Write everything changed since the last flush in one transaction; returns row count."""
        if not self.pending:
            return 0
        batches = []
        n = 0
        for kind, items in self.dirty.items():
            if items:
                rows = [(k, orjson.dumps(v if isinstance(v, dict) else v.row())) for k, v in items.items()]
                batches.append((kind, rows))
                n += len(rows)
                self.dirty[kind] = {}
        self.pending = False
        db = self.db
        db.execute("BEGIN")
        try:
            for kind, rows in batches:
                db.executemany(f"INSERT OR REPLACE INTO {kind} (id, data) VALUES (?, ?)", rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return n

    def wipe(self, kinds: tuple[str, ...]) -> None:
        for kind in kinds:
            self.dirty[kind] = {}
            self.db.execute(f"DELETE FROM {kind}")

    def close(self) -> None:
        self.flush()
        self.db.close()
