"""Real servers for tests and benchmarks: a throw-away `influxd` on a free loopback port."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

INFLUXD = shutil.which("influxd") or "/usr/bin/influxd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Influxd:
    """An influxd process with its own temp data dir; `start()`, `stop()`, `url`.
    `max_values_per_tag`: InfluxDB 1.x's `[data] max-values-per-tag` (default 100,000
    meters; 0: no limit, as a province needs: README "Stores")."""

    def __init__(self, data_dir: str | Path | None = None, max_values_per_tag: int | None = None):
        self.dir = Path(data_dir or tempfile.mkdtemp(prefix="civicwatt-influxd-"))
        self.http_port = free_port()
        self.rpc_port = free_port()
        self.proc: subprocess.Popen | None = None
        self.config = self.dir / "influxdb.conf"
        self.config.write_text(f"""
reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{self.dir}/meta"
[data]
  dir = "{self.dir}/data"
  wal-dir = "{self.dir}/wal"
  query-log-enabled = false
{"" if max_values_per_tag is None else f"  max-values-per-tag = {max_values_per_tag}"}
[http]
  bind-address = "127.0.0.1:{self.http_port}"
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
""")

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def url(self, database: str = "civicwatt") -> str:
        return f"influxdb://127.0.0.1:{self.http_port}/{database}"

    def start(self, timeout_s: float = 20.0) -> None:
        with open(self.dir / "influxd.log", "ab") as log:
            self.proc = subprocess.Popen([INFLUXD, "run", "-config", str(self.config)], stdout=log, stderr=log,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"influxd exited with {self.proc.returncode}; see {self.dir}/influxd.log")
            try:
                if httpx.get(f"{self.http}/ping", timeout=0.5).status_code == 204:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"influxd did not answer /ping within {timeout_s}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
