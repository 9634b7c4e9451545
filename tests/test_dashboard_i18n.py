"""Every label the dashboard shows exists in Chinese and English; the formats."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.vocab import CATEGORIES, ENERGIES, SUBITEMS
from dashboard.data import INDICATORS
from dashboard.i18n import LANGS, TEXT, compact, local_time, pct, quantity, t, typeset, unit
from quotas.ranking import LEVEL_ORDER

SOURCES = sorted((Path(__file__).resolve().parent.parent / "dashboard").rglob("*.py"))


def test_every_literal_key_used_in_the_code_is_translated():
    used: set[str] = set()
    for f in SOURCES:
        used |= set(re.findall(r"""\bt\(\s*["']([a-z0-9_]+)["']\s*[,)]""", f.read_text(encoding="utf-8")))
    assert len(used) > 40  # the scan finds the labels
    missing = sorted(k for k in used if k not in TEXT)
    assert missing == []


def test_dynamic_keys_and_both_languages():
    keys = ([f"cat_{c}" for c in CATEGORIES] + [f"en_{e}" for e in ENERGIES] + [f"sub_{s}" for s in SUBITEMS]
            + [f"ind_{i}" for i in INDICATORS] + [f"lvl_{lv}" for lv in LEVEL_ORDER]
            + [f"role_{r}" for r in ("admin", "region", "institution")])
    for key in keys:
        assert key in TEXT, key
    for key, entry in TEXT.items():
        assert set(entry) == set(LANGS), key
        # a forgotten translation shows as the same text twice (statistics' symbols excepted)
        assert entry["zh"] != entry["en"] or key in ("mv_r2", "mv_cvrmse", "mv_nmbe"), key
    assert t("nav_ranking", "zh") == "排名" and t("nav_ranking", "en") == "Rankings"
    assert t("nav_ranking", "fr") == "Rankings"  # a language without the label: English
    assert t("nav_ranking", None) == "排名"  # none chosen yet: the default, Chinese
    assert t("no_such_key", "en") == "no_such_key"


# -- the one home of formats ------------------------------------------------------------------

SUFFIX = {"万亿": 1e12, "亿": 1e8, "万": 1e4, "T": 1e12, "B": 1e9, "M": 1e6, "k": 1e3, "": 1.0}


def _parse(text: str) -> float:
    suffix = next(s for s in SUFFIX if text.endswith(s))  # longest first, "" last
    return float(text.removesuffix(suffix).replace(",", "")) * SUFFIX[suffix]


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=1e-3, max_value=1e12), st.sampled_from(["zh", "en"]), st.integers(2, 4))
def test_compact_numbers_read_back_within_their_digits(x, lang, digits):
    """A compact number is `x` rounded to `digits` significant digits, in 万 / 亿 in
    Chinese and k / M / B in English, with at most three digits before the point in
    English and four in Chinese."""
    text = compact(x, lang, digits)
    assert _parse(text) == pytest.approx(x, rel=0.5 * 10 ** (1 - digits) + 1e-12)
    head = text.rstrip("万亿TBMk").split(".")[0].replace(",", "")
    if lang == "zh":
        assert not any(ch in text for ch in "kMBT")
        assert ("亿" in text) == (_parse(text) >= 1e8) and len(head) <= 4
    else:
        assert "万" not in text and "亿" not in text and len(head) <= 3


def test_units_are_typeset_for_the_language():
    assert unit("m3/person", "zh") == "m³/人" and unit("m3/person", "en") == "m³/person"
    assert unit("kgce/m2", "zh") == "kgce/m²" and unit("tCO2", "en") == "tCO₂" and unit("CNY", "zh") == "元"
    assert unit("kWh", "zh") == "kWh" and unit("furlong", "en") == "furlong"  # unknown: as written
    zh = typeset("人均用水量 12.5 m3/person，总量 6,960 m3，3.8 kgce/m2，403 tCO2", "zh")
    assert zh == "人均用水量 12.5 m³/人，总量 6,960 m³，3.8 kgce/m²，403 tCO₂"
    assert typeset("water 12.5 m3/person; HB-0001-W0 m3x", "en") == "water 12.5 m³/person; HB-0001-W0 m3x"
    assert quantity(float("nan"), "m3", "zh") == "—" and quantity(1234.56, "kgce/m2", "en", 1) == "1,234.6 kgce/m²"


def test_percentages_and_local_times():
    assert pct(0.1096, "zh", 2) == "10.96%" and pct(0.1096, "en", 2) == "10.96 %"
    assert pct(-0.00001, "en", 2) == "0.00 %" and pct(None, "zh") == "—"
    assert local_time("2026-03-01T00:00:00+00:00", "Asia/Shanghai", "zh") == "2026-03-01 08:00"
    assert local_time("2026-03-01T00:00:00", "Asia/Shanghai", "en") == "2026-03-01 08:00"  # naive is UTC
    assert local_time(None, "Asia/Shanghai", "zh") == "—"
