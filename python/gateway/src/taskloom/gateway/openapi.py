"""What the OpenAPI document says of errors: every 4xx and 5xx the gateway answers is an
RFC 9457 problem (`application/problem+json`, the `Problem` schema), and each route lists the
statuses it can answer, so that the document holds every answer the gateway gives
(schemathesis checks it in `make test`)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from taskloom.gateway.errors import PROBLEM_MEDIA_TYPE


class FieldProblem(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem; `reason` is the machine-readable cause (the proto's ErrorReason,
    or one of the gateway's own: UNAUTHENTICATED, RATE_LIMITED, MALFORMED_BODY, ...)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str
    reason: str
    errors: list[FieldProblem] = Field(default_factory=list)


_DESCRIPTIONS = {
    400: "The body is not valid JSON (or YAML where accepted)",
    401: "No API key, or one that is not valid",
    403: "The API key may not do this",
    404: "No such resource for the caller's tenant",
    409: "The resource's state or an earlier request with the same Idempotency-Key forbids it",
    413: "The body is larger than the gateway accepts (REQUEST_TOO_LARGE)",
    415: "The body's content type is not one the route takes",
    422: "A field is invalid; `errors` names each",
    429: "A rate limit or the queue is full; see Retry-After",
    500: "The gateway failed",
    501: "The orchestrator does not offer this",
    503: "A backend the route needs is unreachable or off; see Retry-After",
    504: "A backend the route needs did not answer in time",
}

# Every route can answer these: authentication, rate limits, the orchestrator's state.
_ALWAYS = (401, 422, 429, 500, 503, 504)


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a route that may also answer `statuses`, each a problem."""
    return {
        status: {
            "model": Problem,
            "description": _DESCRIPTIONS[status],
        }
        for status in sorted({*_ALWAYS, *statuses})
    }


def install(app: FastAPI) -> None:
    """Make the app's document say that every 4xx and 5xx answer is a problem: FastAPI
    files a response model under application/json, the route's own media type."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        ref = {"$ref": "#/components/schemas/Problem"}
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                for status, response in operation.get("responses", {}).items():
                    if status[0] in "45":
                        response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": ref}}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
