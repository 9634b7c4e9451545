"""A year of simulated data through the whole alert chain: rules -> outbox -> a real webhook.

Projected breach -> actual breach -> recovery, with reminders, and nothing sent twice."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from alerts.channels import ChannelsConfig, WebhookChannel
from alerts.outbox import Outbox
from alerts.rules import QUOTA_RULES, evaluate_alerts
from core.registry import Institution, Meter, Region, Registry
from quotas.config import QuotaConfig, Target
from storage import open_store
from tests.support_alerts_servers import WebhookServer

TZ = "Asia/Shanghai"
LIMIT_TCE = 50.0
KGCE_PER_KWH = 0.1229  # GB/T 2589-2020 electricity, equivalent value (the shipped factor set)
REMINDER_DAYS = 30


def daily_kwh(inst: str, day: pd.DatetimeIndex) -> np.ndarray:
    y, m = day.year.to_numpy(), day.month.to_numpy()
    if inst == "X":  # 2024: 1000 kWh/day; 2025: 1200 kWh/day (too much); 2026: back to 1000
        return np.where(y == 2025, 1200.0, 1000.0)
    # Y: a bad start (1500 kWh/day in Jan-Feb 2025), then thrifty (300 kWh/day)
    return np.where((y == 2025) & (m <= 2), 1500.0, np.where(y == 2025, 300.0, 1000.0))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    reg = Registry(
        regions=(Region(id="hebei", name="河北省"),),
        institutions=tuple(Institution(id=i, name=f"单位{i}", region="hebei", category="government",
                                       floor_area_m2=10000, occupants=300) for i in ("X", "Y")),
        meters=tuple(Meter(id=f"{i}-E0", institution=i, energy="electricity") for i in ("X", "Y")))
    store = open_store(f"embedded:{tmp_path_factory.mktemp('year') / 'store'}", tz=TZ)
    store.set_meters(reg.meters_frame())
    days = pd.date_range("2024-01-01", "2026-02-01", freq="D", tz=TZ)
    frames = []
    for inst in ("X", "Y"):
        use = daily_kwh(inst, days[:-1])
        index = 10_000.0 + np.concatenate([[0.0], np.cumsum(use)])
        frames.append(pd.DataFrame({"meter_id": f"{inst}-E0", "time": days.tz_convert("UTC"), "value": index,
                                    "quality": 0}))
    store.write_samples(pd.concat(frames, ignore_index=True))
    cfg = QuotaConfig(targets=tuple(Target(id=f"{i}-2025", year=2025, institution=i, limits={"energy_tce": LIMIT_TCE})
                                    for i in ("X", "Y")), projection="flat")
    yield reg, store, cfg
    store.close()


def test_year_projected_actual_recovery(world, tmp_path):
    reg, store, cfg = world
    hook = WebhookServer().start()
    try:
        box = Outbox(tmp_path / "outbox", ChannelsConfig(channels=[WebhookChannel(name="hook", url=hook.url)],
                                                        reminder_hours=REMINDER_DAYS * 24))
        dates = [date(2025, 1, 8) + timedelta(days=7 * k) for k in range(54)]  # weekly to 2026-01-07
        for d in dates:
            now = pd.Timestamp(d).tz_localize(TZ).to_pydatetime()
            alerts = evaluate_alerts(store, reg, cfg, d, rules=QUOTA_RULES)
            box.submit(alerts, now=now, rules=QUOTA_RULES)
            box.deliver_pending(now=now)
            if d == date(2025, 1, 8):  # a second run on the same day changes nothing
                box.submit(evaluate_alerts(store, reg, cfg, d, rules=QUOTA_RULES), now=now, rules=QUOTA_RULES)
                assert box.deliver_pending(now=now).sent == 0
        got = [(b["institution_id"], b["rule"], b["notification"], b["first_seen"][:10],
                b.get("resolved_at", "")[:10]) for b in hook.bodies]
        bodies = hook.bodies
    finally:
        hook.stop()

    # Nothing sent twice: every notification is unique in (key, kind, reminder number).
    seen = Counter((b["key"], b["notification"], b.get("reminder"), b["first_seen"]) for b in bodies)
    assert max(seen.values()) == 1
    assert len({b["delivery_id"] for b in bodies}) == len(bodies)

    # X, computed independently: 1200 kWh/day in 2025, limit 50 tce.
    def x_ytd_tce(d: date) -> float:
        return (d - date(2025, 1, 1)).days * 1200 * KGCE_PER_KWH / 1000
    breach_day = next(d for d in dates if x_ytd_tce(d) > LIMIT_TCE)
    assert breach_day == date(2025, 12, 10)
    x = [(rule, kind) for inst, rule, kind, *_ in got if inst == "X"]
    # projected breach from the first week; a reminder every time 30 days have passed since
    # the last notification; superseded by the actual breach; that one resolves when 2025 ends.
    reminders, last = 0, dates[0]
    for d in dates[1:]:
        if d >= breach_day:
            break
        if (d - last).days >= REMINDER_DAYS:
            reminders, last = reminders + 1, d
    assert reminders >= 3
    assert x == ([("projected_breach", "open")] + [("projected_breach", "reminder")] * reminders
                 + [("dual_control_exceeded", "open"), ("projected_breach", "resolved"),
                    ("dual_control_exceeded", "resolved")])
    x_bodies = [b for b in bodies if b["institution_id"] == "X"]
    opened = x_bodies[0]
    assert opened["first_seen"].startswith("2025-01-08") and opened["limit"] == LIMIT_TCE
    assert opened["projected"] == pytest.approx(1200 * 365 * KGCE_PER_KWH / 1000, rel=1e-6)
    assert opened["actual"] == pytest.approx(x_ytd_tce(date(2025, 1, 8)), rel=1e-9)
    exceeded = next(b for b in x_bodies if b["rule"] == "dual_control_exceeded")
    assert exceeded["first_seen"].startswith(breach_day.isoformat())
    assert exceeded["actual"] == pytest.approx(x_ytd_tce(breach_day), rel=1e-9)
    sup = next(b for b in x_bodies if b["rule"] == "projected_breach" and b["notification"] == "resolved")
    assert sup["resolution"] == "superseded by dual_control_exceeded"
    assert sup["resolved_at"].startswith(breach_day.isoformat())
    assert x_bodies[-1]["resolved_at"].startswith("2026-01-07") and x_bodies[-1]["resolution"] == "period ended"

    # Y: projected breach, then thrift brings the projection back under the limit.
    def y_projected(d: date) -> float:
        days = (d - date(2025, 1, 1)).days
        kwh = sum(1500 if (date(2025, 1, 1) + timedelta(days=i)).month <= 2 else 300 for i in range(days))
        return kwh * KGCE_PER_KWH / 1000 / (days / 365)
    status = ["projected_breach" if y_projected(d) > LIMIT_TCE else
              "projected_near_limit" if y_projected(d) >= 0.95 * LIMIT_TCE else None for d in dates]
    y = [(rule, kind) for inst, rule, kind, *_ in got if inst == "Y"]
    expect: list[tuple[str, str]] = []
    cur, last = None, None
    for d, st in zip(dates, status, strict=True):
        if st != cur:
            if st is not None:
                expect.append((st, "open"))
                last = d
            if cur is not None:
                expect.append((cur, "resolved"))
            cur = st
        elif cur is not None and (d - last).days >= REMINDER_DAYS:
            expect.append((cur, "reminder"))
            last = d
    assert y == expect
    assert y[0] == ("projected_breach", "open") and ("projected_breach", "resolved") in y
    assert not any(rule == "dual_control_exceeded" for rule, _ in y)
    y_res = next(b for b in bodies if b["institution_id"] == "Y" and b["notification"] == "resolved")
    assert y_res["resolution"] == "cleared"
    assert box.list_alerts(open_only=True) == []


@pytest.mark.parametrize("at", [date(2025, 3, 10), date(2025, 12, 31), date(2025, 1, 1)])
def test_targets_read_this_year_as_one_span_equal_its_months(world, at):
    """`evaluate_alerts` reads this year as one span (`_target_use`): the targets, with
    last year's seasonal shape, equal those of month-by-month sums of both years, and X's
    year to date is its 1200 kWh a day."""
    from models.api import energy_use, indicators
    from models.factors import load_factors
    from quotas.evaluate import evaluate_targets

    reg, store, cfg = world
    cfg = dataclasses.replace(cfg, projection="last_year")
    details: dict = {}
    evaluate_alerts(store, reg, cfg, at, rules=QUOTA_RULES, details=details)
    got = details["targets"].set_index("target_id")
    factors = load_factors()
    months = energy_use(store, reg, pd.Timestamp("2024-01-01"), pd.Timestamp(at), "day", factors, sums="month")
    want = evaluate_targets(cfg, indicators(months, reg, factors, cfg.basis, freq="day", by_period="month"),
                            as_of=pd.Timestamp(at), regions=reg, year=2025).set_index("target_id")
    for col in ("actual", "elapsed_share", "projected"):
        np.testing.assert_allclose(got[col].to_numpy(float), want.loc[got.index, col].to_numpy(float), rtol=1e-12)
    assert (got["method"] == "last_year").all() and (got["status"] == want.loc[got.index, "status"]).all()
    assert got.at["X-2025", "actual"] == pytest.approx((at - date(2025, 1, 1)).days * 1200 * KGCE_PER_KWH / 1000)
