"""Alert rules on meter data: offline meters, incomplete days, abnormal use, imbalance.

Pure, vectorised functions on frames; `meter_alerts` does the store I/O.

Rules and their thresholds (named constants below, overridable per call):

* ``meter_offline`` (critical): a live (Modbus) meter whose last sample is older than
  N polling intervals at the evaluation time (domain.md §5): N is the one offline rule
  of `core.rules` (`OFFLINE_POLLS`, 3), the threshold the collectors use too, or its
  gateway's `offline_polls` when `MeterRuleSettings.gateways` holds the collectors'
  gateway options (`civicwatt collect --gateways FILE`). The alert scheduler of
  `civicwatt demo` and `civicwatt quotas check` do not read a gateways file: they use
  `OFFLINE_POLLS` (or `MeterRuleSettings.offline_polls`) for every meter. One open
  alert per meter for the whole outage (key period ``live``).
  Only meters expected to report: not a meter fed by CSV imports, and "never reported"
  only in a registry a collector polls (`expected_to_report`).
* ``data_completeness`` (warning): a meter whose last complete day has fewer than
  `COMPLETENESS_TARGET` (90 %) of the expected samples (domain.md §5), judged by
  `daily_completeness` (the one rule the dashboard and the monthly report use too): a
  day whose samples are all backfilled or imported is judged at the resolution it
  carries, any other day at the Modbus poll interval (meters fed only by imports, and
  Modbus meters not expected to report (`expected_to_report`): at their usual spacing
  of the last week). Not raised for a meter that is offline (that
  alert already says it). One open alert per meter while the days stay incomplete.
* ``abnormal_night_load`` (warning): main electricity or water meters whose mean
  hourly use between 00:00 and 05:00 of the day is above `BASE_LOAD_FACTOR` x its
  usual level (median of the previous `BASELINE_DAYS` nights) plus 3 median absolute
  deviations; a water meter with a usually dry night that now flows is the classic leak.
  Only for meters read at least hourly (a daily reading shows no night).
* ``abnormal_holiday_load`` (warning): the same test on the whole-day use of a
  non-working day against previous non-working days. Non-working days are those of the
  product's one calendar (`core.calendar`: weekends and public holidays, make-up
  workdays excepted); in a year the calendar does not know, weekends only, and the
  alert says so (extra ``calendar: weekdays_only``).
* ``step_change`` (warning up, info down): the median daily use of the last
  `STEP_WINDOW_DAYS` days differs from the median of the `BASELINE_DAYS` before by more
  than `STEP_FACTOR` (x1.5 up or /1.5 down): new equipment left on, a failed
  control, or a meter fault.
* ``submeter_imbalance`` (warning): over the last `BALANCE_DAYS` days the direct
  sub-meters of a meter add up to more than the parent (+2 % tolerance): a wiring,
  CT-ratio or multiplier error (domain.md §4).

Absolute guards keep trivial numbers quiet: a change smaller than `MIN_SHARE_OF_DAY`
of the meter's median daily use never alerts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from alerts.record import Alert
from core import localtime
from core.calendar import day_types
from core.rules import OFFLINE_POLLS
from core.schemas.gateways import GatewayOptions, offline_polls_of
from models.completeness import (
    COMPLETENESS_LOOKBACK_DAYS,
    COMPLETENESS_TARGET,
    daily_completeness,
    live_meters,
    sample_spacing,
)
from storage import quality

BASELINE_DAYS = 28  # four weeks of history for "usual" levels
MIN_BASELINE_DAYS = 7  # fewer days of history: no abnormal-use verdict
NIGHT_HOURS = (0, 5)  # local hours [0, 5): institutions are closed
BASE_LOAD_FACTOR = 1.5  # "well above its usual level": +50 %
STEP_WINDOW_DAYS = 7
STEP_FACTOR = 1.5
MIN_SHARE_OF_DAY = 0.02  # ignore changes below 2 % of the median daily use
BALANCE_DAYS = 7
BALANCE_TOLERANCE = 0.02  # sub-meters may exceed the parent by 2 % (meter accuracy class)
ABNORMAL_ENERGIES = ("electricity", "water")
HOURLY_S = 3600.0  # the night rule needs samples at least this often


@dataclass
class MeterRuleSettings:
    offline_polls: int = OFFLINE_POLLS  # meters of a gateway without options in `gateways`
    gateways: Mapping[str, GatewayOptions] = field(default_factory=dict)  # the collectors' gateway options
    completeness_target: float = COMPLETENESS_TARGET
    baseline_days: int = BASELINE_DAYS
    base_load_factor: float = BASE_LOAD_FACTOR
    step_factor: float = STEP_FACTOR
    balance_tolerance: float = BALANCE_TOLERANCE

    def offline_polls_by_meter(self, meters) -> dict[str, int]:
        """meter id -> offline threshold (polls) of every Modbus meter of `meters`."""
        return offline_polls_of(meters, self.gateways, self.offline_polls)


def _fmt(x: float) -> str:
    return f"{x:,.2f}"


# -- pure rules ---------------------------------------------------------------------

def registry_is_polled(last: pd.DataFrame) -> bool:
    """Does a collector feed these meters? True when any last sample (`last`:
    meter_id, time, quality) came from a poll or a collector's backfill rather than a
    CSV import (`storage.quality.IMPORTED`)."""
    if last.empty:
        return False
    q = last["quality"].to_numpy(np.int64) if "quality" in last else np.zeros(len(last), np.int64)
    return bool(((q & quality.IMPORTED) == 0).any())


def expected_to_report(live: pd.DataFrame, last: pd.DataFrame, polled: bool | None = None) -> pd.DataFrame:
    """The live meters of `live` (meter_id, institution_id, interval_s) that are
    expected to report: Modbus meters a collector polls, not meters fed by CSV imports
    (a registry written by `civicwatt init` keeps its `modbus` blocks even when its
    readings come from files). `last`: each meter's last sample (meter_id, time,
    quality).

    * a meter whose last sample was imported (quality IMPORTED) is fed by imports: not
      expected (the completeness rule then judges it at its usual spacing);
    * a meter with no sample at all is expected only when the registry is polled
      (`polled`; default `registry_is_polled(last)`), since a collector polls every
      Modbus meter of the registry;
    * any other Modbus meter (last sample polled or backfilled) is expected.
    """
    polled = registry_is_polled(last) if polled is None else polled
    q = last.set_index("meter_id")["quality"] if "quality" in last and len(last) else pd.Series(dtype=np.int64)
    q = live["meter_id"].map(q)
    never = q.isna().to_numpy()
    imported = (q.fillna(0).to_numpy(np.int64) & quality.IMPORTED) != 0
    return live[(never & polled) | (~never & ~imported)].reset_index(drop=True)


def offline_meters(last: pd.DataFrame, live: pd.DataFrame, as_of: pd.Timestamp,
                   polls: int | Mapping[str, int] = OFFLINE_POLLS, polled: bool | None = None) -> pd.DataFrame:
    """Live meters (meter_id, institution_id, interval_s) expected to report
    (`expected_to_report`) whose last sample (`last`: meter_id, time, quality) is older
    than `polls` x interval at `as_of`, or who never reported. `polls`: one threshold,
    or one per meter id (meters not in it: OFFLINE_POLLS). Returns meter_id,
    institution_id, last_time (NaT: never), silent_s, limit_s (polls x interval)."""
    df = expected_to_report(live, last, polled).merge(last[["meter_id", "time"]], on="meter_id", how="left")
    t = pd.to_datetime(df["time"], utc=True)
    silent = (as_of - t).dt.total_seconds()
    n = (df["meter_id"].map(polls).fillna(OFFLINE_POLLS).to_numpy(float) if isinstance(polls, Mapping)
         else np.full(len(df), float(polls)))
    limit = n * df["interval_s"].to_numpy(float)
    off = silent.isna() | (silent > limit)
    out = df.loc[off, ["meter_id", "institution_id"]].assign(last_time=t[off], silent_s=silent[off], limit_s=limit[off])
    return out.reset_index(drop=True)


def _robust_baseline(values: pd.DataFrame, value_col: str, key: str = "meter_id") -> pd.DataFrame:
    """median, MAD and count of `value_col` per key."""
    g = values.groupby(key)[value_col]
    med = g.median()
    mad = (values[value_col] - values[key].map(med)).abs().groupby(values[key]).median()
    return pd.DataFrame({"usual": med, "mad": mad, "n": g.size()})


def abnormal_levels(history: pd.DataFrame, today: pd.DataFrame, factor: float, typical_day: pd.Series,
                    min_days: int = MIN_BASELINE_DAYS) -> pd.DataFrame:
    """Generic "well above its usual level" test. `history`: meter_id, level (one row per
    past day); `today`: meter_id, level. Alerts where level > usual x factor + 3 MAD and
    the excess exceeds MIN_SHARE_OF_DAY of the meter's typical daily use."""
    if history.empty or today.empty:
        return pd.DataFrame(columns=["meter_id", "level", "usual", "limit"])
    base = _robust_baseline(history, "level")
    df = today.set_index("meter_id").join(base, how="inner")
    df = df[df["n"] >= min_days]
    limit = df["usual"] * factor + 3 * df["mad"]
    floor = typical_day.reindex(df.index).fillna(0.0) * MIN_SHARE_OF_DAY
    hit = (df["level"] > limit) & (df["level"] - df["usual"] > floor)
    out = df.assign(limit=limit)[hit]
    return out[["level", "usual", "limit"]].reset_index()


def step_changes(daily: pd.DataFrame, day_end: pd.Timestamp, window_days: int, baseline_days: int,
                 factor: float) -> pd.DataFrame:
    """meter_id, recent (median daily use of the last `window_days` before day_end),
    before (median of the `baseline_days` before them), ratio; rows where the ratio is
    above `factor` or below 1/factor."""
    if daily.empty:
        return pd.DataFrame(columns=["meter_id", "recent", "before", "ratio"])
    t = pd.to_datetime(daily["period_start"])
    w0 = day_end - pd.Timedelta(days=window_days)
    b0 = w0 - pd.Timedelta(days=baseline_days)
    recent = daily[(t >= w0) & (t < day_end)].groupby("meter_id")["quantity"].agg(["median", "size"])
    before = daily[(t >= b0) & (t < w0)].groupby("meter_id")["quantity"].agg(["median", "size"])
    df = recent.add_suffix("_r").join(before.add_suffix("_b"), how="inner")
    df = df[(df["size_r"] >= window_days - 1) & (df["size_b"] >= MIN_BASELINE_DAYS)]
    r, b = df["median_r"].to_numpy(float), df["median_b"].to_numpy(float)
    ratio = np.divide(r, b, out=np.full_like(r, np.inf), where=b > 1e-12)
    big = np.abs(r - b) > MIN_SHARE_OF_DAY * np.maximum(r, b) * 10  # at least 20 % of the larger level
    hit = ((ratio > factor) | (ratio < 1 / factor)) & big & ((b > 1e-12) | (r > 1e-12))
    return pd.DataFrame({"meter_id": df.index[hit], "recent": r[hit], "before": b[hit], "ratio": ratio[hit]})


# -- evaluation with store I/O --------------------------------------------------------

def is_non_working(days: pd.DatetimeIndex) -> np.ndarray:
    """True for the weekends and public holidays of local `days` (`core.calendar`; make-up
    workdays are working days; a year the calendar does not know: weekends only)."""
    return ~day_types(days, unknown="weekdays").working


def meter_alerts(store, registry, as_of: datetime | pd.Timestamp,
                 settings: MeterRuleSettings | None = None) -> list[Alert]:
    """Every meter-data alert at `as_of` (tz-aware; the last complete local day is the one
    before `as_of`'s day, unless `as_of` is exactly a midnight)."""
    from models.energy import submeter_balance_from_frames

    settings = settings or MeterRuleSettings()
    tz = registry.timezone
    as_of = pd.Timestamp(as_of)
    as_of = localtime.first_instant_of(as_of, tz)
    day_end = localtime.local_floor_one(as_of, "day", tz)
    day_start = localtime.local_floor_one(day_end - pd.Timedelta(seconds=1), "day", tz)
    day_label = day_start.strftime("%Y-%m-%d")
    stamp = as_of.isoformat()
    meters = registry.meters_frame()
    alerts: list[Alert] = []
    if meters.empty:
        return alerts

    # meter offline
    live = live_meters(meters)
    offline_ids: set[str] = set()
    if len(live):
        last = store.last_samples_before(as_of, live["meter_id"].tolist())
        off = offline_meters(last, live, as_of, settings.offline_polls_by_meter(registry.meters))
        live = expected_to_report(live, last)  # the completeness rule owes samples of these only
        offline_ids = set(off["meter_id"])
        for r in off.itertuples(index=False):  # one per offline meter
            since = "从未上报" if pd.isna(r.last_time) else f"自 {r.last_time.tz_convert(tz):%Y-%m-%d %H:%M} 起"
            since_en = "never reported" if pd.isna(r.last_time) else f"silent since {r.last_time.tz_convert(tz):%Y-%m-%d %H:%M}"
            hours = None if pd.isna(r.silent_s) else r.silent_s / 3600
            alerts.append(Alert.new(
                "meter_offline", "critical", f"meter:{r.meter_id}", "last_sample_age_h", as_of.strftime("%Y-%m-%d"),
                key_period="live", institution_id=r.institution_id, actual=hours,
                limit=r.limit_s / 3600,
                unit="h", first_seen=stamp,
                message_zh=f"计量表 {r.meter_id}（{r.institution_id}）离线：{since}无数据",
                message_en=f"Meter {r.meter_id} ({r.institution_id}) is offline: {since_en}"))

    # completeness of the last complete day
    hist_start = day_start - pd.Timedelta(days=settings.baseline_days + STEP_WINDOW_DAYS)
    samples = store.read_samples(day_start - pd.Timedelta(days=COMPLETENESS_LOOKBACK_DAYS), day_end,
                                 meters["meter_id"].tolist())
    hourly_ids: set[str] = set()  # meters with samples at least hourly: their night can be seen
    if len(samples):
        samples = samples.assign(time=pd.to_datetime(samples["time"], utc=True))
        live_interval = live.set_index("meter_id")["interval_s"].astype(float) if len(live) else pd.Series(dtype=float)
        spacing = sample_spacing(samples)
        hourly_ids = set(spacing.index[spacing <= HOURLY_S])
        comp = daily_completeness(samples, live_interval, day_start, day_end)
        comp = comp[(comp["share"] < settings.completeness_target) & ~comp["meter_id"].isin(offline_ids)]
        inst = meters.set_index("meter_id")["institution_id"]
        for r in comp.itertuples(index=False):
            alerts.append(Alert.new(
                "data_completeness", "warning", f"meter:{r.meter_id}", "completeness", day_label,
                key_period="daily", institution_id=inst.get(r.meter_id), actual=round(r.share * 100, 1),
                limit=settings.completeness_target * 100, unit="%", first_seen=stamp,
                extra={"samples": int(r.samples), "expected": int(r.expected), "max_gap_h": round(r.max_gap_s / 3600, 2)},
                message_zh=f"计量表 {r.meter_id} {day_label} 数据完整率 {r.share:.0%}，低于 90%（{r.samples}/{r.expected} 条，"
                           f"最长中断 {r.max_gap_s / 3600:.1f} 小时）",
                message_en=f"Meter {r.meter_id} data completeness on {day_label} was {r.share:.0%}, below 90 % "
                           f"({r.samples}/{r.expected} samples, longest gap {r.max_gap_s / 3600:.1f} h)"))

    # abnormal use on main electricity and water meters
    main = meters[meters["parent"].isna() & meters["energy"].isin(ABNORMAL_ENERGIES)]
    main = main[~main["meter_id"].isin(offline_ids)]
    if len(main):
        ids = main["meter_id"].tolist()
        daily = store.consumption("day", hist_start, day_end, ids)
        if len(daily):
            daily = daily.assign(period_start=pd.to_datetime(daily["period_start"]).dt.tz_convert(tz))
            typical = daily.groupby("meter_id")["quantity"].median()
            alerts += _abnormal_alerts(store, registry, main, daily, typical, day_start, day_end, settings, stamp,
                                       hourly_ids)
            steps = step_changes(daily, day_end, STEP_WINDOW_DAYS, settings.baseline_days, settings.step_factor)
            inst = main.set_index("meter_id")
            for r in steps.itertuples(index=False):
                up = r.ratio > 1
                unit = inst.at[r.meter_id, "unit"]
                alerts.append(Alert.new(
                    "step_change", "warning" if up else "info", f"meter:{r.meter_id}", "daily_use_median",
                    day_label, key_period="recent", institution_id=inst.at[r.meter_id, "institution_id"],
                    actual=r.recent, limit=r.before * (settings.step_factor if up else 1 / settings.step_factor),
                    unit=f"{unit}/d", first_seen=stamp, extra={"before": r.before, "ratio": round(float(r.ratio), 3)},
                    message_zh=f"计量表 {r.meter_id} 近 {STEP_WINDOW_DAYS} 天日用量 {_fmt(r.recent)} {unit}，"
                               f"较此前 {_fmt(r.before)} {unit} {'突增' if up else '突降'} {abs(r.ratio - 1):.0%}",
                    message_en=f"Meter {r.meter_id}: daily use of the last {STEP_WINDOW_DAYS} days {_fmt(r.recent)} {unit}, "
                               f"a step {'up' if up else 'down'} of {abs(r.ratio - 1):.0%} from {_fmt(r.before)} {unit}"))

    # sub-meter balance over the last days
    involved = meters[meters["parent"].notna() | meters["meter_id"].isin(meters["parent"])]
    if len(involved):
        cons = store.consumption("day", day_end - pd.Timedelta(days=BALANCE_DAYS), day_end, involved["meter_id"].tolist())
        if len(cons):
            bal = submeter_balance_from_frames(cons, meters, settings.balance_tolerance)
            bal = bal[bal["over_parent"]]
            for r in bal.itertuples(index=False):
                over = -r.unaccounted_share if not np.isnan(r.unaccounted_share) else np.nan
                alerts.append(Alert.new(
                    "submeter_imbalance", "warning", f"meter:{r.parent_meter_id}", "submeter_excess_share",
                    day_label, key_period="recent", institution_id=r.institution_id,
                    actual=None if np.isnan(over) else round(over * 100, 2), limit=settings.balance_tolerance * 100,
                    unit="%", first_seen=stamp,
                    extra={"parent_quantity": r.parent_quantity, "children_quantity": r.children_quantity,
                           "days": BALANCE_DAYS},
                    message_zh=f"计量表 {r.parent_meter_id} 近 {BALANCE_DAYS} 天分项表合计 {_fmt(r.children_quantity)} "
                               f"超过总表 {_fmt(r.parent_quantity)}，请检查接线、变比或倍率",
                    message_en=f"Sub-meters of {r.parent_meter_id} add up to {_fmt(r.children_quantity)} over the last "
                               f"{BALANCE_DAYS} days, more than the parent's {_fmt(r.parent_quantity)}: check wiring, "
                               f"CT ratio or multiplier"))
    return alerts


def _abnormal_alerts(store, registry, main: pd.DataFrame, daily: pd.DataFrame, typical: pd.Series,
                     day_start: pd.Timestamp, day_end: pd.Timestamp, settings: MeterRuleSettings,
                     stamp: str, hourly_ids: set[str]) -> list[Alert]:
    tz = registry.timezone
    day_label = day_start.strftime("%Y-%m-%d")
    inst = main.set_index("meter_id")
    out: list[Alert] = []
    # Night base load: hourly use between NIGHT_HOURS, today vs the previous nights; only
    # for meters read at least hourly (a daily reading spread over 24 h shows no night).
    ids = [m for m in main["meter_id"] if m in hourly_ids]
    hourly = (store.consumption("hour", day_start - pd.Timedelta(days=settings.baseline_days), day_end, ids)
              if ids else pd.DataFrame())
    if len(hourly):
        local = pd.to_datetime(hourly["period_start"]).dt.tz_convert(tz)
        night = hourly[(local.dt.hour >= NIGHT_HOURS[0]) & (local.dt.hour < NIGHT_HOURS[1])]
        nl = local[night.index]
        per_night = night.assign(day=localtime.local_floor(nl, "day", tz)).groupby(["meter_id", "day"], as_index=False)["quantity"].mean()
        per_night = per_night.rename(columns={"quantity": "level"})
        today = per_night[per_night["day"] == day_start]
        hist = per_night[per_night["day"] < day_start]
        hits = abnormal_levels(hist, today, settings.base_load_factor, typical / 24.0)
        for r in hits.itertuples(index=False):
            unit = inst.at[r.meter_id, "unit"]
            out.append(Alert.new(
                "abnormal_night_load", "warning", f"meter:{r.meter_id}", "night_base_load", day_label,
                key_period="recent", institution_id=inst.at[r.meter_id, "institution_id"], actual=r.level,
                limit=r.limit, unit=f"{unit}/h", first_seen=stamp, extra={"usual": r.usual},
                message_zh=f"计量表 {r.meter_id} {day_label} 夜间（0–5 时）基础负荷 {_fmt(r.level)} {unit}/h，"
                           f"明显高于平常的 {_fmt(r.usual)} {unit}/h",
                message_en=f"Meter {r.meter_id} night base load (00:00-05:00) on {day_label} was {_fmt(r.level)} "
                           f"{unit}/h, well above its usual {_fmt(r.usual)} {unit}/h"))
    # Holiday (non-working day) use vs previous non-working days.
    if is_non_working(pd.DatetimeIndex([day_start]))[0]:
        known = bool(day_types(pd.DatetimeIndex([day_start]), unknown="weekdays").known[0])
        d = daily[daily["period_start"] <= day_start]
        off = d[is_non_working(pd.DatetimeIndex(d["period_start"]))]
        off = off.rename(columns={"quantity": "level"})
        today = off[off["period_start"] == day_start][["meter_id", "level"]]
        hist = off[off["period_start"] < day_start][["meter_id", "level"]]
        hits = abnormal_levels(hist, today, settings.base_load_factor, typical, min_days=4)
        for r in hits.itertuples(index=False):
            unit = inst.at[r.meter_id, "unit"]
            out.append(Alert.new(
                "abnormal_holiday_load", "warning", f"meter:{r.meter_id}", "non_working_day_use", day_label,
                key_period="recent", institution_id=inst.at[r.meter_id, "institution_id"], actual=r.level,
                limit=r.limit, unit=unit, first_seen=stamp,
                extra={"usual": r.usual, "calendar": "holidays" if known else "weekdays_only"},
                message_zh=f"计量表 {r.meter_id} 节假日/周末 {day_label} 用量 {_fmt(r.level)} {unit}，"
                           f"明显高于平常节假日的 {_fmt(r.usual)} {unit}",
                message_en=f"Meter {r.meter_id} used {_fmt(r.level)} {unit} on the non-working day {day_label}, "
                           f"well above its usual {_fmt(r.usual)} {unit}"))
    return out

