"""Every month and year view reads the materialised consumption, never raw samples.

The ledger world is built twice; in the second copy the raw samples are deleted after
materialisation (the cons_hour / cons_day tables stay). A view that read raw samples
would come out different (empty, or without completeness) there."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from civicwatt.cli import main
from civicwatt.context import open_registry_store
from core.registry import load_registry
from dashboard.data import DataService
from quotas.submissions import MeteredSubmissions
from reports.ledger import build_ledger
from reports.monthly import monthly_report
from storage.embedded import EmbeddedStore
from tests.support_ledger_world import TZ, build


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    """(registry, {"full": args, "bare": args}): the same world, the second one without raw samples."""
    base = tmp_path_factory.mktemp("twins")
    reg_path, q_path, _url = build(base)
    shutil.copytree(base / "store", base / "bare")
    bare = EmbeddedStore(base / "bare", tz=TZ)
    bare._cur().execute("DELETE FROM sample")
    assert bare.count_samples() == 0 and bare.read_samples().empty
    bare.close()
    args = {name: ["--registry", str(reg_path), "--store", f"embedded:{base / name}", "--quotas", str(q_path)]
            for name in ("store", "bare")}
    return load_registry(reg_path), args, base


def _both(twins, fn):
    registry, _args, base = twins
    out = []
    for name in ("store", "bare"):
        store = open_registry_store(registry, f"embedded:{base / name}", create=False)
        try:
            out.append(fn(store, registry))
        finally:
            store.close()
    return out


def test_ledger_reads_no_raw_samples(twins):
    full, bare = _both(twins, lambda s, r: build_ledger(s, r, 2024).ledger)
    assert full["kgce"].sum() > 0
    pd.testing.assert_frame_equal(full, bare)


def test_monthly_report_reads_no_raw_samples(twins):
    full, bare = _both(twins, lambda s, r: monthly_report(s, r, "2024-03"))
    assert list(full.incomplete["institution_id"]) == ["G3", "H1"]  # the outage is seen without raw samples
    for sheet in ("institutions", "regions", "categories", "incomplete"):
        pd.testing.assert_frame_equal(getattr(full, sheet), getattr(bare, sheet))


def test_submissions_read_no_raw_samples(twins):
    full, bare = _both(twins, lambda s, r: MeteredSubmissions(s, r).months(2024))
    g3 = full[full["institution_id"] == "G3"].set_index("month")["completeness"]
    assert g3[pd.Timestamp("2024-03-01")] < 1 and g3[pd.Timestamp("2024-05-01")] == 1
    pd.testing.assert_frame_equal(full, bare)


def test_dashboard_year_views_read_no_raw_samples(twins):
    def views(store, registry):
        svc = DataService(registry, store, now=lambda: pd.Timestamp("2025-02-15 12:00", tz=TZ))
        ids = [m.id for m in registry.meters if m.institution == "G1"]
        return (svc.ranking_table(2024), svc.monthly_indicators(2024), svc.target_status(2024),
                svc.consumption("year", *svc.year_bounds(2024), ids))

    full, bare = _both(twins, views)
    assert full[3]["quantity"].sum() > 0
    for a, b in zip(full, bare, strict=True):
        pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("verb", [
    ["export", "consumption", "--freq", "day", "--start", "2024-01-01", "--end", "2024-04-01"],
    ["export", "consumption", "--freq", "month", "--start", "2024-01-01", "--end", "2025-01-01"],
    ["ledger", "--year", "2024"],
])
def test_file_verbs_read_no_raw_samples(twins, verb):
    _registry, args, base = twins
    texts = []
    for name in ("store", "bare"):
        out = base / f"{verb[0]}-{verb[-1]}-{name}.csv"
        a = [x for x in args[name] if verb[0] == "ledger" or (x != "--quotas" and not x.endswith("quotas.yaml"))]
        assert main([*verb, "--out", str(out), *a]) == 0
        texts.append(out.read_text(encoding="utf-8"))
    assert len(texts[0].splitlines()) > 3
    assert texts[0] == texts[1]


def test_quotas_check_reads_no_raw_samples(twins, capsys):
    _registry, args, base = twins
    said = []
    for name in ("store", "bare"):
        assert main(["quotas", "check", "--date", "2024-12-31", "--outbox", str(base / f"outbox-{name}"),
                     *args[name]]) in (0, 2)
        said.append(capsys.readouterr().out)
    assert "hebei" in said[0]
    assert said[0] == said[1]
