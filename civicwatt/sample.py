"""The sample portfolio used by `civicwatt init` and `civicwatt demo`.

About 30 institutions of four categories in three cities of Hebei, each behind its own
Modbus TCP gateway (one port per institution, one unit id per meter, as real sites are
wired): an electricity main meter with sub-meters for the four sub-items (lighting &
sockets, HVAC, power, special), a water meter and, for most, a gas meter (boiler gas,
counted as heating energy in the heating season).

It also holds the demo's savings-verification projects (`write_sample_mv_project`),
whose savings the simulated data really contain (see `sample_mv_setup` and docs/mv.md,
"Demo projects"): an energy-performance contract for a lighting retrofit at HB-0001
(kWh) and a water-saving contract (合同节水管理) for water-saving fixtures at HB-0003 (m3).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from core.registry import Registry

REGIONS = [
    # tariffs: illustrative prices (CNY per kWh / m3) of the cost views; replace them with yours
    {"id": "hebei", "name": "河北省", "heating_season": {"start": "11-15", "end": "03-15"},
     "tariffs": {"electricity": 0.65, "water": 4.2, "natural_gas": 3.1}},
    {"id": "sjz", "name": "石家庄市", "parent": "hebei"},
    {"id": "bd", "name": "保定市", "parent": "hebei"},
    {"id": "ts", "name": "唐山市", "parent": "hebei"},
]

# name pattern, floor area range (m2), occupants per 1000 m2 (typical of each category)
CATEGORY_SHAPES: dict[str, tuple[str, tuple[float, float], float]] = {
    "government": ("{city}某{n}局机关办公楼", (6_000, 25_000), 40.0),
    "school": ("{city}第{n}中学", (15_000, 45_000), 100.0),
    "hospital": ("{city}第{n}人民医院", (20_000, 80_000), 25.0),
    "venue": ("{city}{n}号文体中心", (8_000, 30_000), 8.0),
}
CITY_NAMES = {"sjz": "石家庄", "bd": "保定", "ts": "唐山"}
MAIN_PROFILES = ("dtsu666", "sdm630", "adl400")
# sub-meters of each main electricity meter and their share of its load
SUBITEM_SHARES = (("lighting_socket", 0.35), ("hvac", 0.35), ("power", 0.18), ("special", 0.12))


def sample_registry_doc(n_institutions: int = 30, base_port: int = 15020, host: str = "127.0.0.1",
                        interval_s: int = 900, seed: int = 7) -> dict[str, Any]:
    """A YAML-able registry for a deterministic sample portfolio."""
    rng = np.random.default_rng(seed)
    categories = list(CATEGORY_SHAPES)
    cities = list(CITY_NAMES)
    institutions: list[dict[str, Any]] = []
    meters: list[dict[str, Any]] = []
    for k in range(n_institutions):
        cat = categories[k % len(categories)]
        city = cities[(k // len(categories)) % len(cities)]
        pattern, (lo, hi), occ_per_1000 = CATEGORY_SHAPES[cat]
        floor = float(round(rng.uniform(lo, hi), -2))
        heated = float(round(floor * rng.uniform(0.85, 0.98), -2))
        occupants = int(np.rint(floor / 1000 * occ_per_1000 * rng.uniform(0.8, 1.2)))
        iid = f"HB-{k + 1:04d}"
        institutions.append({
            "id": iid, "name": pattern.format(city=CITY_NAMES[city], n=k + 1), "region": city, "category": cat,
            "floor_area_m2": floor, "heated_area_m2": heated, "occupants": occupants,
        })
        port = base_port + k
        main_profile = MAIN_PROFILES[k % len(MAIN_PROFILES)]
        # rated power (kW): roughly 60 W/m2 peak for offices, more for hospitals
        rated_kw = float(round(floor * (0.09 if cat == "hospital" else 0.06), -1))
        multiplier = 80.0 if main_profile == "dtsu666" else 1.0  # CT 400/5 on the main incomer
        main_id = f"{iid}-E0"
        meters.append({"id": main_id, "institution": iid, "energy": "electricity", "subitem": "total",
                       "parent": None, "multiplier": multiplier, "rated": rated_kw,
                       "modbus": {"host": host, "port": port, "unit": 1, "profile": main_profile,
                                  "interval_s": interval_s}})
        for j, (sub, share) in enumerate(SUBITEM_SHARES, start=1):
            meters.append({"id": f"{iid}-E{j}", "institution": iid, "energy": "electricity", "subitem": sub,
                           "parent": main_id, "multiplier": 1.0, "rated": float(round(rated_kw * share * 1.5, 1)),
                           "modbus": {"host": host, "port": port, "unit": 1 + j,
                                      "profile": "ddsu666" if sub == "lighting_socket" else "sdm630",
                                      "interval_s": interval_s}})
        meters.append({"id": f"{iid}-W0", "institution": iid, "energy": "water", "subitem": "total",
                       "parent": None, "multiplier": 1.0, "rated": float(round(occupants * 0.02 + 2, 1)),
                       "modbus": {"host": host, "port": port, "unit": 10, "profile": "water_ultrasonic",
                                  "interval_s": interval_s}})
        if cat != "venue" or k % 2 == 0:
            meters.append({"id": f"{iid}-G0", "institution": iid, "energy": "natural_gas", "subitem": "total",
                           "parent": None, "multiplier": 1.0, "heating": True,
                           "rated": float(round(floor * 0.012 + 5, 1)),
                           "modbus": {"host": host, "port": port, "unit": 11, "profile": "gas_gateway",
                                      "interval_s": interval_s}})
    return {"timezone": "Asia/Shanghai", "regions": REGIONS, "institutions": institutions, "meters": meters}


REGISTRY_HEADER = """\
# CivicWatt registry (civicwatt.yaml) — sample portfolio written by `civicwatt init`.
#
# timezone      days, months and years are local time of this zone
# submissions   optional: {deadline_day: 15, reminder_days: [10, 14]}: monthly figures are due
#               by deadline_day of the next month; reminders go out on reminder_days (1-28)
# regions       a tree: {id, name, parent, heating_season: {start: MM-DD, end: MM-DD},
#               tariffs: {energy: CNY per kWh, m3, GJ or kg}} (a region without heating_season
#               inherits its parent's, default 11-15..03-15; without a tariff of an energy, its
#               parent's; tariffs price metered use in the dashboard's cost views, bills
#               bring their own cost_cny)
# institutions  id ([A-Za-z0-9_-], unique), name, region, category
#               (government | school | hospital | venue | other),
#               floor_area_m2 (建筑面积), heated_area_m2 (采暖面积, 0 if not heated),
#               occupants (用能人数); optional: department (主管部门, for the statistics
#               tables' roll-up), data_centre: {area_m2, meters: [electricity meter ids],
#               it_meters: [...]} (数据中心机房, `civicwatt report statistics`);
#               bills outside the accounting boundary:
#               bills: [{energy, boundary: excluded, boundary_reason: 家属区 | 出租 | 独立法人,
#               start: YYYY-MM-DD, end: YYYY-MM-DD}]
# meters        id, institution, energy (electricity | water | natural_gas | heat | gasoline |
#               diesel | lpg | coal | pv), subitem (total | lighting_socket | hvac | power |
#               special), parent (the meter this one is a sub-meter of, or null),
#               multiplier (CT x PT applied to the raw index), rated (kW or unit/h, for the
#               plausibility check), heating (true for heating meters: boiler gas, heat),
#               rollover (index at which the register wraps; default from the profile),
#               modbus: {host, port, unit, profile, interval_s},
#               boundary: excluded + boundary_reason (家属区 | 出租 | 独立法人) for a meter
#               outside the accounting boundary (a main meter is not counted, a
#               sub-meter is deducted from its institution)
#               profiles: dtsu666, sdm630, ddsu666, adl400, water_ultrasonic, gas_gateway
#
# Check it with `civicwatt check-config`.
"""


def write_sample(directory: str | Path, force: bool = False, **kwargs: Any) -> list[Path]:
    """Write `civicwatt.yaml`, `quotas.yaml` and `channels.yaml` (alert delivery: a
    JSON-lines log; webhook, WeCom, DingTalk and e-mail commented out) into `directory`;
    return the files written. Existing files are kept unless `force`.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    reg = directory / "civicwatt.yaml"
    if force or not reg.exists():
        body = yaml.safe_dump(sample_registry_doc(**kwargs), allow_unicode=True, sort_keys=False, width=120)
        reg.write_text(REGISTRY_HEADER + "\n" + body, encoding="utf-8")
        written.append(reg)
    root = Path(__file__).resolve().parent.parent
    for src, name in ((root / "quotas" / "sample_quotas.yaml", "quotas.yaml"),
                      (root / "alerts" / "sample_channels.yaml", "channels.yaml")):
        dst = directory / name
        if force or not dst.exists():
            dst.write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
            written.append(dst)
    return written


# -- the demo's energy-performance contract (节能量核定 demo) -------------------------
MV_PROJECT_ID = "emc-001"
MV_INSTITUTION = "HB-0001"  # sample institution 1: a government office building in Shijiazhuang
MV_RETROFIT_METER = "HB-0001-E1"  # its lighting & sockets sub-meter
# LED lamps with occupancy and daylight controls typically save 30-60 % of lighting
# energy; on a lighting-and-sockets circuit 30 % is a modest, credible figure. With
# lighting about a third of the building's electricity this is a ~10 % whole-building
# saving: the size IPMVP option C is meant for.
MV_RETROFIT_FACTOR = 0.70
MV_RETROFIT_MONTH_DAY = (2, 1)  # installed in January, in service from 1 February
MV_REPORTING_MONTH_DAY = (3, 1)  # February is commissioning: left out of both periods
MV_MIN_REPORTING_DAYS = 61  # before 1 May the demo's retrofit year is last year (2+ months to report)
MV_TARIFF_CNY_PER_KWH = 0.75  # a typical Hebei general commercial tariff, flat average
MV_CONTRACTOR_SHARE = 0.7  # the ESCO's share of the savings during the contract term

# -- the demo's water-saving contract (合同节水管理 demo), same dates ---------------------
CWS_PROJECT_ID = "cws-001"
CWS_INSTITUTION = "HB-0003"  # sample institution 3: a hospital in Shijiazhuang
CWS_RETROFIT_METER = "HB-0003-W0"  # its main water meter, the one the water company bills
# Water-saving taps and showers (aerators, 6 L/min), dual-flush cisterns and the repair of
# leaks typically save 15-30 % of a hospital's water; 20 % is a middle, credible figure.
CWS_RETROFIT_FACTOR = 0.80
CWS_TARIFF_CNY_PER_M3 = 5.8  # non-residential water with the sewage fee, a typical Hebei city
CWS_CONTRACTOR_SHARE = 0.6  # the water-saving service company's share of the savings


@dataclass(frozen=True)
class SampleMVSetup:
    """Dates of the demo project: the retrofit (simulated), baseline and reporting periods
    (local dates, inclusive)."""

    retrofit_start: dt.date
    baseline: tuple[dt.date, dt.date]
    reporting: tuple[dt.date, dt.date]

    @property
    def history_start(self) -> dt.date:
        """The first day the store must hold for the project to verify."""
        return self.baseline[0]


def sample_mv_setup(now: Any, tz: str = "Asia/Shanghai") -> SampleMVSetup:
    """The demo project's dates for a given moment: the retrofit goes into service on
    1 February of this year (of last year before 1 May, so that there are two months to
    report), the baseline is the whole calendar year before it, and the reporting period
    runs from 1 March to the last complete day before `now`."""
    stamp = pd.Timestamp(now)
    today = (stamp.tz_convert(tz) if stamp.tzinfo is not None else stamp).date()
    year = today.year
    if (today - dt.date(year, *MV_REPORTING_MONTH_DAY)).days < MV_MIN_REPORTING_DAYS:
        year -= 1
    return SampleMVSetup(retrofit_start=dt.date(year, *MV_RETROFIT_MONTH_DAY),
                         baseline=(dt.date(year - 1, 1, 1), dt.date(year - 1, 12, 31)),
                         reporting=(dt.date(year, *MV_REPORTING_MONTH_DAY), today - dt.timedelta(days=1)))


def read_sample_mv_setup(directory: str | Path) -> SampleMVSetup | None:
    """The set-up of a demo project already written into `directory`/mv (None if there is
    none): its periods, and the retrofit on 1 February of the reporting period's year, so
    a restarted demo simulates the retrofit its stored history was generated with."""
    path = Path(directory) / "mv" / f"{MV_PROJECT_ID}.yaml"
    if not path.exists():
        return None
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    try:
        base, rep = doc["baseline"], doc["reporting"]
        spans = [(pd.Timestamp(str(d["start"])).date(), pd.Timestamp(str(d["end"])).date()) for d in (base, rep)]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: baseline/reporting: cannot read the demo project's periods ({exc})") from exc
    return SampleMVSetup(retrofit_start=dt.date(spans[1][0].year, *MV_RETROFIT_MONTH_DAY),
                         baseline=spans[0], reporting=spans[1])


def sample_retrofits(setup: SampleMVSetup, directory: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """meter id -> `retrofit` entry of the load model (device_sim.load) for the demo: the
    lighting sub-meter of emc-001 and the water meter of cws-001, both from
    `setup.retrofit_start`. With `directory`: only those of the projects written in
    `directory`/mv (an older demo directory has no water project, and its stored history
    no water retrofit)."""
    projects = {MV_PROJECT_ID: (MV_RETROFIT_METER, MV_RETROFIT_FACTOR),
                CWS_PROJECT_ID: (CWS_RETROFIT_METER, CWS_RETROFIT_FACTOR)}
    if directory is not None:
        projects = {p: r for p, r in projects.items() if (Path(directory) / "mv" / f"{p}.yaml").exists()}
    return {meter: {"start": setup.retrofit_start.isoformat(), "factor": factor} for meter, factor in projects.values()}


def apply_retrofits(meters: list[dict[str, Any]], retrofits: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of the simulator's meter dicts (`meters_for_sim`) with `retrofit` set where given."""
    return [{**m, "retrofit": retrofits[m["id"]]} if m["id"] in retrofits else m for m in meters]


def sample_mv_applies(registry: Registry) -> bool:
    """Whether the registry has the demo project's institution and lighting sub-meter."""
    meter = registry.meter_by_id.get(MV_RETROFIT_METER)
    return (MV_INSTITUTION in registry.institution_by_id and meter is not None
            and meter.subitem == "lighting_socket" and meter.parent is not None)


def sample_cws_applies(registry: Registry) -> bool:
    """Whether the registry has the water project's institution and main water meter."""
    meter = registry.meter_by_id.get(CWS_RETROFIT_METER)
    return (CWS_INSTITUTION in registry.institution_by_id and meter is not None and meter.energy == "water"
            and meter.parent is None and meter.institution == CWS_INSTITUTION)


MV_PROJECT_TEMPLATE = """\
# Demo savings-verification project (节能量核定), written by `civicwatt demo`; see docs/mv.md.
#
# What the simulated data hold: {institution} ({inst_name}) had its lighting replaced by
# LED lamps with occupancy and daylight controls; from {retrofit} the lighting & sockets
# sub-meter {meter} draws {saving:.0%} less (a ~10 % whole-building saving). January is
# installation and February commissioning, so both are outside the periods below.
#
# IPMVP option C (whole facility): the contract is settled on the building's main
# electricity meter, the one the utility bills; the regression on the temperature
# (heating / cooling degree days) and working days separates the saving from weather
# and calendar. (Option B on {meter} alone would isolate the retrofit but ignore its
# effects on the rest of the building; the ESCO and the owner agreed on C.)
id: {id}
name: {name}
institution: {institution}
energy: electricity
granularity: day
baseline: {{start: {b0}, end: {b1}}}
reporting: {{start: {r0}, end: {r1}}}
temperature: temps.csv          # daily mean outdoor temperature (the simulation's own weather)
normal_year: normal.csv         # the climate normal, for normalized savings
calendar: workdays.csv          # working days with Chinese public holidays and make-up days
contract: {{type: shared_savings, tariff_cny_per_unit: {tariff}, contractor_share: {share}}}
"""

CWS_PROJECT_TEMPLATE = """\
# Demo water-saving contract (合同节水管理), written by `civicwatt demo`; see docs/mv.md.
#
# What the simulated data hold: {institution} ({inst_name}) had its taps and showers
# replaced by water-saving ones, its cisterns by dual-flush ones and its leaks repaired;
# from {retrofit} its main water meter {meter} draws {saving:.0%} less. January is
# installation and February commissioning, so both are outside the periods below.
#
# IPMVP option C on the main water meter (the one the water company bills, in m3),
# verified exactly as electricity is: the model search keeps the drivers that explain
# the use (working days; the temperature where water follows the weather) and separates
# the saving from calendar and weather. The driver files are the electricity project's.
id: {id}
name: {name}
institution: {institution}
energy: water
granularity: day
baseline: {{start: {b0}, end: {b1}}}
reporting: {{start: {r0}, end: {r1}}}
temperature: temps.csv
normal_year: normal.csv
calendar: workdays.csv
contract: {{type: shared_savings, tariff_cny_per_unit: {tariff}, contractor_share: {share}}}
"""


def write_sample_mv_project(directory: str | Path, registry: Registry, now: Any, seed: int = 1) -> list[Path]:
    """Write the demo projects into `directory`/mv, each file only when missing:
    `emc-001.yaml`, `temps.csv` (the load model's daily mean temperature over both
    periods, for the simulation `seed`), `normal.csv` (the model's climate normal),
    `workdays.csv` (the model's working days) and, with a new emc-001 and when the
    registry has HB-0003's water meter, the water project `cws-001.yaml` on the same
    dates and drivers. The dates come from an existing emc-001 file, else from
    `sample_mv_setup(now)`. Returns the files written (none if the registry lacks
    HB-0001's lighting sub-meter)."""
    from device_sim.load import daily_calendar, daily_temperature, normal_temperature

    if not sample_mv_applies(registry):
        return []
    mv_dir = Path(directory) / "mv"
    mv_dir.mkdir(parents=True, exist_ok=True)
    setup = read_sample_mv_setup(directory) or sample_mv_setup(now, registry.timezone)
    (b0, b1), (r0, r1) = setup.baseline, setup.reporting
    inst = registry.institution_by_id[MV_INSTITUTION]
    new = not (mv_dir / f"{MV_PROJECT_ID}.yaml").exists()
    files = {
        f"{MV_PROJECT_ID}.yaml": lambda: MV_PROJECT_TEMPLATE.format(
            id=MV_PROJECT_ID, name=f"{inst.name} 照明节能改造（LED + 智能控制）", institution=MV_INSTITUTION,
            inst_name=inst.name, meter=MV_RETROFIT_METER, retrofit=setup.retrofit_start,
            saving=1.0 - MV_RETROFIT_FACTOR, b0=b0, b1=b1, r0=r0, r1=r1, tariff=MV_TARIFF_CNY_PER_KWH,
            share=MV_CONTRACTOR_SHARE),
        "temps.csv": lambda: _csv(daily_temperature(b0, r1, seed=seed), "%.2f"),
        "normal.csv": lambda: _csv(normal_temperature(r0.year), "%.2f"),
        "workdays.csv": lambda: _csv(daily_calendar(b0, r1), None),
    }
    if new and sample_cws_applies(registry):  # an older directory's history has no water retrofit
        water = registry.institution_by_id[CWS_INSTITUTION]
        files[f"{CWS_PROJECT_ID}.yaml"] = lambda: CWS_PROJECT_TEMPLATE.format(
            id=CWS_PROJECT_ID, name=f"{water.name} 合同节水管理（节水器具 + 漏损修复）", institution=CWS_INSTITUTION,
            inst_name=water.name, meter=CWS_RETROFIT_METER, retrofit=setup.retrofit_start,
            saving=1.0 - CWS_RETROFIT_FACTOR, b0=b0, b1=b1, r0=r0, r1=r1, tariff=CWS_TARIFF_CNY_PER_M3,
            share=CWS_CONTRACTOR_SHARE)
    written = []
    for name, text in files.items():
        path = mv_dir / name
        if not path.exists():
            path.write_text(text(), encoding="utf-8")
            written.append(path)
    return written


def _csv(frame: pd.DataFrame, float_format: str | None) -> str:
    return frame.assign(date=frame["date"].dt.strftime("%Y-%m-%d")).to_csv(index=False, float_format=float_format,
                                                                          lineterminator="\n")
