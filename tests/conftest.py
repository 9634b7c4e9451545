"""Shared fixtures: a real influxd per test session, and stores of both backends."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from core.filecache import CACHE_DIR_ENV
from storage import Store, open_store
from tests.servers import Influxd

# Registry snapshots of the session's many temporary registries go to a temporary cache
# directory (inherited by the CLI processes tests start), not to the user's.
_CACHE = tempfile.mkdtemp(prefix="civicwatt-test-cache-")
os.environ[CACHE_DIR_ENV] = _CACHE


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_CACHE, ignore_errors=True)

_db_counter = itertools.count()

# Property tests explore the same examples on every run (deterministic CI); no deadline,
# since a loaded 2-core machine makes timings meaningless.
settings.register_profile("civicwatt", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("civicwatt")


@pytest.fixture(scope="session")
def influxd() -> Iterator[Influxd]:
    server = Influxd()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def embedded_store(tmp_path) -> Iterator[Store]:
    store = open_store(f"embedded:{tmp_path / 'store'}")
    yield store
    store.close()


@pytest.fixture
def influx_store(influxd) -> Iterator[Store]:
    store = open_store(influxd.url(f"test{next(_db_counter)}"))
    yield store
    store.close()


@pytest.fixture(params=["embedded", "influxdb"])
def store(request) -> Iterator[Store]:
    """The contract fixture: every test using it runs on both backends."""
    yield request.getfixturevalue(f"{request.param}_store" if request.param == "embedded" else "influx_store")
