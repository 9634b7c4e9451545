"""`civicwatt demo` as a process for tests: started on free ports, its output read in
the background, waited for until its banner says it is ready. No tests live here."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.servers import free_port
from tests.support_process import CivicwattProcess

GATEWAYS = 30  # one Modbus port per sample institution
READY = "Ctrl-C stops everything"


def free_port_range(n: int) -> int:
    """A base port with n free consecutive ports after it."""
    for _ in range(50):
        base = free_port()
        if base + n >= 65000:
            continue
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


class DemoProcess(CivicwattProcess):
    """`civicwatt demo ARGV` on a free dashboard port and a free range of Modbus ports
    (`web`, `modbus`); `wait_ready()` returns the banner, `stop()` the exit code."""

    def __init__(self, *argv: str, cwd: str | Path | None = None, env: dict[str, str] | None = None):
        self.web, self.modbus = free_port(), free_port_range(GATEWAYS)
        super().__init__(["demo", *argv, "--port", str(self.web), "--modbus-port", str(self.modbus)], READY,
                         cwd=cwd, env=env)
