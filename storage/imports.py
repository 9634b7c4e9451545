"""Importing a readings or bills CSV file, all or nothing: the one import of `civicwatt import` and the API's POSTs.

`import_readings` / `import_bills` parse the file (`core.csvio`: every problem by line and
field), then write it in one go: samples are flagged imported, a sample that would change
a stored value refuses the whole file (`ImportRejected`, whose `located` problems name the
file line of each conflicting row), and what is stored already with the same value is
counted `identical` and left alone, so the same file imported twice is stored once. A bill
for a period already billed with other figures replaces it (a corrected bill, as before),
counted `replaced`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from core.csvio import parse_bills, parse_readings
from core.registry import Registry
from core.yamlfile import Problem
from storage import quality
from storage.base import BILL_COLUMNS, Imported, ImportRejected, Store, from_epoch_s, to_epoch_s

BILL_KEYS = ["institution_id", "energy", "period_start", "period_end"]


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


def import_readings(store: Store, registry: Registry, path: str | Path, data: bytes | None = None,
                    progress: Callable[[int], object] | None = None, check: Check | None = None) -> Imported:
    """Import a readings CSV (the file `path`, or `data` named `path`). Raises ConfigError
    (parsing) or ImportRejected (a conflict with stored values; `.located` problems).
    `check(frame)` may refuse the parsed rows (raise) before anything is written."""
    frame = parse_readings(path, registry, data=data, with_lines=True)
    if check is not None:
        check(frame)
    samples = frame.drop(columns="line").assign(quality=quality.IMPORTED)
    try:
        return store.import_samples(samples, progress=progress)
    except ImportRejected as exc:
        exc.located = located(exc, frame, str(path))
        raise


def _same(a: pd.Series, b: pd.Series) -> np.ndarray:
    x, y = a.to_numpy(float), b.to_numpy(float)
    return np.isclose(x, y, rtol=0, atol=1e-9) | (np.isnan(x) & np.isnan(y))


def import_bills(store: Store, registry: Registry, path: str | Path, data: bytes | None = None,
                 check: Check | None = None) -> Imported:
    """Import a bills CSV (the file `path`, or `data` named `path`): new bills written, a
    bill stored with the same figures left alone, one with other figures replaced.
    Raises ConfigError (parsing); `check(frame)` as for readings."""
    frame = parse_bills(path, registry, data=data)
    if check is not None:
        check(frame)
    stored = store.read_bills(sorted(set(frame["institution_id"])))
    merged = frame.merge(stored, on=BILL_KEYS, how="left", suffixes=("", "_old"), indicator=True)
    known = (merged["_merge"] == "both").to_numpy()
    same = known & _same(merged["quantity"], merged["quantity_old"]) & _same(merged["cost_cny"], merged["cost_cny_old"]) \
        & (merged["unit"].astype(str) == merged["unit_old"].astype(str)).to_numpy()
    write = frame[~same]
    if len(write):
        store.write_bills(write[BILL_COLUMNS])
    return Imported(new=int((~known).sum()), identical=int(same.sum()), replaced=int((known & ~same).sum()))
