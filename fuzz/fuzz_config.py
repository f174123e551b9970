"""atheris harness: the config loader, YAML text to a valid LlmobsConfig or a ConfigError (fuzz/checks.py).

    .venv/bin/python fuzz/fuzz_config.py -max_total_time=60 tests/corpus/fuzz/config
"""

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports(include=["llmobs", "fuzz"]):
    from fuzz.checks import check_config


if __name__ == "__main__":
    atheris.Setup(sys.argv, check_config)
    atheris.Fuzz()
