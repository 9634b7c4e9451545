"""The national dataset: province partitions of closed months as Parquet, their manifests, and reading them back.

Layout (one directory per province, copied as a whole into the national dataset):

    DATASET/province=ID/manifest.json               rows and sha256 of every file below
    DATASET/province=ID/institutions.parquet        the province's institutions (latest export)
    DATASET/province=ID/year=YYYY/month=MM/part-0.parquet   daily consumption of one closed month

A month file holds the province's use frame at daily resolution (`models.api.energy_use`
with freq 'day': the registry's main meters plus bills for unmetered energies, sub-meters
excluded), one row per meter (or bill) and local day: institution_id, meter_id (null for a
bill), energy, subitem, heating, source ('meter' | 'bill'), day (local calendar day),
quantity in the canonical unit named in `unit` (kWh, m3, GJ, kg), estimated_share (0..1).
The institutions table has `INSTITUTION_COLUMNS` (id, name, region, category,
floor_area_m2, heated_area_m2, occupants) plus what the arithmetic needs without the
registry: factor_region, heating_start, heating_end (`models.api.institution_context`),
and province; each delivery writes the registry's current institutions and keeps those
of earlier deliveries that are no longer in it (their months still refer to them). Files are zstd-compressed Parquet written by pyarrow.

Writing a month is atomic per partition: the month is written to a hidden temporary
directory next to its final place and renamed into place (a previous delivery of the same
month is renamed away first and deleted), then the institutions table and the manifest are
replaced with `os.replace`. The manifest is the commit record: readers take files from it
and check each file's row count and sha256 when they read it, so a half-copied or
tampered delivery is an error naming the file, never a silently different figure.

Reading goes through fsspec, so DATASET may be a local or shared directory or an object
store URL (s3://..., with the matching fsspec package installed on every worker).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

FORMAT = "civicwatt-national/1"
MANIFEST = "manifest.json"
INSTITUTIONS = "institutions.parquet"
PART = "part-0.parquet"
COMPRESSION = "zstd"
_MONTH = re.compile(r"(\d{4})-(\d{2})", re.ASCII)
_PROVINCE_ID = re.compile(r"[A-Za-z0-9_-]+")

_DICT = pa.dictionary(pa.int32(), pa.string())
#: Columns of a month file (units: `quantity` is in the canonical unit named in `unit`).
CONSUMPTION_SCHEMA = pa.schema([
    ("institution_id", _DICT), ("meter_id", _DICT), ("energy", _DICT), ("subitem", _DICT), ("heating", pa.bool_()),
    ("source", _DICT), ("day", pa.date32()), ("quantity", pa.float64()), ("unit", _DICT),
    ("estimated_share", pa.float64()),
])
#: Columns of the institutions table.
INSTITUTION_SCHEMA = pa.schema([
    ("institution_id", pa.string()), ("name", pa.string()), ("region", pa.string()), ("category", pa.string()),
    ("floor_area_m2", pa.float64()), ("heated_area_m2", pa.float64()), ("occupants", pa.float64()),
    ("factor_region", pa.string()), ("heating_start", pa.string()), ("heating_end", pa.string()),
    ("province", pa.string()),
])


class DatasetError(ValueError):
    """A problem with a file of the dataset (or a delivery), naming the file and the field.

    Picklable with its parts, so a Dask worker's error reaches the client intact."""

    def __init__(self, path: str, field: str, message: str):
        self.path, self.field, self.message = str(path), field, message
        super().__init__(f"{path}: {field}: {message}")

    def __reduce__(self):
        return (DatasetError, (self.path, self.field, self.message))


# -- months --------------------------------------------------------------------------------
def parse_month(month: str) -> tuple[int, int]:
    """(year, month) of 'YYYY-MM'; ValueError otherwise."""
    m = _MONTH.fullmatch(str(month))
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ValueError(f"not a month of the form YYYY-MM: {month!r}")
    return int(m.group(1)), int(m.group(2))


def month_bounds(month: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[first day, first day of the next month) of 'YYYY-MM', naive local dates."""
    y, m = parse_month(month)
    start = pd.Timestamp(year=y, month=m, day=1)
    return start, start + pd.offsets.MonthBegin(1)


def require_closed(month: str, timezone: str, today: pd.Timestamp | str | None = None) -> None:
    """ValueError unless `month` is over in `timezone` (the current and future months are refused)."""
    _start, end = month_bounds(month)
    now = pd.Timestamp(today) if today is not None else pd.Timestamp.now(tz=timezone).tz_localize(None)
    if end > now.normalize():
        raise ValueError(f"{month} is not a closed month yet (today is {now.date()} in {timezone}): only months "
                         f"that are over are delivered")


# -- writing -------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def consumption_table(use: pd.DataFrame) -> pa.Table:
    """A use frame at daily resolution (models.energy USE_COLUMNS) as a month file's table."""
    start = pd.DatetimeIndex(use["period_start"])
    day = (start.tz_localize(None) if start.tz is not None else start).normalize()
    meter = use["meter_id"].astype(object).where(use["meter_id"].notna(), None)
    cols = {
        "institution_id": use["institution_id"].astype(str), "meter_id": meter, "energy": use["energy"].astype(str),
        "subitem": use["subitem"].astype(str), "heating": use["heating"].astype(bool),
        "source": use["source"].astype(str), "day": day.to_numpy("datetime64[D]"),
        "quantity": use["quantity"].to_numpy(np.float64), "unit": use["unit"].astype(str),
        "estimated_share": use["estimated_share"].astype(float).fillna(0.0).to_numpy(np.float64),
    }
    arrays = [pa.array(cols[f.name], type=pa.string()).dictionary_encode() if pa.types.is_dictionary(f.type)
              else pa.array(cols[f.name], type=f.type) for f in CONSUMPTION_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=CONSUMPTION_SCHEMA)


def institutions_table(institutions: pd.DataFrame, province: str) -> pa.Table:
    """`models.api.institution_context(...)` rows of a province as the institutions table."""
    df = institutions.assign(province=province)
    return pa.Table.from_pandas(df[INSTITUTION_SCHEMA.names], schema=INSTITUTION_SCHEMA, preserve_index=False)


@contextlib.contextmanager
def _locked(directory: Path):
    """An exclusive lock on `directory` (one delivery of a province at a time)."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _write_replace(table: pa.Table, final: Path) -> None:
    tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex}")
    try:
        pq.write_table(table, tmp, compression=COMPRESSION)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def read_manifest_file(path: Path) -> dict:
    """A province's manifest (local file), or a fresh one when there is none."""
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(str(path), "-", f"not a readable manifest: {exc}") from None


def write_month(dataset: str | Path, province: str, month: str, use: pd.DataFrame, institutions: pd.DataFrame, *,
                timezone: str, factor_set: str, name: str = "") -> dict:
    """Write one closed month of a province (its daily use frame and its institutions as
    `institution_context` rows) into `dataset`, replacing an earlier delivery of the month.
    Returns the month's manifest entry (path, rows, sha256)."""
    if not _PROVINCE_ID.fullmatch(province):
        raise ValueError(f"province id {province!r} must match [A-Za-z0-9_-]+")
    y, m = parse_month(month)
    start, end = month_bounds(month)
    table = consumption_table(use)
    if table.num_rows:
        days = pd.DatetimeIndex(use["period_start"])
        days = days.tz_localize(None) if days.tz is not None else days
        outside = (days < start) | (days >= end)
        if outside.any():
            raise ValueError(f"{int(outside.sum())} row(s) outside {month}, e.g. {days[outside][0].date()}")
        unknown = ~use["institution_id"].astype(str).isin(institutions["institution_id"].astype(str))
        if unknown.any():
            raise ValueError(f"rows of institutions not in the institutions table, e.g. "
                             f"{use['institution_id'][unknown].iloc[0]!r}")
    pdir = Path(dataset) / f"province={province}"
    rel = f"year={y:04d}/month={m:02d}/{PART}"
    with _locked(pdir):
        final = pdir / f"year={y:04d}" / f"month={m:02d}"
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex}")
        old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex}")
        try:
            tmp.mkdir()
            pq.write_table(table, tmp / PART, compression=COMPRESSION)
            entry = {"path": rel, "rows": table.num_rows, "sha256": _sha256(tmp / PART),
                     "written": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")}
            if final.exists():
                os.rename(final, old)
            os.rename(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)
        inst = institutions_table(institutions, province)
        if (pdir / INSTITUTIONS).exists():  # keep institutions that earlier months refer to
            before = pq.read_table(pdir / INSTITUTIONS).select(INSTITUTION_SCHEMA.names).cast(INSTITUTION_SCHEMA)
            gone = pc.invert(pc.is_in(before.column("institution_id"), value_set=inst.column("institution_id")))
            inst = pa.concat_tables([inst, before.filter(gone)])
        _write_replace(inst, pdir / INSTITUTIONS)
        manifest = read_manifest_file(pdir / MANIFEST)
        manifest.update({"format": FORMAT, "province": province, "name": name or manifest.get("name", ""),
                         "timezone": timezone, "factor_set": factor_set,
                         "institutions": {"path": INSTITUTIONS, "rows": inst.num_rows,
                                          "sha256": _sha256(pdir / INSTITUTIONS)}})
        months = dict(manifest.get("months", {}))
        months[f"{y:04d}-{m:02d}"] = entry
        manifest["months"] = dict(sorted(months.items()))
        tmp_manifest = pdir / f".{MANIFEST}.tmp-{uuid.uuid4().hex}"
        try:
            tmp_manifest.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            os.replace(tmp_manifest, pdir / MANIFEST)
        finally:
            tmp_manifest.unlink(missing_ok=True)
    return entry


def export_month(store, registry, province: str, month: str, dataset: str | Path, factors=None,
                 today: pd.Timestamp | str | None = None) -> dict:
    """Deliver one closed month of the registry's region `province` (and its subtree) from
    the store: the daily use frame of `models.api.energy_use` and the institutions of
    `institution_context`, through `write_month`. Returns the month's manifest entry."""
    from models.api import energy_use, institution_context
    from models.factors import load_factors

    if province not in registry.region_by_id:
        raise ValueError(f"unknown region {province!r} (the province is a region id of the registry)")
    require_closed(month, registry.timezone, today)
    factors = factors or load_factors()
    subtree = registry.region_subtree(province)
    inst = institution_context(registry, factors)
    inst = inst[inst["region"].isin(subtree)].reset_index(drop=True)
    if inst.empty:
        raise ValueError(f"region {province!r} has no institutions")
    start, end = month_bounds(month)
    use = energy_use(store, registry, start.date().isoformat(), end.date().isoformat(), "day", factors,
                     institution_ids=inst["institution_id"].tolist())
    return write_month(dataset, province, month, use, inst, timezone=registry.timezone, factor_set=factors.id,
                       name=registry.region_by_id[province].name)


# -- reading -------------------------------------------------------------------------------
@dataclass(frozen=True)
class FileRef:
    """A file of the dataset with what its manifest says of it."""

    path: str  # full path or URL
    rows: int
    sha256: str


@dataclass(frozen=True)
class MonthPart:
    """One province-month: the unit of work of the national computation."""

    province: str
    month: str  # YYYY-MM
    file: FileRef
    institutions: FileRef
    timezone: str


@dataclass(frozen=True)
class Province:
    province: str
    name: str
    timezone: str
    factor_set: str
    institutions: FileRef
    months: tuple[MonthPart, ...]


@dataclass(frozen=True)
class Catalog:
    """What the manifests of a dataset say: provinces and their delivered months."""

    root: str
    provinces: tuple[Province, ...]

    def years(self) -> list[int]:
        return sorted({int(p.month[:4]) for prov in self.provinces for p in prov.months})

    def province(self, province: str) -> Province:
        return next(p for p in self.provinces if p.province == province)

    def parts(self, year: int) -> list[MonthPart]:
        """The province-months of `year`, by province then month."""
        return [p for prov in self.provinces for p in prov.months if p.month.startswith(f"{year:04d}-")]


def _join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


def _ref(root: str, entry: object, manifest: str, key: str) -> FileRef:
    if not isinstance(entry, dict) or not {"path", "rows", "sha256"} <= set(entry):
        raise DatasetError(manifest, key, "needs path, rows and sha256")
    try:
        rows = int(entry["rows"])
    except (TypeError, ValueError):
        raise DatasetError(manifest, f"{key}.rows", f"not a row count: {entry['rows']!r}") from None
    return FileRef(_join(root, str(entry["path"])), rows, str(entry["sha256"]))


def open_catalog(dataset: str | Path) -> Catalog:
    """The dataset's provinces from their manifests. DatasetError (naming the file) for a
    missing dataset, a dataset without provinces, an unreadable manifest or a file the
    manifest names that is not there."""
    url = str(dataset)
    fs, root = fsspec.core.url_to_fs(url)
    if not fs.isdir(root):
        raise DatasetError(url, "--dataset", "no such dataset directory")
    manifests = sorted(fs.glob(_join(root, "province=*", MANIFEST)))
    if not manifests:
        raise DatasetError(url, "--dataset", f"no province partitions found (expected province=ID/{MANIFEST}; "
                                             "a province writes them with `civicwatt national export`)")
    protocol = fs.protocol[0] if isinstance(fs.protocol, tuple | list) else fs.protocol
    prefix = "" if protocol in ("file", "local") else f"{protocol}://"
    provinces = []
    for mpath in manifests:
        shown = prefix + mpath
        try:
            doc = json.loads(fs.cat_file(mpath).decode("utf-8"))
        except (OSError, ValueError) as exc:
            raise DatasetError(shown, "-", f"not a readable manifest: {exc}") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise DatasetError(shown, "format", f"not a CivicWatt national manifest (format {FORMAT})")
        pdir = mpath.rsplit("/", 1)[0]
        pid = pdir.rsplit("/", 1)[1].removeprefix("province=")
        if doc.get("province") != pid:
            raise DatasetError(shown, "province", f"says {doc.get('province')!r} but lies in province={pid}/")
        base = prefix + pdir
        inst = _ref(base, doc.get("institutions"), shown, "institutions")
        tz = str(doc.get("timezone") or "Asia/Shanghai")
        months = []
        for month, entry in sorted((doc.get("months") or {}).items()):
            try:
                parse_month(month)
            except ValueError as exc:
                raise DatasetError(shown, f"months.{month}", str(exc)) from None
            months.append(MonthPart(pid, month, _ref(base, entry, shown, f"months.{month}"), inst, tz))
        for ref in (inst, *(p.file for p in months)):
            if not fs.exists(fsspec.core.url_to_fs(ref.path)[1]):
                raise DatasetError(ref.path, "-", f"missing (listed in {shown})")
        provinces.append(Province(pid, str(doc.get("name", "")), tz, str(doc.get("factor_set", "")), inst,
                                  tuple(months)))
    return Catalog(url, tuple(provinces))


def read_table(ref: FileRef, columns: list[str] | None = None) -> pa.Table:
    """The Parquet file of `ref` (only `columns` when given), checked against its manifest
    entry (sha256 of the whole file, rows)."""
    fs, path = fsspec.core.url_to_fs(ref.path)
    try:
        data = fs.cat_file(path)
    except OSError as exc:
        raise DatasetError(ref.path, "-", f"cannot be read: {exc}") from None
    if hashlib.sha256(data).hexdigest() != ref.sha256:
        raise DatasetError(ref.path, "sha256", "does not match the manifest (a partial copy, or changed since "
                                               "it was delivered): deliver the month again")
    try:
        file = pq.ParquetFile(io.BytesIO(data))
        missing = sorted(set(columns or []) - set(file.schema_arrow.names))
        if missing:
            raise DatasetError(ref.path, ",".join(missing), "missing column(s)")
        table = file.read(columns=columns)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(ref.path, "-", f"not a readable Parquet file: {exc}") from None
    if table.num_rows != ref.rows:
        raise DatasetError(ref.path, "rows", f"{table.num_rows} rows, the manifest says {ref.rows}")
    return table


#: The columns of a month file the arithmetic reads.
USE_READ = ["institution_id", "energy", "heating", "day", "quantity", "estimated_share"]


def read_use_table(part: MonthPart) -> pa.Table:
    """A month file as Arrow (checked, its days inside its month), with only the columns
    the arithmetic reads."""
    table = read_table(part.file, USE_READ)
    if table.num_rows:
        start, end = month_bounds(part.month)
        lo, hi = (pd.Timestamp(v.as_py()) for v in pc.min_max(table.column("day")).values())
        if lo < start or hi >= end:
            raise DatasetError(part.file.path, "day", f"days {lo.date()}..{hi.date()} outside {part.month}")
    return table


def use_frame(table: pa.Table) -> pd.DataFrame:
    """A month file's table as a use frame for `models.indicators.energy_sums`
    (institution_id and energy categorical, period_start the local day, naive)."""
    df = table.to_pandas(date_as_object=False)
    return df.rename(columns={"day": "period_start"})


@lru_cache(maxsize=8)
def read_institutions(ref: FileRef) -> pd.DataFrame:
    """A province's institutions table (checked; cached per process: a worker reads it once)."""
    df = read_table(ref, INSTITUTION_SCHEMA.names).to_pandas()
    if df["institution_id"].duplicated().any():
        dup = df.loc[df["institution_id"].duplicated(), "institution_id"].iloc[0]
        raise DatasetError(ref.path, "institution_id", f"{dup!r} appears twice")
    return df
