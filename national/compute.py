"""The national indicators over a province-partitioned dataset, on Dask, and the same computation in one process.

The arithmetic is the ledger's (`models.api`); this module only decides where it runs:

1. per province-month file (a Dask task, memory bounded by one partition): read and
   check the file, `energy_sums(use, institutions, period='year', freq='day')` -> one
   row per institution, energy and year (the sums are additive: quantity, its estimated
   part, its heating-season heating part, rows);
2. per province (Dask groupby-apply on the month sums: a province's sums are small,
   ~ institutions x energies x months rows): `indicators_from_sums` adds the months up
   and applies the factor set -> the indicator frame of `models.indicators`
   (INDICATOR_COLUMNS), then `rank` within the province's categories for `RANKED`;
3. in the client, on the per-institution rows: `aggregate` per province and category,
   per province and for the nation (intensities are ratios of sums over the same
   institutions: those with data), and `quotas.evaluate.evaluate_targets` for the
   targets of a national quota file.

`national_tables_local` is the baseline: the same files read into one frame in one
process and the same functions applied once, to the whole nation.

Targets: a national quota file sets targets for `NATIONAL` (the whole dataset) or a
province id (the partition key), optionally one category inside it; its members are
the province x category groups (their sums and the areas and occupants of their
institutions with data). The as-of date is the end of the last month delivered for the
year; a year in progress is projected flat (share of days), since the dataset holds no
monthly shape of the previous year for these groups.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from core.registry import Region, Registry
from core.vocab import ENERGIES
from models.api import aggregate, energy_sums, indicators_from_sums, rank
from models.factors import FactorSet, load_factors, normalize_basis
from national.dataset import (
    Catalog,
    DatasetError,
    MonthPart,
    month_bounds,
    read_institutions,
    read_use_table,
    use_frame,
)

#: The root scope of national targets and of the total row.
NATIONAL = "national"
#: Intensities ranked within each province's categories (1 = lowest = most efficient).
RANKED = ("kgce_per_m2", "kgce_per_person", "water_m3_per_person", "kgco2_per_m2")
#: A province-month's sums as Dask carries them: integer codes (province: position in the
#: sorted province ids; institution: row of the province's institutions table; energy:
#: position in ENERGIES), so the shuffle moves no strings.
CODE_COLUMNS = ["province", "institution", "energy", "year", "quantity", "estimated_quantity", "heating_quantity",
                "rows"]
#: The local cluster the verb starts without --scheduler (toolchain.md); the scheduler's
#: health/metrics HTTP server (there even without a dashboard) takes a free loopback port
#: instead of trying 8787 first.
LOCAL_CLUSTER = {"n_workers": 2, "threads_per_worker": 1, "processes": True, "dashboard_address": None,
                 "scheduler_kwargs": {"dashboard_address": "127.0.0.1:0"}}


@dataclass
class NationalTables:
    """The national result. institutions: the indicator frame (INDICATOR_COLUMNS) with
    province first and rank_<indicator>, peers_<indicator> for RANKED; categories,
    provinces, total: `models.api.aggregate` frames (by province and category, by
    province with its name and months delivered, and one row with scope 'national');
    targets: `evaluate_targets` rows (empty without a quota file)."""

    year: int
    basis: str
    factor_set: str
    as_of: str
    institutions: pd.DataFrame
    categories: pd.DataFrame
    provinces: pd.DataFrame
    total: pd.DataFrame
    targets: pd.DataFrame = field(default_factory=pd.DataFrame)


# -- step 1: a province-month ----------------------------------------------------------------
def _codes_frame(sums: pd.DataFrame, province: int) -> pd.DataFrame:
    """`energy_sums` output (categorical institution_id over the institutions table, energy
    over ENERGIES) as CODE_COLUMNS."""
    return pd.DataFrame({
        "province": np.full(len(sums), province, np.int16),
        "institution": sums["institution_id"].cat.codes.to_numpy(np.int32),
        "energy": sums["energy"].cat.codes.to_numpy(np.int8),
        "year": sums["year"].to_numpy(np.int64),
        **{c: sums[c].to_numpy(np.float64) for c in ("quantity", "estimated_quantity", "heating_quantity")},
        "rows": sums["rows"].to_numpy(np.int64),
    })


def sums_from_codes(codes: pd.DataFrame, institutions: pd.DataFrame) -> pd.DataFrame:
    """CODE_COLUMNS rows of one province back as `energy_sums` rows (categorical, no hashing)."""
    return pd.DataFrame({
        "institution_id": pd.Categorical.from_codes(codes["institution"].to_numpy(np.int32),
                                                    categories=pd.Index(institutions["institution_id"])),
        "energy": pd.Categorical.from_codes(codes["energy"].to_numpy(np.int8), categories=list(ENERGIES)),
        **{c: codes[c].to_numpy() for c in ("year", "quantity", "estimated_quantity", "heating_quantity", "rows")},
    })


def month_sums(part: MonthPart, province: int = 0) -> pd.DataFrame:
    """`energy_sums` of one province-month file per institution, energy and year, as
    CODE_COLUMNS (`province`: the province's code)."""
    use = use_frame(read_use_table(part))
    inst = read_institutions(part.institutions)
    try:
        sums = energy_sums(use, inst, period="year", freq="day", tz=part.timezone)
    except ValueError as exc:
        raise DatasetError(part.file.path, "-", f"{exc} (institutions: {part.institutions.path})") from None
    return _codes_frame(sums, province)


def empty_codes() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(
        CODE_COLUMNS, ("int16", "int32", "int8", "int64", "float64", "float64", "float64", "int64"), strict=True)})


# -- step 2: a province ------------------------------------------------------------------------
def with_ranks(ind: pd.DataFrame) -> pd.DataFrame:
    """`ind` (with a province column) plus rank_<x> and peers_<x> for each x of RANKED,
    ranked by `models.api.rank` within (province, category)."""
    out = ind.copy()
    peers = ind.assign(region=ind["province"])
    for x in RANKED:
        r = rank(peers, x, peers=("region", "category")).set_index("institution_id")
        out[f"rank_{x}"] = out["institution_id"].map(r["rank"]).to_numpy(float)
        out[f"peers_{x}"] = out["institution_id"].map(r["peer_size"]).fillna(0).to_numpy(np.int64)
    return out


def province_indicators(sums: pd.DataFrame, institutions: pd.DataFrame, factors: FactorSet,
                        basis: str = "equivalent") -> pd.DataFrame:
    """Indicators of the institutions of `institutions` (a province's table, or several
    provinces' tables stacked) from their yearly sums, with province and ranks."""
    ind = indicators_from_sums(sums, institutions, factors, basis)
    ind.insert(0, "province", institutions["province"].to_numpy())
    return with_ranks(ind)


def _province_apply(codes: pd.DataFrame, refs: list, factors: FactorSet, basis: str) -> pd.DataFrame:
    inst = read_institutions(refs[codes.name])
    return province_indicators(sums_from_codes(codes, inst), inst, factors, basis)


# -- step 3: the client ---------------------------------------------------------------------------
def _as_of(catalog: Catalog, year: int) -> pd.Timestamp:
    """The local day after the last month of `year` delivered by any province."""
    months = [p.month for p in catalog.parts(year)]
    return month_bounds(max(months))[1] if months else pd.Timestamp(year=year, month=1, day=1)


def national_regions(provinces) -> Registry:
    """The region tree of the national level (NATIONAL above every province id), as the
    registry `quotas.config.load_quotas` validates a national quota file against and
    `evaluate_targets` walks."""
    return Registry(regions=(Region(id=NATIONAL, name="全国"),
                             *(Region(id=str(p), name=str(p), parent=NATIONAL) for p in provinces)))


def evaluate_national_targets(quotas, categories: pd.DataFrame, year: int, as_of: pd.Timestamp,
                              tz: str = "Asia/Shanghai") -> pd.DataFrame:
    """`evaluate_targets` of the national quota file over the province x category groups."""
    from quotas.evaluate import evaluate_targets

    members = pd.DataFrame({
        "institution_id": categories["province"].astype(str) + "/" + categories["category"].astype(str),
        "region": categories["province"].to_numpy(), "category": categories["category"].to_numpy(),
        "period_start": pd.Timestamp(year=year, month=1, day=1, tz=tz),
        **{c: categories[c].to_numpy() for c in ("floor_area_m2", "occupants", "kgce", "water_m3", "t_co2",
                                                 "has_data", "basis", "factor_set")},
    })
    return evaluate_targets(quotas, members, as_of, national_regions(categories["province"].unique()), year)


def unique_institutions(frame: pd.DataFrame, catalog: Catalog) -> None:
    """DatasetError naming the provinces' institution tables when an id is delivered twice."""
    dup = frame["institution_id"].duplicated(keep=False)
    if dup.any():
        first = frame.loc[dup, "institution_id"].iloc[0]
        where = set(frame.loc[frame["institution_id"] == first, "province"])
        files = [p.institutions.path for p in catalog.provinces if p.province in where]
        raise DatasetError(files[0], "institution_id", f"{first!r} is delivered by several provinces: "
                                                       f"{', '.join(files)}")


def summarize(ind: pd.DataFrame, catalog: Catalog, year: int, basis: str, factor_set: str,
              quotas=None) -> NationalTables:
    """The aggregates and targets of the per-institution national frame."""
    unique_institutions(ind, catalog)
    ind = ind.sort_values(["province", "institution_id"], kind="stable").reset_index(drop=True)
    categories = aggregate(ind, by=["province", "category"])
    provinces = aggregate(ind, by=["province"])
    months = pd.Series({p.province: [m.month for m in p.months if m.month.startswith(f"{year:04d}-")]
                        for p in catalog.provinces})
    provinces.insert(1, "name", provinces["province"].map({p.province: p.name for p in catalog.provinces}))
    provinces.insert(2, "months", provinces["province"].map(months.map(len)).fillna(0).astype(int))
    provinces.insert(3, "last_month", provinces["province"].map(months.map(lambda m: max(m) if m else "")))
    total = aggregate(ind.assign(scope=NATIONAL), by=["scope"])
    total.insert(1, "provinces", len(provinces))
    as_of = _as_of(catalog, year)
    targets = pd.DataFrame()
    if quotas is not None:
        tz = catalog.provinces[0].timezone if catalog.provinces else "Asia/Shanghai"
        targets = evaluate_national_targets(quotas, categories, year, as_of, tz)
    return NationalTables(year, basis, factor_set, as_of.date().isoformat(), ind, categories, provinces, total,
                          targets)


def year_parts(catalog: Catalog, year: int) -> list[MonthPart]:
    """The province-months of `year`; DatasetError when there is none."""
    parts = catalog.parts(year)
    if not parts:
        years = ", ".join(map(str, catalog.years())) or "none"
        raise DatasetError(catalog.root, "--year", f"no month of {year} in the dataset (years delivered: {years})")
    return parts


# -- the two engines ---------------------------------------------------------------------------------
@contextlib.contextmanager
def dask_client(scheduler: str | None = None, **local) -> Iterator:
    """A distributed Client: connected to `scheduler` (tcp://HOST:8786), or to a new
    LocalCluster (LOCAL_CLUSTER, overridden by `local`) closed on exit."""
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise DatasetError(scheduler, "--scheduler", f"cannot reach the Dask scheduler: {exc}") from None
        with client:
            yield client
        return
    with LocalCluster(**{**LOCAL_CLUSTER, "silence_logs": logging.ERROR, **local}) as cluster, Client(cluster) as c:
        yield c


def national_tables(catalog: Catalog, year: int, client, factors: FactorSet | None = None,
                    basis: str = "equivalent", quotas=None) -> NationalTables:
    """The national tables computed on the Dask cluster of `client` (module docstring)."""
    import dask
    import dask.dataframe as dd

    factors = factors or load_factors()
    basis = normalize_basis(basis)
    parts = year_parts(catalog, year)
    provinces = sorted({p.province for p in parts})
    refs = [catalog.province(p).institutions for p in provinces]
    meta_inst = read_institutions(refs[0]).iloc[:0]
    meta = province_indicators(sums_from_codes(empty_codes(), meta_inst), meta_inst, factors, basis)
    codes = [provinces.index(p.province) for p in parts]
    sums = dd.from_map(month_sums, parts, codes, meta=empty_codes(), label="province-month-sums",
                       enforce_metadata=False)
    # One output partition per province (not per month): a shuffle of the small sums,
    # after which the groupby-apply runs on each partition without another one.
    sums = sums.shuffle(on="province", npartitions=len(provinces))
    ind = sums.groupby("province").apply(_province_apply, refs, factors, basis, meta=meta)
    with dask.config.set({"dataframe.shuffle.method": "tasks"}):
        # The graph goes to the scheduler as tasks (to_delayed), not as dask-expr
        # expressions: rebuilding those on a LocalCluster's scheduler thread can race with
        # the client's (dask's SingletonExpr cache: "Error during deserialization of the
        # task graph ... KeyError: 'getitem-...'", seen once in ten benchmark runs).
        futures = client.compute(ind.to_delayed())
        frame = pd.concat(client.gather(futures), ignore_index=True)
    # A province whose months have no rows has no group: its institutions are there, without data.
    silent = [refs[k] for k, p in enumerate(provinces) if p not in set(frame["province"])]
    frame = pd.concat([frame, *(province_indicators(sums_from_codes(empty_codes(), read_institutions(ref)),
                                                    read_institutions(ref), factors, basis) for ref in silent)],
                      ignore_index=True)
    return summarize(frame, catalog, year, basis, factors.id, quotas)


def national_tables_local(catalog: Catalog, year: int, factors: FactorSet | None = None, basis: str = "equivalent",
                          quotas=None) -> NationalTables:
    """The baseline: every file of `year` read into one frame in this process, then the
    same functions once over the nation (energy_sums, indicators_from_sums, rank, aggregate)."""
    factors = factors or load_factors()
    basis = normalize_basis(basis)
    parts = year_parts(catalog, year)
    use = use_frame(pa.concat_tables([read_use_table(p) for p in parts]).unify_dictionaries())
    delivered = {p.province for p in parts}
    inst = pd.concat([read_institutions(p.institutions) for p in catalog.provinces if p.province in delivered],
                     ignore_index=True)
    unique_institutions(inst, catalog)
    try:
        sums = energy_sums(use, inst, period="year", freq="day", tz=parts[0].timezone)
    except ValueError as exc:
        raise DatasetError(catalog.root, "-", str(exc)) from None
    del use
    return summarize(province_indicators(sums, inst, factors, basis), catalog, year, basis, factors.id, quotas)
