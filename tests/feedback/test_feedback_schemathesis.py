"""Schemathesis against the served OpenAPI document: generated valid and invalid requests must get the
documented status codes and response schemas, never a 5xx, and valid ones must be accepted.

Two things the schema cannot say are fixed up on positive cases only: `timestamp` must be near the
server's clock (the clock-skew rule) and `app` must be the token's app (else 403 by design).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.config import SchemathesisConfig

from llmobs.feedback import FeedbackConfig, TokenVerifier, create_app
from tests.feedback.feedback_helpers import open_store

# A batch over the documented `maxItems` is rejected with 413 `batch_too_large` (documented in the served
# OpenAPI responses and docs/feedback.md: the fix is to split the batch, like an over-size body), so 413
# counts as a rejection of negative data, beside schemathesis' default codes.
CONFIG = SchemathesisConfig.from_dict({"checks": {"negative_data_rejection": {"expected-statuses": [
    "400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]}}})
AUTH = {"Authorization": "Bearer tok-chat"}


def _fix_positive(event: Any) -> None:
    if isinstance(event, dict):
        if "timestamp" in event:
            event["timestamp"] = time.time()
        if "app" in event:
            event["app"] = "chat"


@pytest.mark.parametrize(
    ("path", "method", "mode"),
    [
        ("/v1/feedback", "POST", schemathesis.GenerationMode.POSITIVE),
        ("/v1/feedback", "POST", schemathesis.GenerationMode.NEGATIVE),
        ("/healthz", "GET", schemathesis.GenerationMode.POSITIVE),  # no inputs: nothing to negate
    ],
)
def test_api_conforms_to_its_openapi_document(
    tmp_path: Path, mode: schemathesis.GenerationMode, path: str, method: str
) -> None:
    """Hypothesis-driven cases from the served document, validated with schemathesis' default checks."""
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("chat: tok-chat\n")
    config = FeedbackConfig(tokens_file=tokens, allowed_apps=["chat"], db_path=tmp_path / "fb.db")
    store = open_store(config, time.time)
    calls: list[int] = []
    try:
        app = create_app(config, store, verifier=TokenVerifier(tokens))
        operation = schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG)[path][method]

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: Any) -> None:
            if mode == schemathesis.GenerationMode.POSITIVE and isinstance(case.body, dict):
                _fix_positive(case.body)
                events = case.body.get("events")
                for ev in events if isinstance(events, list) else []:
                    _fix_positive(ev)
            response = case.call_and_validate(headers={**(case.headers or {}), **AUTH})
            calls.append(response.status_code)

        check()
    finally:
        store.close()
    assert calls, "schemathesis generated no cases"
    if mode == schemathesis.GenerationMode.POSITIVE:
        assert set(calls) == {200}
