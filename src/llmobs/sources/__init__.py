"""Sources: everything llmobs reads from the world (vLLM pages over HTTP, Kubernetes, NVML, traces).

Exported here is what a program reading vLLM pages itself needs: the one-call reader (`parse_page`,
`Page`), the parser and the canonical per-model view it normalizes into, and scrape targets. The HTTP
scraper, discovery and GPU readers are the exporter's; import them from their modules. Names load on
first use (llmobs._lazy).
"""

from typing import TYPE_CHECKING

from llmobs._lazy import lazy_exports

_EXPORTS = {
    "Page": "page", "parse_page": "page", "ParsedPage": "textformat", "Sample": "textformat",
    "TextParser": "textformat", "parse_text": "textformat", "EndpointScrape": "normalize",
    "HistogramSnapshot": "normalize", "ModelScrape": "normalize", "StaticTargetSource": "targets",
    "Target": "targets", "TargetSource": "targets",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "EndpointScrape", "HistogramSnapshot", "ModelScrape", "Page", "ParsedPage", "Sample", "StaticTargetSource",
    "Target", "TargetSource", "TextParser", "parse_page", "parse_text",
]

if TYPE_CHECKING:
    from llmobs.sources.normalize import EndpointScrape, HistogramSnapshot, ModelScrape
    from llmobs.sources.page import Page, parse_page
    from llmobs.sources.targets import StaticTargetSource, Target, TargetSource
    from llmobs.sources.textformat import ParsedPage, Sample, TextParser, parse_text
