"""Durations as people type them: `90` (seconds), `90s`, `500ms`, `5m`, `1.5h`, `1d`, `1w`.

One parser for every command-line option and config value that is a length of time, so `--cold-start 5m`,
`--interval 2` and `--duration 1h` read the same way everywhere. Kept free of llmobs imports: it sits at
the bottom of the layer order and anything may use it.
"""

from __future__ import annotations

import math
import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
EXAMPLES = "90, 30s, 5m, 1.5h"


class DurationError(ValueError):
    """Text that is not a duration; the message quotes it and shows the accepted forms."""


def parse_duration(text: str | float | int, *, allow_zero: bool = False) -> float:
    """Seconds from `90`, `30s`, `5m`, `1.5h`, `1d` (a bare number is seconds).

    Zero is refused unless `allow_zero` (most durations divide something or time a loop); negative,
    infinite and NaN values always are.
    """
    if isinstance(text, bool):
        raise DurationError(f"duration {text!r} is not a number of seconds")
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        m = _DURATION.match(text)
        if not m:
            raise DurationError(f"duration {text!r} is not like {EXAMPLES} (a bare number is seconds)")
        seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2) or "s"]
    if not math.isfinite(seconds):
        raise DurationError(f"duration {text!r} is not finite")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise DurationError(f"duration {text!r} must be {'zero or more' if allow_zero else 'positive'}")
    return seconds

