"""`civicwatt demo` as a process for tests: started on free ports, its output read in
the background, waited for until its banner says it is ready. No tests live here."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.servers import free_port

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


class DemoProcess:
    """`civicwatt demo ARGV` on a free dashboard port and a free range of Modbus ports
    (`web`, `modbus`); `wait_ready()` returns the banner, `stop()` the exit code."""

    def __init__(self, *argv: str, cwd: str | Path | None = None, env: dict[str, str] | None = None):
        self.web, self.modbus = free_port(), free_port_range(GATEWAYS)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "civicwatt.cli", "demo", *argv, "--port", str(self.web),
             "--modbus-port", str(self.modbus)],
            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self._reader.start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self, timeout_s: float = 120) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not any(READY in x for x in self.lines):
            assert self.proc.poll() is None, self.output
            time.sleep(0.2)
        assert READY in self.output, self.output
        return self.output

    def stop(self, sig: int = signal.SIGINT, timeout_s: float = 60) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout_s)
        self._reader.join(5)
        return code
