"""Fuzzing the registry loader (hypothesis, derandomized, bounded): field values of every
type and range, other encodings and text mutations give a registry exactly when the
mutation is valid, else problems naming file, line and field — never another exception."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from civicwatt.sample import sample_registry_doc
from core.registry import load_registry
from tests import support_fuzz as fz

DOC = sample_registry_doc(n_institutions=2)


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.randoms(use_true_random=False))
def test_fuzzed_registries_are_accepted_or_cleanly_rejected(tmp_path_factory, rnd: random.Random):
    data, want = fz.registry_bytes(rnd, DOC)
    path = fz.write(tmp_path_factory.mktemp("reg"), "civicwatt.yaml", data)
    verdict, value = fz.outcome(lambda: load_registry(path))
    assert verdict != "crash", f"{type(value).__name__}: {value} after {fz.CHANGES}"
    if verdict == "rejected":
        # YAML syntax errors keep PyYAML's multi-line text (core.yamlfile): file, line, field is what counts here
        assert fz.rejection_is_clean(value, str(path), one_line=False), str(value)
        assert want is not True, f"rejected a valid registry after {fz.CHANGES}: {value}"
    else:
        assert want is not False, f"accepted an invalid registry after {fz.CHANGES}"


def test_mutations_know_valid_from_invalid():
    """The oracle of the fuzzer itself: a few values whose verdict is known."""
    table = {field: ok for _, field, _, ok in fz.REGISTRY_FIELDS}
    assert table["floor_area_m2"](12.5) and not table["floor_area_m2"](float("inf"))
    assert table["occupants"](10) and not table["occupants"](True) and not table["occupants"](2.0)
    assert table["start"]("02-29") and not table["start"]("02-30")
    assert table["port"](502) and not table["port"](99999999)
