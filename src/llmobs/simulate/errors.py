"""The one error the simulator raises for input it cannot use (a trace, a profile, a configuration), and how
its messages show the value they refuse."""

from __future__ import annotations

from typing import TypeGuard

import numpy as np


class SimulationInputError(ValueError):
    """The input cannot be simulated as given; the message says which input and why, in one line."""


def is_number(value: object) -> TypeGuard[int | float | np.integer | np.floating]:
    """A real number (Python's or numpy's), not a bool: what a rate, time or factor may be."""
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_)


def plain(value: object) -> str:
    """A value for a message: numbers as numbers (not `np.float64(...)`), anything else as its repr."""
    if is_number(value):
        return f"{float(value):g}" if isinstance(value, float | np.floating) else str(int(value))
    return repr(value)
