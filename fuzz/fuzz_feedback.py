"""atheris harness: feedback API body validation, bytes to events or a BadRequest (fuzz/checks.py).

    .venv/bin/python fuzz/fuzz_feedback.py -max_total_time=60 tests/corpus/fuzz/feedback
"""

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports(include=["llmobs", "fuzz"]):
    from fuzz.checks import check_feedback


if __name__ == "__main__":
    atheris.Setup(sys.argv, check_feedback)
    atheris.Fuzz()
