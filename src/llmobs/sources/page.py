"""One vLLM metrics page, read in one call: parse the text, then normalize it to llmobs' canonical series.

Why a module of its own: the exporter reads pages through a per-target `TextParser` (warm caches) and a
`SampleGuard` (cardinality limits), which is the right shape for a scrape loop over many targets and the
wrong one for a program that has one page in hand. `parse_page` is that program's entry point
(`llmobs.parse_page`); it calls the same parser and normalizer the exporter does, so a page reads the
same either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from llmobs.sources.normalize import ModelScrape, normalize
from llmobs.sources.textformat import ParsedPage, parse_text

OPENMETRICS_MEDIA_TYPE = "application/openmetrics-text"


@dataclass(frozen=True, slots=True)
class Page:
    """A vLLM page in llmobs' canonical, version-independent view.

    `models` maps each model on the page (vLLM's `model_name` label) to its series under the canonical
    names of `sources/vllm_aliases.yaml`, whatever vLLM release wrote the page; data-parallel ranks are
    already combined. `skipped` counts the lines the parser could not read, by reason (`malformed`,
    `bad_value`, ...); `missing` names the canonical series llmobs expects and the page lacks (an older or
    newer vLLM, or not a vLLM page at all when `models` is empty). `dropped` counts the samples that were
    read but not used, by the reasons of `llmobs_series_dropped_total` (`implausible`: a NaN value;
    `bad_bucket`: a bucket without a numeric `le`, or a histogram without its +Inf bucket, which is then
    absent from `models` rather than wrong).
    """

    models: Mapping[str, ModelScrape]
    skipped: Mapping[str, int]
    missing: tuple[str, ...]
    samples: int
    dropped: Mapping[str, int] = field(default_factory=dict)

    @property
    def skipped_lines(self) -> int:
        """Lines skipped for any reason."""
        return sum(self.skipped.values())


def is_openmetrics(content_type: str | None) -> bool:
    """Whether a page served with this Content-Type header is OpenMetrics (else the Prometheus text format)."""
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() == OPENMETRICS_MEDIA_TYPE


def _parse(text: str, *, openmetrics: bool) -> ParsedPage:
    """The parser's reading of `text` in the format its Content-Type named (as the scraper reads it)."""
    return parse_text(text, openmetrics)


def parse_page(text: str, *, content_type: str | None = None) -> Page:
    """Read one Prometheus-text or OpenMetrics page (a vLLM `/metrics` body) into a `Page`.

    Never raises for any `str` (anything else is a TypeError): a line that cannot be read is skipped and
    counted in `Page.skipped`, a sample read but not used in `Page.dropped`, and a page with no vLLM series
    gives a `Page` without models. `content_type` is the page's Content-Type header
    when it came over HTTP; `application/openmetrics-text` pages are read as OpenMetrics (a missing `# EOF`
    then means a truncated page, refused), anything else as the Prometheus text format.
    """
    if not isinstance(text, str):  # bytes (`response.content`) or None would fail deep in the parser
        hint = ": decode it first (`response.text`, or `.decode()`)" if isinstance(text, bytes | bytearray) else ""
        raise TypeError(f"parse_page reads the page's text, a str, not {type(text).__name__}{hint}")
    if content_type is not None and not isinstance(content_type, str):
        raise TypeError(f"parse_page's content_type is the Content-Type header, a str or None, not "
                        f"{type(content_type).__name__}")
    parsed = _parse(text, openmetrics=is_openmetrics(content_type))
    scrape = normalize(parsed.samples, time=0.0)  # when it was read is the tracker's business (SignalTracker.observe)
    return Page(models=scrape.models, skipped=dict(parsed.skipped), missing=scrape.missing,
                samples=len(parsed.samples), dropped=dict(scrape.dropped))
