"""Readings and bills CSV files: parsing with every problem by line and field.

Readings and bills CSV files (interfaces.md): parsing with every problem reported by
physical line and field, and writing in the same format (a round trip of import).

Validation is vectorised over the whole file and collects every problem before anything
is written; a file with any problem is rejected whole. Line numbers are those an editor
shows: blank lines and newlines inside quoted fields are counted; blank lines (and lines
of empty fields only) are skipped. Messages are built only for the problems listed.

Plausibility bounds (rejected outside them, see README "Importing readings and bills"):

* sample times from 1990-01-01 (local, the registry's time zone) to one day after now;
  times are kept to the second (the store's resolution), so two rows of one meter in the
  same second are duplicates;
* a reading's value (the raw index) finite, >= 0, below the meter's rollover where known
  and at most MAX_INDEX;
* bill quantities and costs finite, >= 0 and at most MAX_QUANTITY; bill periods real
  dates from 1990-01-01 to one year after today, at most MAX_BILL_DAYS days long.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from core import localtime
from core.registry import Registry
from core.textfile import decode_utf8, echo, read_utf8
from core.vocab import BILL_KINDS, BILL_UNITS, INDEX_UNIT
from core.yamlfile import ConfigError, Problem

READINGS_COLUMNS = ["meter_id", "time", "value"]
BILLS_COLUMNS = ["institution_id", "energy", "period_start", "period_end", "quantity", "unit", "cost_cny"]
MAX_LISTED = 200  # problems listed in full; the rest are counted
_OFFSET = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")

#: The earliest date of a sample or bill: no meter data of a public institution is older.
EARLIEST = date(1990, 1, 1)
#: How far ahead of now a sample may lie (clock skew of a logger; anything later is a wrong clock).
SAMPLE_FUTURE = pd.Timedelta(days=1)
#: How far ahead of today a bill period may end (an annual bill paid in advance).
BILL_FUTURE = pd.DateOffset(years=1)
#: The longest bill period in days (one leap year, inclusive).
MAX_BILL_DAYS = 366
#: The largest raw meter index accepted. No register in use gets near it (the largest known
#: rollover, core/profiles.yaml, is about 4.3e7), and above it float64 resolves less than
#: 1e-4 of a unit, so consumption from differences of such indices would be rounded.
MAX_INDEX = 1e12
#: The largest bill quantity or cost accepted: 1e12 kWh is a tenth of China's yearly use.
MAX_QUANTITY = 1e12

_Fmt = Callable[[int], str]
_EXTRA = "_extra"  # the column that catches one field too many


class _Checks:
    """Problems of a parsed file: per check a mask over the rows, the field and a message
    function of the row position, called only for the problems listed."""

    def __init__(self, path: Path, lines: np.ndarray):
        self.path = path
        self.lines = lines  # physical line of each row
        self.found: list[tuple[np.ndarray, str, _Fmt]] = []
        self.misaligned = np.zeros(len(lines), bool)  # rows whose field problems are not listed

    def add(self, mask: np.ndarray | pd.Series, field: str, fmt: _Fmt) -> None:
        pos = np.flatnonzero(np.asarray(mask, dtype=bool))
        if len(pos):
            self.found.append((pos, field, fmt))

    def flagged(self) -> np.ndarray:
        """Rows with at least one problem so far."""
        mask = self.misaligned.copy()
        for pos, _, _ in self.found:
            mask[pos] = True
        return mask

    def raise_if_any(self) -> None:
        problems, total = self.listed()
        if total:
            raise ConfigError(problems)

    def listed(self) -> tuple[list[Problem], int]:
        """The problems, sorted by line and field (MAX_LISTED in full, then a count), and
        how many there are."""
        if not self.found:
            return [], 0
        table = pd.DataFrame({
            "line": np.concatenate([self.lines[pos] for pos, _, _ in self.found]),
            "field": np.concatenate([np.full(len(pos), field, dtype=object) for pos, field, _ in self.found]),
            "check": np.concatenate([np.full(len(pos), k) for k, (pos, _, _) in enumerate(self.found)]),
            "pos": np.concatenate([pos for pos, _, _ in self.found]),
        })
        table = table[~self.misaligned[table["pos"].to_numpy()] | (table["field"] == "-").to_numpy()]
        table = table.sort_values(["line", "field"], kind="stable")
        shown = table.head(MAX_LISTED)
        problems = [Problem(str(self.path), int(line), field, self.found[check][2](int(pos)))
                    for line, field, check, pos in shown.itertuples(index=False, name=None)]
        if len(table) > MAX_LISTED:
            problems.append(Problem(str(self.path), int(table["line"].iloc[MAX_LISTED]), "-",
                                    f"... and {len(table) - MAX_LISTED} more problems"))
        return problems, len(table)


def _q(value: object) -> str:
    return f"'{echo(value)}'"


def _read(path: Path, columns: list[str], data: bytes | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """The data rows of a whole file `path` or, given, of `data` (the file's bytes; `path`
    names it); see `_read_text`."""
    return _read_text(read_utf8(path) if data is None else decode_utf8(data, str(path)), path, columns)


def _read_text(text: str, path: Path, columns: list[str], first: bool = True) -> tuple[pd.DataFrame, np.ndarray]:
    """The data rows (blank ones dropped, a RangeIndex) of `text` and the physical line of
    each. A row with one field too many fills `_extra` (a problem unless empty: a trailing
    comma); more than one too many makes the fast parser refuse the file, and the rows
    are then walked again by `_structure_problems`. A block after the `first` of a
    streamed file starts with the canonical header (`_Blocks`) and may be all blank."""
    names = [*columns, _EXTRA]
    try:
        with warnings.catch_warnings():  # a header longer than `names` is truncated: caught below as a bad header
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            df = pd.read_csv(io.StringIO(text), header=None, names=names, index_col=False, dtype=str,
                             keep_default_na=False, na_filter=False, skipinitialspace=True, skip_blank_lines=False)
    except pd.errors.ParserError as exc:
        raise ConfigError(_structure_problems(path, text, columns, str(exc))) from None
    if df.empty:
        df = pd.DataFrame({c: [""] for c in names})  # an empty file: one blank line
    # Record i starts at line 1 + i + the newlines inside the quoted fields of the records before it.
    inner = np.zeros(len(df), np.int64)
    if '"' in text:
        for col in names:
            inner += df[col].str.count("\n").to_numpy(np.int64)
    lines = 1 + np.arange(len(df)) + np.concatenate([[0], np.cumsum(inner)[:-1]])
    blank = (df[columns[0]].str.strip() == "").to_numpy().copy()
    for col in names[1:]:
        if not blank.any():
            break
        blank[blank] = (df.loc[blank, col].str.strip() == "").to_numpy()
    if blank.all() and not first:
        return df.iloc[:0].reset_index(drop=True), lines[:0]
    if blank.all():
        raise ConfigError([Problem(str(path), 1, "header", f"the file is empty (expected columns {','.join(columns)})")])
    at = int(np.argmin(blank))  # the header is the first line that is not blank
    header = [str(df[c].iloc[at]).strip() for c in names]
    if header != [*columns, ""]:
        found = ",".join(h for h in header if h)
        raise ConfigError([Problem(str(path), int(lines[at]), "header",
                                   f"expected columns {','.join(columns)}, found {_q(found)}")])
    keep = ~blank
    keep[:at + 1] = False
    # pandas pads a short row with empty fields: only a row whose last field is empty can be one
    maybe_short = keep & (df[columns[-1]] == "").to_numpy()
    fields = _field_counts(text, len(df)) if maybe_short.any() else np.full(len(df), len(columns))
    short = maybe_short & (fields < len(columns))
    if short.any():  # a truncated row (a file cut short, a lost separator): every one is listed
        raise ConfigError([Problem(str(path), int(line), "-", f"has {int(n)} fields, expected {len(columns)} "
                                                              f"({','.join(columns)})")
                           for line, n in zip(lines[short][:MAX_LISTED], fields[short][:MAX_LISTED], strict=True)])
    if keep[at + 1:].all():  # no blank line after the header: a slice, no copy
        return df.iloc[at + 1:].reset_index(drop=True), lines[at + 1:]
    return df[keep].reset_index(drop=True), lines[keep]


_QUOTED = re.compile(r'"(?:[^"]|"")*"')


def _field_counts(text: str, records: int) -> np.ndarray:
    """Fields of each record: separators counted per line once quoted sections are taken out."""
    bare = _QUOTED.sub("", text) if '"' in text else text
    pieces = bare.split("\n")
    if bare.endswith("\n"):
        pieces.pop()
    if len(pieces) != records:  # a quote the pattern reads otherwise than the parser: no verdict
        return np.full(records, 10**6)
    return pd.Series(pieces, dtype=str).str.count(",").to_numpy(np.int64) + 1


def _extra_fields(checks: _Checks, df: pd.DataFrame, columns: list[str]) -> None:
    """A row with a field too many: that is its one problem (its fields are shifted)."""
    extra = (df[_EXTRA].str.strip() != "").to_numpy()
    checks.add(extra, "-", lambda i: f"has {len(columns) + 1} fields, expected {len(columns)} ({','.join(columns)})")
    checks.misaligned = extra


def _structure_problems(path: Path, text: str, columns: list[str], parser_message: str) -> list[Problem]:
    """Problems of a file the fast parser refused (a row with too many fields, an unclosed
    quote): the rows are walked once more with the csv module, which tells physical lines."""
    problems: list[Problem] = []
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    start, header_seen = 1, False
    for row in reader:
        if not any(c.strip() for c in row):
            pass  # a blank line
        elif not header_seen:
            header_seen = True
            if [c.strip() for c in row] != columns:
                problems.append(Problem(str(path), start, "header", f"expected columns {','.join(columns)}, "
                                                                    f"found {_q(','.join(row))}"))
        elif len(row) > len(columns):
            problems.append(Problem(str(path), start, "-", f"has {len(row)} fields, expected {len(columns)} "
                                                           f"({','.join(columns)})"))
        last_start, start = start, reader.line_num + 1
    if "EOF inside string" in parser_message and start > 1:
        problems.append(Problem(str(path), last_start, "-", "a quoted field opened on this line is never closed"))
    if not problems:
        problems.append(Problem(str(path), 1, "-", f"cannot parse CSV: {echo(parser_message)}"))
    return problems[:MAX_LISTED]


def _number(checks: _Checks, raw: pd.Series, field: str, upper: float, allow_empty: bool = False) -> pd.Series:
    """`raw` as floats (NaN where empty and allowed); problems for what is not a finite
    number in [0, upper]."""
    text = raw.str.strip()
    num = pd.to_numeric(text, errors="coerce").astype(float)
    empty = (text == "").to_numpy()
    x = num.to_numpy(float, na_value=np.nan)
    nan = np.isnan(x)
    checks.add(nan & empty & (not allow_empty), field, lambda i: "is empty")
    checks.add(nan & ~empty, field, lambda i: f"{_q(text.iloc[i])} is not a number")
    with np.errstate(invalid="ignore"):
        checks.add(np.isinf(x), field, lambda i: f"{_q(text.iloc[i])} is not finite")
        checks.add(x < 0, field, lambda i: f"must not be negative ({_q(text.iloc[i])})")
        checks.add(np.isfinite(x) & (x > upper), field, lambda i: f"{_q(text.iloc[i])} is implausibly large "
                                                                   f"(more than {upper:g})")
    return num


def _conflicts(checks: _Checks, frame: pd.DataFrame, keys: list[str], value: str, field: str,
               what: str, text: pd.Series) -> None:
    """Rows of `frame` (only valid rows, index = row position) sharing `keys` with another
    row whose `value` differs: each names the line of a row it conflicts with."""
    dup = frame[frame.duplicated(keys, keep=False)]
    if dup.empty:
        return
    dup = dup[dup.groupby(keys)[value].transform("nunique") > 1]
    if dup.empty:
        return
    dup = dup.assign(_line=checks.lines[dup.index.to_numpy()], _pos=dup.index.to_numpy()).sort_values("_line")
    first_value = dup.groupby(keys)[value].transform("first")
    is_first = (dup[value] == first_value).to_numpy()
    first = dup.drop_duplicates(keys)[[*keys, "_line", "_pos"]]
    alt = dup[~is_first].drop_duplicates(keys)[[*keys, "_line", "_pos"]]
    keyed = dup[keys].reset_index(drop=True)
    other_first = keyed.merge(first, on=keys, how="left")
    other_alt = keyed.merge(alt, on=keys, how="left")
    other_line = np.where(is_first, other_alt["_line"], other_first["_line"]).astype(np.int64)
    other_pos = np.where(is_first, other_alt["_pos"], other_first["_pos"]).astype(np.int64)
    partner = dict(zip(dup["_pos"].tolist(), zip(other_line.tolist(), other_pos.tolist(), strict=True), strict=True))
    mask = np.zeros(len(checks.lines), bool)
    mask[dup["_pos"].to_numpy()] = True

    def message(i: int) -> str:
        line, j = partner[i]
        return f"same {what} as line {line}, with another {field}: {_q(text.iloc[i])} here, {_q(text.iloc[j])} there"

    checks.add(mask, field, message)


BLOCK_BYTES = 32 << 20  # a readings file is parsed this much at a time (memory bounded by it, not by the file)


def _record_end(data: bytes) -> int:
    """Length of the longest prefix of `data` made of whole records: up to the last line
    end outside a quoted field (a block starts outside one); 0 if there is none."""
    if b'"' not in data:
        return data.rfind(b"\n") + 1
    arr = np.frombuffer(data, np.uint8)
    newlines = np.flatnonzero(arr == 0x0A)
    inside = (np.cumsum(arr == 0x22)[newlines] % 2).astype(bool)
    outside = newlines[~inside]
    return int(outside[-1]) + 1 if len(outside) else 0


def _blocks(path: Path, block_bytes: int, data: bytes | None = None) -> Iterator[tuple[str, int]]:
    """The text of `path` (or of `data`, its bytes; as `core.textfile.decode_utf8` gives
    it) in blocks of about `block_bytes` of whole records, each with the number of
    physical lines before it."""
    try:
        f = open(path, "rb") if data is None else io.BytesIO(data)  # noqa: SIM115 (closed below; a generator)
    except OSError as exc:
        raise ConfigError([Problem(str(path), 0, "-", f"cannot read file: {exc.strerror}")]) from None
    with f:
        carry, before = b"", 0
        while True:
            data = f.read(block_bytes)
            buf = carry + data
            cut = len(buf) if not data else _record_end(buf)
            if cut == 0 and data:
                carry = buf  # one record longer than a block (or an unclosed quote): read on
                continue
            block, carry = buf[:cut], buf[cut:]
            try:
                text = decode_utf8(block, str(path))
            except ConfigError as exc:
                raise ConfigError([Problem(p.file, p.line + before, p.field, p.message) for p in exc.problems]) from None
            if block or not before:
                yield text, before
            if not data:
                return
            before += text.count("\n")


def _reading_block(path: Path, df: pd.DataFrame, lines: np.ndarray, registry: Registry,
                   latest: pd.Timestamp) -> tuple[pd.DataFrame, _Checks, pd.DataFrame]:
    """Validated readings of one block (meter_id, time, value; the valid rows, one per
    key), its checks, and its valid rows with their raw value text (meter_id, t, value,
    text) for the conflicts between blocks."""
    checks = _Checks(path, lines)
    _extra_fields(checks, df, READINGS_COLUMNS)
    meter = df["meter_id"].str.strip()
    known = meter.isin(registry.meter_by_id.keys()).to_numpy()
    checks.add(~known, "meter_id", lambda i: "is empty" if not meter.iloc[i] else f"unknown meter {_q(meter.iloc[i])}")

    raw_time = df["time"].str.strip()
    time = pd.to_datetime(raw_time, format="ISO8601", utc=True, errors="coerce").dt.floor("s")
    no_time = time.isna().to_numpy()
    checks.add(no_time, "time", lambda i: "is empty" if not raw_time.iloc[i]
               else f"{_q(raw_time.iloc[i])} is not an ISO 8601 time")
    no_offset = ~no_time & ~raw_time.str.contains(_OFFSET).to_numpy()
    checks.add(no_offset, "time", lambda i: f"{_q(raw_time.iloc[i])} has no UTC offset "
                                            "(write e.g. 2025-01-01T00:00:00+08:00)")
    earliest = localtime.first_instant_of(EARLIEST, registry.timezone)
    t = time.to_numpy("datetime64[us]", na_value=np.datetime64("NaT"))  # no per-row Timestamp objects
    checks.add(t < earliest.tz_convert(None).to_datetime64(), "time",
               lambda i: f"{_q(raw_time.iloc[i])} is before {EARLIEST}")
    checks.add(t > latest.tz_convert("UTC").tz_convert(None).to_datetime64(), "time",
               lambda i: f"{_q(raw_time.iloc[i])} is more than a day in the future (after {latest:%Y-%m-%dT%H:%M}Z)")

    value = _number(checks, df["value"], "value", MAX_INDEX)
    rollover = meter.map({m.id: m.rollover_at for m in registry.meters if m.rollover_at}).astype(float)
    over = (value >= rollover).to_numpy()  # NaN (no rollover) compares False
    checks.add(over, "value", lambda i: f"{_q(df['value'].iloc[i].strip())} is at or above the meter's rollover "
                                        f"({rollover.iloc[i]:g}): an index wraps to zero there")
    ok = known & ~no_time & np.isfinite(value.to_numpy(float, na_value=np.nan)) & ~checks.misaligned
    frame = pd.DataFrame({"meter_id": meter, "t": time, "value": value})[ok]
    _conflicts(checks, frame, ["meter_id", "t"], "value", "value", "meter and second", df["value"].str.strip())
    out = pd.DataFrame({"meter_id": meter.to_numpy(object), "time": time, "value": value.to_numpy(float),
                        "line": lines})
    valid = frame.assign(line=lines[ok], text=df["value"].str.strip()[ok])
    return out.drop_duplicates(["meter_id", "time"]).reset_index(drop=True), checks, valid


def reading_blocks(path: str | Path, registry: Registry, now: pd.Timestamp | None = None,
                   block_bytes: int = BLOCK_BYTES, data: bytes | None = None,
                   with_lines: bool = False) -> Iterator[pd.DataFrame]:
    """Validated readings of `path` block by block (meter_id, time (UTC, whole seconds),
    value; each block's rows one per key), parsing about `block_bytes` of the file at a
    time, so memory is bounded by the block, not by the file. Once every block is out,
    raises ConfigError with every problem of the file (physical lines, as for a whole
    file), including rows of one meter and second with different values in different
    blocks; a caller writes nothing before the generator is exhausted (all or nothing:
    `Store.import_stream`). `now` (default: the clock) bounds how far ahead a sample may lie;
    `data`: the file's bytes (an HTTP body), `path` then only names it; `with_lines`: a
    `line` column (the first line of each row)."""
    path = Path(path)
    latest = (pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)) + SAMPLE_FUTURE
    header = ",".join(READINGS_COLUMNS) + "\n"
    listed: list[Problem] = []
    total, more_line = 0, 0
    spans: list[pd.DataFrame] = []  # per block and meter: first and last valid time

    def note(problems: list[Problem], n: int) -> None:
        nonlocal total, more_line
        keep = [p for p in problems if not p.message.startswith("... and ")]
        room = MAX_LISTED - len(listed)
        listed.extend(keep[:room])
        if len(keep) > room and not more_line:
            more_line = keep[room].line
        total += n

    for k, (text, before) in enumerate(_blocks(path, block_bytes, data)):
        first = k == 0
        try:
            df, lines = _read_text(text if first else header + text, path, READINGS_COLUMNS, first)
        except ConfigError as exc:
            shift = before if first else before - 1
            note([Problem(p.file, p.line + shift if p.line else 0, p.field, p.message) for p in exc.problems],
                 len(exc.problems))
            continue
        lines = lines + (before if first else before - 1)
        out, checks, valid = _reading_block(path, df, lines, registry, latest)
        problems, n = checks.listed()
        if n:
            note(problems, n)
        elif not total:
            yield out if with_lines else out.drop(columns="line")
        if len(valid):
            g = valid.groupby("meter_id")["t"].agg(["min", "max"]).reset_index()
            spans.append(g.assign(block=k))
    if len(spans) > 1:
        total += _cross_block_conflicts(path, registry, latest, block_bytes, data, pd.concat(spans, ignore_index=True),
                                        note)
    if total:
        listed.sort(key=lambda p: (p.line, p.field))
        if total > len(listed):
            listed.append(Problem(str(path), more_line or listed[-1].line, "-",
                                  f"... and {total - len(listed)} more problems"))
        raise ConfigError(listed)


def _cross_block_conflicts(path: Path, registry: Registry, latest: pd.Timestamp, block_bytes: int,
                           data: bytes | None, spans: pd.DataFrame, note: Callable[[list[Problem], int], None]) -> int:
    """Rows of one meter and second with different values in different blocks: only
    where a meter's times in a block reach back into those of an earlier block (never in
    a file sorted by time per meter) are those rows read once more. Only keys found in
    more than one block are judged here (the others were, in their block). Returns the
    number of problems (passed to `note`)."""
    spans = spans.sort_values(["meter_id", "block"], kind="stable")
    reach = spans.groupby("meter_id")["max"].cummax()
    earlier = reach.groupby(spans["meter_id"]).shift()
    back = spans[spans["min"] <= earlier]
    if back.empty:
        return 0
    window = back.assign(hi=earlier[back.index]).groupby("meter_id").agg(lo=("min", "min"), hi=("hi", "max"))
    header = ",".join(READINGS_COLUMNS) + "\n"
    rows = []
    for k, (text, before) in enumerate(_blocks(path, block_bytes, data)):
        df, lines = _read_text(text if k == 0 else header + text, path, READINGS_COLUMNS, k == 0)
        _, _, valid = _reading_block(path, df, lines + (before if k == 0 else before - 1), registry, latest)
        w = window.reindex(valid["meter_id"])
        inside = ((valid["t"].to_numpy() >= w["lo"].to_numpy()) & (valid["t"].to_numpy() <= w["hi"].to_numpy()))
        rows.append(valid[inside].assign(block=k))
    both = pd.concat(rows, ignore_index=True).sort_values("line", kind="stable").reset_index(drop=True)
    both = both[both.groupby(["meter_id", "t"])["block"].transform("nunique") > 1].reset_index(drop=True)
    checks = _Checks(path, both["line"].to_numpy(np.int64))
    _conflicts(checks, both[["meter_id", "t", "value"]], ["meter_id", "t"], "value", "value", "meter and second",
               both["text"])
    problems, n = checks.listed()
    if n:
        note(problems, n)
    return n


def parse_readings(path: str | Path, registry: Registry, now: pd.Timestamp | None = None, data: bytes | None = None,
                   with_lines: bool = False, block_bytes: int = BLOCK_BYTES) -> pd.DataFrame:
    """Validated readings of the whole file: meter_id, time (UTC, whole seconds), value
    (and `line`, the first line of each, with `with_lines`), one row per key
    (`reading_blocks` concatenated). Raises ConfigError with every problem. `now`
    (default: the clock) bounds how far ahead a sample may lie; `data`: the file's bytes
    (an HTTP body), `path` then only names it."""
    parts = list(reading_blocks(path, registry, now, block_bytes, data, with_lines))
    out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    return out.drop_duplicates(["meter_id", "time"]).reset_index(drop=True)


def parse_bills(path: str | Path, registry: Registry, today: date | None = None, data: bytes | None = None,
                with_lines: bool = False) -> pd.DataFrame:
    """Validated bills (BILL_COLUMNS, and `line` with `with_lines`). Raises ConfigError
    with every problem. `today` (default: the registry's local date) bounds how far ahead
    a period may end; `data`: the file's bytes (`path` then only names it)."""
    path = Path(path)
    df, lines = _read(path, BILLS_COLUMNS, data)
    checks = _Checks(path, lines)
    _extra_fields(checks, df, BILLS_COLUMNS)
    inst = df["institution_id"].str.strip()
    checks.add(~inst.isin(registry.institution_by_id.keys()).to_numpy(), "institution_id",
               lambda i: "is empty" if not inst.iloc[i] else f"unknown institution {_q(inst.iloc[i])}")
    energy = df["energy"].str.strip()
    bad_energy = ~energy.isin(BILL_KINDS).to_numpy()
    checks.add(bad_energy, "energy", lambda i: f"unknown energy {_q(energy.iloc[i])} (known: {', '.join(BILL_KINDS)})")

    today = today or pd.Timestamp.now(tz=registry.timezone).date()
    latest = (pd.Timestamp(today) + BILL_FUTURE).date()
    dates: dict[str, pd.Series] = {}
    for col in ("period_start", "period_end"):
        text = df[col].str.strip()
        d = pd.to_datetime(text.where(text.str.fullmatch(r"\d{4}-\d{2}-\d{2}")), format="%Y-%m-%d", errors="coerce")
        bad = d.isna().to_numpy()
        checks.add(bad, col, lambda i, text=text: "is empty" if not text.iloc[i]
                   else f"{_q(text.iloc[i])} is not a real date (YYYY-MM-DD)")
        checks.add(~bad & (d < pd.Timestamp(EARLIEST)).to_numpy(), col,
                   lambda i, text=text: f"{_q(text.iloc[i])} is before {EARLIEST}")
        checks.add(~bad & (d > pd.Timestamp(latest)).to_numpy(), col,
                   lambda i, text=text: f"{_q(text.iloc[i])} is more than a year ahead (after {latest})")
        dates[col] = d
    days = ((dates["period_end"] - dates["period_start"]).dt.days + 1).to_numpy(float, na_value=np.nan)
    checks.add(days < 1, "period_end", lambda i: "is before period_start")
    checks.add(days > MAX_BILL_DAYS, "period_end",
               lambda i: f"the period is {int(days[i])} days long; a bill covers at most {MAX_BILL_DAYS} days")
    qty = _number(checks, df["quantity"], "quantity", MAX_QUANTITY)
    cost = _number(checks, df["cost_cny"], "cost_cny", MAX_QUANTITY, allow_empty=True)
    unit = df["unit"].str.strip()
    pairs = {f"{e}|{u}" for e, units in BILL_UNITS.items() for u in units}
    allowed = (energy + "|" + unit).isin(pairs).to_numpy()
    checks.add(~allowed & ~bad_energy, "unit", lambda i: f"unit {_q(unit.iloc[i])} does not fit energy "
                                                        f"'{energy.iloc[i]}' (allowed: {', '.join(sorted(BILL_UNITS[energy.iloc[i]]))})")
    keys = ["institution_id", "energy", "period_start", "period_end"]
    frame = pd.DataFrame({"institution_id": inst, "energy": energy, "period_start": dates["period_start"],
                          "period_end": dates["period_end"], "quantity": qty})
    valid = frame.notna().all(axis=1).to_numpy() & ~checks.misaligned
    _conflicts(checks, frame[valid], keys, "quantity", "quantity", "institution, energy and period",
               df["quantity"].str.strip())
    _overlaps(checks, frame[valid & ~checks.flagged()])  # among rows that are otherwise right
    checks.raise_if_any()
    out = pd.DataFrame({"institution_id": inst.to_numpy(object), "energy": energy.to_numpy(object),
                        "period_start": dates["period_start"].dt.date, "period_end": dates["period_end"].dt.date,
                        "quantity": qty.to_numpy(float), "unit": unit.to_numpy(object), "cost_cny": cost.to_numpy(float)})
    if with_lines:
        out["line"] = lines
    return out.drop_duplicates(keys).reset_index(drop=True)


def _overlaps(checks: _Checks, frame: pd.DataFrame) -> None:
    """Rows of `frame` (valid rows, index = row position) whose period overlaps another
    row's period of the same institution and energy (and is not the same period): each
    names the line of the other."""
    rows = frame.assign(_pos=frame.index.to_numpy())
    pairs = rows.merge(rows, on=["institution_id", "energy"], suffixes=("", "_o"))
    hit = ((pairs["_pos"] != pairs["_pos_o"])
           & ((pairs["period_start"] != pairs["period_start_o"]) | (pairs["period_end"] != pairs["period_end_o"]))
           & (pairs["period_start"] <= pairs["period_end_o"]) & (pairs["period_start_o"] <= pairs["period_end"]))
    pairs = pairs[hit.to_numpy(bool)].drop_duplicates("_pos")
    if pairs.empty:
        return
    other = dict(zip(pairs["_pos"].tolist(), pairs["_pos_o"].tolist(), strict=True))
    mask = np.zeros(len(checks.lines), bool)
    mask[pairs["_pos"].to_numpy()] = True

    def message(i: int) -> str:
        j = other[i]
        return (f"period {frame.at[i, 'period_start']:%Y-%m-%d}..{frame.at[i, 'period_end']:%Y-%m-%d} overlaps "
                f"line {checks.lines[j]} ({frame.at[j, 'period_start']:%Y-%m-%d}..{frame.at[j, 'period_end']:%Y-%m-%d})"
                f" of the same institution and energy")

    checks.add(mask, "period_start", message)


def readings_csv(samples: pd.DataFrame, tz: str) -> str:
    """Samples as readings CSV text (local times with offset, full-precision values)."""
    local = pd.DatetimeIndex(samples["time"]).tz_convert(tz)
    text = local.strftime("%Y-%m-%dT%H:%M:%S%z")
    text = text.str.slice(0, -2) + ":" + text.str.slice(-2)
    out = pd.DataFrame({"meter_id": samples["meter_id"].to_numpy(), "time": text,
                        "value": [repr(float(v)) for v in samples["value"].to_numpy(float)]})
    return out.to_csv(index=False, lineterminator="\n")


def consumption_csv(cons: pd.DataFrame, registry: Registry) -> str:
    """Consumption as `meter_id,period_start,quantity,unit,estimated_share` CSV text."""
    return consumption_table(cons, registry).to_csv(index=False, lineterminator="\n")


def consumption_table(cons: pd.DataFrame, registry: Registry) -> pd.DataFrame:
    """Store consumption rows as exported (CSV and the API): meter_id, period_start
    (local ISO 8601 with offset), quantity (index unit, 6 decimals), unit, estimated_share
    (4 decimals)."""
    units = {m.id: INDEX_UNIT[m.energy] for m in registry.meters}
    start = pd.DatetimeIndex(cons["period_start"]).strftime("%Y-%m-%dT%H:%M:%S%z")
    start = start.str.slice(0, -2) + ":" + start.str.slice(-2)
    out = pd.DataFrame({
        "meter_id": cons["meter_id"].to_numpy(),
        "period_start": start,
        "quantity": np.round(cons["quantity"].to_numpy(float), 6),
        "unit": cons["meter_id"].map(units).fillna("").to_numpy(),
        "estimated_share": np.round(cons["estimated_share"].to_numpy(float), 4),
    })
    return out
