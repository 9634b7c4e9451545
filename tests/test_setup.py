"""`./scripts/test` with the Debian programs the tests need missing from PATH: it installs
them or stops with the exact command, before any test runs. The programs are hidden by a
PATH of links to everything on the real PATH but them (and apt-get/sudo where said);
CIVICWATT_SETUP_ONLY=1 makes the script stop after its set-up, so it never runs the
suite from inside the suite."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "test"
PROGRAMS = {"influxd": "influxdb", "chromium": "chromium", "chromedriver": "chromium-driver", "mbpoll": "mbpoll"}
FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
IN_THE_CHECKOUTS_VENV = Path(sys.prefix).resolve() == (ROOT / ".venv").resolve()


def path_without(tmp_path: Path, hidden: set[str], extra: dict[str, str] | None = None) -> str:
    """A one-directory PATH: links to every program on PATH except `hidden`, plus
    `extra` scripts (name -> text)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            target = bin_dir / entry.name
            if entry.name in hidden or target.exists() or not os.access(entry.path, os.X_OK):
                continue
            target.symlink_to(entry.path)
    for name, text in (extra or {}).items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return str(bin_dir)


def run_script(path: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "VIRTUAL_ENV"))}
    environ.update(PATH=path, CIVICWATT_SETUP_ONLY="1", **env)
    return subprocess.run([str(SCRIPT)], env=environ, capture_output=True, text=True, timeout=600)


def missing_packages() -> list[str]:
    """What the machine lacks besides the programs the tests hide (the font is a file)."""
    return [] if FONT.exists() else ["fonts-wqy-microhei"]


def test_without_apt_get_it_prints_the_exact_command_and_stops_before_any_test(tmp_path):
    done = run_script(path_without(tmp_path, {*PROGRAMS, "apt-get", "sudo"}))
    assert done.returncode == 1, done.stdout + done.stderr
    packages = " ".join([*PROGRAMS.values(), *missing_packages()])
    assert f"apt-get install -y --no-install-recommends {packages}" in done.stderr
    assert "stopped before running any test" in done.stderr
    assert "passed" not in done.stdout and "ruff" not in done.stdout + done.stderr


@pytest.mark.skipif(not shutil.which("apt-get"), reason="the machine has no apt-get")
def test_as_a_user_without_sudo_it_prints_the_command_to_run_as_root(tmp_path):
    # `id -u` answers as an ordinary user would; apt-get is there, sudo is not
    as_user = '#!/bin/sh\n[ "$1" = -u ] && { echo 1000; exit 0; }\nexec /usr/bin/id "$@"\n'
    done = run_script(path_without(tmp_path, {*PROGRAMS, "sudo", "id"}, {"id": as_user}))
    assert done.returncode == 1, done.stdout + done.stderr
    packages = " ".join([*PROGRAMS.values(), *missing_packages()])
    assert ("Run as root, then run this again:\n    apt-get update && apt-get install -y "
            f"--no-install-recommends {packages}\n") in done.stderr
    assert "stopped before running any test" in done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the script calls apt-get itself only as root")
def test_as_root_it_runs_apt_get_for_exactly_what_is_missing(tmp_path):
    log = tmp_path / "apt.log"
    # apt-get itself would install for real: this one records how it was called
    recorder = f'#!/bin/sh\necho "$*" >> {log}\n'
    done = run_script(path_without(tmp_path, {*PROGRAMS, "apt-get"}, {"apt-get": recorder}))
    packages = " ".join([*PROGRAMS.values(), *missing_packages()])
    assert log.read_text().splitlines() == ["update -qq", f"install -y -qq --no-install-recommends {packages}"]
    # the recorder installed nothing, so the programs are still missing: said, and no test runs
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"installing Debian packages: apt-get install -y --no-install-recommends {packages}" in done.stderr
    assert "installed, but the programs of these packages are still not on PATH" in done.stderr
    assert "stopped before running any test" in done.stderr


@pytest.mark.skipif(not IN_THE_CHECKOUTS_VENV, reason="would set up the checkout's .venv")
@pytest.mark.skipif(not all(map(shutil.which, PROGRAMS)) or not FONT.exists(), reason="the Debian packages are missing")
def test_with_everything_present_it_sets_up_and_goes_on(tmp_path):
    done = run_script(path_without(tmp_path, {"apt-get", "sudo"}))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "installing Debian packages" not in done.stderr
    assert f"ready: Debian packages present, {ROOT / '.venv'} has CivicWatt with [test]" in done.stderr
