"""A small portfolio for the submission tests (helpers, no tests here).

Twelve schools and two government offices in two cities of one province. Only HB-0001
has a meter (electricity, constant `METER_KW` kW from 2025-10-01); every institution was
billed for November 2025: electricity `elec_kwh` (those without a meter), water `WATER_M3` and heat `HEAT_GJ_PER_M2` x floor area. The month reported in
the tests is November 2026, on `TODAY`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from core.registry import Registry, validate_registry_doc
from quotas.filing import Filing
from storage.embedded import EmbeddedStore
from storage.submissions import SubmissionBook
from tests.support_dashboard_world import _linedict

TZ = "Asia/Shanghai"
TODAY = date(2026, 12, 5)
MONTH = "2026-11"
ELEC_KWH_PER_M2 = 5.0
WATER_M3 = 300.0
HEAT_GJ_PER_M2 = 0.05
METER_KW = 10.0


@dataclass
class User:
    name: str
    role: str
    scope: str | None


ADMIN = User("admin", "admin", None)
SJZ = User("sjz", "region", "sjz")
BD = User("bd", "region", "bd")
INST2 = User("inst2", "institution", "HB-0002")
INST3 = User("inst3", "institution", "HB-0003")


def registry_doc() -> dict:
    institutions = []
    for k in range(14):
        institutions.append({"id": f"HB-{k + 1:04d}", "name": f"测试单位{k + 1}", "region": "sjz" if k % 2 == 0 else "bd",
                             "category": "school" if k < 12 else "government", "floor_area_m2": 10000.0 + 1000 * k,
                             "heated_area_m2": 9000.0, "occupants": 500 + 10 * k})
    meters = [{"id": "HB-0001-E0", "institution": "HB-0001", "energy": "electricity", "subitem": "total",
               "parent": None, "multiplier": 1.0,
               "modbus": {"host": "127.0.0.1", "port": 15020, "unit": 1, "profile": "dtsu666", "interval_s": 3600}}]
    return {"timezone": TZ, "regions": [{"id": "hebei", "name": "河北省"}, {"id": "sjz", "name": "石家庄市", "parent": "hebei"},
                                        {"id": "bd", "name": "保定市", "parent": "hebei"}],
            "institutions": institutions, "meters": meters}


def registry() -> Registry:
    reg, problems = validate_registry_doc(_linedict(registry_doc()), "<test>")
    assert not problems, problems
    return reg


def elec_kwh(reg: Registry, iid: str) -> float:
    """Last November's electricity of `iid`: ELEC_KWH_PER_M2 x area x (1 + 5 % per place in the registry)."""
    k = [i.id for i in reg.institutions].index(iid)
    return ELEC_KWH_PER_M2 * reg.institution_by_id[iid].floor_area_m2 * (1 + 0.05 * k)


def last_year_bills(reg: Registry) -> pd.DataFrame:
    rows = []
    for inst in reg.institutions:
        if inst.id != "HB-0001":
            rows.append((inst.id, "electricity", elec_kwh(reg, inst.id), "kWh", 0.6 * elec_kwh(reg, inst.id)))
        rows.append((inst.id, "water", WATER_M3, "m3", 4.0 * WATER_M3))
        rows.append((inst.id, "heat", HEAT_GJ_PER_M2 * inst.floor_area_m2, "GJ", 50 * HEAT_GJ_PER_M2 * inst.floor_area_m2))
    df = pd.DataFrame(rows, columns=["institution_id", "energy", "quantity", "unit", "cost_cny"])
    return df.assign(period_start=date(2025, 11, 1), period_end=date(2025, 11, 30))


def meter_samples(start: str = "2025-10-01", end: str = "2026-12-05") -> pd.DataFrame:
    t = pd.date_range(start, end, freq="1h", tz=TZ, inclusive="left")
    return pd.DataFrame({"meter_id": "HB-0001-E0", "time": t, "value": METER_KW * np.arange(len(t), dtype=float)})


def make_filing(directory, today: date = TODAY) -> Filing:
    reg = registry()
    store = EmbeddedStore(directory / "store", tz=TZ)
    store.set_meters(reg.meters_frame())
    store.write_samples(meter_samples())
    store.import_bills(last_year_bills(reg))
    return Filing(reg, store, SubmissionBook(directory / "store"), today=lambda: today)


def good_items(reg: Registry, iid: str = "HB-0002", scale: float = 1.0) -> list[dict]:
    """Figures for MONTH close to last year's (no warning), `scale` x electricity."""
    area = reg.institution_by_id[iid].floor_area_m2
    kwh = elec_kwh(reg, iid) * scale
    return [{"energy": "electricity", "quantity": kwh, "unit": "kWh", "cost_cny": 0.6 * kwh},
            {"energy": "water", "quantity": WATER_M3 * 1.05, "unit": "t", "cost_cny": 4.0 * WATER_M3},
            {"energy": "heat", "quantity": HEAT_GJ_PER_M2 * area * 1000, "unit": "MJ",
             "cost_cny": 50 * HEAT_GJ_PER_M2 * area}]
