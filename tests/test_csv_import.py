"""`civicwatt import` / `export`: all-or-nothing imports with every problem listed."""

from __future__ import annotations

import hashlib
from datetime import date

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from civicwatt.cli import main
from civicwatt.sample import write_sample
from core.csvio import parse_bills, parse_readings
from core.registry import load_registry
from core.yamlfile import ConfigError
from storage import open_store


@pytest.fixture
def site(tmp_path):
    write_sample(tmp_path, n_institutions=2)
    return tmp_path


def run(site, store_url, *argv):
    return main([*argv[:2], "--registry", str(site / "civicwatt.yaml"), "--store", store_url, *argv[2:]])


GOOD = """meter_id,time,value
HB-0001-E0,2025-01-01T00:00:00+08:00,100.0
HB-0001-E0,2025-01-01T01:00:00+08:00,101.5
HB-0001-E0,2025-01-02T00:00:00+08:00,130.25
HB-0001-W0,2025-01-01T00:00:00Z,7
"""

BAD = """meter_id,time,value
HB-0001-E0,2025-01-01T00:00:00+08:00,100.0
HB-9999-E0,2025-01-01T01:00:00+08:00,101.5
HB-0001-E0,yesterday,102
HB-0001-E0,2025-01-01T03:00:00+08:00,-4
HB-0001-E0,2025-01-01T04:00:00+08:00,abc
HB-0001-E0,2025-01-01T00:00:00+08:00,99.0
HB-0001-E0,2025-01-01T05:00:00,106
"""


def test_bad_csv_lists_every_problem_and_writes_nothing(site, tmp_path, capsys):
    url = f"embedded:{tmp_path / 'data'}"
    (tmp_path / "good.csv").write_text(GOOD, encoding="utf-8")
    assert run(site, url, "import", "readings", str(tmp_path / "good.csv")) == 0
    db = tmp_path / "data" / "civicwatt.sqlite3"
    store = open_store(url)
    before = store.read_samples()
    store.close()
    digest = hashlib.sha256(db.read_bytes()).hexdigest()

    bad = tmp_path / "bad.csv"
    bad.write_text(BAD, encoding="utf-8")
    capsys.readouterr()
    assert run(site, url, "import", "readings", str(bad)) == 1
    err = capsys.readouterr().err
    assert f"nothing was imported from {bad}: new 0, identical 0, rejected 7 (rows with a problem" in err  # lines 2-8
    for expected in [f"{bad}:3: meter_id: unknown meter 'HB-9999-E0'",
                     f"{bad}:4: time: 'yesterday' is not an ISO 8601 time",
                     f"{bad}:5: value: must not be negative",
                     f"{bad}:6: value: 'abc' is not a number",
                     f"{bad}:2: value: same meter and second as line 7, with another value: '100.0' here, '99.0' there",
                     f"{bad}:7: value: same meter and second as line 2, with another value: '99.0' here, '100.0' there",
                     f"{bad}:8: time: '2025-01-01T05:00:00' has no UTC offset"]:
        assert expected in err
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest  # byte-for-byte unchanged
    store = open_store(url)
    pd.testing.assert_frame_equal(before, store.read_samples())
    store.close()


def test_conflict_with_stored_value_is_rejected(site, tmp_path, capsys, influxd):
    url = influxd.url("csvconflict")
    good = tmp_path / "good.csv"
    good.write_text(GOOD, encoding="utf-8")
    assert run(site, url, "import", "readings", str(good)) == 0
    changed = tmp_path / "changed.csv"
    changed.write_text(GOOD.replace("101.5", "101.7") + "HB-0002-E0,2025-01-01T00:00:00+08:00,5\n", encoding="utf-8")
    assert run(site, url, "import", "readings", str(changed)) == 1
    err = capsys.readouterr().err
    assert "value 101.7 differs from the stored 101.5" in err
    assert "new 0, identical 0, rejected 1 (rows with a problem" in err
    store = open_store(url)
    got = store.read_samples()
    store.close()
    assert sorted(got["meter_id"].unique()) == ["HB-0001-E0", "HB-0001-W0"]
    assert got["value"].tolist() == [100.0, 101.5, 130.25, 7.0]


def test_import_says_how_many_rows_were_new_or_identical(site, tmp_path, capsys):
    """Re-importing the same file said "imported 4 readings" again."""
    url = f"embedded:{tmp_path / 'data'}"
    good = tmp_path / "good.csv"
    good.write_text(GOOD, encoding="utf-8")
    assert run(site, url, "import", "readings", str(good)) == 0
    assert capsys.readouterr().out.rstrip().endswith(": new 4, identical 0, rejected 0")
    assert run(site, url, "import", "readings", str(good)) == 0
    assert capsys.readouterr().out.rstrip().endswith(": new 0, identical 4, rejected 0")
    more = tmp_path / "more.csv"
    more.write_text(GOOD + "HB-0001-E0,2025-01-03T00:00:00+08:00,140\n", encoding="utf-8")
    assert run(site, url, "import", "readings", str(more)) == 0
    assert capsys.readouterr().out.rstrip().endswith(": new 1, identical 4, rejected 0")


def test_export_import_round_trip(site, tmp_path):
    src = f"embedded:{tmp_path / 'a'}"
    dst = f"embedded:{tmp_path / 'b'}"
    (tmp_path / "good.csv").write_text(GOOD, encoding="utf-8")
    assert run(site, src, "import", "readings", str(tmp_path / "good.csv")) == 0
    out = tmp_path / "export.csv"
    assert run(site, src, "export", "readings", "--start", "2024-12-31", "--end", "2025-01-02", "--out", str(out)) == 0
    assert run(site, dst, "import", "readings", str(out)) == 0
    a, b = open_store(src), open_store(dst)
    pd.testing.assert_frame_equal(a.read_samples()[["meter_id", "time", "value"]],
                                  b.read_samples()[["meter_id", "time", "value"]])
    cons = tmp_path / "cons.csv"
    assert run(site, src, "export", "consumption", "--freq", "day", "--start", "2025-01-01", "--end", "2025-01-01",
               "--out", str(cons)) == 0
    got = pd.read_csv(cons)
    assert list(got.columns) == ["meter_id", "period_start", "quantity", "unit", "estimated_share"]
    e0 = got[got["meter_id"] == "HB-0001-E0"]
    assert e0["quantity"].tolist() == [30.25 * 80]  # sample main meter has a CT multiplier of 80
    assert e0["unit"].tolist() == ["kWh"] and e0["period_start"].tolist() == ["2025-01-01T00:00:00+08:00"]


def test_bills_import_validation(site, tmp_path, capsys):
    url = f"embedded:{tmp_path / 'data'}"
    bills = tmp_path / "bills.csv"
    bills.write_text("institution_id,energy,period_start,period_end,quantity,unit,cost_cny\n"
                     "HB-0001,diesel,2025-01-01,2025-01-31,300,L,2100\n"
                     "HB-0404,diesel,2025-01-01,2025-01-31,300,L,2100\n"
                     "HB-0001,gasoline,2025-02-01,2025-01-31,300,m3,\n", encoding="utf-8")
    assert run(site, url, "import", "bills", str(bills)) == 1
    err = capsys.readouterr().err
    assert f"{bills}:3: institution_id: unknown institution 'HB-0404'" in err
    assert f"{bills}:4: period_end: is before period_start" in err
    assert f"{bills}:4: unit: unit 'm3' does not fit energy 'gasoline'" in err
    store = open_store(url)
    assert store.read_bills().empty
    store.close()
    assert "nothing was imported" in err and "rejected 2 (rows with a problem" in err  # lines 3 and 4
    header = "institution_id,energy,period_start,period_end,quantity,unit,cost_cny\n"
    bills.write_text(header + "HB-0001,diesel,2025-01-01,2025-01-31,300,L,2100\n", encoding="utf-8")
    assert run(site, url, "import", "bills", str(bills)) == 0
    assert capsys.readouterr().out.rstrip().endswith(": new 1, identical 0, rejected 0")
    assert run(site, url, "import", "bills", str(bills)) == 0
    assert capsys.readouterr().out.rstrip().endswith(": new 0, identical 1, rejected 0")
    bills.write_text(header + "HB-0001,diesel,2025-01-01,2025-01-31,300,L,2150\n"  # a corrected bill
                     "HB-0001,diesel,2025-02-01,2025-02-28,280,L,1960\n", encoding="utf-8")
    assert run(site, url, "import", "bills", str(bills)) == 1  # bills are append-only
    assert "rejected 1 (rows with a problem" in capsys.readouterr().err
    assert run(site, url, "import", "bills", str(bills), "--replace", "--reason", "corrected invoice") == 0
    assert capsys.readouterr().out.rstrip().endswith(": new 1, identical 0, replaced 1, rejected 0")


def test_bills_are_append_only_with_explicit_replace(site, tmp_path, capsys):
    """Issue 15 item 2: another quantity for a stored bill is refused (it was silently replaced);
    --replace corrects it and keeps the old value in the audit trail; overlaps name both lines."""
    from storage.submissions import SubmissionBook

    url = f"embedded:{tmp_path / 'data'}"
    bills = tmp_path / "bills.csv"
    head = "institution_id,energy,period_start,period_end,quantity,unit,cost_cny\n"
    bills.write_text(head + "HB-0001,diesel,2025-01-01,2025-01-31,300,L,2100\n", encoding="utf-8")
    assert run(site, url, "import", "bills", str(bills)) == 0
    bills.write_text(head + "HB-0001,diesel,2025-01-01,2025-01-31,320,L,2100\n", encoding="utf-8")
    assert run(site, url, "import", "bills", str(bills)) == 1
    err = capsys.readouterr().err
    assert "HB-0001 diesel 2025-01-01..2025-01-31: quantity differs from the stored bill (300 L, 2100 CNY stored, " \
           "320 L, 2100 CNY here)" in err
    assert "rejected: nothing was imported" in err
    assert run(site, url, "import", "bills", str(bills), "--replace", "--reason", "账单更正") == 0
    store = open_store(url)
    assert store.read_bills()["quantity"].tolist() == [320.0]
    store.close()
    audit = SubmissionBook(tmp_path / "data").audit(["HB-0001"])
    assert audit[["action", "field", "old", "new"]].values.tolist() == [
        ["import", "quantity", None, "300 L"], ["import", "cost_cny", None, "2100"],
        ["replace", "quantity", "300 L", "320 L"]]
    assert audit["reason"].tolist()[-1] == "账单更正" and set(audit["source"]) == {"import"}
    bills.write_text(head + "HB-0001,diesel,2025-01-20,2025-02-19,10,L,\n"
                            "HB-0001,heat,2025-03-01,2025-03-31,10,GJ,\n"
                            "HB-0001,heat,2025-03-15,2025-04-14,10,GJ,\n", encoding="utf-8")
    assert run(site, url, "import", "bills", str(bills), "--replace") == 1
    err = capsys.readouterr().err
    assert f"{bills}:3: period_start: period 2025-03-01..2025-03-31 overlaps line 4 (2025-03-15..2025-04-14)" in err
    assert f"{bills}:4: period_start: period 2025-03-15..2025-04-14 overlaps line 3 (2025-03-01..2025-03-31)" in err
    bills.write_text(head + "HB-0001,diesel,2025-01-20,2025-02-19,10,L,\n", encoding="utf-8")
    assert run(site, url, "import", "bills", str(bills), "--replace") == 1
    assert "HB-0001 diesel 2025-01-20..2025-02-19 overlaps the stored bill 2025-01-01..2025-01-31" in \
        capsys.readouterr().err


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["HB-0001-E0", "HB-0001-W0", "nope", ""]),
                          st.integers(min_value=631152000, max_value=1_700_000_000),  # 1990 .. 2023
                          st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5))),
                min_size=1, max_size=20))
def test_parser_accepts_exactly_the_valid_rows(tmp_path_factory, rows):
    d = tmp_path_factory.mktemp("p")
    write_sample(d, n_institutions=1)
    registry = load_registry(d / "civicwatt.yaml")
    lines = ["meter_id,time,value"]
    for meter, t, value in rows:
        stamp = pd.Timestamp(t, unit="s", tz="UTC").tz_convert("Asia/Shanghai").isoformat()
        lines.append(f"{meter},{stamp},{str(value).replace(',', ';')}")
    path = d / "r.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def valid(meter, value):
        try:
            x = float(str(value).replace(",", ";"))
        except ValueError:
            return False
        return meter in registry.meter_by_id and 0 <= x <= 1e12

    keys = {}
    conflict = False
    for meter, t, value in rows:
        if valid(meter, value):
            x = float(str(value))
            conflict |= keys.setdefault((meter, t), x) != x
    expect_ok = all(valid(m, v) for m, _, v in rows) and not conflict
    try:
        out = parse_readings(path, registry)
    except ConfigError as exc:
        assert not expect_ok, exc
        assert all(p.line >= 2 for p in exc.problems)
    else:
        assert expect_ok
        assert len(out) == len(keys)


def test_malformed_registry_writes_nothing(site, tmp_path, capsys):
    reg = site / "civicwatt.yaml"
    reg.write_text(reg.read_text(encoding="utf-8").replace("region: sjz", "region: atlantis", 1), encoding="utf-8")
    (tmp_path / "good.csv").write_text(GOOD, encoding="utf-8")
    assert run(site, f"embedded:{tmp_path / 'never'}", "import", "readings", str(tmp_path / "good.csv")) == 1
    err = capsys.readouterr().err
    assert "unknown region 'atlantis'" in err and f"{reg}:" in err
    assert not (tmp_path / "never").exists()  # the store was never opened


# -- hardening (issue 15): physical lines, ranges, encodings, no traceback --------------------------

NOW = pd.Timestamp("2026-06-01T00:00:00Z")
BILLS_HEADER = "institution_id,energy,period_start,period_end,quantity,unit,cost_cny\n"


def problems_of(parse, path, registry, **kw):
    with pytest.raises(ConfigError) as info:
        parse(path, registry, **kw)
    return [(p.line, p.field, p.message) for p in info.value.problems]


def test_lines_are_physical_after_blank_lines_and_quoted_newlines(site):
    registry = load_registry(site / "civicwatt.yaml")
    path = site / "r.csv"
    path.write_text("meter_id,time,value\n"
                    "\n"                                                    # 2: blank
                    "HB-0001-E0,2025-01-01T00:00:00+08:00,1\n"              # 3
                    '"HB-0001-E0","2025-01-01T01:00:00+08:00","2\n5"\n'     # 4-5: a quoted newline
                    "   \n"                                                 # 6: blank
                    ",,\n"                                                  # 7: empty fields only
                    "HB-0001-E0,2025-01-01T02:00:00+08:00,-3\r\n"           # 8
                    "HB-0001-E0,2025-01-01T03:00:00+08:00,x\r"              # 9 (a lone CR ends a line too)
                    "HB-9999-E0,2025-01-01T04:00:00+08:00,4\n", encoding="utf-8")  # 10
    got = problems_of(parse_readings, path, registry)
    assert [(line, field) for line, field, _ in got] == [(4, "value"), (8, "value"), (9, "value"), (10, "meter_id")]
    assert got[0][2] == r"'2\x0a5' is not a number"  # escaped: one line per problem


def test_ragged_rows_are_clean_problems_not_tracebacks(site):
    """Rows with one field too many made pandas take the first column as an index: a
    duplicate then crashed with IndexError (17 of 10,000 fuzzed files)."""
    registry = load_registry(site / "civicwatt.yaml")
    path = site / "r.csv"
    path.write_text("meter_id,time,value\n0,HB-0001-E0,2025-01-01T00:00:00+08:00,1\n\n"
                    "5,HB-0001-E0,2025-01-01T00:00:00+08:00,2\n", encoding="utf-8")
    assert problems_of(parse_readings, path, registry) == [
        (2, "-", "has 4 fields, expected 3 (meter_id,time,value)"), (4, "-", "has 4 fields, expected 3 (meter_id,time,value)")]
    path.write_text('meter_id,time,value\nHB-0001-E0,2025-01-01T00:00:00+08:00,1\n\nHB-0001-E0,"2025-01-01\n,3\n',
                    encoding="utf-8")
    assert problems_of(parse_readings, path, registry) == [(4, "-", "a quoted field opened on this line is never closed")]
    path.write_text("meter_id,time\nHB-0001-E0,2025-01-01T00:00:00+08:00\n", encoding="utf-8")
    assert problems_of(parse_readings, path, registry) == [
        (1, "header", "expected columns meter_id,time,value, found 'meter_id,time'")]
    path.write_text("", encoding="utf-8")
    assert problems_of(parse_readings, path, registry)[0][:2] == (1, "header")
    # found by the fuzz campaign: a file cut short in its last row was padded with empty fields and
    # accepted (a bill without its cost); a trailing comma stays harmless
    bills = site / "b.csv"
    bills.write_text(BILLS_HEADER + "HB-0001,diesel,2025-01-01,2025-01-31,300,L,2100,\n"
                     "HB-0001,diesel,2025-02-01,2025-02-28,300,L", encoding="utf-8")
    assert problems_of(parse_bills, bills, registry) == [
        (3, "-", f"has 6 fields, expected 7 ({BILLS_HEADER.strip()})")]


def test_same_second_duplicate_names_the_other_line(site):
    registry = load_registry(site / "civicwatt.yaml")
    path = site / "r.csv"
    path.write_text("meter_id,time,value\n"
                    "HB-0001-E0,2025-01-01T00:00:00.1+08:00,100\n"
                    "HB-0001-E0,2025-01-01T00:00:00.2+08:00,100.0\n"   # the same second, the same value: one sample
                    "HB-0001-E0,2025-01-01T00:00:00.9+08:00,101\n", encoding="utf-8")
    assert problems_of(parse_readings, path, registry) == [
        (2, "value", "same meter and second as line 4, with another value: '100' here, '101' there"),
        (3, "value", "same meter and second as line 4, with another value: '100.0' here, '101' there"),
        (4, "value", "same meter and second as line 2, with another value: '101' here, '100' there")]
    path.write_text("meter_id,time,value\nHB-0001-E0,2025-01-01T00:00:00.1+08:00,100\n"
                    "HB-0001-E0,2025-01-01T00:00:00.7+08:00,100\n", encoding="utf-8")
    out = parse_readings(path, registry)
    assert out["time"].tolist() == [pd.Timestamp("2024-12-31T16:00:00Z")]  # kept to the second, as stored


def test_readings_out_of_range_are_rejected(site):
    registry = load_registry(site / "civicwatt.yaml")
    path = site / "r.csv"
    path.write_text("meter_id,time,value\n"
                    "HB-0001-E0,1600-01-01T00:00:00+08:00,1\n"
                    "HB-0001-E0,1989-12-31T23:59:59+08:00,1\n"
                    "HB-0001-E0,1990-01-01T00:00:00+08:00,1\n"          # the first instant accepted
                    "HB-0001-E0,2026-06-01T23:59:59Z,2\n"                # within a day of now
                    "HB-0001-E0,2026-06-02T00:00:01Z,3\n"
                    "HB-0001-E0,2025-01-01T00:00:00Z,1e308\n"
                    "HB-0001-E0,2025-01-01T01:00:00Z,1e12\n"             # the bound itself is accepted
                    "HB-0001-E0,2025-01-01T02:00:00Z,inf\n"
                    "HB-0001-E0,2025-01-01T03:00:00Z,nan\n"
                    "HB-0001-G0,2025-01-01T00:00:00Z,42949672.96\n", encoding="utf-8")  # at the rollover
    got = problems_of(parse_readings, path, registry, now=NOW)
    assert [(line, field) for line, field, _ in got] == [(2, "time"), (3, "time"), (6, "time"), (7, "value"),
                                                       (9, "value"), (10, "value"), (11, "value")]
    assert got[0][2] == "'1600-01-01T00:00:00+08:00' is before 1990-01-01"
    assert got[2][2] == "'2026-06-02T00:00:01Z' is more than a day in the future (after 2026-06-02T00:00Z)"
    assert got[3][2] == "'1e308' is implausibly large (more than 1e+12)"
    assert "rollover" in got[6][2]


def test_bills_out_of_range_are_rejected(site):
    registry = load_registry(site / "civicwatt.yaml")
    path = site / "b.csv"
    path.write_text(BILLS_HEADER +
                    "HB-0001,diesel,2025-01-01,9999-12-31,300,L,2100\n"
                    "HB-0001,diesel,1989-12-01,1989-12-31,300,L,2100\n"
                    "HB-0001,diesel,2025-02-01,2025-02-30,300,L,2100\n"
                    "HB-0001,diesel,2024-01-01,2025-01-01,300,L,2100\n"      # 367 days
                    "HB-0001,diesel,2024-01-01,2024-12-31,300,L,2100\n"      # a leap year: accepted
                    "HB-0001,heat,2025-01-01,2025-01-31,1e308,GJ,inf\n"
                    "HB-0001,heat,2025-03-01,2025-03-31,5,GJ,\n", encoding="utf-8")   # no cost: accepted
    got = problems_of(parse_bills, path, registry, today=date(2026, 6, 1))
    assert got == [
        (2, "period_end", "'9999-12-31' is more than a year ahead (after 2027-06-01)"),
        (2, "period_end", f"the period is {(date(9999, 12, 31) - date(2025, 1, 1)).days + 1} days long; a bill covers at most 366 days"),
        (3, "period_end", "'1989-12-31' is before 1990-01-01"),
        (3, "period_start", "'1989-12-01' is before 1990-01-01"),
        (4, "period_end", "'2025-02-30' is not a real date (YYYY-MM-DD)"),
        (5, "period_end", "the period is 367 days long; a bill covers at most 366 days"),
        (7, "cost_cny", "'inf' is not finite"),
        (7, "quantity", "'1e308' is implausibly large (more than 1e+12)")]


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16", "gb18030"])
def test_not_utf8_is_a_clean_error_naming_the_line(site, encoding):
    registry = load_registry(site / "civicwatt.yaml")
    path = site / "b.csv"
    path.write_bytes((BILLS_HEADER + "HB-0001,diesel,2025-01-01,2025-01-31,300,L,2100\n"
                      "HB-0001,diesel,2025-02-01,2025-02-28,300,L,2100\n"
                      f"HB-0001,diesel,2025-03-01,2025-03-31,300,L,{'février' if encoding == 'latin-1' else '三月'}\n"
                      ).encode(encoding))
    [(line, field, message)] = problems_of(parse_bills, path, registry)
    assert (line, field) == ((1, "-") if encoding == "utf-16" else (4, "-"))
    assert message.startswith("not UTF-8") and message.endswith("save the file as UTF-8")
    assert ("UTF-16" in message) == (encoding == "utf-16")


def test_echoed_values_are_cut_to_80_characters(site):
    registry = load_registry(site / "civicwatt.yaml")
    path = site / "r.csv"
    path.write_text(f"meter_id,time,value\n{'M' * 5000},2025-01-01T00:00:00Z,{'9' * 3000}x\n", encoding="utf-8")
    got = problems_of(parse_readings, path, registry)
    assert [m for _, _, m in got] == [f"unknown meter '{'M' * 80}…'", f"'{'9' * 80}…' is not a number"]


# -- streamed parsing (issue 11): blocks give what the whole file gives ---------------------------

_POOL = ["HB-0001-E0,2025-01-01T00:00:00+08:00,100.0\n", "HB-0001-E0,2025-01-01T01:00:00+08:00,101.5\n",
         "HB-0001-E0,2025-01-01T00:00:00+08:00,99\n",  # conflicts with the first
         "HB-0001-W0,2025-01-01T00:00:00Z,7\n", "\n", "  ,  ,\n", "HB-0001-E0,2025-01-01T02:00:00+08:00,x\r\n",
         '"HB-0001-W0","2025-01-01T03:00:00Z","8\n"\n', "HB-9999-E0,2025-01-01T00:00:00+08:00,1\n",
         "HB-0001-E0,2025-01-01T00:00:00+08:00,100.0,\n"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(_POOL), max_size=12), st.integers(1, 120))
def test_blocks_give_the_whole_file_verdict(tmp_path_factory, rows, block):
    """Parsed in blocks of `block` bytes, a file gives the rows, or the problem lines and
    fields, that it gives parsed whole (physical lines; conflicts between blocks too)."""
    d = tmp_path_factory.mktemp("blocks")
    registry = _registry(tmp_path_factory)
    path = d / "r.csv"
    path.write_bytes(("meter_id,time,value\n" + "".join(rows)).encode())

    def verdict(b):
        try:
            return parse_readings(path, registry, block_bytes=b).sort_values(["meter_id", "time"]).to_numpy().tolist()
        except ConfigError as exc:
            return sorted({(p.line, p.field) for p in exc.problems})

    assert verdict(block) == verdict(10**6)


_REGISTRY = []


def _registry(tmp_path_factory):
    if not _REGISTRY:
        d = tmp_path_factory.mktemp("registry")
        write_sample(d)
        _REGISTRY.append(load_registry(d / "civicwatt.yaml"))
    return _REGISTRY[0]
