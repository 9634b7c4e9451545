"""A small, fully known portfolio for the dashboard tests (helpers, no tests here).

Eight institutions of the sample portfolio (two cities), synthetic cumulative indices
with constant rates so every indicator has a closed form:

* electricity main meter: `ELEC_KW_PER_M2 x floor area` kW, all day;
* sub-meters: the sub-item shares of `SUB_SHARES` (90 % of the main: 10 % unaccounted);
* water: `WATER_M3_PER_PERSON_DAY x occupants` m3/day; gas: `GAS_M3_PER_M2_DAY x floor` m3/day.

History every 3 hours from 2025-01-01 (flagged backfilled), then every 15 minutes from the local midnight 8 days before, up to
`NOW`; one meter (`OFFLINE_METER`) stops 2 days before `NOW`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from civicwatt.sample import sample_registry_doc
from core import users as auth
from core.registry import Registry, validate_registry_doc
from storage import quality

TZ = "Asia/Shanghai"
NOW = pd.Timestamp("2026-03-10 12:00", tz=TZ)
HISTORY_START = pd.Timestamp("2025-01-01", tz=TZ)
FINE_START = (NOW - pd.Timedelta(days=8)).normalize()  # polled every 15 minutes from this local midnight
ELEC_KW_PER_M2 = 0.01
WATER_M3_PER_PERSON_DAY = 0.05
GAS_M3_PER_M2_DAY = 0.002
SUB_SHARES = {"lighting_socket": 0.3, "hvac": 0.3, "power": 0.2, "special": 0.1}
OFFLINE_METER = "HB-0002-E3"
TARGET_HB0001_TCE = 350.0  # the institution target of HB-0001 for 2026
TARGET_HEBEI_TCE = 5000.0  # the province target for 2026
PASSWORDS = {"admin": "admin-pass-123", "sjz": "region-pass-123", "inst1": "inst1-pass-123",
             "inst5": "inst5-pass-123"}


def registry() -> Registry:
    doc = sample_registry_doc(n_institutions=8)
    reg, problems = validate_registry_doc(_linedict(doc), "<test>")
    assert not problems, problems
    return reg


def _linedict(obj):
    from core.yamlfile import LineDict

    if isinstance(obj, dict):
        d = LineDict({k: _linedict(v) for k, v in obj.items()})
        d.line = 1
        d.key_lines = {}
        return d
    if isinstance(obj, list):
        return [_linedict(x) for x in obj]
    return obj


def rate_per_hour(reg: Registry) -> pd.Series:
    """Consumption per hour of each meter, after the multiplier (kWh, m3)."""
    inst = reg.institution_by_id
    out = {}
    for m in reg.meters:
        i = inst[m.institution]
        if m.energy == "electricity":
            main = ELEC_KW_PER_M2 * i.floor_area_m2
            out[m.id] = main if m.parent is None else main * SUB_SHARES[m.subitem]
        elif m.energy == "water":
            out[m.id] = WATER_M3_PER_PERSON_DAY * i.occupants / 24
        elif m.energy == "natural_gas":
            out[m.id] = GAS_M3_PER_M2_DAY * i.floor_area_m2 / 24
    return pd.Series(out)


def sample_times() -> pd.DatetimeIndex:
    coarse = pd.date_range(HISTORY_START, FINE_START, freq="3h")
    fine = pd.date_range(coarse[-1] + pd.Timedelta(minutes=15), NOW, freq="15min")
    return coarse.append(fine)


def samples(reg: Registry) -> pd.DataFrame:
    """Cumulative raw indices (value = consumption since HISTORY_START / multiplier)."""
    rates = rate_per_hour(reg)
    times = sample_times()
    hours = ((times - HISTORY_START) / pd.Timedelta(hours=1)).to_numpy(float)
    mult = pd.Series({m.id: m.multiplier for m in reg.meters})
    ids = rates.index.to_numpy()
    n = len(times)
    frame = pd.DataFrame({
        "meter_id": np.repeat(ids, n),
        "time": np.tile(times.tz_convert("UTC").to_numpy(), len(ids)),
        "value": (np.outer(rates.to_numpy(float) / mult.reindex(ids).to_numpy(float), hours)).ravel() + 100.0,
        "quality": 0,
    })
    # the 3-hourly history is backfilled (judged at the resolution it carries), the last 8 days are polled
    coarse = frame["time"] <= FINE_START.tz_convert("UTC")
    frame.loc[coarse.to_numpy(), "quality"] = quality.BACKFILL
    cut = (frame["meter_id"] == OFFLINE_METER) & (frame["time"] > (NOW - pd.Timedelta(days=2)).tz_convert("UTC"))
    frame = frame.loc[~cut].reset_index(drop=True)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame


def fill_store(store, reg: Registry) -> None:
    store.set_meters(reg.meters_frame())
    store.write_samples(samples(reg))


def write_users(path: Path) -> Path:
    auth.set_user(path, "admin", "admin", None, PASSWORDS["admin"])
    auth.set_user(path, "sjz", "region", "sjz", PASSWORDS["sjz"])
    auth.set_user(path, "inst1", "institution", "HB-0001", PASSWORDS["inst1"])
    auth.set_user(path, "inst5", "institution", "HB-0005", PASSWORDS["inst5"])
    return path


def write_mv_project(folder: Path) -> Path:
    """An option-C savings-verification project for HB-0001 (baseline 2025, reporting
    1 Jan - 9 Mar 2026) with a seasonal daily temperature file."""
    folder.mkdir(parents=True, exist_ok=True)
    days = pd.date_range("2025-01-01", "2026-03-09")
    temp = 12 - 14 * np.cos(2 * np.pi * (days.day_of_year - 15) / 365)
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "temp_c": temp.round(1)}).to_csv(folder / "temps.csv",
                                                                                       index=False)
    path = folder / "emc-001.yaml"
    path.write_text("id: emc-001\nname: 一号机构照明改造\ninstitution: HB-0001\nenergy: electricity\n"
                    "baseline: {start: 2025-01-01, end: 2025-12-31}\n"
                    "reporting: {start: 2026-01-01, end: 2026-03-09}\ntemperature: temps.csv\n"
                    "contract: {type: shared_savings, tariff_cny_per_unit: 0.75, contractor_share: 0.7}\n",
                    encoding="utf-8")
    return path


def kgce_per_person_2025(reg: Registry) -> pd.Series:
    """The closed form of each institution's 2025 energy per person (kgce/person)."""
    from models.api import load_factors

    f = load_factors()
    gas = {m.institution for m in reg.meters if m.energy == "natural_gas"}
    return pd.Series({
        i.id: 365 * i.floor_area_m2 * (24 * ELEC_KW_PER_M2 * f.coal_kgce_per_unit("electricity")
                                       + (GAS_M3_PER_M2_DAY * f.coal_kgce_per_unit("natural_gas")
                                          if i.id in gas else 0.0)) / i.occupants
        for i in reg.institutions})


def write_quotas(path: Path, reg: Registry) -> Path:
    """A quota file for this portfolio: a general standard whose energy-per-person
    levels sit at the quartiles of the institutions' 2025 values (so they spread over
    every level) with a two-level water standard, a hospital standard with three water
    levels, a province target and an institution target for 2026."""
    q = kgce_per_person_2025(reg).quantile([0.25, 0.5, 0.75]).round(2).tolist()
    person = f"{{guide: {q[0]}, baseline: {q[1]}, constraint: {q[2]}}}"
    path.write_text(f"""basis: equivalent
targets:
  - {{id: hebei-2026, year: 2026, region: hebei, energy_tce: {TARGET_HEBEI_TCE}, water_m3: 200000, co2_t: 20000}}
  - {{id: hb0001-2026, year: 2026, institution: HB-0001, energy_tce: {TARGET_HB0001_TCE}}}
standards:
  - id: general
    kgce_per_person: {person}
    water_m3_per_person: {{general: 20, advanced: 15}}
  - id: hospital
    category: hospital
    kgce_per_person: {person}
    water_m3_per_person: {{constraint: 20, baseline: 15, guide: 10}}
""", encoding="utf-8")
    return path


# -- the demo-like world: the 30-institution sample portfolio of `civicwatt init` ------------
DEMO_NOW = pd.Timestamp("2026-11-20 10:00", tz=TZ)  # a running year, most of it gone
DEMO_HISTORY_START = pd.Timestamp("2025-01-01", tz=TZ)
DEMO_INTERVAL_S = 6 * 3600  # four samples a day: enough for days and months, quick to build
DEMO_BILL = {"institution_id": "HB-0002", "energy": "electricity", "period_start": "2026-10-01",
             "period_end": "2026-10-31", "unit": "kWh", "cost_cny": 123_456.0}  # quantity: the meter's month


_DEMO: dict[str, tuple] = {}


def shared_demo_world() -> tuple[Registry, object, Path, Path]:
    """`demo_world` built once per test process (in a temporary directory removed at
    exit) for the test modules that only read it."""
    if "world" not in _DEMO:
        import atexit
        import shutil
        import tempfile

        directory = Path(tempfile.mkdtemp(prefix="civicwatt-demo-world-"))
        world = demo_world(directory)
        _DEMO["world"] = world

        def _cleanup() -> None:
            world[1].close()
            shutil.rmtree(directory, ignore_errors=True)
        atexit.register(_cleanup)
    return _DEMO["world"]


def demo_world(directory: Path) -> tuple[Registry, object, Path, Path]:
    """The sample portfolio (`civicwatt init`: registry with tariffs, the sample quota
    file) with the simulator's load model as history from 1 January 2025 to
    `DEMO_NOW` (every 6 hours), one electricity bill with its cost and the demo's
    savings-verification project, in `directory`. Returns registry, store (open),
    quota file and the M&V folder."""
    from civicwatt.commands.simulate import meters_for_sim
    from civicwatt.context import open_registry_store
    from civicwatt.sample import (
        apply_retrofits,
        sample_mv_setup,
        sample_retrofits,
        write_sample,
        write_sample_mv_project,
    )
    from core.registry import load_registry
    from device_sim.history import generate_history

    write_sample(directory)
    reg = load_registry(directory / "civicwatt.yaml")
    store = open_registry_store(reg, f"embedded:{directory / 'data'}")
    setup = sample_mv_setup(DEMO_NOW, reg.timezone)
    meters = apply_retrofits(meters_for_sim(reg), sample_retrofits(setup))
    store.write_samples(generate_history(meters, DEMO_HISTORY_START, DEMO_NOW, interval_s=DEMO_INTERVAL_S, seed=1))
    october = store.consumption("month", pd.Timestamp("2026-10-01", tz=TZ), pd.Timestamp("2026-11-01", tz=TZ),
                                ["HB-0002-E0"])
    store.write_bills(pd.DataFrame([{**DEMO_BILL, "quantity": float(october["quantity"].sum())}]))
    write_sample_mv_project(directory, reg, DEMO_NOW, seed=1)
    return reg, store, directory / "quotas.yaml", directory / "mv"


def context(reg: Registry, store, quotas_path: Path | None, data_dir: Path | None, mv_dirs: list[Path],
            user=None, now=None):
    """A dashboard `Context` as `create_app` builds it, signed in as `user` (a
    `core.users.User`), on the clock `now` (default `DEMO_NOW`)."""
    from dashboard import integrations
    from dashboard.context import Context
    from dashboard.data import DataService

    quotas = integrations.Quotas(quotas_path, reg)
    service = DataService(reg, store, quotas=quotas.config, now=lambda: now if now is not None else DEMO_NOW)
    return Context(store=store, service=service, quotas=quotas,
                   mv=integrations.MVProjects(mv_dirs, reg, store), data_dir=data_dir, current_user=lambda: user)
