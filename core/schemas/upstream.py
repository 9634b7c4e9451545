"""The upward-reporting configuration (纵向直报) of a lower-level instance: `upstream.yaml`.

    upstream:
      url: https://province.example.org      # the upper level's `civicwatt serve` (its /api/v1)
      instance: sjz                          # this instance's id at the upper level
      interval_s: 60                         # push approved months this often (default 60)
      timeout_s: 10                          # one request's timeout (default 10)
      retry_base_s: 10                       # a failed push is retried after 10 s, 20 s, 40 s ...
      retry_max_s: 600                       # ... at most this far apart

The token is never in this file nor in the registry: it is `CIVICWATT_UPSTREAM_TOKEN` in
the environment, or the file named by `CIVICWATT_UPSTREAM_TOKEN_FILE` (a token of a
`region` or `admin` user at the upper level, `civicwatt users token USER` there).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from core.schemas.base import ID_PATTERN, Positive, Strict
from core.yamlfile import ConfigError, LineDict, Problem, load_yaml, validate_node

TOKEN_ENV = "CIVICWATT_UPSTREAM_TOKEN"


class Upstream(Strict):
    url: str = Field(pattern=r"^https?://[^\s/]+(/\S*)?$", description="the upper level's base URL")
    instance: str = Field(pattern=ID_PATTERN, max_length=64, description="this instance's id at the upper level")
    interval_s: Positive = 60.0
    timeout_s: Positive = 10.0
    retry_base_s: Positive = 10.0
    retry_max_s: Positive = 600.0


class UpstreamFile(Strict):
    upstream: Upstream


class UpstreamConfig:
    """A loaded `upstream.yaml` with its token (from the environment)."""

    def __init__(self, upstream: Upstream, token: str, source: str):
        self.url = upstream.url.rstrip("/")
        self.instance = upstream.instance
        self.interval_s = float(upstream.interval_s)
        self.timeout_s = float(upstream.timeout_s)
        self.retry_base_s = float(upstream.retry_base_s)
        self.retry_max_s = float(upstream.retry_max_s)
        self.token = token
        self.source = source


def load_upstream(path: str | Path, environ: dict[str, str] | None = None) -> UpstreamConfig:
    """Load and validate `upstream.yaml`; ConfigError naming file, line and field (a
    missing token names the variable)."""
    file = str(path)
    doc = load_yaml(path)
    problems: list[Problem] = []
    if not isinstance(doc, LineDict):
        raise ConfigError([Problem(file, 1, "-", "the upstream file must be a YAML mapping with `upstream:`")])
    cfg = validate_node(UpstreamFile, doc, file, "", problems)
    env = os.environ if environ is None else environ
    token = (env.get(TOKEN_ENV) or "").strip()
    if not token:
        problems.append(Problem(file, doc.line_of("upstream"), "upstream",
                                f"no token: set {TOKEN_ENV} (or {TOKEN_ENV}_FILE) to the upper level's API token"))
    if problems or cfg is None:
        raise ConfigError(problems)
    return UpstreamConfig(cfg.upstream, token, file)
