"""The deployment files under deploy/: systemd units that systemd accepts, a compose file
that parses (and that `docker-compose config` accepts where it is installed), and every
command line in them one that the CLI accepts. No Docker engine runs here: the image is
not built and the containers are not started."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from civicwatt.cli import parse_args
from civicwatt.context import SECRETS

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNITS = ("civicwatt-collect.service", "civicwatt-serve.service")
FLUSH_S = 30  # civicwatt collect sends its queue for up to 30 s after SIGTERM


def unit(name: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    cp.optionxform = str
    cp.read(DEPLOY / name, encoding="utf-8")
    return cp


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))


def seconds(text: str) -> int:
    m = re.fullmatch(r"(\d+)(s|min)?", str(text).strip())
    assert m, text
    return int(m.group(1)) * (60 if m.group(2) == "min" else 1)


@pytest.mark.parametrize("name", UNITS)
def test_units_run_a_valid_command_as_a_user_and_stop_with_time_to_flush(name):
    cp = unit(name)
    service = cp["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == "/opt/civicwatt/.venv/bin/civicwatt"
    args = parse_args(argv[1:])  # the CLI accepts it (SystemExit otherwise)
    assert args.verb == name.removeprefix("civicwatt-").removesuffix(".service")
    assert args.log_format == "json"
    assert service["User"] == "civicwatt" and service["WorkingDirectory"] == "/var/lib/civicwatt"
    assert service["EnvironmentFile"] == "/etc/civicwatt/civicwatt.env"
    assert service["KillSignal"] == "SIGTERM" and service["Restart"] == "on-failure"
    assert seconds(service["TimeoutStopSec"]) > (FLUSH_S if args.verb == "collect" else 0)
    assert service["ReadWritePaths"] == service["WorkingDirectory"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_units(tmp_path):
    """`systemd-analyze verify` with the install paths pointed at this checkout's civicwatt
    (it checks that the executable exists) and an empty environment file."""
    exe = shutil.which("civicwatt")
    assert exe, "civicwatt is not on PATH (pip install -e .)"
    env = tmp_path / "civicwatt.env"
    env.write_text((DEPLOY / "civicwatt.env.example").read_text(encoding="utf-8"), encoding="utf-8")
    for name in UNITS:
        text = (DEPLOY / name).read_text(encoding="utf-8")
        text = text.replace("/opt/civicwatt/.venv/bin/civicwatt", exe).replace("/etc/civicwatt/civicwatt.env", str(env))
        (tmp_path / name).write_text(text, encoding="utf-8")
    out = subprocess.run(["systemd-analyze", "verify", *(str(tmp_path / n) for n in UNITS)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "civicwatt-" not in out.stderr, out.stderr  # no warning about our units


def test_the_environment_example_names_only_known_variables():
    names = re.findall(r"^#?\s*([A-Z_]+)=", (DEPLOY / "civicwatt.env.example").read_text(encoding="utf-8"), re.M)
    known = {"CIVICWATT_STORE", *SECRETS, *(f"{s}_FILE" for s in SECRETS)}
    assert set(names) == known


def test_compose_runs_civicwatt_from_the_checkout_beside_influxdb_18_with_a_persistent_volume():
    doc = compose()
    services = doc["services"]
    assert set(services) == {"influxdb", "collect", "serve"}
    influx = services["influxdb"]
    assert influx["image"] == "influxdb:1.8"
    volume, mount = influx["volumes"][0].split(":")
    assert mount == "/var/lib/influxdb" and volume in doc["volumes"]  # a named volume: survives `down`
    for name in ("collect", "serve"):
        svc = services[name]
        build = svc["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
        assert (DEPLOY / build["context"] / "pyproject.toml").is_file()  # the checkout is the context
        args = parse_args(svc["command"])
        assert args.verb == name and args.log_format == "json"
        env = svc["environment"]
        assert env["CIVICWATT_STORE"] == "influxdb://influxdb:8086/civicwatt"  # no credentials in the URL
        for var, path in env.items():
            if var.endswith("_FILE"):
                assert var.removesuffix("_FILE") in SECRETS
                secret = Path(path).name
                assert secret in svc["secrets"] and secret in doc["secrets"]
        assert svc["depends_on"]["influxdb"]["condition"] == "service_healthy"
    assert seconds(services["collect"]["stop_grace_period"]) > FLUSH_S
    assert "CIVICWATT_SECRET_KEY_FILE" in services["serve"]["environment"]
    assert services["serve"]["ports"] == ["127.0.0.1:8050:8050"]


def test_the_dockerfile_installs_the_checkout_and_runs_civicwatt_unprivileged():
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^COPY \. /opt/civicwatt/src$", text, re.M)
    assert "pip install /opt/civicwatt/src" in text
    assert re.search(r"^USER civicwatt$", text, re.M) and re.search(r"^STOPSIGNAL SIGTERM$", text, re.M)
    assert 'ENTRYPOINT ["civicwatt"]' in text
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    assert {".git", ".venv", "deploy/secrets", "deploy/.env"} <= set(ignored)


def _compose_cli() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return None


@pytest.mark.skipif(_compose_cli() is None, reason="neither docker-compose nor the docker compose plugin is installed")
def test_docker_compose_config_accepts_the_file(tmp_path):
    """The client alone validates and resolves the file (no engine needed)."""
    work = tmp_path / "deploy"
    shutil.copytree(DEPLOY, work)
    (work / "secrets").mkdir()
    for name in ("influx_token", "session_key"):
        (work / "secrets" / name).write_text("x\n", encoding="utf-8")
    (work / ".env").write_text("INFLUXDB_ADMIN_PASSWORD=a\nINFLUXDB_USER_PASSWORD=b\n", encoding="utf-8")
    out = subprocess.run([*_compose_cli(), "config"], cwd=work, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    resolved = yaml.safe_load(out.stdout)
    assert resolved["services"]["influxdb"]["environment"]["INFLUXDB_USER_PASSWORD"] == "b"
    (work / ".env").unlink()  # without the passwords the file refuses to resolve
    out = subprocess.run([*_compose_cli(), "config"], cwd=work, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "INFLUXDB_ADMIN_PASSWORD" in out.stderr + out.stdout
