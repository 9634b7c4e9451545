"""Mounting of the HTTP API on the dashboard's Flask server.

Mount the API on the dashboard's Flask server: the /api/v1 blueprint with every
endpoint module, its OpenAPI document and the rate limit, and GET /healthz.

Endpoint modules are listed in `api.endpoints.MODULES`; each has one function
`register(api: api.framework.Api) -> None` that declares its routes with `api.route`.
Adding an endpoint is adding a module there (docs/api.md, "Adding an endpoint").
"""

from __future__ import annotations

import importlib

import flask

from api import health
from api.endpoints import MODULES
from api.framework import PREFIX, Api, ApiContext, json_response, limiter_for


def mount(server: flask.Flask, ctx: ApiContext) -> Api:
    """Register the API and /healthz on `server`; returns the `Api` (its `openapi()`)."""
    api = Api(ctx)
    for name in MODULES:
        importlib.import_module(f"api.endpoints.{name}").register(api)
    document: dict = {}

    @api.blueprint.route("/openapi.json", methods=["GET"])
    def openapi() -> flask.Response:
        """The OpenAPI document (no token needed: it holds no data)."""
        if not document:
            document.update(api.openapi(health.OPENAPI_PATHS))
        return json_response(document)

    api.models["Health"] = health.Health
    limiter_for(server, api)
    server.register_blueprint(api.blueprint)
    health.register(server, ctx)
    server.extensions["civicwatt.api"] = api
    return api


__all__ = ["PREFIX", "Api", "ApiContext", "mount"]
