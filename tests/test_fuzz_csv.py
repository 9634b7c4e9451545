"""Fuzzing the readings and bills CSV parsers (hypothesis, derandomized, bounded): every
mutated file is either accepted, agreeing with a row-by-row reference, or rejected with
problems that name the file, line and field — never another exception."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from civicwatt.sample import write_sample
from core.csvio import parse_bills, parse_readings
from core.registry import load_registry
from tests import support_fuzz as fz

FUZZ = settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzzcsv")
    write_sample(d, n_institutions=2)
    return d, load_registry(d / "civicwatt.yaml")


def check(site, name: str, data: bytes, parse, expected, **kw) -> None:
    d, registry = site
    path = fz.write(d, name, data)
    verdict, value = fz.outcome(lambda: parse(path, registry, **kw))
    assert verdict != "crash", f"{type(value).__name__}: {value} for {data[:300]!r}"
    want = expected(data, registry)
    if verdict == "rejected":
        assert fz.rejection_is_clean(value, str(path)), str(value)
        assert want is not True, f"rejected a valid file: {value} for {data[:300]!r}"
    else:
        assert want is not False, f"accepted an invalid file {data[:300]!r}"


@FUZZ
@given(st.randoms(use_true_random=False))
def test_fuzzed_readings_are_accepted_or_cleanly_rejected(site, rnd: random.Random):
    data = fz.encode(rnd, fz.mutate_text(rnd, fz.READINGS_GOOD))
    check(site, "readings.csv", data, parse_readings, fz.expected_readings, now=fz.NOW)


@FUZZ
@given(st.randoms(use_true_random=False))
def test_fuzzed_bills_are_accepted_or_cleanly_rejected(site, rnd: random.Random):
    data = fz.encode(rnd, fz.mutate_text(rnd, fz.BILLS_GOOD))
    check(site, "bills.csv", data, parse_bills, fz.expected_bills, today=fz.TODAY)


def test_the_unmutated_files_are_accepted(site):
    """The fuzzers start from valid files (else every verdict would be a rejection)."""
    d, registry = site
    assert len(parse_readings(fz.write(d, "r.csv", fz.READINGS_GOOD.encode()), registry, now=fz.NOW)) == 4
    assert len(parse_bills(fz.write(d, "b.csv", fz.BILLS_GOOD.encode()), registry, today=fz.TODAY)) == 3
    assert fz.expected_readings(fz.READINGS_GOOD.encode(), registry) is True
    assert fz.expected_bills(fz.BILLS_GOOD.encode(), registry) is True
