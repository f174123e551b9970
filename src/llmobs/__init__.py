"""llmobs: observability and autoscaling signals for self-hosted vLLM fleets.

The public API is the names in `__all__` (docs/api.md): read a vLLM page (`parse_page`), turn successive
pages into signals (`SignalTracker`), load a configuration (`load_config`), run the exporter inside a
program (`Exporter`), and look up what llmobs exports (`METRICS`, `metric`). They live in the modules that
implement them and load on first use (llmobs._lazy), so `import llmobs` imports nothing else; the
`TYPE_CHECKING` block below names the same objects for type checkers. tests/test_public_api.py pins the
list; code inside llmobs imports from the implementing modules, never from here.
"""

from typing import TYPE_CHECKING

from llmobs._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "parse_page": "sources.page", "Page": "sources.page",
    "SignalTracker": "signals.tracker",
    "ModelEndpointSignals": "signals.types", "Attribution": "signals.types", "Distribution": "signals.types",
    "load_config": "config", "load_config_text": "config", "LlmobsConfig": "config", "ConfigError": "config",
    "Exporter": "exporter", "FleetState": "state", "MissingExtraError": "_extras",
    "METRICS": "metrics_catalogue:CATALOGUE", "metric": "metrics_catalogue", "MetricSpec": "metrics_catalogue",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "METRICS",
    "Attribution",
    "ConfigError",
    "Distribution",
    "Exporter",
    "FleetState",
    "LlmobsConfig",
    "MetricSpec",
    "MissingExtraError",
    "ModelEndpointSignals",
    "Page",
    "SignalTracker",
    "__version__",
    "load_config",
    "load_config_text",
    "metric",
    "parse_page",
]

if TYPE_CHECKING:
    from llmobs._extras import MissingExtraError
    from llmobs.config import ConfigError, LlmobsConfig, load_config, load_config_text
    from llmobs.exporter import Exporter
    from llmobs.metrics_catalogue import CATALOGUE as METRICS
    from llmobs.metrics_catalogue import MetricSpec, metric
    from llmobs.signals.tracker import SignalTracker
    from llmobs.signals.types import Attribution, Distribution, ModelEndpointSignals
    from llmobs.sources.page import Page, parse_page
    from llmobs.state import FleetState
