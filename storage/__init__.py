"""Storage: one interface (`Store`), two backends (embedded SQLite, InfluxDB)."""

from __future__ import annotations

import os

from storage.base import Imported, ImportRejected, Store, StoreError, StoreMissing

DEFAULT_STORE = "embedded:./civicwatt-data"

__all__ = ["DEFAULT_STORE", "ImportRejected", "Imported", "Store", "StoreError", "StoreMissing", "default_store_url", "open_store"]


def default_store_url() -> str:
    """`CIVICWATT_STORE` if set, else the embedded store in ./civicwatt-data."""
    return os.environ.get("CIVICWATT_STORE") or DEFAULT_STORE


def open_store(url: str | None = None, tz: str = "Asia/Shanghai", create: bool = True) -> Store:
    """Open a store by URL: `embedded:PATH` or `influxdb[s]://...` (interfaces.md).
    `create=False`: raise StoreMissing instead of creating a store that does not exist."""
    url = url or default_store_url()
    if url.startswith("embedded:"):
        from storage.embedded import EmbeddedStore

        return EmbeddedStore(url.removeprefix("embedded:") or "./civicwatt-data", tz=tz, create=create)
    if url.startswith(("influxdb://", "influxdbs://")):
        from storage.influx import InfluxStore

        return InfluxStore(url, tz=tz, create_database=create)
    raise ValueError(f"unknown store URL {url!r}: use embedded:PATH or influxdb://HOST:PORT/DATABASE")
