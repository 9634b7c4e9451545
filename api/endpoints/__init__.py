"""The API's endpoint modules, each with `register(api)` (see `api.app`).

To add one: write `api/endpoints/NAME.py` with `register(api: Api)` declaring its
routes with `@api.route(...)` (pydantic models for the query, the body and the
response: they are the OpenAPI document), and add NAME here.
"""

MODULES: tuple[str, ...] = ("institutions", "indicators", "rankings", "consumption", "alerts", "imports",
                           "submissions", "upstream")
