"""A `civicwatt VERB ...` process for tests: its output (stdout and stderr) read in the
background, waited for until a line says it is ready. No tests live here."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


class CivicwattProcess:
    """`python -m civicwatt.cli ARGV`; `wait_ready()` waits for `ready` in the output and
    returns the output so far, `stop()` signals and returns the exit code."""

    def __init__(self, argv: list[str], ready: str, cwd: str | Path | None = None,
                 env: dict[str, str] | None = None, stop_signal: int = signal.SIGINT):
        self.ready = ready
        self.stop_signal = stop_signal
        self.started = time.time()
        self.proc = subprocess.Popen([sys.executable, "-m", "civicwatt.cli", *argv], cwd=cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self._reader.start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self, timeout_s: float = 120) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not any(self.ready in x for x in self.lines):
            assert self.proc.poll() is None, self.output
            time.sleep(0.05)
        assert self.ready in self.output, self.output
        return self.output

    def stop(self, sig: int | None = None, timeout_s: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal if sig is None else sig)
        code = self.proc.wait(timeout=timeout_s)
        self._reader.join(5)
        return code
