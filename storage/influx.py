"""InfluxDB store over the HTTP API shared by InfluxDB 1.8, 2.x (v1-compatible API) and
3.x: line protocol to `/write`, InfluxQL to `/query`.

Plain HTTP (httpx) on purpose: the old v1 Python client stores pandas-3 timestamps
wrongly and the v2 client cannot talk to 1.x. Writes are batched (the next batch is
built while the previous one is written), gzip-compressed (except to a server on
loopback, where compression only costs CPU on both ends; `?gzip=true|false` in the URL
overrides) and retried with exponential backoff. Consumption is computed from raw samples by the same
pure functions as the embedded store (`storage.rollup`), never with
`NON_NEGATIVE_DIFFERENCE`, which silently drops the interval of a counter reset.

Schema (precision: seconds):
* `sample,meter=<id> value=<float>,quality=<int>i <t>`
* `meter_event,meter=<id>,kind=<kind> old_index=<f>,new_index=<f> <t>`
* `bill,institution=<id>,energy=<e>,period_end=<date> quantity=<f>,unit="<u>",cost_cny=<f> <period_start>`
"""

from __future__ import annotations

import contextlib
import gzip
import ipaddress
import json
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from storage.base import (
    BILL_COLUMNS,
    EVENT_COLUMNS,
    SAMPLE_COLUMNS,
    Store,
    StoreError,
    StoreMissing,
    from_epoch_s,
    normalize_events,
    normalize_samples,
    ts,
)

BATCH_LINES = 50_000
RETRIES = 5
BACKOFF_S = 0.2  # first retry delay; doubles each time
TIMEOUT_S = 30.0


def escape_tag(value: str) -> str:
    """Escape a tag key or value for line protocol (commas, equals signs, spaces)."""
    return value.replace("\\", "\\\\").replace(",", r"\,").replace("=", r"\=").replace(" ", r"\ ")


def quote_ident(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_str(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def sample_body(norm: pd.DataFrame) -> bytes:
    """Line protocol for normalised samples, one line each, built in Arrow (vectorised):
    `sample,meter=<id> value=<float>,quality=<int>i <t>\n`. Floats are written in their
    shortest round-trip form, so no digit is lost."""
    if norm.empty:
        return b""
    codes, uniques = pd.factorize(norm["meter_id"])
    prefix = pa.array([f"sample,meter={escape_tag(str(u))} value=" for u in uniques]).take(pa.array(codes))
    lines = pc.binary_join_element_wise(
        prefix, pc.cast(pa.array(norm["value"].to_numpy(np.float64)), pa.string()), ",quality=",
        pc.cast(pa.array(norm["quality"].to_numpy(np.int64)), pa.string()), "i ",
        pc.cast(pa.array(norm["t"].to_numpy(np.int64)), pa.string()), "\n", "")
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32, count=len(lines) + 1, offset=lines.offset * 4)
    return lines.buffers()[2].to_pybytes()[offsets[0]:offsets[-1]]


def sample_lines(norm: pd.DataFrame) -> list[str]:
    """The lines of `sample_body` as strings."""
    return sample_body(norm).decode().splitlines()


def is_loopback(host: str | None) -> bool:
    if host in (None, "localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class InfluxStore(Store):
    """Store on an InfluxDB server, `influxdb://[USER:PASSWORD@]HOST:PORT/DB[?token=T&retention=RP]`."""

    def __init__(self, url: str, tz: str = "Asia/Shanghai", create_database: bool = True):
        super().__init__(tz)
        parts = urlsplit(url)
        if parts.scheme not in ("influxdb", "influxdbs"):
            raise ValueError(f"not an InfluxDB URL: {url}")
        self.url = url
        self.database = unquote(parts.path.lstrip("/")) or "civicwatt"
        query = parse_qs(parts.query)
        self.retention = query.get("retention", [None])[0]
        # Compress unless the server is on this machine, where it only costs CPU on both ends.
        gz = query.get("gzip", [None])[0]
        self.gzip = not is_loopback(parts.hostname) if gz is None else gz.lower() in ("1", "true", "yes")
        token = query.get("token", [None])[0]
        scheme = "https" if parts.scheme == "influxdbs" else "http"
        base = f"{scheme}://{parts.hostname}:{parts.port or 8086}"
        headers = {"Authorization": f"Token {token}"} if token else {}
        auth = (unquote(parts.username), unquote(parts.password or "")) if parts.username else None
        self._http = httpx.Client(base_url=base, headers=headers, auth=auth, timeout=TIMEOUT_S)
        if create_database:
            # 2.x/3.x map databases to existing buckets; creating is not allowed there
            with contextlib.suppress(StoreError):
                self.query(f"CREATE DATABASE {quote_ident(self.database)}")
        else:
            self._require_database()

    def _require_database(self) -> None:
        """StoreMissing when the server lists its databases and ours is not among them
        (a server that cannot list them is given the benefit of the doubt)."""
        try:
            names = {row[0] for s in self.query("SHOW DATABASES") for row in s.get("values") or []}
        except StoreError:
            return
        if self.database not in names:
            message = f"no database {self.database!r} on InfluxDB at {self._http.base_url}"
            self.close()
            raise StoreMissing(message)

    def close(self) -> None:
        self._http.close()

    # -- HTTP -------------------------------------------------------------------
    def _request(self, method: str, path: str, **kw) -> httpx.Response:
        delay = BACKOFF_S
        for attempt in range(RETRIES + 1):
            try:
                resp = self._http.request(method, path, **kw)
            except httpx.TransportError as exc:
                if attempt == RETRIES:
                    raise StoreError(f"InfluxDB at {self._http.base_url} unreachable: {exc}") from exc
            else:
                if resp.status_code < 500 and resp.status_code != 429:
                    if resp.status_code >= 400:
                        raise StoreError(f"InfluxDB {path} answered {resp.status_code}: {resp.text.strip()[:500]}")
                    return resp
                if attempt == RETRIES:
                    raise StoreError(f"InfluxDB {path} answered {resp.status_code}: {resp.text.strip()[:500]}")
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def ping(self) -> bool:
        try:
            return self._http.get("/ping").status_code in (200, 204)
        except httpx.TransportError:
            return False

    def _post_lines(self, body: bytes) -> None:
        """POST one batch of line protocol (gzip-compressed unless on loopback)."""
        params = {"db": self.database, "precision": "s"}
        if self.retention:
            params["rp"] = self.retention
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.gzip:
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        self._request("POST", "/write", params=params, content=body, headers=headers)

    def write_lines(self, lines: list[str]) -> None:
        """POST line protocol in batches of BATCH_LINES."""
        for i in range(0, len(lines), BATCH_LINES):
            self._post_lines("\n".join(lines[i:i + BATCH_LINES]).encode())

    def query(self, q: str) -> Iterator[dict]:
        """Run InfluxQL; yield every series ({name, tags, columns, values}) of every chunk."""
        params = {"db": self.database, "q": q, "epoch": "s", "chunked": "true", "chunk_size": "100000"}
        if self.retention:
            params["rp"] = self.retention
        resp = self._request("POST", "/query", data=params)
        out = []
        for line in resp.text.splitlines():
            if not line.strip():
                continue
            doc = json.loads(line)
            if "error" in doc:
                raise StoreError(f"InfluxDB query failed: {doc['error']}")
            for result in doc.get("results", []):
                if "error" in result:
                    raise StoreError(f"InfluxDB query failed: {result['error']}")
                out.extend(result.get("series", []))
        return iter(out)

    def _measurement(self, name: str) -> str:
        return f"{quote_ident(self.retention)}.{quote_ident(name)}" if self.retention else quote_ident(name)

    @staticmethod
    def _meter_where(meter_ids: Iterable[str] | None, tag: str = "meter") -> str | None:
        if meter_ids is None:
            return ""
        ids = list(meter_ids)
        if not ids:
            return None
        return " AND (" + " OR ".join(f"{quote_ident(tag)} = {quote_str(m)}" for m in ids) + ")"

    # -- samples ----------------------------------------------------------------
    def write_samples(self, samples: pd.DataFrame) -> int:
        norm = normalize_samples(samples)
        if norm.empty:
            return 0
        with ThreadPoolExecutor(max_workers=1) as pool:  # build the next batch while one is written
            pending: Future | None = None
            for i in range(0, len(norm), BATCH_LINES):
                body = sample_body(norm.iloc[i:i + BATCH_LINES])
                if pending is not None:
                    pending.result()
                pending = pool.submit(self._post_lines, body)
            if pending is not None:
                pending.result()
        return len(norm)

    def _samples_query(self, where: str, order_limit: str = "") -> pd.DataFrame:
        frames = []
        for series in self.query(
                f"SELECT value, quality FROM {self._measurement('sample')} WHERE {where} GROUP BY meter{order_limit}"):
            vals = series["values"]
            if not vals:
                continue
            arr = pd.DataFrame(vals, columns=series["columns"])
            frames.append(pd.DataFrame({
                "meter_id": series["tags"]["meter"],
                "time": from_epoch_s(arr["time"].to_numpy()),
                "value": arr["value"].astype(float).to_numpy(),
                "quality": arr["quality"].fillna(0).astype(np.int64).to_numpy(),
            }))
        if not frames:
            return pd.DataFrame({c: pd.Series(dtype=d) for c, d in
                                 zip(SAMPLE_COLUMNS, [object, "datetime64[s, UTC]", float, np.int64], strict=True)})
        df = pd.concat(frames, ignore_index=True)
        return df.sort_values(["meter_id", "time"], kind="stable").reset_index(drop=True)

    def read_samples(self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
                     meter_ids: Iterable[str] | None = None) -> pd.DataFrame:
        ids = self._meter_where(meter_ids)
        if ids is None:
            return self._samples_query("time < 0s AND time > 1s")
        lo = "time >= 0s" if start is None else f"time >= {int(ts(start, self.tz).timestamp())}s"
        hi = "" if end is None else f" AND time < {int(np.ceil(ts(end, self.tz).timestamp()))}s"
        return self._samples_query(lo + hi + ids)

    def last_samples_before(self, t: pd.Timestamp, meter_ids: Iterable[str] | None = None) -> pd.DataFrame:
        ids = self._meter_where(meter_ids)
        if ids is None:
            return self._samples_query("time < 0s AND time > 1s")
        hi = int(np.ceil(ts(t, self.tz).timestamp()))
        return self._samples_query(f"time < {hi}s{ids}", " ORDER BY time DESC LIMIT 1")

    def meter_ids(self) -> list[str]:
        out: list[str] = []
        for series in self.query(f"SHOW TAG VALUES FROM {self._measurement('sample')} WITH KEY = \"meter\""):
            out.extend(v[1] for v in series["values"])
        return sorted(set(out))

    def count_samples(self) -> int:
        n = 0
        for series in self.query(f"SELECT count(value) FROM {self._measurement('sample')}"):
            n += int(series["values"][0][1])
        return n

    # -- events -----------------------------------------------------------------
    def write_events(self, events: pd.DataFrame) -> None:
        ev = normalize_events(events)
        self.write_lines([
            f"meter_event,meter={escape_tag(r.meter_id)},kind={escape_tag(r.kind)} "
            f"old_index={r.old_index!r},new_index={r.new_index!r} {r.t}"
            for r in ev.itertuples()
        ])

    def read_events(self, meter_ids: Iterable[str] | None = None) -> pd.DataFrame:
        ids = self._meter_where(meter_ids)
        rows = []
        if ids is not None:
            for series in self.query(
                    f"SELECT old_index, new_index FROM {self._measurement('meter_event')} WHERE time >= 0s{ids} "
                    "GROUP BY meter, kind"):
                for t, old, new in series["values"]:
                    rows.append((series["tags"]["meter"], t, series["tags"]["kind"], float(old), float(new)))
        df = pd.DataFrame.from_records(rows, columns=["meter_id", "t", "kind", "old_index", "new_index"])
        df.insert(1, "time", from_epoch_s(df["t"].to_numpy()))
        return df[EVENT_COLUMNS].sort_values(["meter_id", "time"]).reset_index(drop=True)

    # -- bills ------------------------------------------------------------------
    def write_bills(self, bills: pd.DataFrame) -> int:
        lines = []
        for r in bills.itertuples(index=False):
            start = pd.Timestamp(r.period_start).strftime("%Y-%m-%d")
            end = pd.Timestamp(r.period_end).strftime("%Y-%m-%d")
            t = int(pd.Timestamp(start, tz="UTC").timestamp())
            cost = getattr(r, "cost_cny", None)
            cost_field = "" if cost is None or pd.isna(cost) else f",cost_cny={float(cost)!r}"
            unit = str(r.unit).replace('"', '\\"')
            lines.append(f"bill,institution={escape_tag(str(r.institution_id))},energy={escape_tag(str(r.energy))},"
                         f"period_end={end} quantity={float(r.quantity)!r},unit=\"{unit}\"{cost_field} {t}")
        self.write_lines(lines)
        return len(lines)

    def read_bills(self, institution_ids: Iterable[str] | None = None) -> pd.DataFrame:
        ids = self._meter_where(institution_ids, tag="institution")
        rows = []
        if ids is not None:
            for series in self.query(
                    f"SELECT quantity, unit, cost_cny FROM {self._measurement('bill')} WHERE time >= 0s{ids} "
                    "GROUP BY institution, energy, period_end"):
                tags = series["tags"]
                for t, qty, unit, cost in series["values"]:
                    rows.append((tags["institution"], tags["energy"], pd.Timestamp(t, unit="s").date(),
                                 pd.Timestamp(tags["period_end"]).date(), float(qty), unit,
                                 float("nan") if cost is None else float(cost)))
        df = pd.DataFrame.from_records(rows, columns=BILL_COLUMNS)
        return df.sort_values(["institution_id", "energy", "period_start"]).reset_index(drop=True)
