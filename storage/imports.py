"""Importing a readings or bills CSV file, all or nothing: the one import of `civicwatt import` and the API's POSTs.

`import_readings` / `import_bills` parse the file (`core.csvio`: every problem by line and
field), then write it in one go: samples are flagged imported, a sample that would change
a stored value refuses the whole file (`ImportRejected`, whose `located` problems name the
file line of each conflicting row), and what is stored already with the same value is
counted `identical` and left alone, so the same file imported twice is stored once. Bills
are append-only with explicit correction (`Store.import_bills`, issue 15): a bill for a
period already billed with other figures, or overlapping a billed period, refuses the
file (each problem at its file line) unless `replace=True` corrects it (counted
`replaced`); with a submission `book`, every imported or replaced figure goes into its
audit trail (who, when, old -> new, source, reason) in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pandas as pd

from core.csvio import parse_bills, reading_blocks
from core.registry import Registry
from core.yamlfile import Problem
from storage import quality
from storage.base import Imported, ImportRejected, Store, from_epoch_s, to_epoch_s
from storage.submissions import SubmissionBook, bill_audit_rows


def located(exc: ImportRejected, frame: pd.DataFrame, name: str) -> list[Problem]:
    """The conflicts of a refused readings import as problems at the file line of each
    row (`frame`: parsed with `with_lines`); the count of unlisted ones at the end."""
    if not exc.rows:
        return [Problem(name, 0, "-", p) for p in exc.problems]
    rows = pd.DataFrame(exc.rows, columns=["meter_id", "t", "value", "stored"])
    at = frame.assign(t=to_epoch_s(frame["time"]))[["meter_id", "t", "line"]]
    rows = rows.merge(at, on=["meter_id", "t"], how="left").sort_values("line", kind="stable")
    out = [Problem(name, int(r.line) if pd.notna(r.line) else 0, "value",
                   f"meter {r.meter_id} at {from_epoch_s([r.t])[0].isoformat()}: value {r.value:g} differs from "
                   f"the stored {r.stored:g}") for r in rows.itertuples()]
    out += [Problem(name, 0, "-", p) for p in exc.problems[len(exc.rows):]]  # "... and N more"
    return out


Check = Callable[[pd.DataFrame], None]


KEEP_ROWS = 4_000_000  # a readings file of up to this many rows is parsed once (its blocks kept for the write)


def import_readings(store: Store, registry: Registry, path: str | Path, data: bytes | None = None,
                    progress: Callable[[int], object] | None = None, check: Check | None = None) -> Imported:
    """Import a readings CSV (the file `path`, or `data` named `path`) block by block
    (`core.csvio.reading_blocks`, `Store.import_stream`: memory bounded by a block, not by
    the file; a file of up to KEEP_ROWS rows is parsed once). Raises ConfigError (parsing)
    or ImportRejected (a conflict with stored values; `.located` problems). `check(block)`
    may refuse the parsed rows (raise) before anything is written."""
    kept: list[pd.DataFrame] | None = []
    whole = False

    def blocks() -> Iterator[pd.DataFrame]:
        nonlocal kept, whole
        if whole and kept is not None:
            yield from kept
            return
        for block in reading_blocks(path, registry, data=data, with_lines=True):
            if check is not None:
                check(block)
            if kept is not None:
                kept.append(block)
                if sum(map(len, kept)) > KEEP_ROWS:
                    kept = None
            yield block
        whole = True

    def samples() -> Iterator[pd.DataFrame]:
        return (b.drop(columns="line").assign(quality=quality.IMPORTED) for b in blocks())

    try:
        return store.import_stream(samples, progress=progress)
    except ImportRejected as exc:
        exc.located = located(exc, pd.concat(_conflicting_rows(exc, blocks()), ignore_index=True), str(path))
        raise


def _conflicting_rows(exc: ImportRejected, blocks: Iterable[pd.DataFrame]) -> list[pd.DataFrame]:
    """The parsed rows (with `line`) of the listed conflicts of a refused import."""
    keys = pd.DataFrame(exc.rows, columns=["meter_id", "t", "value", "stored"])[["meter_id", "t"]]
    return [keys.merge(b.assign(t=to_epoch_s(b["time"])), on=["meter_id", "t"]) for b in blocks]


def import_bills(store: Store, registry: Registry, path: str | Path, data: bytes | None = None,
                 check: Check | None = None, *, replace: bool = False, book: SubmissionBook | None = None,
                 who: str = "cli", source: str = "import", reason: str | None = None) -> Imported:
    """Import a bills CSV (the file `path`, or `data` named `path`): new bills written,
    those stored with the same figures left alone, differing ones refused unless `replace`.
    Raises ConfigError (parsing) or ImportRejected (`.located`: problems at file lines);
    `check(frame)` as for readings."""
    frame = parse_bills(path, registry, data=data, with_lines=True)
    if check is not None:
        check(frame)
    bills = frame.drop(columns="line")
    try:
        if book is None:
            result = store.import_bills(bills, replace=replace)
        else:
            with book.transaction():
                result = store.import_bills(bills, replace=replace)
                book.add_audit(bill_audit_rows(result, who, source, reason=reason))
    except ImportRejected as exc:
        lines = {(r.institution_id, r.energy, r.period_start, r.period_end): int(r.line)
                 for r in frame.itertuples(index=False)}
        exc.located = [Problem(str(path), lines.get(k, 0), "period_start" if "overlaps" in p else "quantity", p)
                       for k, p in zip(exc.bills, exc.problems, strict=False)]
        exc.located += [Problem(str(path), 0, "-", p) for p in exc.problems[len(exc.bills):]]
        raise
    return Imported(new=len(result.new), identical=result.identical, replaced=len(result.replaced))
