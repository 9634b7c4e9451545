"""Fuzzing helpers shared by the fuzz tests (tests/test_fuzz_*.py, bounded, derandomized
hypothesis) and the campaign script (scripts/fuzz_inputs.py, many more inputs). Every
generator takes a `random.Random`, so hypothesis drives it through `st.randoms()` and the
campaign through a seeded one. No tests live here.

An outcome is "accepted", "rejected" (ConfigError whose problems all name the file, a
line >= 0 and a field) or an exception (a crash: the bug class these hunt for)."""

from __future__ import annotations

import csv
import io
import math
import random
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from core.csvio import EARLIEST, MAX_INDEX, MAX_QUANTITY
from core.registry import Registry
from core.yamlfile import ConfigError

NOW = datetime.fromisoformat("2026-06-01T00:00:00+00:00")
TODAY = date(2026, 6, 1)
_PLAIN_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?")
_OFFSET = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")  # the offset a readings time must end with (interfaces.md)

READINGS_GOOD = ("meter_id,time,value\n"
                 "HB-0001-E0,2025-01-01T00:00:00+08:00,100.0\n"
                 "HB-0001-E0,2025-01-01T01:00:00+08:00,101.5\n"
                 "HB-0001-W0,2025-01-01T00:00:00Z,7\n"
                 "HB-0001-G0,2025-01-02T00:00:00+08:00,42949672.5\n")
BILLS_GOOD = ("institution_id,energy,period_start,period_end,quantity,unit,cost_cny\n"
              "HB-0001,diesel,2025-01-01,2025-01-31,300,L,2100\n"
              "HB-0001,heat,2025-02-01,2025-02-28,12.5,GJ,\n"
              "HB-0002,electricity,2024-01-01,2024-12-31,1e6,kWh,8e5\n")

# Pieces a fuzzer splices in: separators, quotes, line ends, encodings' bytes, numbers at
# and past the bounds, dates that do not exist, times out of range, long values.
TOKENS = [",", "\n", "\r\n", "\r", '"', '""', " ", "\t", "\x00", "\ufeff", "é", "二", ";", "\\", "-", "+", ":",
          "1e308", "-1", "nan", "inf", "-0", "0x10", "1_000", "1e12", "1.0000001e12", "42949672.96",
          "2025-02-30", "9999-12-31", "1600-01-01T00:00:00Z", "2099-01-01T00:00:00Z", "1989-12-31",
          "2025-01-01T00:00:00", "2025-01-01T00:00:00.5+08:00", "24:00", "Z", "+25:00",
          "HB-0001-E0", "HB-0001", "diesel", "m3", "x" * 200, ",,,", "\n\n", '"a\nb"', "0,0,0,0"]


def mutate_text(rnd: random.Random, text: str, max_edits: int = 6) -> str:
    """`text` with 1..max_edits random insertions, deletions, duplications of lines and
    splices of TOKENS."""
    s = text
    for _ in range(rnd.randint(1, max_edits)):
        op = rnd.random()
        pos = rnd.randrange(len(s) + 1)
        if op < 0.35:
            s = s[:pos] + rnd.choice(TOKENS) + s[pos:]
        elif op < 0.6 and s:
            end = min(len(s), pos + rnd.randint(1, 12))
            s = s[:pos] + s[end:]
        elif op < 0.75:
            lines = s.split("\n")
            i = rnd.randrange(len(lines))
            lines.insert(rnd.randrange(len(lines) + 1), lines[i])
            s = "\n".join(lines)
        elif op < 0.9 and s:  # replace a field
            parts = s.split(",")
            parts[rnd.randrange(len(parts))] = rnd.choice(TOKENS)
            s = ",".join(parts)
        else:
            s = s[:pos] + rnd.choice("0123456789.-:TZ ") + s[pos:]
    return s


def encode(rnd: random.Random, text: str) -> bytes:
    """Mostly UTF-8 (with or without BOM), sometimes latin-1, UTF-16 or GB18030."""
    kind = rnd.choices(["utf-8", "utf-8-sig", "latin-1", "utf-16", "gb18030"], [70, 10, 8, 6, 6])[0]
    return text.encode(kind, errors="replace")


def outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    """("accepted", result) | ("rejected", ConfigError) | ("crash", exception)."""
    try:
        return "accepted", fn()
    except ConfigError as exc:
        return "rejected", exc
    except Exception as exc:  # what we count
        return "crash", exc


def rejection_is_clean(exc: ConfigError, file: str, one_line: bool = True) -> bool:
    """Every problem names the file, a line and a field, and (`one_line`) is one line of at
    most a few hundred characters (values are echoed cut to 80)."""
    return bool(exc.problems) and all(
        p.file == file and isinstance(p.line, int) and p.line >= 0 and p.field
        and (not one_line or ("\n" not in p.message and len(p.message) < 600)) for p in exc.problems)


# -- the reference: what a readings / bills file should give, row by row ----------------------

def _rows(data: bytes, ncols: int) -> list[tuple[int, list[str]]] | None:
    """(physical line, fields) of each non-blank record, or None when the file as a whole
    is unacceptable (not UTF-8, NUL, unclosed quote)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        return None
    try:  # strict only to find a quote never closed; the rows as the lenient reader sees them
        list(csv.reader(io.StringIO(text, newline=""), skipinitialspace=True, strict=True))
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            return None
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    out, start = [], 1
    for row in reader:
        if any(f.strip() for f in row):
            out.append((start, row[:-1] if len(row) == ncols + 1 and not row[-1].strip() else row))  # a trailing comma
        start = reader.line_num + 1
    return out


def _number(s: str, upper: float, empty_ok: bool = False) -> float | None:
    s = s.strip()
    if not s:
        return math.nan if empty_ok else None
    try:
        x = float(s)
    except ValueError:
        return None
    if s.lower().lstrip("+-") in ("nan", "inf", "infinity") or "_" in s or not 0 <= x <= upper:
        return None
    return x


def expected_readings(data: bytes, registry: Registry) -> bool | None:
    """True: the file should be accepted; False: rejected; None: the reference cannot
    tell (a time text the two ISO 8601 readers might read differently)."""
    rows = _rows(data, 3)
    if rows is None or not rows or [c.strip() for c in rows[0][1]] != ["meter_id", "time", "value"]:
        return False
    earliest = datetime(EARLIEST.year, EARLIEST.month, EARLIEST.day, tzinfo=registry.tz)
    seen: dict[tuple[str, int], float] = {}
    ok = True
    for _, row in rows[1:]:
        if len(row) != 3:
            return False
        meter, raw_t, raw_v = (f.strip() for f in row)
        m = registry.meter_by_id.get(meter)
        value = _number(raw_v, MAX_INDEX)
        if m is None or value is None or (m.rollover_at and value >= m.rollover_at):
            ok = False
        try:
            t = datetime.fromisoformat(raw_t)
        except ValueError:
            if len(raw_t) >= 19 and raw_t[:4].isdigit():
                return None  # an unusual but maybe valid ISO form: no verdict
            ok = False
            continue
        if not _PLAIN_TIME.fullmatch(raw_t):
            return None  # fromisoformat reads forms (2025-01-01T000Z) that pandas's reader need not
        if t.tzinfo is None or not _OFFSET.search(raw_t):
            ok = False
            continue
        if not earliest <= t <= NOW + timedelta(days=1):
            ok = False
            continue
        if value is not None and m is not None:
            key = (meter, int(t.timestamp() // 1))
            if seen.setdefault(key, value) != value:
                ok = False
    return ok


def expected_bills(data: bytes, registry: Registry) -> bool | None:
    """As `expected_readings`, for a bills file."""
    from core.vocab import BILL_UNITS

    rows = _rows(data, 7)
    cols = ["institution_id", "energy", "period_start", "period_end", "quantity", "unit", "cost_cny"]
    if rows is None or not rows or [c.strip() for c in rows[0][1]] != cols:
        return False
    latest = TODAY.replace(year=TODAY.year + 1)
    seen: dict[tuple, float] = {}
    ok = True
    for _, row in rows[1:]:
        if len(row) != 7:
            return False
        inst, energy, start, end, qty, unit, cost = (f.strip() for f in row)
        q = _number(qty, MAX_QUANTITY)
        good = (inst in registry.institution_by_id and energy in BILL_UNITS and unit in BILL_UNITS[energy]
                and q is not None and _number(cost, MAX_QUANTITY, empty_ok=True) is not None)
        try:
            d0, d1 = date.fromisoformat(start), date.fromisoformat(end)
            if len(start) != 10 or len(end) != 10:
                return None  # 2025-1-5 and the like: strptime and fromisoformat differ
        except ValueError:
            good = False
            d0 = d1 = None
        if d0 is not None and d1 is not None:
            good = good and EARLIEST <= d0 <= d1 <= latest and (d1 - d0).days + 1 <= 366
            if good:
                key = (inst, energy, d0, d1)
                good = seen.setdefault(key, q) == q
        ok = ok and good
    return ok


def write(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


# -- the registry: targeted mutations that know whether they must be rejected --------------------

def _real_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _month_day(v: Any) -> bool:
    if not (isinstance(v, str) and re.fullmatch(r"\d{2}-\d{2}", v)):
        return False
    try:
        date(2000, int(v[:2]), int(v[3:]))
    except ValueError:
        return False
    return True


#: (where, field, candidate values, is the value valid?) — `where` picks the mapping changed.
REGISTRY_FIELDS: list[tuple[str, str, list[Any], Callable[[Any], bool]]] = [
    ("institution", "floor_area_m2", [0, 12.5, 5e4, -1, math.inf, -math.inf, math.nan, True, "12000", None, [1], {}],
     lambda v: _real_number(v) and v >= 0),
    ("institution", "occupants", [0, 10, 10**7, 10**7 + 1, -1, 1.5, 2.0, True, False, "10", None, 2**70],
     lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 10**7),
    ("region_season", "start", ["11-15", "02-29", "02-30", "13-01", "00-10", "1-15", "11/15", 1115, None, "11-15x"],
     _month_day),
    ("region_season", "end", ["03-15", "12-31", "04-31", "02-29", "", "ab-cd"], _month_day),
    ("modbus", "port", [1, 502, 65535, 0, 65536, 99999999, -1, True, "502", 502.0, None],
     lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 65535),
    ("modbus", "interval_s", [10, 900, 86400, 9, 86401, True, 900.0, "900"],
     lambda v: isinstance(v, int) and not isinstance(v, bool) and 10 <= v <= 86400),
    ("meter", "multiplier", [1, 80.0, 0.5, 0, -1, math.inf, math.nan, True, "80"],
     lambda v: _real_number(v) and v > 0),
    ("meter", "rated", [None, 10.5, 0, -3, math.inf, False],
     lambda v: v is None or (_real_number(v) and v > 0)),
]


def mutate_registry(rnd: random.Random, doc: dict) -> tuple[dict, bool]:
    """A deep copy of the sample registry `doc` with 1..3 field values replaced; and
    whether the result must be accepted. The heated area stays within the floor area
    when both are valid (that cross-check is not what is fuzzed here)."""
    import copy

    doc = copy.deepcopy(doc)
    final: dict[tuple[int, str], bool] = {}
    doc["_changes"] = []
    for _ in range(rnd.randint(1, 3)):
        where, field, values, ok = rnd.choice(REGISTRY_FIELDS)
        value = rnd.choice(values)
        if where == "institution":
            target = rnd.choice(doc["institutions"])
            if field == "floor_area_m2":
                target["heated_area_m2"] = 0
        elif where == "region_season":
            target = doc["regions"][0].setdefault("heating_season", {"start": "11-15", "end": "03-15"})
        elif where == "modbus":
            target = doc["meters"][0]["modbus"]
        else:
            target = rnd.choice(doc["meters"])
        target[field] = value
        doc["_changes"].append(f"{where}.{field}={value!r}")
        final[(id(target), field)] = ok(value)  # a later change of the same field replaces it
    return doc, all(final.values())


CHANGES: list[str] = []  # the field changes of the last `registry_bytes` (for reports)


def registry_bytes(rnd: random.Random, doc: dict) -> tuple[bytes, bool | None]:
    """The mutated registry as YAML bytes, sometimes in another encoding or with text
    mutations (then the verdict is unknown: None); and whether it must be accepted."""
    import yaml

    doc, valid = mutate_registry(rnd, doc)
    CHANGES[:] = doc.pop("_changes")
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    verdict: bool | None = valid
    if rnd.random() < 0.2:
        text = mutate_text(rnd, text, max_edits=3)
        verdict = None
    data = encode(rnd, text)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        verdict = False
    if b"\x00" in data:
        verdict = False
    return data, verdict


# -- the web: download parameters and callback bodies -----------------------------------------

JUNK = ["", " ", "-1", "0", "1e3", "9" * 40, "2025", "2026", "1989", "9999", "2026-03", "2026-13", "9999-12",
        "1600-01", "2025-1", "2025-02-30", "abc", "%00", "\x00", "../../etc/passwd", "<script>", "二〇二五", "None",
        "null", "[]", "{}", "NaN", "inf", "HB-0001", "HB-0005", "hebei", "kgce_per_m2", "'; DROP TABLE x;--",
        "x" * 3000]
JSON_VALUES: list[Any] = [None, True, False, 0, -1, 1, 2025, 2026, 10**30, -10**30, 1.5, 1e308, "", "hebei", "sjz",
                          "HB-0001", "HB-0005", "school", "kgce_per_m2", "2026-03-09", "2026-13-45", "/institution/HB-0001",
                          "/nope", "x" * 5000, [], ["hebei"], [1, 2], [{"column_id": "value", "direction": "asc"}],
                          [{"column_id": 5}], {}, {"id": "hebei"}, {"a": [1, {"b": None}]}]


def junk(rnd: random.Random) -> str:
    if rnd.random() < 0.2:
        return "".join(rnd.choice(TOKENS + JUNK) for _ in range(rnd.randint(1, 3)))
    return rnd.choice(JUNK)


def download_url(rnd: random.Random, current_year: int, current_month: str) -> tuple[str, dict, bool | None]:
    """(path, query, should it be answered 2xx?) for one of the download routes; None:
    no verdict (the route's own checks, e.g. access, decide)."""
    from urllib.parse import quote

    kind = rnd.choice(["report", "ledger", "ranking", "daily", "mv"])
    if kind == "report":
        month = junk(rnd)
        ok = bool(re.fullmatch(r"\d{4}-\d{2}", month)) and "1990-01" <= month <= current_month \
            and 1 <= int(month[5:]) <= 12
        return "/download/report", {"month": month}, ok
    if kind == "ledger":
        year, fmt = junk(rnd), rnd.choice(["xlsx", "csv", "pdf", junk(rnd)])
        ok = year.strip().isdigit() and 1990 <= int(year) <= current_year and fmt in ("xlsx", "csv")
        return "/download/ledger", {"year": year, "format": fmt}, ok
    if kind == "ranking":
        keys = ["year", "region", "category", "indicator", "search"]
        return "/download/ranking.csv", {k: junk(rnd) for k in keys if rnd.random() < 0.6}, None
    if kind == "daily":
        return f"/download/institution/{quote(junk(rnd), safe='')}/daily.csv", {"days": junk(rnd)}, None
    return f"/download/mv/{quote(junk(rnd), safe='')}.xlsx", {}, None


def callback_body(rnd: random.Random, callback_map: dict) -> dict:
    """A well-formed Dash callback request for one of the app's callbacks, with random
    JSON values for its inputs and state (pattern-matching inputs get 0..2 items)."""
    import json

    output, spec = rnd.choice(sorted(callback_map.items()))

    def item(dep: dict) -> Any:
        dep_id = dep["id"]
        if dep_id.startswith("{"):  # a pattern id such as {"key":["ALL"],"type":"ack"}
            pattern = json.loads(dep_id)
            return [{"id": {k: (rnd.choice(JSON_VALUES[14:20]) if v == ["ALL"] else v) for k, v in pattern.items()},
                     "property": dep["property"], "value": rnd.choice(JSON_VALUES)} for _ in range(rnd.randint(0, 2))]
        return {"id": dep_id, "property": dep["property"], "value": rnd.choice(JSON_VALUES)}

    def out(o: str) -> Any:
        dep_id, prop = o.rsplit(".", 1)
        if dep_id.startswith("{"):  # a pattern output: a list of matching components, as the renderer sends
            pattern = json.loads(dep_id)
            return [{"id": {k: (rnd.choice(JSON_VALUES[14:20]) if v == ["ALL"] else v) for k, v in pattern.items()},
                     "property": prop} for _ in range(rnd.randint(0, 2))]
        return {"id": dep_id, "property": prop}

    outs = [out(o) for o in output.strip(".").split("...")]
    inputs = [item(d) for d in spec["inputs"]]
    first = spec["inputs"][0]
    return {"output": output, "outputs": outs[0] if len(outs) == 1 else outs, "inputs": inputs,
            "state": [item(d) for d in spec["state"]], "changedPropIds": [f"{first['id']}.{first['property']}"]}
