"""The submission book: status of each institution's monthly submission and the audit trail.

`SubmissionBook(directory)` keeps one SQLite database (`submissions.sqlite3`, WAL, 0600 in a
0700 directory) next to the alert outbox (the embedded store's directory, else the
registry's), whatever the store backend: the figures themselves are bills in the store,
this file holds who did what to them.

* `submission`: institution_id, month (YYYY-MM), status (`models.submission.STATUSES`, an
  absent row is 'missing'), updated_at (UTC ISO), updated_by, comment (the reviewer's, on a
  return), warnings (JSON: the check codes accepted with a reason), reasons (JSON).
* `audit`: one row per change to submitted, imported or approved figures and per status
  change (AUDIT_COLUMNS): at, who, source (form | upload | api | import), action (submit |
  approve | return | import | replace), institution_id, period_start, period_end (the bill's
  period, or the month's), energy, field (quantity | unit | cost_cny | status), old, new, reason.

Writes of several tables go in one transaction (`transaction()`); a caller that also
writes bills to the store does it inside that transaction, so a refused bill write
leaves no status or audit row behind.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from core.sqlite import SQLiteBook
from storage.base import BILL_COLUMNS, BILL_FIGURES, BillImport

DB_NAME = "submissions.sqlite3"
SUBMISSION_COLUMNS = ["institution_id", "month", "status", "updated_at", "updated_by", "comment", "warnings",
                      "reasons"]
AUDIT_COLUMNS = ["at", "who", "source", "action", "institution_id", "period_start", "period_end", "energy",
                 "field", "old", "new", "reason"]
SCHEMA = """
CREATE TABLE IF NOT EXISTS submission (
    institution_id TEXT NOT NULL, month TEXT NOT NULL, status TEXT NOT NULL, updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL, comment TEXT, warnings TEXT NOT NULL DEFAULT '[]', reasons TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (institution_id, month));
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, who TEXT NOT NULL, source TEXT NOT NULL,
    action TEXT NOT NULL, institution_id TEXT NOT NULL, period_start TEXT, period_end TEXT, energy TEXT,
    field TEXT, old TEXT, new TEXT, reason TEXT);
CREATE INDEX IF NOT EXISTS audit_institution ON audit (institution_id, period_start);
"""


def _with_unit(value: pd.Series, unit: pd.Series | None = None) -> pd.Series:
    """Numbers as audit text ('%g', with the unit when given); None where missing."""
    text = value.map(lambda v: None if pd.isna(v) else f"{float(v):g}")
    if unit is not None:
        text = text.where(text.isna(), text.astype(str) + " " + unit.astype(str))
    return text.astype(object)


def bill_audit_rows(result: BillImport, who: str, source: str, reason: str | None = None,
                    action: str = "import", at: str | None = None) -> pd.DataFrame:
    """Audit rows (AUDIT_COLUMNS) of an import: per new bill and field with a value, old
    None (`action`); per replaced bill and field that changed, old -> new ('replace')."""
    olds = ["quantity_old", "unit_old", "cost_cny_old", *(f"{c}_old" for c in BILL_FIGURES)]
    new = result.new.assign(**{c: np.nan for c in olds}, _action=action).assign(unit_old=None)
    both = pd.concat([new, result.replaced.assign(_action="replace")[[*BILL_COLUMNS, *olds, "_action"]]],
                     ignore_index=True)
    parts = []
    for f, old, value in (("quantity", _with_unit(both["quantity_old"], both["unit_old"]),
                           _with_unit(both["quantity"], both["unit"])),
                          ("cost_cny", _with_unit(both["cost_cny_old"]), _with_unit(both["cost_cny"])),
                          *((c, _with_unit(both[f"{c}_old"], both["unit_old"]), _with_unit(both[c], both["unit"]))
                            for c in BILL_FIGURES)):
        changed = (old != value) & (value.notna() | old.notna())
        part = both[changed.to_numpy(bool)]
        parts.append(pd.DataFrame({
            "institution_id": part["institution_id"], "period_start": part["period_start"],
            "period_end": part["period_end"], "energy": part["energy"], "field": f,
            "old": old[changed], "new": value[changed], "action": part["_action"]}))
    rows = pd.concat(parts).sort_index(kind="stable") if parts else pd.DataFrame(columns=AUDIT_COLUMNS)
    return rows.assign(at=at or utc_now(), who=who, source=source, reason=reason).reindex(columns=AUDIT_COLUMNS)


def _cell(value: object) -> str | None:
    """An audit cell as stored: text, or None for a missing value."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NaT:
        return None
    return str(value)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class SubmissionBook(SQLiteBook):
    """Statuses and the audit trail in `directory`/submissions.sqlite3 (module docstring)."""

    def __init__(self, directory: str | Path):
        super().__init__(directory, DB_NAME, SCHEMA)

    # -- statuses ---------------------------------------------------------------------
    def statuses(self, month: str | None = None, institution_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Recorded submissions (SUBMISSION_COLUMNS; warnings a list, reasons a dict) of
        `month` (None: all) and `institution_ids` (None: all), sorted by institution and month."""
        sql, params = "SELECT " + ", ".join(SUBMISSION_COLUMNS) + " FROM submission WHERE 1=1", []
        if month is not None:
            sql, params = sql + " AND month = ?", [month]
        if institution_ids is not None:
            sql += " AND institution_id IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(sorted({str(i) for i in institution_ids})))
        rows = self._con().execute(sql + " ORDER BY institution_id, month", params).fetchall()
        df = pd.DataFrame(rows, columns=SUBMISSION_COLUMNS)
        df["warnings"] = df["warnings"].map(json.loads)
        df["reasons"] = df["reasons"].map(json.loads)
        return df

    def get(self, institution_id: str, month: str) -> dict | None:
        """The recorded submission of one institution and month (a dict of
        SUBMISSION_COLUMNS), or None (status missing)."""
        df = self.statuses(month, [institution_id])
        return None if df.empty else df.iloc[0].to_dict()

    def set_status(self, institution_id: str, month: str, status: str, who: str, *, comment: str | None = None,
                   warnings: list[str] | None = None, reasons: dict[str, str] | None = None,
                   at: str | None = None) -> None:
        """Record the status of one institution and month (warnings and reasons kept from
        the last submission when not given)."""
        with self.transaction():
            old = self.get(institution_id, month)
            w = warnings if warnings is not None else (old["warnings"] if old else [])
            r = reasons if reasons is not None else (old["reasons"] if old else {})
            self._con().execute(
                "INSERT OR REPLACE INTO submission VALUES (?,?,?,?,?,?,?,?)",
                (institution_id, month, status, at or utc_now(), who, comment,
                 json.dumps(list(w), ensure_ascii=False), json.dumps(dict(r), ensure_ascii=False)))

    # -- audit trail ------------------------------------------------------------------
    def add_audit(self, rows: pd.DataFrame) -> int:
        """Append audit rows (AUDIT_COLUMNS; `at` filled with now where missing). Returns
        the number of rows."""
        if rows.empty:
            return 0
        frame = rows.reindex(columns=AUDIT_COLUMNS)
        at = utc_now()
        records = [tuple(_cell(v) for v in row) for row in frame.itertuples(index=False, name=None)]
        records = [(r[0] or at, *r[1:]) for r in records]
        with self.transaction():
            self._con().executemany(
                "INSERT INTO audit (" + ", ".join(AUDIT_COLUMNS) + ") VALUES (" + ",".join("?" * len(AUDIT_COLUMNS))
                + ")", records)
        return len(frame)

    def audit(self, institution_ids: Iterable[str] | None = None, month: str | None = None) -> pd.DataFrame:
        """Audit rows (AUDIT_COLUMNS) of `institution_ids` (None: all), of periods starting
        in `month` (None: all), oldest first."""
        sql, params = "SELECT " + ", ".join(AUDIT_COLUMNS) + " FROM audit WHERE 1=1", []
        if institution_ids is not None:
            sql += " AND institution_id IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(sorted({str(i) for i in institution_ids})))
        if month is not None:
            sql, params = sql + " AND substr(period_start, 1, 7) = ?", [*params, month]
        rows = self._con().execute(sql + " ORDER BY id", params).fetchall()
        return pd.DataFrame(rows, columns=AUDIT_COLUMNS, dtype=object)

