"""/api/v1/submissions: monthly submissions (interfaces.md § Monthly submissions), wrapping `quotas.filing`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic

from api.framework import Api, Request, json_response
from quotas.filing import Filing, SubmissionBody, approve, list_submissions, return_month, submit


class MonthQuery(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    month: str = pydantic.Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")


class SubmissionRow(pydantic.BaseModel):
    institution_id: str
    name: str
    region: str
    category: str
    status: str = pydantic.Field(description="missing | submitted | approved | returned")
    status_zh: str
    updated_at: str | None
    updated_by: str | None
    comment: str | None


class SubmissionList(pydantic.BaseModel):
    month: str
    deadline: str
    days_left: int
    submissions: list[SubmissionRow]


class Finding(pydantic.BaseModel):
    code: str
    severity: str
    index: int | None
    field: str
    energy: str | None
    message: str
    message_zh: str
    message_en: str


class Submitted(pydantic.BaseModel):
    status: str
    warnings: list[Finding]


class ReviewBody(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    comment: str | None = None


class Reviewed(pydantic.BaseModel):
    institution_id: str
    month: str
    status: str
    comment: str | None


def filing_of(api: Api) -> Filing:
    """The API's one Filing (the submission book in the data directory)."""
    if "filing" not in api.ctx.extras:
        from alerts.outbox import default_outbox_dir

        data_dir = api.ctx.data_dir or default_outbox_dir(api.ctx.store.url, Path(api.ctx.registry.source).parent)
        api.ctx.extras["filing"] = Filing.open(api.ctx.registry, api.ctx.store, data_dir)
    filing = api.ctx.extras["filing"]
    filing.use_registry(api.ctx.registry)
    return filing


def register(api: Api) -> None:
    @api.route("/submissions", summary="monthly submissions in scope", query=MonthQuery, response=SubmissionList,
               tag="submissions")
    def submissions(req: Request) -> Any:
        """Every institution the token's user may see, with its status for `month`."""
        return answer(list_submissions(req.user, req.query.month, filing_of(api)))

    @api.route("/submissions", "POST", summary="submit a month's figures", body=SubmissionBody, response=Submitted,
               status=201, tag="submissions")
    def submit_month(req: Request) -> Any:
        """Checks the figures (codes in the README); 201 with the warnings accepted with a reason, or 422 with
        `problems` (errors) and `warnings` (those still needing a reason in `reasons[code]`). Nothing is written
        unless everything is right."""
        return answer(submit(req.user, req.body, filing_of(api), source="api"))

    @api.route("/submissions/<institution_id>/<month>/approve", "POST", summary="approve a submitted month",
               body=ReviewBody, response=Reviewed, roles=("admin", "region"), tag="submissions")
    def approve_month(req: Request, institution_id: str, month: str) -> Any:
        """Approve (lock) a submitted month of an institution in scope."""
        return answer(approve(req.user, institution_id, month, req.body.model_dump(), filing_of(api)))

    @api.route("/submissions/<institution_id>/<month>/return", "POST", summary="return a month with a comment",
               body=ReviewBody, response=Reviewed, roles=("admin", "region"), tag="submissions")
    def return_submission(req: Request, institution_id: str, month: str) -> Any:
        """Return a submitted or approved month to the institution with the reviewer's `comment`."""
        return answer(return_month(req.user, institution_id, month, req.body.model_dump(), filing_of(api)))


def answer(result) -> Any:
    """A `quotas.filing.Result` as the HTTP answer."""
    return json_response(result.body, result.status)
