"""Storage: one interface (`Store`), two backends (embedded SQLite, InfluxDB)."""

from __future__ import annotations

import os

from storage.base import ImportRejected, Store, StoreError

DEFAULT_STORE = "embedded:./civicwatt-data"

__all__ = ["DEFAULT_STORE", "ImportRejected", "Store", "StoreError", "default_store_url", "open_store"]


def default_store_url() -> str:
    """`CIVICWATT_STORE` if set, else the embedded store in ./civicwatt-data."""
    return os.environ.get("CIVICWATT_STORE") or DEFAULT_STORE


def open_store(url: str | None = None, tz: str = "Asia/Shanghai") -> Store:
    """Open a store by URL: `embedded:PATH` or `influxdb[s]://...` (interfaces.md)."""
    url = url or default_store_url()
    if url.startswith("embedded:"):
        from storage.embedded import EmbeddedStore

        return EmbeddedStore(url.removeprefix("embedded:") or "./civicwatt-data", tz=tz)
    if url.startswith(("influxdb://", "influxdbs://")):
        from storage.influx import InfluxStore

        return InfluxStore(url, tz=tz)
    raise ValueError(f"unknown store URL {url!r}: use embedded:PATH or influxdb://HOST:PORT/DATABASE")
