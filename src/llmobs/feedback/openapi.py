"""The OpenAPI 3.1 document of the feedback API, generated from the pydantic models.

Generated, not hand-written, so the document cannot drift from the validation the server does; the
committed copy (`docs/feedback-openapi.json`) is checked against this by a test. Regenerate it with
`python -m llmobs.feedback.openapi > docs/feedback-openapi.json`.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from llmobs.feedback.models import FeedbackBatch, StarsEvent, ThumbsEvent


class AcceptResult(BaseModel):
    """200 body: how many events were newly stored and how many were replays of stored ones."""

    accepted: int = Field(ge=0, description="Events newly stored (and counted).")
    duplicates: int = Field(ge=0, description="Events whose (app, request_id) was already stored.")


class ErrorBody(BaseModel):
    """Body of every 4xx/5xx: a machine-readable reason, the offending field when there is one."""

    error: str = Field(description="Rejection reason, as in llmobs_feedback_rejected_total{reason}.")
    detail: str
    field: str | None = Field(default=None, description="The field at fault, e.g. `events[3].rating`.")


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }


def openapi_document() -> dict[str, Any]:
    """Build the document (deterministic: same input, byte-identical JSON)."""
    _, schemas = models_json_schema(
        [(m, "validation") for m in (ThumbsEvent, StarsEvent, FeedbackBatch, AcceptResult, ErrorBody)],
        ref_template="#/components/schemas/{model}",
    )
    components = dict(sorted(schemas.get("$defs", {}).items()))
    event_ref = {
        "oneOf": [
            {"$ref": "#/components/schemas/ThumbsEvent"},
            {"$ref": "#/components/schemas/StarsEvent"},
        ],
        "discriminator": {
            "propertyName": "scale",
            "mapping": {
                "thumbs": "#/components/schemas/ThumbsEvent",
                "stars": "#/components/schemas/StarsEvent",
            },
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "llmobs feedback API",
            "version": "1",
            "description": "User feedback on vLLM responses, joined to serving metrics. See docs/feedback.md.",
        },
        "paths": {
            "/v1/feedback": {
                "post": {
                    "operationId": "postFeedback",
                    "summary": "Store one feedback event or a batch of up to 1,000",
                    "description": "Idempotent on (app, request_id): a replay is acknowledged and counted "
                    "as a duplicate. The response is sent after the events are committed to disk. "
                    "A batch is all-or-nothing: one invalid event rejects the request.",
                    "security": [{"bearer": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"oneOf": [event_ref, {"$ref": "#/components/schemas/FeedbackBatch"}]}
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "Stored (or already stored).",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AcceptResult"}}},
                        },
                        "400": _error(
                            "Malformed JSON, a wrong type or value, or a timestamp outside the "
                            "clock-skew rule; `field` names the culprit."
                        ),
                        "401": _error("Missing or unknown bearer token."),
                        "403": _error("The token is valid but not for the event's `app`."),
                        "413": _error("Body over the size cap, or more events than the batch limit."),
                        "503": _error("The store could not commit; nothing was stored; retry."),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "Liveness",
                    "security": [],
                    "responses": {"200": {"description": "Serving."}},
                }
            },
        },
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def render() -> str:
    """The document as committed: sorted keys, two-space indent, trailing newline."""
    return json.dumps(openapi_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")
