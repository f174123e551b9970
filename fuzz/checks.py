"""The properties each fuzz target must hold for every input, shared by the atheris harnesses and by
tests/test_fuzz_corpus.py (which replays the kept corpus through the same functions).

A check returns normally when the input was handled as the contract says and raises AssertionError (or
lets an unexpected exception escape) when it was not; atheris reports either as a crash.
"""

from __future__ import annotations

import math
import time

import yaml

from llmobs.config import ConfigError, LlmobsConfig, config_from_mapping, load_config_text
from llmobs.feedback.models import BadRequest, StoredEvent, check_timestamp, parse_body
from llmobs.sources.normalize import LabelValueBudget, SampleGuard, normalize
from llmobs.sources.textformat import ParsedPage, TextParser, parse_text

__all__ = ["check_config", "check_feedback", "check_textformat"]

_SKIP_REASONS = frozenset({"malformed", "bad_value", "bad_timestamp", "bad_labels", "duplicate", "bad_comment",
                           "duplicate_meta", "after_eof", "bad_exemplar", "missing_eof", "bad_histogram"})


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _canon(page: ParsedPage) -> tuple:
    """A page as comparable data: repr() of values so that NaN equals NaN (dataclass == says it does not)."""
    samples = tuple((s.name, tuple(s.labels.items()), repr(s.value), s.timestamp_ms) for s in page.samples)
    return samples, page.types, page.helps, page.skipped


def check_textformat(data: bytes) -> None:
    """The parser never raises; warm parses (same page again, then a page with changed values) equal cold
    ones; every skip has a known reason; the normalizer accepts whatever the parser yields."""
    text = _text(data)
    for openmetrics in (False, True):
        _check_textformat(text, openmetrics)


def _check_textformat(text: str, openmetrics: bool) -> None:
    cold = parse_text(text, openmetrics)
    parser = TextParser()
    first = parser.parse(text, openmetrics)
    again = parser.parse(text, openmetrics)  # the warm paths: same layout / bulk
    assert _canon(first) == _canon(cold), "a fresh TextParser disagrees with parse_text"
    assert _canon(again) == _canon(cold), "the warm parse of the same page differs from the cold parse"
    assert set(cold.skipped) <= _SKIP_REASONS, cold.skipped
    assert all(n > 0 for n in cold.skipped.values())
    for s in cold.samples:
        assert isinstance(s.value, float) and isinstance(s.name, str) and s.name
        assert s.timestamp_ms is None or math.isfinite(s.timestamp_ms)
    # values shifted: the warm path must still read exactly what a cold parser reads
    shifted = text.replace(" 1\n", " 2\n")
    assert _canon(parser.parse(shifted, openmetrics)) == _canon(parse_text(shifted, openmetrics)), \
        "warm parse of a changed page differs"
    guard = SampleGuard("fuzz", LabelValueBudget(8))
    normalize(cold.samples, 0.0)
    scrape = normalize(cold.samples, 0.0, guard=guard)
    assert all(v > 0 for v in scrape.dropped.values())


def check_config(data: bytes) -> None:
    """Any YAML text either loads into a valid config or fails with ConfigError (a message fit to print,
    naming the problem) — never a traceback from inside pydantic or PyYAML."""
    text = _text(data)
    try:
        config = load_config_text(text, "<fuzz>")
    except ConfigError as e:
        assert str(e), "empty ConfigError message"
        return
    assert isinstance(config, LlmobsConfig)
    # a config that loads must survive a round trip through its own dump
    again = config_from_mapping(yaml.safe_load(yaml.safe_dump(config.model_dump(mode="json", exclude_none=True))))
    assert again == config


def check_feedback(data: bytes) -> None:
    """Any body either yields valid events or raises BadRequest with a known reason and an HTTP status;
    a valid event always becomes a storable row with a bounded label and score."""
    try:
        events, batched = parse_body(data, 1000)
    except BadRequest as e:
        assert e.reason in {"malformed_json", "validation", "batch_too_large"}, e.reason
        assert e.status in (400, 413)
        return
    assert events and (batched or len(events) == 1)
    now = time.time()
    for i, ev in enumerate(events):
        try:
            check_timestamp(ev, i if batched else None, now, 300.0, 30 * 86400.0)
        except BadRequest as e:
            assert e.reason == "clock_skew"
            continue
        row = StoredEvent.from_event(ev, ev.app or "fuzz", now)
        assert row.label in ("positive", "neutral", "negative")
        assert 0.0 <= row.score <= 1.0
        for value in (row.model, row.request_id, row.endpoint or "x", row.app):
            assert value and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in value), value
