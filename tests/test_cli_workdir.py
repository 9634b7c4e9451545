"""The working directory `civicwatt demo` leaves: every other verb run there finds the
registry, the store and the users without options (civicwatt.toml), and the admin
password is reset the way the demo's banner says, while the dashboard runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import httpx
import pandas as pd

from tests import support_web
from tests.support_demo import DemoProcess


def civicwatt(*argv: str, cwd, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "civicwatt.cli", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def login(web: int, password: str) -> int:
    with httpx.Client(base_url=f"http://127.0.0.1:{web}", follow_redirects=False, timeout=30) as client:
        return support_web.login(client, "admin", password).status_code


def test_the_demo_leaves_a_working_directory_the_other_verbs_find(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CIVICWATT_STORE"}
    demo = DemoProcess("--days", "3", cwd=tmp_path, env=env)
    try:
        banner = demo.wait_ready()
        first = re.search(r"user admin, password (\S+)", banner).group(1)
        # the banner says how to reset the password, with no option: run here, it finds the users file
        assert re.search(r"new admin password: civicwatt users passwd admin --generate\n", banner), banner
        assert "the other verbs run here find registry, store and users without options" in banner
        toml = (tmp_path / "civicwatt.toml").read_text(encoding="utf-8")
        assert 'registry = "civicwatt-demo/civicwatt.yaml"' in toml
        assert 'store = "embedded:civicwatt-demo/data"' in toml
        assert 'users = "civicwatt-demo/users.yaml"' in toml

        reset = civicwatt("users", "passwd", "admin", "--generate", cwd=tmp_path, env=env)
        assert reset.returncode == 0, reset.stderr
        assert "in civicwatt-demo/users.yaml" in reset.stdout
        new = re.search(r"password: (\S+)", reset.stdout).group(1)
        assert new != first
        assert login(demo.web, new) == 302  # the running dashboard takes the new password at once
        assert login(demo.web, first) == 401
    finally:
        code = demo.stop()
    assert code == 0, demo.output

    yesterday = pd.Timestamp.now(tz="Asia/Shanghai") - pd.Timedelta(days=1)
    report = civicwatt("report", "monthly", "--month", f"{yesterday:%Y-%m}", "--out", "report.xlsx",
                       cwd=tmp_path, env=env)
    assert report.returncode == 0, report.stderr
    assert "30 institutions" in report.stdout and (tmp_path / "report.xlsx").stat().st_size > 0
    export = civicwatt("export", "readings", "--start", f"{yesterday:%Y-%m-%d}", "--end", f"{yesterday:%Y-%m-%d}",
                       "--meter", "HB-0001-E0", "--out", "readings.csv", cwd=tmp_path, env=env)
    assert export.returncode == 0, export.stderr
    rows = pd.read_csv(tmp_path / "readings.csv")
    assert set(rows["meter_id"]) == {"HB-0001-E0"} and len(rows) >= 24 * 4 - 1  # a day at the 15-minute interval
    users = civicwatt("users", "list", cwd=tmp_path, env=env)
    assert users.stdout.splitlines() == ["admin\tadmin\t-"]
    assert not (tmp_path / "civicwatt-data").exists() and not (tmp_path / "users.yaml").exists()
