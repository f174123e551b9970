"""atheris harness: the Prometheus/OpenMetrics text parser and the normalizer behind it (fuzz/checks.py).

    .venv/bin/python fuzz/fuzz_textformat.py -max_total_time=60 -dict=fuzz/textformat.dict tests/corpus/fuzz/textformat
"""

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports(include=["llmobs", "fuzz"]):
    from fuzz.checks import check_textformat


if __name__ == "__main__":
    atheris.Setup(sys.argv, check_textformat)
    atheris.Fuzz()
