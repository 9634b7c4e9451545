"""Every label the dashboard shows exists in Chinese and English."""

from __future__ import annotations

import re
from pathlib import Path

from core.vocab import CATEGORIES, ENERGIES, SUBITEMS
from dashboard.data import INDICATORS
from dashboard.i18n import LANGS, TEXT, t
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
