"""The one error the simulator raises for input it cannot use (a trace, a profile, a configuration)."""

from __future__ import annotations


class SimulationInputError(ValueError):
    """The input cannot be simulated as given; the message says which input and why, in one line."""
