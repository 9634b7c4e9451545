"""`civicwatt serve` as a user runs it: a process, a generated admin password, Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx
import yaml

from civicwatt.sample import sample_registry_doc
from storage import open_store
from tests.servers import free_port
from tests.support_web import login


def test_serve_prints_a_password_that_logs_in_and_stops_on_ctrl_c(tmp_path):
    (tmp_path / "civicwatt.yaml").write_text(yaml.safe_dump(sample_registry_doc(n_institutions=3),
                                                            allow_unicode=True), encoding="utf-8")
    open_store(f"embedded:{tmp_path / 'data'}").close()  # serve opens a store, only import/collect/demo make one
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "civicwatt.cli", "serve", "--registry", "civicwatt.yaml", "--store",
         f"embedded:{tmp_path / 'data'}", "--users", "users.yaml", "--port", str(port)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "dashboard on" in line:
                break
        out = "".join(lines)
        password = re.search(r"password: (\S+)", out).group(1)
        c = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        assert login(c, "admin", "not-it").status_code == 401
        r = login(c, "admin", password)
        assert r.status_code == 302
        assert c.get("/ranking").status_code == 200
        # the API and the health check on the same server; a token made while it runs works at once
        made = subprocess.run([sys.executable, "-m", "civicwatt.cli", "users", "token", "admin", "--users",
                               "users.yaml"], cwd=tmp_path, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": os.getcwd()})
        assert made.returncode == 0, made.stderr
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                           headers={"Authorization": f"Bearer {made.stdout.strip()}"})
        assert len(api.get("/api/v1/institutions").json()["rows"]) == 3
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json()["store"]["reachable"] is True
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
