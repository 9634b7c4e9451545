"""The upper level's book of what lower-level instances reported (纵向直报): institutions, receipts, returns.

`UpstreamBook(directory)` keeps one SQLite database (`upstream.sqlite3`, 0600 in a 0700
directory) next to the submission book (the embedded store's directory, else the
registry's). The figures themselves are bills in the store, like every other submission;
this file holds where they came from:

* `institution`: per (instance, institution_id) the basic information last pushed (JSON:
  id, name, region chain, category, areas, occupants, department) — the registry entries
  the upper level adds to its own (`core.registry.with_reported`), marked with the instance;
* `receipt`: one row per (instance, institution_id, month, digest) accepted: a month's
  figures are stored once, a repeated delivery (a retry, a restart) finds its receipt and
  is acknowledged without writing;
* `returned`: months the upper level returned to the lower level, with the comment, for
  the lower level to fetch (`GET /api/v1/upstream/returns`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from core.sqlite import SQLiteBook
from storage.submissions import utc_now

DB_NAME = "upstream.sqlite3"
SCHEMA = """
CREATE TABLE IF NOT EXISTS institution (
    instance TEXT NOT NULL, institution_id TEXT NOT NULL, payload TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (instance, institution_id));
CREATE TABLE IF NOT EXISTS receipt (
    instance TEXT NOT NULL, institution_id TEXT NOT NULL, month TEXT NOT NULL, digest TEXT NOT NULL,
    received_at TEXT NOT NULL, idempotency_key TEXT, PRIMARY KEY (instance, institution_id, month, digest));
CREATE TABLE IF NOT EXISTS returned (
    id INTEGER PRIMARY KEY AUTOINCREMENT, instance TEXT NOT NULL, institution_id TEXT NOT NULL, month TEXT NOT NULL,
    comment TEXT NOT NULL, who TEXT NOT NULL, at TEXT NOT NULL);
"""
RECEIPT_COLUMNS = ["instance", "institution_id", "month", "digest", "received_at", "idempotency_key"]


class UpstreamBook(SQLiteBook):
    """Institutions, receipts and returns reported from below, in `directory`/upstream.sqlite3."""

    def __init__(self, directory: str | Path):
        super().__init__(directory, DB_NAME, SCHEMA)

    @classmethod
    def existing(cls, directory: str | Path) -> UpstreamBook | None:
        """The book in `directory` if one was ever written there (None: nothing reported)."""
        return cls(directory) if (Path(directory) / DB_NAME).exists() else None

    def has_receipt(self, instance: str, institution_id: str, month: str, digest: str) -> bool:
        return self._con().execute(
            "SELECT 1 FROM receipt WHERE instance = ? AND institution_id = ? AND month = ? AND digest = ?",
            (instance, institution_id, month, digest)).fetchone() is not None

    def record(self, instance: str, institution: dict, month: str, digest: str, idempotency_key: str | None) -> None:
        """The institution's information and the receipt of one month (call inside `transaction`)."""
        now = utc_now()
        con = self._con()
        con.execute("INSERT OR REPLACE INTO institution VALUES (?, ?, ?, ?)",
                    (instance, institution["id"], json.dumps(institution, ensure_ascii=False, sort_keys=True), now))
        con.execute("INSERT OR IGNORE INTO receipt VALUES (?, ?, ?, ?, ?, ?)",
                    (instance, institution["id"], month, digest, now, idempotency_key))

    def institutions(self) -> list[tuple[str, dict]]:
        """(instance, basic information) of every institution reported, by instance and id."""
        rows = self._con().execute("SELECT instance, payload FROM institution ORDER BY instance, institution_id")
        return [(instance, json.loads(payload)) for instance, payload in rows.fetchall()]

    def instance_of(self, institution_id: str) -> str | None:
        row = self._con().execute("SELECT instance FROM institution WHERE institution_id = ?",
                                  (institution_id,)).fetchone()
        return None if row is None else row[0]

    def receipts(self) -> pd.DataFrame:
        rows = self._con().execute("SELECT " + ", ".join(RECEIPT_COLUMNS) + " FROM receipt ORDER BY rowid").fetchall()
        return pd.DataFrame(rows, columns=RECEIPT_COLUMNS)

    def return_month(self, instance: str, institution_id: str, month: str, comment: str, who: str) -> int:
        """Record a return of one month to the lower level; returns its id."""
        with self.transaction():
            cur = self._con().execute("INSERT INTO returned (instance, institution_id, month, comment, who, at) "
                                      "VALUES (?, ?, ?, ?, ?, ?)", (instance, institution_id, month, comment, who,
                                                                    utc_now()))
            return int(cur.lastrowid)

    def returns(self, instance: str, after_id: int = 0) -> list[dict]:
        """Returns to `instance` with an id above `after_id`, oldest first."""
        rows = self._con().execute("SELECT id, institution_id, month, comment, who, at FROM returned "
                                   "WHERE instance = ? AND id > ? ORDER BY id", (instance, after_id)).fetchall()
        return [dict(zip(["id", "institution_id", "month", "comment", "who", "at"], r, strict=True)) for r in rows]

