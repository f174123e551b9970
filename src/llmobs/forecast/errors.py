"""One exception type for bad input anywhere in the forecast package.

The CLI catches exactly this type and prints its message on one line, so every message must name the
problem (which column, which row, which value) well enough to fix it without a traceback.
"""

from __future__ import annotations


class ForecastInputError(ValueError):
    """Input the forecast package cannot use: a missing column, unsorted rows, an absurd capacity…"""
