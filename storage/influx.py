"""InfluxDB store over the v1 HTTP API (1.8, 2.x, 3.x).

InfluxDB store over the HTTP API shared by InfluxDB 1.8, 2.x (v1-compatible API) and
3.x: line protocol to `/write`, InfluxQL to `/query`.

Plain HTTP (httpx) on purpose: the old v1 Python client stores pandas-3 timestamps
wrongly and the v2 client cannot talk to 1.x. Writes are batched (the next batch is
built while the previous one is written), gzip-compressed (except to a server on
loopback, where compression only costs CPU on both ends; `?gzip=true|false` in the URL
overrides) and retried with exponential backoff. Consumption is materialised as samples
arrive by the same pure functions as the embedded store (`storage.rollup`, driven by
`storage.base.Store`) and written back through the same `/write` path, never computed with
`NON_NEGATIVE_DIFFERENCE`, which silently drops the interval of a counter reset.

Reads are columnar: `/query` with `Accept: application/csv` and `chunked=true`, the body
streamed into pyarrow's incremental CSV reader (no JSON body, no Python row per point).

Schema (precision: seconds):
* `sample,meter=<id> value=<float>,quality=<int>i <t>`
* `consumption_hour|consumption_day,meter=<id> quantity=<f>,est=<f>,flags=<i>i,samples=<i>i,
  stored=<i>i,covered=<i>i,step=<f> <local period start>`: quantity and est (its estimated part) in
  index units before the multiplier (see `storage.base`)
* `meter_event,meter=<id>,kind=<kind> old_index=<f>,new_index=<f> <t>`
* `bill,institution=<id>,energy=<e>,period_end=<date> quantity=<f>,unit="<u>",cost_cny=<f> <period_start>`
* `civicwatt_settings,key=consumption json="<settings>" 0`: what the consumption
  measurements were computed with

InfluxDB has no transactions: a write puts its samples first and then the periods they
change, so a write interrupted between the two leaves those periods stale until the next
write touching them or `rebuild_consumption()`; two processes writing the same meter's
same days at once can do the same (writers in one process are serialised).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import ipaddress
import itertools
import json
import logging
import re
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from storage.base import (
    BILL_COLUMNS,
    BILL_FIGURES,
    EVENT_COLUMNS,
    SAMPLE_COLUMNS,
    Store,
    StoreError,
    StoreMissing,
    empty_periods,
    expected_samples,
    from_epoch_s,
    ts,
)

BATCH_LINES = 50_000
CHUNK_ROWS = 100_000  # rows per chunk of a streamed /query answer
CSV_BLOCK_BYTES = 4 << 20  # a streamed CSV answer is parsed this much at a time
READ_SLICES = 2  # a long read of a consumption measurement goes as this many concurrent queries
SLICE_ABOVE_S = 40 * 86_400  # ... when it spans more than this
# A read of more meters goes as shares of at most this many, READ_SLICES at a time:
# influxd 1.6 holds ~65 KB per series a statement reads, whatever the span, until the
# statement ends (a year's sums of all 213,300 meters of a province peaked at 14.8 GB and
# took 73.5 s in one statement; of a tenth of them, 2.3 GB and 6.4 s; README "Stores").
SHARE_METERS = 20_000
# Shard groups of a database this store creates: InfluxDB's default for an infinite
# retention policy is 7 days, so a year's read opens ~53 shards x every series (an
# iterator each), ~10x the time of the same read from one or two 52-week shards
# (benchmarks/bench_consumption.py). An existing database keeps its shards; see README.
SHARD_DURATION = "52w"
STATEMENTS_PER_QUERY = 60  # InfluxQL statements sent in one /query
# A `sum() ... GROUP BY meter` statement costs InfluxDB about as much as reading this many
# day rows of each meter: it decodes every series' whole stored block however short its
# span (12 month sums of a year for 6,750 meters took 15 s, reading the year's 2.46 M day
# rows 9 s; benchmarks/bench_province.py). Spans shorter than this are summed here from
# one read of their day rows (`_day_sums`), longer ones by the server.
SUM_STATEMENT_DAYS = 50
MEASUREMENTS = {"hour": "consumption_hour", "day": "consumption_day"}
PERIOD_FIELDS = {"quantity": pa.float64(), "est": pa.float64(), "flags": pa.int64(), "samples": pa.int64(),
                 "stored": pa.int64(), "covered": pa.int64(), "step": pa.float64()}
SAMPLE_FIELDS = {"value": pa.float64(), "quality": pa.int64()}
_ESCAPE = re.compile(r"\\(.)")
log = logging.getLogger("civicwatt.store")
RETRIES = 5
BACKOFF_S = 0.2  # first retry delay; doubles each time
TIMEOUT_S = 30.0  # connecting, sending, and waiting for the answer to a write
# Waiting for a /query answer: a province's month or year sums keep InfluxDB 1.x busy for
# minutes before the first byte (bench_province at 2,000 institutions failed at 30 s). A
# query that times out is not sent again: the server is busy, not gone.
QUERY_TIMEOUT_S = 900.0


def escape_tag(value: str) -> str:
    """Escape a tag key or value for line protocol (commas, equals signs, spaces)."""
    return value.replace("\\", "\\\\").replace(",", r"\,").replace("=", r"\=").replace(" ", r"\ ")


def quote_ident(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_str(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


_REGEX_SPECIAL = re.compile(r"([^0-9A-Za-z_\u0080-\U0010ffff])")


def regex_literal(value: str) -> str:
    """`value` matched literally inside an InfluxQL regex `/.../` (RE2 syntax): every ASCII
    character but letters, digits and `_` escaped (RE2 reads an escaped punctuation mark
    or space as itself; InfluxQL turns `\\/` into the `/` that would end the regex)."""
    return _REGEX_SPECIAL.sub(r"\\\1", value)


def line_body(measurement: str, frame: pd.DataFrame, fields: dict[str, pa.DataType]) -> bytes:
    """Line protocol, one line per row of `frame` (meter_id, t and the `fields`), built
    in Arrow (vectorised): `<measurement>,meter=<id> f1=<float>,f2=<int>i <t>\n`. Floats
    are written in their shortest round-trip form, so no digit is lost."""
    if frame.empty:
        return b""
    codes, uniques = pd.factorize(frame["meter_id"])
    prefix = pa.array([f"{measurement},meter={escape_tag(str(u))} " for u in uniques]).take(pa.array(codes))
    parts: list = [prefix]
    for k, (name, kind) in enumerate(fields.items()):
        values = pa.array(frame[name].to_numpy(np.float64 if kind == pa.float64() else np.int64))
        parts += [("," if k else "") + f"{name}=", pc.cast(values, pa.string())] + ([] if kind == pa.float64() else ["i"])
    parts += [" ", pc.cast(pa.array(frame["t"].to_numpy(np.int64)), pa.string()), "\n"]
    lines = pc.binary_join_element_wise(*parts, "")
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32, count=len(lines) + 1, offset=lines.offset * 4)
    return lines.buffers()[2].to_pybytes()[offsets[0]:offsets[-1]]


def sample_body(norm: pd.DataFrame) -> bytes:
    """Line protocol for normalised samples: `sample,meter=<id> value=<float>,quality=<int>i <t>`."""
    return line_body("sample", norm, SAMPLE_FIELDS)


def unescape_tag(value: str) -> str:
    return _ESCAPE.sub(r"\1", value)


def is_loopback(host: str | None) -> bool:
    if host in (None, "localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class DatabaseNotFound(StoreError):
    """InfluxDB 1.x answered 404 "database not found"."""


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
        self._query_timeout = httpx.Timeout(TIMEOUT_S, read=QUERY_TIMEOUT_S)
        self._create = create_database
        # A server that is down when a writer (a collector) starts: the database and the
        # settings are set up by the first request that reaches it, not refused now.
        self._setup_pending = create_database and not self.ping()
        if not self._setup_pending:
            self._set_up()

    def _set_up(self) -> None:
        """Create the database (1.x; 2.x/3.x map databases to existing buckets and refuse
        to create: ignored) or require it, then load the settings."""
        if self._create:
            self._create_database()
        else:
            self._require_database()
        self._open_settings()

    def _create_database(self) -> None:
        with contextlib.suppress(StoreError):
            list(self.query(f"CREATE DATABASE {quote_ident(self.database)} WITH SHARD DURATION {SHARD_DURATION}"))

    def set_meters(self, meters: pd.DataFrame) -> None:
        if self._setup_pending:  # applied when the server is reached (`_request`)
            self._meters = meters[["meter_id", "multiplier", "rollover_at"]].copy()
            return
        super().set_meters(meters)

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
        super().close()
        self._http.close()

    # -- HTTP -------------------------------------------------------------------
    def _request(self, method: str, path: str, stream: bool = False, **kw) -> httpx.Response:
        """Send a request; a refused or broken connection and a 5xx or 429 answer are sent
        again, RETRIES times with a doubling backoff. A /query (JSON, or CSV with `stream`:
        the body left to the caller, who closes the response) waits up to QUERY_TIMEOUT_S
        for its answer and is not sent again when that passes (a province's sums keep
        InfluxDB 1.x busy for minutes before the first byte: the server is busy, not gone);
        anything else waits TIMEOUT_S. The timeout goes with the request itself
        (`build_request(timeout=...)`), not the client's default."""
        if self._setup_pending:
            self._setup_pending = False  # (the set-up's own requests come through here)
            try:
                self._set_up()
                super().set_meters(self._meters)
            except BaseException:
                self._setup_pending = True
                raise
        query = path == "/query"
        timeout = self._query_timeout if query else self._http.timeout
        delay = BACKOFF_S
        for attempt in range(RETRIES + 1):
            try:
                resp = self._http.send(self._http.build_request(method, path, timeout=timeout, **kw), stream=stream)
            except httpx.ReadTimeout as exc:
                if query:
                    raise self._query_timed_out() from exc
                if attempt == RETRIES:
                    raise StoreError(f"InfluxDB at {self._http.base_url} unreachable: {exc}") from exc
            except httpx.TransportError as exc:
                if attempt == RETRIES:
                    raise StoreError(f"InfluxDB at {self._http.base_url} unreachable: {exc}") from exc
            else:
                if resp.status_code < 400:
                    return resp
                try:
                    text = resp.read().decode(errors="replace").strip()[:500]
                finally:
                    resp.close()
                if resp.status_code == 404 and "database not found" in text:
                    raise DatabaseNotFound(f"InfluxDB {path}: {text}")
                if (resp.status_code < 500 and resp.status_code != 429) or attempt == RETRIES:
                    raise StoreError(f"InfluxDB {path} answered {resp.status_code}: {text}")
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def _query_timed_out(self) -> StoreError:
        return StoreError(f"InfluxDB at {self._http.base_url} did not answer a query within "
                          f"{self._query_timeout.read:g} s")

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
        try:
            self._request("POST", "/write", params=params, content=body, headers=headers)
        except DatabaseNotFound:
            if not self._create:
                raise
            self._recreate_database()
            self._request("POST", "/write", params=params, content=body, headers=headers)

    def write_lines(self, lines: list[str]) -> None:
        """POST line protocol in batches of BATCH_LINES."""
        for i in range(0, len(lines), BATCH_LINES):
            self._post_lines("\n".join(lines[i:i + BATCH_LINES]).encode())

    def _query_params(self, q: str) -> dict:
        params = {"db": self.database, "q": q, "epoch": "s", "chunked": "true", "chunk_size": str(CHUNK_ROWS)}
        if self.retention:
            params["rp"] = self.retention
        return params

    def query(self, q: str) -> Iterator[dict]:
        """Run InfluxQL; yield every series ({name, tags, columns, values}) of every chunk,
        reading the chunked answer line by line (for small answers: events, bills)."""
        try:
            yield from self._query(q)
        except DatabaseNotFound:
            if not self._create:
                raise
            self._recreate_database()
            yield from self._query(q)

    def _recreate_database(self) -> None:
        """InfluxDB 1.x restarted empty, or the database was dropped: create it again."""
        log.warning("InfluxDB has no database %r: creating it", self.database)
        self._create_database()

    def _query(self, q: str) -> Iterator[dict]:
        resp = self._request("POST", "/query", data=self._query_params(q))
        for line in resp.iter_lines():
            if not line.strip():
                continue
            doc = json.loads(line)
            for error in [doc.get("error"), *(r.get("error") for r in doc.get("results", []))]:
                if error is not None:
                    kind = DatabaseNotFound if str(error).startswith("database not found") else StoreError
                    raise kind(f"InfluxDB query failed: {error}")
            for result in doc.get("results", []):
                yield from result.get("series", [])

    def _csv_batches(self, q: str, fields: dict[str, pa.DataType]) -> Iterator[pa.RecordBatch]:
        """Run InfluxQL (one or more statements, each selecting `fields` GROUP BY meter)
        and stream the CSV answer into Arrow record batches (name, tags, time, *fields),
        block by block as the body arrives, never holding the whole body."""
        types = {"name": pa.string(), "tags": pa.string(), "time": pa.int64(), **fields}
        convert = pacsv.ConvertOptions(column_types=types, strings_can_be_null=False)
        headers = {"Accept": "application/csv"}
        if not self.gzip:  # on loopback a compressed answer only costs CPU
            headers["Accept-Encoding"] = "identity"
        started = False  # once a batch is out, a broken stream is an error, not a retry
        for attempt in range(RETRIES + 1):
            resp = self._request("POST", "/query", stream=True, data=self._query_params(q), headers=headers)
            try:
                for batch in csv_batches(resp.iter_bytes(), convert):
                    started = True
                    yield batch
                return
            except httpx.ReadTimeout as exc:  # the body stopped coming
                raise self._query_timed_out() from exc
            except httpx.TransportError as exc:
                if attempt == RETRIES or started:
                    raise StoreError(f"InfluxDB at {self._http.base_url} unreachable: {exc}") from exc
            finally:
                resp.close()
            time.sleep(BACKOFF_S * 2**attempt)

    def _csv_frame(self, statements: list[str], fields: dict[str, pa.DataType]) -> pd.DataFrame:
        """meter_id, t and `fields` of the answers to `statements` (sent STATEMENTS_PER_QUERY at a time)."""
        frames = []
        for i in range(0, len(statements), STATEMENTS_PER_QUERY):
            part = statements[i:i + STATEMENTS_PER_QUERY]
            for batch in self._csv_batches("; ".join(part), fields):
                if batch.num_rows == 0:
                    continue
                tags = pc.dictionary_encode(batch.column("tags"))
                names = np.asarray([unescape_tag(v.split("=", 1)[1]) for v in tags.dictionary.to_pylist()], object)
                frame = {"meter_id": names[tags.indices.to_numpy(zero_copy_only=False)],
                         "t": batch.column("time").to_numpy(zero_copy_only=False)}
                frame.update({f: batch.column(f).to_numpy(zero_copy_only=False) for f in fields})
                frames.append(pd.DataFrame(frame))
        if not frames:
            return pd.DataFrame({"meter_id": pd.Series(dtype=object), "t": pd.Series(dtype=np.int64),
                                 **{f: pd.Series(dtype=k.to_pandas_dtype()) for f, k in fields.items()}})
        return pd.concat(frames, ignore_index=True)

    def _measurement(self, name: str) -> str:
        return f"{quote_ident(self.retention)}.{quote_ident(name)}" if self.retention else quote_ident(name)

    @staticmethod
    def _meter_where(meter_ids: Iterable[str] | None, tag: str = "meter") -> str | None:
        """` AND <tag> =~ /^(?:id1|id2|...)$/` ("" for every meter, None for none): one
        regular expression, matched once per tag value of the index. The same filter as
        `tag = 'id1' OR tag = 'id2' ...`, whose cost grows faster than its length: a year's
        sums of 6,750 meters took InfluxDB 1.6 18 s with it, 2.8 s with the regex (no
        filter: 1.7-2.4 s; benchmarks/bench_province.py's store)."""
        if meter_ids is None:
            return ""
        ids = list(meter_ids)
        if not ids:
            return None
        return f" AND {quote_ident(tag)} =~ /^(?:{'|'.join(regex_literal(str(m)) for m in ids)})$/"

    # -- samples ----------------------------------------------------------------
    def _put_samples(self, norm: pd.DataFrame) -> None:
        self._put_lines("sample", norm, SAMPLE_FIELDS)

    def _put_lines(self, measurement: str, frame: pd.DataFrame, fields: dict[str, pa.DataType]) -> None:
        """Write rows as line protocol in batches of BATCH_LINES, building the next batch
        while one is posted."""
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending: Future | None = None
            for i in range(0, len(frame), BATCH_LINES):
                body = line_body(measurement, frame.iloc[i:i + BATCH_LINES], fields)
                if pending is not None:
                    pending.result()
                pending = pool.submit(self._post_lines, body)
            if pending is not None:
                pending.result()

    def _samples_frame(self, statements: list[str]) -> pd.DataFrame:
        """Normalised samples (meter_id, t, value, quality) answering `statements`."""
        df = self._csv_frame(statements, SAMPLE_FIELDS)
        return df.sort_values(["meter_id", "t"], kind="stable").reset_index(drop=True)

    def _sample_statement(self, where: str, tail: str = "") -> str:
        return f"SELECT value, quality FROM {self._measurement('sample')} WHERE {where} GROUP BY meter{tail}"

    def _samples_near(self, windows: pd.DataFrame, before: int, after: int, inside: bool = True) -> pd.DataFrame:
        statements = []
        for (lo, hi), group in windows.groupby(["lo", "hi"], sort=False):
            for i in range(0, len(group), 200):
                ids = self._meter_where(group["meter_id"].iloc[i:i + 200].tolist())
                if before:
                    statements.append(self._sample_statement(f"time < {lo}s{ids}", f" ORDER BY time DESC LIMIT {before}"))
                if inside:
                    statements.append(self._sample_statement(f"time >= {lo}s AND time < {hi}s{ids}"))
                if after:
                    statements.append(self._sample_statement(f"time >= {hi}s{ids}", f" ORDER BY time ASC LIMIT {after}"))
        return self._samples_frame(statements)

    def _to_samples(self, norm: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"meter_id": norm["meter_id"].to_numpy(object), "time": from_epoch_s(norm["t"].to_numpy()),
                             "value": norm["value"].to_numpy(float),
                             "quality": norm["quality"].to_numpy(np.int64)})[SAMPLE_COLUMNS]

    def read_samples(self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
                     meter_ids: Iterable[str] | None = None) -> pd.DataFrame:
        lo = "time >= 0s" if start is None else f"time >= {int(ts(start, self.tz).timestamp())}s"
        hi = "" if end is None else f" AND time < {int(np.ceil(ts(end, self.tz).timestamp()))}s"
        return self._to_samples(self._samples_frame([self._sample_statement(lo + hi + where)
                                                     for where in self._shares(_listed(meter_ids))]))

    def last_samples_before(self, t: pd.Timestamp, meter_ids: Iterable[str] | None = None) -> pd.DataFrame:
        hi = int(np.ceil(ts(t, self.tz).timestamp()))
        return self._to_samples(self._samples_frame([self._sample_statement(f"time < {hi}s{where}",
                                                                            " ORDER BY time DESC LIMIT 1")
                                                     for where in self._shares(_listed(meter_ids))]))

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

    def _sample_span(self, meter_ids: list[str] | None) -> pd.DataFrame:
        shares = self._shares(meter_ids)
        if not shares:
            return pd.DataFrame({"meter_id": [], "first": [], "last": []})
        spans = {}
        for fn in ("first", "last"):
            df = self._csv_frame([f"SELECT {fn}(value) AS value FROM {self._measurement('sample')} "
                                  f"WHERE time >= 0s{where} GROUP BY meter" for where in shares], {"value": pa.float64()})
            spans[fn] = df.set_index("meter_id")["t"]
        out = pd.DataFrame(spans).sort_index()
        return pd.DataFrame({"meter_id": out.index.to_numpy(object), "first": out["first"].to_numpy(np.int64),
                             "last": out["last"].to_numpy(np.int64)})

    # -- consumption measurements -------------------------------------------------
    def _put_periods(self, freq: str, rows: pd.DataFrame) -> None:
        self._put_lines(MEASUREMENTS[freq], rows, PERIOD_FIELDS)

    def _read_periods(self, freq: str, lo: int, hi: int, meter_ids: list[str] | None,
                      columns: list[str]) -> pd.DataFrame:
        ids = self._meter_where(meter_ids)
        if ids is None:
            return empty_periods(columns)
        fields = {c: PERIOD_FIELDS[c] for c in columns}
        statements = [f"SELECT {', '.join(fields)} FROM {self._measurement(MEASUREMENTS[freq])} "
                      f"WHERE time >= {a}s AND time < {b}s{where} GROUP BY meter"
                      for a, b, where in self._read_slices(lo, hi, meter_ids)]
        with ThreadPoolExecutor(max_workers=min(READ_SLICES, len(statements))) as pool:
            parts = [p for p in pool.map(lambda q: self._csv_frame([q], fields), statements) if len(p)]
        if not parts:
            return empty_periods(columns)
        df = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        if len(parts) > 1:
            df = df.sort_values(["meter_id", "t"], kind="stable", ignore_index=True)
        return df[["meter_id", "t", *columns]]

    def _read_slices(self, lo: int, hi: int, meter_ids: list[str] | None) -> list[tuple[int, int, str]]:
        """(lo, hi, meter filter) of the reads a read of [lo, hi) (epoch s) goes as, to be run
        READ_SLICES at once (the server answers each on its own core): given meters as
        shares of at most SHARE_METERS (`_shares`), and at least READ_SLICES of them for a
        read spanning more than SLICE_ABOVE_S (each share over the whole range: each
        series' block decoded once, and the shares hold rows wherever in the range they
        are); every meter (None) over a long range in READ_SLICES time slices; else whole."""
        if meter_ids is None and hi - lo > SLICE_ABOVE_S:
            cuts = [lo + (hi - lo) * k // READ_SLICES for k in range(READ_SLICES)] + [hi]
            return [(a, b, "") for a, b in itertools.pairwise(cuts)]
        return [(lo, hi, where) for where in self._shares(meter_ids, READ_SLICES if hi - lo > SLICE_ABOVE_S else 1)]

    def _shares(self, meter_ids: list[str] | None, at_least: int = 1) -> list[str]:
        """Meter filters (`_meter_where`) of `meter_ids` cut into shares of at most
        SHARE_METERS meters, and into at least `at_least` (fewer only with fewer meters);
        [""] for every meter (None), [] for none."""
        if meter_ids is None:
            return [""]
        n = max(at_least, -(-len(meter_ids) // SHARE_METERS))
        parts = np.array_split(np.asarray(meter_ids, object), n) if len(meter_ids) else []
        return [self._meter_where(part.tolist()) for part in parts if len(part)]

    def _sums_between(self, keys: pd.DatetimeIndex, cuts: np.ndarray,
                      meter_ids: Iterable[str] | None) -> pd.DataFrame | None:
        """Spans summed per meter over the covered days: a span of SUM_STATEMENT_DAYS or
        more by the server, one `sum()` statement each (a year of 405 meters answers 405
        rows, not 147,825 daily ones), shorter ones here from one read of their day rows
        (`_day_sums`). Inside `judging_completeness`, spans all summed here count the
        judged meters' complete days in the same read (one poll interval at a time, the
        spans' days of one length)."""
        meter_ids = _listed(meter_ids)
        if self._meter_where(meter_ids) is None:
            return pd.DataFrame({"meter_id": [], "period_start": pd.DatetimeIndex([], tz=self.tz), "quantity": [],
                                 "est": []})
        here = np.diff(cuts) < SUM_STATEMENT_DAYS * 86_400
        sets, length = self._judged_sets(meter_ids, cuts, judgeable=bool(here.all()))
        parts = []
        for interval, ids in sets:
            judge = (interval, length, self._judging_target()) if np.isfinite(interval) else None
            if here.any():
                sums = self._day_sums(cuts, here, ids, judge)
                if judge is not None:
                    self._keep_judged(interval, cuts, ids, sums.loc[sums["complete"].to_numpy() > 0,
                                                                   ["meter_id", "span", "complete"]])
                    sums = sums[sums["covered"].to_numpy() > 0]
                parts.append(sums)
            if not here.all():
                sum_fields = {"quantity": pa.float64(), "est": pa.float64()}
                statements = [[f"SELECT sum(quantity) AS quantity, sum(est) AS est FROM "
                               f"{self._measurement(MEASUREMENTS['day'])} WHERE time >= {cuts[k]}s AND time < "
                               f"{cuts[k + 1]}s AND covered = 1{where} GROUP BY meter"
                               for k in np.flatnonzero(~here)] for where in self._shares(ids)]
                with ThreadPoolExecutor(max_workers=min(READ_SLICES, len(statements))) as pool:
                    df = pd.concat(list(pool.map(self._csv_frame, statements, itertools.repeat(sum_fields))),
                                   ignore_index=True)
                # an aggregate without GROUP BY time answers at its range's lower bound: the cut
                parts.append(df.assign(span=np.searchsorted(cuts, df["t"].to_numpy(np.int64), side="right") - 1))
        df = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        out = pd.DataFrame({"meter_id": df["meter_id"].to_numpy(object), "period_start": keys[df["span"].to_numpy(np.int64)],
                            "quantity": df["quantity"].to_numpy(float), "est": df["est"].to_numpy(float)})
        return out.sort_values(["meter_id", "period_start"], kind="stable", ignore_index=True)

    def _day_sums(self, cuts: np.ndarray, here: np.ndarray, meter_ids: list[str] | None,
                  judge: tuple[float, np.ndarray, float] | None = None) -> pd.DataFrame:
        """meter_id, span (k of [cuts[k], cuts[k+1]), epoch s, for the spans `here`),
        quantity, est: the covered day rows of `meter_ids` (None: all) in each run of
        consecutive spans `here` streamed (`_read_slices`, READ_SLICES reads at once) and
        summed here per meter and span, batch by batch (memory bounded by the sums, not
        the rows). `judge` (poll interval s, the spans' day lengths s, target): the days
        with a sample are read too, and covered (covered days) and complete (days at the
        target under the completeness rule, as `EmbeddedStore._SUMS_JUDGED`) counted."""
        fields = {"quantity": pa.float64(), "est": pa.float64()}
        if judge is not None:
            fields |= {c: PERIOD_FIELDS[c] for c in ("covered", "samples", "stored", "step")}
        n_spans = len(cuts) - 1
        edge = np.diff(np.r_[0, here.astype(np.int8), 0])
        runs = [(int(cuts[a]), int(cuts[b])) for a, b in zip(np.flatnonzero(edge == 1), np.flatnonzero(edge == -1),
                                                              strict=True)]
        sums = ["quantity", "est", *(("covered", "complete") if judge is not None else ())]

        def weights(batch: pa.RecordBatch, span: np.ndarray) -> dict[str, np.ndarray]:
            col = {f: batch.column(f).to_numpy(zero_copy_only=False) for f in fields}
            if judge is None:
                return col
            interval, length, target = judge
            day = length[span]
            covered = col["covered"] == 1
            samples, step = col["samples"].astype(float), col["step"]
            own = (col["stored"] == col["samples"]) & (step > 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                expected = np.where(own, expected_samples(day, step), expected_samples(day, interval))
            return {"quantity": np.where(covered, col["quantity"], 0.0), "est": np.where(covered, col["est"], 0.0),
                    "covered": covered.astype(float), "complete": ((samples > 0) & (samples / expected >= target)) * 1.0}

        def read(lo: int, hi: int, where: str) -> list[pd.DataFrame]:
            rows = "covered = 1" if judge is None else "(covered = 1 OR samples > 0)"
            q = (f"SELECT {', '.join(fields)} FROM {self._measurement(MEASUREMENTS['day'])} WHERE time >= {lo}s "
                 f"AND time < {hi}s AND {rows}{where} GROUP BY meter")
            parts = []
            for batch in self._csv_batches(q, fields):
                if batch.num_rows == 0:
                    continue
                tags = pc.dictionary_encode(batch.column("tags"))
                names = np.asarray([unescape_tag(v.split("=", 1)[1]) for v in tags.dictionary.to_pylist()], object)
                span = np.searchsorted(cuts, batch.column("time").to_numpy(zero_copy_only=False), side="right") - 1
                key = tags.indices.to_numpy(zero_copy_only=False).astype(np.int64) * n_spans + span
                uniq, inverse = np.unique(key, return_inverse=True)
                w = weights(batch, span)
                parts.append(pd.DataFrame({
                    "meter_id": names[uniq // n_spans], "span": uniq % n_spans,
                    **{f: np.bincount(inverse, weights=w[f], minlength=len(uniq)) for f in sums}}))
            return parts

        reads = [part for lo, hi in runs for part in self._read_slices(lo, hi, meter_ids)]
        with ThreadPoolExecutor(max_workers=max(1, min(READ_SLICES, len(reads)))) as pool:
            parts = [p for got in pool.map(lambda ab: read(*ab), reads) for p in got]
        if not parts:
            return pd.DataFrame({"meter_id": np.empty(0, object), "span": np.empty(0, np.int64),
                                 **{f: np.empty(0) for f in sums}})
        # a meter's span cut by a batch or slice boundary: its partial sums added
        out = pd.concat(parts, ignore_index=True).groupby(["meter_id", "span"], as_index=False, sort=True).sum()
        return out.astype({"complete": np.int64}) if judge is not None else out

    def _drop_periods(self) -> None:
        for name in MEASUREMENTS.values():
            with contextlib.suppress(StoreError):
                list(self.query(f"DROP MEASUREMENT {quote_ident(name)}"))

    def _load_settings(self) -> dict:
        for series in self.query(f"SELECT last(json) FROM {self._measurement('civicwatt_settings')} "
                                 "WHERE \"key\" = 'consumption'"):
            if series["values"]:
                return json.loads(series["values"][0][1])
        return {}

    def _save_settings(self, settings: dict) -> None:
        text = json.dumps(settings).replace("\\", "\\\\").replace('"', '\\"')
        self._post_lines(f'civicwatt_settings,key=consumption json="{text}" 0'.encode())

    # -- events -----------------------------------------------------------------
    def _put_events(self, ev: pd.DataFrame) -> None:
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
            optional = ""
            for name in ("cost_cny", *BILL_FIGURES):
                value = getattr(r, name, None)
                optional += "" if value is None or pd.isna(value) else f",{name}={float(value)!r}"
            unit = str(r.unit).replace('"', '\\"')
            lines.append(f"bill,institution={escape_tag(str(r.institution_id))},energy={escape_tag(str(r.energy))},"
                         f"period_end={end} quantity={float(r.quantity)!r},unit=\"{unit}\"{optional} {t}")
        self.write_lines(lines)
        return len(lines)

    def read_bills(self, institution_ids: Iterable[str] | None = None) -> pd.DataFrame:
        ids = self._meter_where(institution_ids, tag="institution")
        rows = []
        if ids is not None:
            for series in self.query(
                    f"SELECT quantity, unit, cost_cny, {', '.join(BILL_FIGURES)} FROM {self._measurement('bill')} "
                    f"WHERE time >= 0s{ids} GROUP BY institution, energy, period_end"):
                tags = series["tags"]
                for t, qty, unit, *optional in series["values"]:
                    rows.append((tags["institution"], tags["energy"], pd.Timestamp(t, unit="s").date(),
                                 pd.Timestamp(tags["period_end"]).date(), float(qty), unit,
                                 *(float("nan") if v is None else float(v) for v in optional)))
        df = pd.DataFrame.from_records(rows, columns=BILL_COLUMNS)
        return df.sort_values(["institution_id", "energy", "period_start"]).reset_index(drop=True)


def csv_batches(chunks: Iterable[bytes], convert: pacsv.ConvertOptions,
                block_bytes: int = CSV_BLOCK_BYTES) -> Iterator[pa.RecordBatch]:
    """Arrow record batches of a streamed CSV answer to one or more statements (each
    starts with its header line and ends with an empty line; a statement with no rows
    has no part at all), parsed in blocks of about `block_bytes` cut at line ends."""
    header: bytes | None = None  # of the statement being read
    buffer = b""

    def parse(block: bytes, ends: bool) -> Iterator[pa.RecordBatch]:
        nonlocal header
        if header is None:
            line_end = block.find(b"\n") + 1 or len(block)
            header, block = block[:line_end], block[line_end:]
        if block.strip():
            yield from pacsv.read_csv(io.BytesIO(header + block), convert_options=convert).to_batches()
        if ends:
            header = None

    pending: list[bytes] = []  # chunks not parsed yet (joined only when a block is due)
    size, tail = 0, b""
    for chunk in _with_end(iter(chunks)):
        if chunk is not None:
            pending.append(chunk)
            size += len(chunk)
            ends_statement = b"\n\n" in tail + chunk[:1] or b"\n\n" in chunk
            tail = chunk[-1:]
            if size < block_bytes and not ends_statement:
                continue
        *done, buffer = b"".join(pending).split(b"\n\n")
        for part in done:
            yield from parse(part + b"\n", ends=True)
        if chunk is None:
            if buffer.strip():
                yield from parse(buffer, ends=True)
            return
        # cut after a line end, but never after a final one: it may be the first half of
        # the empty line that ends the statement
        if len(buffer) >= block_bytes and (cut := buffer.rfind(b"\n", 0, len(buffer) - 1) + 1):
            yield from parse(buffer[:cut], ends=False)
            buffer = buffer[cut:]
        pending, size = [buffer], len(buffer)


def _listed(ids: Iterable[str] | None) -> list[str] | None:
    return None if ids is None else [str(m) for m in ids]


def _with_end(chunks: Iterator[bytes]) -> Iterator[bytes | None]:
    yield from chunks
    yield None
