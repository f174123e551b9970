"""User feedback signals: authenticated, durable ingestion joined to serving metrics.

Public surface (pinned by tests/feedback/test_feedback_api.py::test_public_surface): the config model, the
entry point `llmobs run` wires in, and the pieces tests and embedders assemble by hand. The names load
on first use (llmobs._lazy), so the root config can embed `FeedbackConfig` without importing uvicorn.
"""

from llmobs._lazy import lazy_exports

_EXPORTS = {
    "create_app": "api", "TokenVerifier": "auth", "FeedbackConfig": "config", "serve_feedback": "server",
    "FeedbackCollector": "signals", "FeedbackStats": "stats", "FeedbackStore": "store",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
