"""Differential test of llmobs' page parser against prometheus_client's own parsers, on the same pages.

For every page, in its format (text 0.0.4 or OpenMetrics, as a Content-Type would say):

* where prometheus_client reads the page, every sample llmobs yields is one of prometheus_client's, with
  the same name, labels and value (llmobs may skip more: it follows Prometheus' Go parser where
  prometheus_client is laxer, e.g. on a control character before a timestamp);
* where prometheus_client rejects the page, llmobs does not use it silently: it counts at least one
  skipped line (it keeps the other lines of a text page; an OpenMetrics page without `# EOF` yields
  nothing).

The pages are the kinds of prometheus_client's own parser tests plus the edge cases that llmobs once read
wrongly (`1_000`, `# EOF` on a text page, `m 1 #`, a control character before a timestamp, `__name__` as a
label, invalid OpenMetrics pages).
"""

from __future__ import annotations

import math

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families as text_families

from llmobs.sources.textformat import parse_text
from tests.conftest import FIXTURE_PAGE

FIXTURE = FIXTURE_PAGE

TEXT_PAGES: dict[str, str] = {
    # valid
    "counter": "# HELP c A counter.\n# TYPE c counter\nc 1\n",
    "counter_total": "# TYPE c_total counter\nc_total{a=\"x\"} 3.5\n",
    "gauge_labels": '# TYPE g gauge\ng{a="1",b="two"} 2\ng{a="2",b="two"} -3.25\n',
    "untyped": "u 1\nv{x=\"y\"} 0\n",
    "nan_inf": "a NaN\nb +Inf\nc -Inf\nd Inf\ne nan\n",
    "exponent": "a 1e3\nb -1.5E-3\nc .5\nd 5.\n",
    "timestamp_ms": "a 1 1700000000000\nb 2 -5\n",
    "escapes": 'a{p="C:\\\\dir\\\\f",q="say \\"hi\\"",n="line\\nnext"} 1\n',
    "help_escapes": "# HELP a help with \\\\ and \\n newline\n# TYPE a gauge\na 1\n",
    "blank_and_comments": "\n# just a comment\n\na 1\n\n# another\nb 2\n",
    "tabs": "a\t1\nb{x=\"1\"}\t2\t3\n",
    "spaces_in_braces": 'a{ x = "1" , y = "2" } 1\n',
    "trailing_comma": 'a{x="1",} 1\n',
    "empty_braces": "a{} 1\n",
    "unicode_value": 'a{x="ünïcödé ✓"} 1\n',
    "label_value_specials": 'a{x="a,b}c{d=e"} 1\n',
    "histogram": ('# TYPE h histogram\nh_bucket{le="0.1"} 1\nh_bucket{le="1"} 3\nh_bucket{le="+Inf"} 4\n'
                  "h_count 4\nh_sum 2.5\n"),
    "summary": '# TYPE s summary\ns{quantile="0.5"} 1\ns{quantile="0.99"} 2\ns_count 3\ns_sum 4\n',
    "crlf": "a 1\r\nb{x=\"1\"} 2\r\n",
    "vllm_page": FIXTURE.read_text(),
    # invalid (Prometheus' Go parser fails these; llmobs skips and counts the line)
    "underscore_value": "good 1\na 1_000\n",
    "underscore_timestamp": "good 1\na 1 1_000\n",
    "eof_then_samples": "a 1 1700000000000\n# EOF\nb 2\n",
    "hash_after_value": "good 1\nm 1 #\n",
    "exemplar_on_text_page": 'good 1\nm 1 # {trace_id="x"} 1\n',
    "control_char_before_timestamp": "good 1\nm 1 \x1c5\n",
    "control_char_in_value": "good 1\nm 1\x1c5\n",
    "fullwidth_digit": "good 1\nm \uff11\n",
    "name_as_label": 'good 1\nm{__name__="x"} 1\n',
    "unterminated_label": 'good 1\nm{a="b} 1\n',
    "unquoted_label": "good 1\nm{a=b} 1\n",
    "no_value": "good 1\nm\n",
    "three_tokens": "good 1\nm 1 2 3\n",
    "bad_value_word": "good 1\nm abc\n",
    "bad_timestamp": "good 1\nm 1 12x\n",
    "repeated_label": 'good 1\nm{a="1",a="2"} 1\n',
    "bad_name": "good 1\n-m 1\n",
    "glued_value": 'good 1\nm{a="b"}1\n',
    "hex_value": "good 1\nm 0x1p3\n",
    "bad_type": "# TYPE m bogus\nm 1\n",
}

OPENMETRICS_PAGES: dict[str, str] = {
    # valid
    "counter": "# HELP c A counter.\n# TYPE c counter\nc_total 1\nc_created 1.5e9\n# EOF\n",
    "gauge_unit": "# TYPE g_seconds gauge\n# UNIT g_seconds seconds\ng_seconds{a=\"1\"} 2.5\n# EOF\n",
    "timestamps_seconds": "# TYPE g gauge\ng 1 1700000000.25\n# EOF\n",
    "histogram": ('# TYPE h histogram\nh_bucket{le="0.1"} 1\nh_bucket{le="1"} 3\nh_bucket{le="+Inf"} 4\n'
                  "h_count 4\nh_sum 2.5\nh_created 1.5e9\n# EOF\n"),
    "histogram_two_series": ('# TYPE h histogram\nh_bucket{a="x",le="1"} 1\nh_bucket{a="x",le="+Inf"} 2\n'
                             'h_count{a="x"} 2\nh_sum{a="x"} 1\nh_bucket{a="y",le="1"} 0\n'
                             'h_bucket{a="y",le="+Inf"} 5\nh_count{a="y"} 5\nh_sum{a="y"} 9\n# EOF\n'),
    "summary": '# TYPE s summary\ns{quantile="0.5"} 1\ns_count 3\ns_sum 4\n# EOF\n',
    "exemplar": ('# TYPE c counter\nc_total 3 # {trace_id="abc"} 1.0 1700000000.0\n# EOF\n'),
    "bucket_exemplar": ('# TYPE h histogram\nh_bucket{le="1"} 1 # {t="a"} 0.5\nh_bucket{le="+Inf"} 1\n'
                        "h_count 1\nh_sum 0.5\n# EOF\n"),
    "unknown_and_info": '# TYPE u unknown\nu 1\n# TYPE i info\ni_info{v="1"} 1\n# EOF\n',
    "nan_gauge": "# TYPE g gauge\ng NaN\n# EOF\n",
    "stateset": '# TYPE s stateset\ns{s="a"} 1\ns{s="b"} 0\n# EOF\n',
    # invalid
    "missing_eof": "# TYPE g gauge\ng 1\n",
    "truncated_mid_page": '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_cou',
    "negative_counter": "# TYPE c counter\nc_total -1\n# EOF\n",
    "negative_histogram_count": '# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_count -1\nh_sum 1\n# EOF\n',
    "buckets_out_of_order": ('# TYPE h histogram\nh_bucket{le="2"} 1\nh_bucket{le="1"} 1\n'
                             'h_bucket{le="+Inf"} 2\nh_count 2\nh_sum 1\n# EOF\n'),
    "buckets_decreasing": ('# TYPE h histogram\nh_bucket{le="1"} 5\nh_bucket{le="+Inf"} 2\n'
                           "h_count 2\nh_sum 1\n# EOF\n"),
    "buckets_without_inf": '# TYPE h histogram\nh_bucket{le="1"} 1\nh_count 1\nh_sum 1\n# EOF\n',
    "after_eof": "# TYPE g gauge\ng 1\n# EOF\nlate 2\n",
    "hash_without_exemplar": "# TYPE g gauge\ng 1 #\n# EOF\n",
    "exemplar_without_value": '# TYPE c counter\nc_total 1 # {a="b"}\n# EOF\n',
    "exemplar_bad_labels": '# TYPE c counter\nc_total 1 # {a=b} 1\n# EOF\n',
    "underscore_value": "# TYPE g gauge\ng 1_0\n# EOF\n",
    "control_char_before_timestamp": "# TYPE g gauge\ng 1 \x1c5\n# EOF\n",
    "name_as_label": '# TYPE g gauge\ng{__name__="x"} 1\n# EOF\n',
}


def _reference(text: str, openmetrics: bool) -> list[tuple[str, dict[str, str], float]] | None:
    """prometheus_client's samples of the page, or None if it rejects the page."""
    families = openmetrics_families if openmetrics else text_families
    try:
        return [(s.name, dict(s.labels), float(s.value)) for f in families(text) for s in f.samples]
    except Exception:  # prometheus_client signals a bad page by raising (ValueError, or worse)
        return None


def _same(ours: tuple[str, dict[str, str], float], ref: tuple[str, dict[str, str], float]) -> bool:
    """Same sample; prometheus_client names a text-format counter `c`'s sample `c_total` (llmobs keeps the
    name as written and leaves naming to the normalizer)."""
    return (ref[0] in (ours[0], ours[0] + "_total") and ours[1] == ref[1]
            and (ours[2] == ref[2] or (math.isnan(ours[2]) and math.isnan(ref[2]))))


CASES = [(name, text, False) for name, text in TEXT_PAGES.items()] + \
        [(name, text, True) for name, text in OPENMETRICS_PAGES.items()]


@pytest.mark.parametrize(("name", "text", "openmetrics"), CASES,
                         ids=[("om:" if om else "text:") + name for name, _, om in CASES])
def test_llmobs_never_disagrees_with_prometheus_client(name: str, text: str, openmetrics: bool) -> None:
    page = parse_text(text, openmetrics)
    ours = [(s.name, dict(s.labels), s.value) for s in page.samples]
    reference = _reference(text, openmetrics)
    if reference is None:
        assert sum(page.skipped.values()) >= 1, f"{name}: prometheus_client rejects the page, llmobs used it all"
        return
    for sample in ours:
        assert any(_same(sample, ref) for ref in reference), f"{name}: {sample} not in prometheus_client's reading"


# The cases the differential test was written for: each is read by neither parser, or (where
# prometheus_client is laxer than Prometheus itself) by llmobs as Prometheus reads it.
@pytest.mark.parametrize(("text", "openmetrics", "kept", "reason"), [
    ("good 1\na 1_000\n", False, ["good"], "bad_value"),
    ("a 1 1700000000000\n# EOF\nb 2\n", False, ["a", "b"], None),  # and a's timestamp stays in ms
    ("good 1\nm 1 #\n", False, ["good"], "bad_timestamp"),
    ("good 1\nm 1 \x1c5\n", False, ["good"], "bad_timestamp"),
    ("good 1\nm 1\x1c\n", False, ["good"], "bad_value"),
    ('good 1\nm{__name__="x"} 1\n', False, ["good"], "bad_labels"),
    ("# TYPE g gauge\ng 1\n", True, [], "missing_eof"),
    ("# TYPE c counter\nc_total -1\n# EOF\n", True, [], "bad_value"),
    ('# TYPE h histogram\nh_bucket{le="2"} 1\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_count 2\n# EOF\n',
     True, ["h_count"], "bad_histogram"),
    ("# TYPE g gauge\ng 1 #\n# EOF\n", True, [], "bad_exemplar"),
])
def test_each_reported_case_is_skipped_and_counted(text: str, openmetrics: bool, kept: list[str],
                                                   reason: str | None) -> None:
    page = parse_text(text, openmetrics)
    assert [s.name for s in page.samples] == kept
    assert page.skipped == ({reason: 1 if reason != "bad_histogram" else 3} if reason else {})
    if not openmetrics and kept == ["a", "b"]:
        assert page.samples[0].timestamp_ms == 1700000000000.0


def test_the_differential_corpus_covers_both_outcomes() -> None:
    """Guards the test above against a corpus that stopped exercising one side."""
    outcomes = {(om, _reference(text, om) is None) for _, text, om in CASES}
    assert outcomes == {(False, False), (False, True), (True, False), (True, True)}
