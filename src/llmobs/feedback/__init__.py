"""User feedback signals: authenticated, durable ingestion joined to serving metrics.

Public surface (pinned by tests/test_feedback_api.py::test_public_surface): the config model, the
entry point `llmobs run` wires in, and the pieces tests and embedders assemble by hand.
"""

from llmobs.feedback.api import create_app
from llmobs.feedback.auth import TokenVerifier
from llmobs.feedback.config import FeedbackConfig
from llmobs.feedback.server import serve_feedback
from llmobs.feedback.signals import FeedbackCollector
from llmobs.feedback.stats import FeedbackStats
from llmobs.feedback.store import FeedbackStore

__all__ = [
    "FeedbackCollector",
    "FeedbackConfig",
    "FeedbackStats",
    "FeedbackStore",
    "TokenVerifier",
    "create_app",
    "serve_feedback",
]
