"""What the feedback API needs besides its port: a loadable tokens source and a database path it can create.

`llmobs run` (for its `feedback:` section) and `llmobs feedback` both run these before starting, and under
--check-config, so a missing tokens file or an unwritable directory is one line naming the key.
"""

from __future__ import annotations

from pathlib import Path

from llmobs.feedback.auth import TokenError, load_tokens
from llmobs.feedback.config import FeedbackConfig
from llmobs.filechecks import db_path_problems


def tokens_problems(path: Path) -> list[str]:
    """The tokens file (or Secret directory) loads the way the feedback API will load it."""
    try:
        load_tokens(path)
    except TokenError as exc:
        return [f"feedback.tokens_file: {exc}"]
    except OSError as exc:
        return [f"feedback.tokens_file: cannot read {exc.filename or path}: {exc.strerror or exc}"]
    except UnicodeDecodeError:
        return [f"feedback.tokens_file: {path} is not UTF-8 text"]
    except RecursionError:
        return [f"feedback.tokens_file: {path} is nested too deeply to be a token mapping"]
    return []


def feedback_problems(feedback: FeedbackConfig) -> list[str]:
    """What `serve_feedback` needs besides its port: the tokens source and a writable database path."""
    problems = tokens_problems(feedback.tokens_file) if feedback.tokens_file is not None else []
    return problems + db_path_problems("feedback.db_path", feedback.db_path)
