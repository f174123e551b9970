"""Signals: pure functions of successive vLLM scrapes (rates, ratios, quantiles, reset handling).

`SignalTracker` follows one endpoint's pages; `ModelEndpointTracker` one model's normalized scrapes (what
the exporter's scrape loop uses); `types` holds the frozen values every later stage reads. Names load on
first use (llmobs._lazy).
"""

from typing import TYPE_CHECKING

from llmobs._lazy import lazy_exports

_EXPORTS = {
    "ModelEndpointTracker": "derive", "SignalTracker": "tracker", "QUANTILES": "types", "Attribution": "types",
    "CumulativeHistogram": "types", "Distribution": "types", "ModelEndpointSignals": "types",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "QUANTILES",
    "Attribution",
    "CumulativeHistogram",
    "Distribution",
    "ModelEndpointSignals",
    "ModelEndpointTracker",
    "SignalTracker",
]

if TYPE_CHECKING:
    from llmobs.signals.derive import ModelEndpointTracker
    from llmobs.signals.tracker import SignalTracker
    from llmobs.signals.types import QUANTILES, Attribution, CumulativeHistogram, Distribution, ModelEndpointSignals
