"""The HTTP API's machinery: routes, OpenAPI, auth, problems, limits.

The HTTP API's machinery: one `Api` object holding the Flask blueprint, the OpenAPI
document and what every endpoint shares (authentication, scope, problems, JSON).

An endpoint is a plain function declared with `Api.route`, which registers the Flask
view and its OpenAPI operation from the same arguments, so the document cannot drift
from the code:

    @api.route("/institutions", summary="...", query=InstitutionsQuery, response=InstitutionRows)
    def institutions(req: Request) -> Any:     # req.user, req.query (a validated InstitutionsQuery)
        return rows(frame)                      # a dict, a list, a pydantic model or a Response

Every request: the bearer token is checked (401 without a valid one), the user's role
must be in `roles` (403), the query string is validated by the `query` model and a JSON
body by `body` (422 `{"problems": [{"index"?, "field", "message"}]}`; unknown
parameters are refused too), then the function runs. Scope is the function's business,
through `core.access` as in the dashboard; `Forbidden` raised there becomes 403.
`problem(...)`/`Unprocessable` give 422 from inside a function. Anything else that
escapes is logged and answered 500 as JSON.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flask
import numpy as np
import pandas as pd
import pydantic
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from werkzeug.exceptions import HTTPException

from core.access import ROLES, Forbidden
from core.registry import Registry
from core.tokens import Token, TokenDirectory, tokens_file, verify_token
from core.users import User, UserDirectory
from core.yamlfile import ConfigError

log = logging.getLogger("civicwatt.api")
PREFIX = "/api/v1"
VERSION = "1"
RATE_LIMIT = "1200 per minute"  # per token (else per address); $CIVICWATT_API_RATE_LIMIT overrides
MAX_BODY_BYTES = 64 * 1024 * 1024  # a readings CSV of ~1.5 million rows


class Problem(pydantic.BaseModel):
    """One problem with the request: the CSV line or JSON index it is at, the field and why."""

    line: int | None = None
    index: int | None = None
    field: str
    message: str


class Problems(pydantic.BaseModel):
    """The body of a 401, 403, 422 or 429 answer."""

    problems: list[Problem]


class Unprocessable(Exception):
    """Bad input: answered 422 with these problems, nothing written."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))


def problem(field: str, message: str, line: int | None = None, index: int | None = None) -> Unprocessable:
    """One 422 problem, to raise."""
    return Unprocessable([Problem(field=field, message=message, line=line, index=index)])


def config_problems(exc: ConfigError) -> Unprocessable:
    """A `core.yamlfile.ConfigError` (CSV parsing: file, line, field) as 422 problems."""
    return Unprocessable([Problem(line=p.line or None, field=p.field, message=p.message) for p in exc.problems])


def validation_problems(exc: pydantic.ValidationError, where: str = "") -> Unprocessable:
    """pydantic's errors as 422 problems: the dotted location as field, the first list
    position in it as index."""
    out = []
    for err in exc.errors(include_url=False, include_context=False, include_input=False):
        loc = [str(x) for x in err["loc"]]
        index = next((x for x in err["loc"] if isinstance(x, int)), None)
        out.append(Problem(field=".".join([where, *loc] if where else loc) or where or "-", index=index,
                           message=err["msg"]))
    return Unprocessable(out)


def _error(status: int, field: str, message: str, headers: dict[str, str] | None = None) -> flask.Response:
    body = Problems(problems=[Problem(field=field, message=message)]).model_dump_json(exclude_none=True)
    return flask.Response(body, status=status, mimetype="application/json", headers=headers or {})


# -- JSON out -----------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, float | np.floating):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if value is pd.NaT or value is pd.NA or value is None:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def records(frame: pd.DataFrame, columns: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Rows of `frame` (the `columns`, absent ones null) as JSON-ready dicts: NaN/NA are
    null, timestamps ISO 8601, numpy scalars Python numbers."""
    cols = list(columns) if columns is not None else list(frame.columns)
    rows = frame.reindex(columns=cols).itertuples(index=False, name=None)
    return [dict(zip(cols, map(_plain, row), strict=True)) for row in rows]


def json_response(value: Any, status: int = 200) -> flask.Response:
    return flask.Response(json.dumps(_plain(value), ensure_ascii=False, allow_nan=False), status=status,
                          mimetype="application/json")


# -- who asks -----------------------------------------------------------------------------------
@dataclass
class ApiContext:
    """What the endpoints work on. `tables`: the year tables (`quotas.tables.YearTables`,
    shared with the dashboard so both read the same cache), whose registry is the one
    `registry` (swapped by `tables.use_registry`); `quotas()`: the quota configuration or
    None; `data_dir`: the outbox and the health directory."""

    store: Any
    users_file: Path
    tables: Any
    quotas: Callable[[], Any] = lambda: None
    data_dir: Path | None = None
    extras: dict[str, Any] = field(default_factory=dict)  # what other endpoint modules keep (their own state)

    def __post_init__(self) -> None:
        self.users_file = Path(self.users_file)
        self.users = UserDirectory(self.users_file)
        self.tokens = TokenDirectory(tokens_file(self.users_file))

    @property
    def registry(self) -> Registry:
        return self.tables.registry

    def outbox(self) -> Any | None:
        """The alert outbox of the data directory (None without one)."""
        if self.data_dir is None:
            return None
        if "outbox" not in self.extras:
            from alerts.outbox import Outbox

            self.extras["outbox"] = Outbox(self.data_dir)
        return self.extras["outbox"]


@dataclass
class Request:
    """One API request as an endpoint sees it."""

    user: User
    token: Token
    query: Any
    body: Any
    flask: flask.Request


def bearer_token() -> str | None:
    auth = flask.request.headers.get("Authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else None


# -- the Api object -------------------------------------------------------------------------------
class Api:
    """The blueprint at /api/v1 and its OpenAPI operations (module docstring)."""

    def __init__(self, ctx: ApiContext):
        self.ctx = ctx
        self.blueprint = flask.Blueprint("api", __name__, url_prefix=PREFIX)
        self.operations: dict[str, dict[str, Any]] = {}  # path -> method -> OpenAPI operation
        self.models: dict[str, type[pydantic.BaseModel]] = {"Problems": Problems}
        self.blueprint.register_error_handler(Exception, self._failed)

    def _failed(self, exc: Exception) -> flask.Response:
        if isinstance(exc, HTTPException):
            headers = {"Retry-After": exc.retry_after} if getattr(exc, "retry_after", None) else None
            return _error(exc.code or 500, "-", exc.description or exc.name, headers)
        log.error("API request %s %s failed", flask.request.method, flask.request.path, exc_info=exc)
        return _error(500, "-", "internal error (logged on the server)")

    def principal(self) -> tuple[User, Token] | None:
        text = bearer_token()
        if not text:
            return None
        token = verify_token(self.ctx.tokens.tokens(), text)
        user = self.ctx.users.users().get(token.user) if token is not None else None
        return (user, token) if user is not None else None

    def route(self, path: str, method: str = "GET", *, summary: str, response: type[pydantic.BaseModel] | None,
              query: type[pydantic.BaseModel] | None = None, body: type[pydantic.BaseModel] | None = None,
              body_csv: str | None = None, roles: tuple[str, ...] = ROLES, status: int = 200,
              tag: str = "data", description: str = "") -> Callable[[Callable[[Request], Any]], Callable]:
        """Declare an endpoint (module docstring). `path` is below /api/v1, with Flask
        converters (`/alerts/<key>/ack`); `body_csv`: the CSV body's columns, when the
        body is a CSV file (text/csv) handed to the function as bytes (`req.body`)."""
        def deco(fn: Callable[..., Any]) -> Callable:
            def view(**path_args: Any) -> flask.Response:
                who = self.principal()
                if who is None:
                    return _error(401, "Authorization", "a valid bearer token is needed "
                                  "(Authorization: Bearer TOKEN, from `civicwatt users token USER`)",
                                  {"WWW-Authenticate": 'Bearer realm="civicwatt"'})
                user, token = who
                if user.role not in roles:
                    return _error(403, "role", f"not for role {user.role} (needs {' or '.join(roles)})")
                try:
                    q = self._query(query)
                    b = self._body(body, body_csv)
                    result = fn(Request(user, token, q, b, flask.request), **path_args)
                except Unprocessable as exc:
                    return flask.Response(Problems(problems=exc.problems).model_dump_json(exclude_none=True),
                                          status=422, mimetype="application/json")
                except Forbidden as exc:
                    return _error(403, "scope", f"outside your scope: {exc}")
                if isinstance(result, flask.Response):
                    return result
                return json_response(result, status)

            view.__name__ = f"{method.lower()}_{fn.__name__}"
            self.blueprint.add_url_rule(path, view.__name__, view, methods=[method])
            self._describe(path, method, fn, summary, description, response, query, body, body_csv, status, roles, tag)
            return fn
        return deco

    @staticmethod
    def _query(model: type[pydantic.BaseModel] | None) -> Any:
        args = flask.request.args
        if model is None:
            if args:
                raise problem(next(iter(args)), "unknown parameter (this endpoint takes none)")
            return None
        raw: dict[str, Any] = {}
        for k in args:
            values = args.getlist(k)
            if len(values) > 1:
                raise problem(k, "given more than once")
            raw[k] = values[0]
        unknown = sorted(set(raw) - set(model.model_fields))
        if unknown:
            raise Unprocessable([Problem(field=k, message=f"unknown parameter (known: {', '.join(model.model_fields)})")
                                 for k in unknown])
        try:
            return model.model_validate(raw)
        except pydantic.ValidationError as exc:
            raise validation_problems(exc) from None

    @staticmethod
    def _body(model: type[pydantic.BaseModel] | None, csv_columns: str | None) -> Any:
        req = flask.request
        if model is None and csv_columns is None:
            return None
        if req.content_length is not None and req.content_length > MAX_BODY_BYTES:
            raise problem("body", f"larger than {MAX_BODY_BYTES // 2**20} MiB: split the file")
        data = req.get_data(cache=False)
        if len(data) > MAX_BODY_BYTES:
            raise problem("body", f"larger than {MAX_BODY_BYTES // 2**20} MiB: split the file")
        if csv_columns is not None:
            return data  # bytes: the CSV parser reports encoding problems by line
        try:
            doc = json.loads(data or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise problem("body", f"not JSON: {exc}") from None
        try:
            return model.model_validate(doc)  # type: ignore[union-attr]
        except pydantic.ValidationError as exc:
            raise validation_problems(exc) from None

    # -- OpenAPI ----------------------------------------------------------------------------------
    def _ref(self, model: type[pydantic.BaseModel]) -> dict[str, str]:
        self.models[model.__name__] = model
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    def _describe(self, path: str, method: str, fn: Callable, summary: str, description: str,
                  response: type[pydantic.BaseModel] | None, query: type[pydantic.BaseModel] | None,
                  body: type[pydantic.BaseModel] | None, body_csv: str | None, status: int,
                  roles: tuple[str, ...], tag: str) -> None:
        params: list[dict[str, Any]] = []
        openapi_path = PREFIX + _openapi_path(path)
        for name in _path_params(path):
            params.append({"name": name, "in": "path", "required": True, "schema": {"type": "string"}})
        if query is not None:
            schema = query.model_json_schema()
            for name, prop in schema.get("properties", {}).items():
                prop = dict(prop)
                desc = prop.pop("description", "")
                prop.pop("title", None)
                params.append({"name": name, "in": "query", "required": name in schema.get("required", []),
                               "description": desc, "schema": prop})
        doc = (fn.__doc__ or "").strip()
        op: dict[str, Any] = {
            "operationId": fn.__name__, "summary": summary, "tags": [tag],
            "description": "\n\n".join(x for x in (description or doc,
                                                   f"Roles: {', '.join(roles)}." if roles != ROLES else "") if x),
            "parameters": params,
            "responses": {
                str(status): {"description": "OK",
                              **({"content": {"application/json": {"schema": self._ref(response)}}}
                                 if response is not None else {})},
                "401": {"description": "no valid bearer token", "content": _problems_content()},
                "403": {"description": "outside the token's role or scope", "content": _problems_content()},
                "422": {"description": "bad input, nothing written", "content": _problems_content()},
                "429": {"description": "too many requests", "content": _problems_content()},
            },
            "security": [{"bearer": []}],
        }
        if body_csv is not None:
            op["requestBody"] = {"required": True, "content": {"text/csv": {
                "schema": {"type": "string", "description": f"CSV with the header `{body_csv}`"}}}}
        elif body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": self._ref(body)}}}
        self.operations.setdefault(openapi_path, {})[method.lower()] = op

    def openapi(self, extra_paths: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
        """The OpenAPI 3.1 document of every declared endpoint (plus `extra_paths`)."""
        schemas: dict[str, Any] = {}
        for name, model in sorted(self.models.items()):
            s = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(s.pop("$defs", {}))
            schemas[name] = s
        return {
            "openapi": "3.1.0",
            "info": {"title": "CivicWatt API", "version": VERSION,
                     "description": "Energy, carbon and quota data of public institutions (docs/api.md). "
                                    "Authorization: Bearer TOKEN from `civicwatt users token USER`."},
            "paths": {**dict(sorted(self.operations.items())), **(extra_paths or {})},
            "components": {"schemas": schemas,
                           "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        }


def _problems_content() -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": "#/components/schemas/Problems"}}}


def _path_params(path: str) -> list[str]:
    return [part[1:-1].split(":")[-1] for part in path.split("/") if part.startswith("<")]


def _openapi_path(path: str) -> str:
    return "/".join("{" + part[1:-1].split(":")[-1] + "}" if part.startswith("<") else part for part in path.split("/"))


def limiter_for(server: flask.Flask, api: Api) -> Limiter:
    """flask-limiter on the API blueprint: RATE_LIMIT per token id (else per address),
    in memory (one process; $CIVICWATT_API_RATE_LIMIT, e.g. "100 per minute", overrides)."""
    def key() -> str:
        text = bearer_token() or ""
        return "token:" + text[3:11] if text.startswith("cw_") else "addr:" + get_remote_address()

    limiter = Limiter(key, app=server, storage_uri="memory://", default_limits=[], headers_enabled=True)
    limiter.limit(os.environ.get("CIVICWATT_API_RATE_LIMIT") or RATE_LIMIT)(api.blueprint)
    return limiter
