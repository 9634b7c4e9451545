"""The HTTP API at /api/v1 (JSON, bearer tokens) and GET /healthz, served beside the dashboard (docs/api.md)."""
