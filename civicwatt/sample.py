"""The sample portfolio used by `civicwatt init` and `civicwatt demo`.

About 30 institutions of four categories in three cities of Hebei, each behind its own
Modbus TCP gateway (one port per institution, one unit id per meter, as real sites are
wired): an electricity main meter with sub-meters for the four sub-items (lighting &
sockets, HVAC, power, special), a water meter and, for most, a gas meter (boiler gas,
counted as heating energy in the heating season).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

REGIONS = [
    {"id": "hebei", "name": "河北省", "heating_season": {"start": "11-15", "end": "03-15"}},
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
SUBITEMS = (("lighting_socket", 0.35), ("hvac", 0.35), ("power", 0.18), ("special", 0.12))


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
        for j, (sub, share) in enumerate(SUBITEMS, start=1):
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
# regions       a tree: {id, name, parent, heating_season: {start: MM-DD, end: MM-DD}}
#               (a region without heating_season inherits its parent's; default 11-15..03-15)
# institutions  id ([A-Za-z0-9_-], unique), name, region, category
#               (government | school | hospital | venue | other),
#               floor_area_m2 (建筑面积), heated_area_m2 (采暖面积, 0 if not heated),
#               occupants (用能人数)
# meters        id, institution, energy (electricity | water | natural_gas | heat | gasoline |
#               diesel | lpg | coal | pv), subitem (total | lighting_socket | hvac | power |
#               special), parent (the meter this one is a sub-meter of, or null),
#               multiplier (CT x PT applied to the raw index), rated (kW or unit/h, for the
#               plausibility check), heating (true for heating meters: boiler gas, heat),
#               rollover (index at which the register wraps; default from the profile),
#               modbus: {host, port, unit, profile, interval_s}
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
    samples = Path(__file__).resolve().parent.parent / "quotas"
    for src, name in (("sample_quotas.yaml", "quotas.yaml"), ("sample_channels.yaml", "channels.yaml")):
        dst = directory / name
        if force or not dst.exists():
            dst.write_text((samples / src).read_text(encoding="utf-8"), encoding="utf-8")
            written.append(dst)
    return written
