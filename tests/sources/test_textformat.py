"""Tests for llmobs.sources.textformat: features, skip accounting, agreement with prometheus_client,
and hypothesis properties (never raises; every line accounted for; warm == cold)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from llmobs.sources.textformat import SHARE_PER_PAGE, ParsedPage, Sample, TextParser, parse_text, shared_series_count
from tests.conftest import REPO

HERE = REPO / "tests"
FIXTURE = HERE / "fixtures" / "vllm-0.32.0-cpu-metrics.txt"
CORPUS = HERE / "corpus" / "textformat"
SAMPLE_REASONS = {"malformed", "bad_value", "bad_timestamp", "bad_labels", "duplicate", "bad_exemplar",
                  "bad_histogram"}
BLANKS = " \t\r"


def read(path: Path) -> str:
    """Read a page byte-exactly (read_text would turn CRLF into LF)."""
    return path.read_bytes().decode("utf-8")


def norm(page: ParsedPage) -> tuple[list[tuple[str, dict[str, str], str, float | None]], dict, dict, dict]:
    """A comparable view of a page: NaN != NaN, so values are compared by repr."""
    samples = [(s.name, dict(s.labels), repr(s.value), s.timestamp_ms) for s in page.samples]
    return samples, page.types, page.helps, page.skipped


def one(text: str) -> Sample:
    page = parse_text(text)
    assert len(page.samples) == 1, page
    return page.samples[0]


# --- corpus ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.txt")), ids=lambda p: p.name)
def test_corpus(path: Path) -> None:
    expected = json.loads(path.with_suffix(".expected.json").read_text(encoding="utf-8"))
    text = read(path)
    openmetrics = expected.get("openmetrics", False)
    want = ([tuple(s) for s in expected["samples"]], expected["types"], expected["helps"], expected["skipped"])
    got = norm(parse_text(text, openmetrics))
    assert ([tuple(s) for s in got[0]], *got[1:]) == want, expected["why"]
    # the same page through a warm parser (second parse) gives the same result
    parser = TextParser()
    parser.parse(text, openmetrics)
    again = norm(parser.parse(text, openmetrics))
    assert ([tuple(s) for s in again[0]], *again[1:]) == want


def test_corpus_crlf_really_has_crlf() -> None:
    assert b"\r\n" in (CORPUS / "crlf.txt").read_bytes()


# --- features ----------------------------------------------------------------------------------------


def test_escaped_label_values() -> None:
    s = one('m{a="q\\"uote",b="back\\\\slash",c="new\\nline"} 1')
    assert dict(s.labels) == {"a": 'q"uote', "b": "back\\slash", "c": "new\nline"}


@pytest.mark.parametrize("value", [",", "}", "{", "=", " ", 'a,b="c"}', "} 1", "x # y"])
def test_label_values_with_syntax_characters(value: str) -> None:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    s = one(f'm{{a="{escaped}",b="z"}} 2')
    assert dict(s.labels) == {"a": value, "b": "z"}
    assert s.value == 2.0


def test_label_less_and_empty_braces() -> None:
    page = parse_text("foo 1\nbar{} 2\n")
    assert [(s.name, dict(s.labels), s.value) for s in page.samples] == [("foo", {}, 1.0), ("bar", {}, 2.0)]


@pytest.mark.parametrize(
    ("text", "check"),
    [
        ("NaN", math.isnan),
        ("nan", math.isnan),
        ("+Inf", lambda v: v == math.inf),
        ("Inf", lambda v: v == math.inf),
        ("+inf", lambda v: v == math.inf),
        ("-Inf", lambda v: v == -math.inf),
        ("-inf", lambda v: v == -math.inf),
        ("1e3", lambda v: v == 1000.0),
    ],
)
def test_special_values(text: str, check: Callable[[float], bool]) -> None:
    assert check(one(f'm{{a="b"}} {text}').value)


def test_timestamps() -> None:
    page = parse_text("a 1 1700000000123\nb 2\n")
    assert [s.timestamp_ms for s in page.samples] == [1700000000123.0, None]


def test_openmetrics_timestamps_are_seconds() -> None:
    page = parse_text("a_total 1 1700000000.25\n# EOF\n", openmetrics=True)
    assert page.samples[0].timestamp_ms == 1700000000250.0


def test_eof_on_a_text_format_page_is_only_a_comment() -> None:
    """The format is the Content-Type's, never guessed: on a text page `# EOF` neither ends the page nor turns
    its (millisecond) timestamps into seconds."""
    page = parse_text("a_total 1 1700000000250\n# EOF\nb 2\n")
    assert [(s.name, s.value, s.timestamp_ms) for s in page.samples] == [("a_total", 1.0, 1700000000250.0),
                                                                        ("b", 2.0, None)]
    assert page.skipped == {}


def test_openmetrics_eof_unit_exemplar_created() -> None:
    text = (
        "# TYPE h histogram\n# UNIT h seconds\n"
        'h_bucket{le="1"} 2 # {trace_id="a b"} 0.5 1.0\n'
        'h_bucket{le="+Inf"} 3\n'
        "h_created 1.5e9\n# EOF\nlate 1\n"
    )
    page = parse_text(text, openmetrics=True)
    assert [(s.name, s.value) for s in page.samples] == [("h_bucket", 2.0), ("h_bucket", 3.0), ("h_created", 1.5e9)]
    assert page.types == {"h": "histogram"}
    assert page.skipped == {"after_eof": 1}


def test_help_and_type() -> None:
    page = parse_text("# HELP m Some \\\\ help\\nmore.\n# TYPE m summary\nm_sum 1\n")
    assert page.helps == {"m": "Some \\ help\nmore."}
    assert page.types == {"m": "summary"}


def test_blank_lines_and_crlf() -> None:
    lf = "# TYPE m gauge\n\nm{a=\"1\"} 1\n  \n\tm{a=\"2\"} 2 \n"
    crlf = lf.replace("\n", "\r\n")
    assert norm(parse_text(crlf)) == norm(parse_text(lf))
    assert len(parse_text(crlf).samples) == 2
    assert parse_text(crlf).skipped == {}


def test_duplicates_keep_first() -> None:
    page = parse_text('m{a="1",b="2"} 1\nm{b="2",a="1"} 2\nm{a="1",b="2"} 3\nn 4\nn{} 5\n')
    assert [(s.name, s.value) for s in page.samples] == [("m", 1.0), ("n", 4.0)]
    assert page.skipped == {"duplicate": 3}


def test_duplicates_detected_on_warm_parse() -> None:
    parser = TextParser()
    text = 'm{a="1"} 1\nm{a="1"} 2\n'
    parser.parse(text)
    page = parser.parse(text)
    assert [s.value for s in page.samples] == [1.0]
    assert page.skipped == {"duplicate": 1}


def test_skip_reasons() -> None:
    text = "\n".join(
        [
            "garbage",  # malformed: no value
            'm{a="1"} x',  # bad_value
            'm{a="2"} 1 later',  # bad_timestamp
            'm{a="3} 1',  # bad_labels: unterminated
            "# TYPE m nonsense",  # bad_comment
            "# TYPE m gauge",
            "# TYPE m counter",  # duplicate_meta
            'm{a="4"} 1',
        ]
    )
    page = parse_text(text)
    assert page.skipped == {
        "malformed": 1,
        "bad_value": 1,
        "bad_timestamp": 1,
        "bad_labels": 1,
        "bad_comment": 1,
        "duplicate_meta": 1,
    }
    assert [dict(s.labels) for s in page.samples] == [{"a": "4"}]


def test_truncated_page_mid_line() -> None:
    full = read(FIXTURE)
    cut = full[: full.index('vllm:e2e_request_latency_seconds_bucket{engine="0",le="0.3"') + 50]
    page = parse_text(cut)
    assert page.skipped == {"bad_labels": 1}
    assert len(page.samples) == sum(
        1 for line in cut.split("\n")[:-1] if line.strip() and not line.startswith("#")
    )


def test_html_error_page() -> None:
    page = parse_text(read(CORPUS / "html_error.txt"))
    assert page.samples == [] and page.types == {} and page.helps == {}
    assert sum(page.skipped.values()) == 9


def test_empty_page() -> None:
    assert norm(parse_text("")) == ([], {}, {}, {})


def test_huge_label_value() -> None:
    big = "x" * 1_000_000
    text = f'm{{a="{big}",b="\\"{big}"}} 1\nm{{a="small"}} 2\n'
    parser = TextParser()
    first = parser.parse(text)
    second = parser.parse(text)
    assert first.samples[0].labels["a"] == big
    assert first.samples[0].labels["b"] == '"' + big
    assert norm(first) == norm(second)
    assert parser.cached_series == 1  # the huge series text is not cached, the small one is


def test_cache_is_bounded_and_results_unchanged() -> None:
    text = read(FIXTURE)
    small = TextParser(max_cache_entries=10)
    for _ in range(3):
        page = small.parse(text)
        assert small.cached_series <= 10
        assert norm(page) == norm(parse_text(text))
    assert norm(TextParser(max_cache_entries=0).parse(text)) == norm(parse_text(text))


def test_labels_shared_across_scrapes() -> None:
    """Documents the interface: warm samples reuse the cached labels mapping (consumers must not mutate)."""
    parser = TextParser()
    a = parser.parse('m{a="1"} 1\n').samples[0]
    b = parser.parse('m{a="1"} 2\n').samples[0]
    assert a.labels is b.labels and (a.value, b.value) == (1.0, 2.0)


# --- agreement with prometheus_client on a real vLLM page -------------------------------------------


def test_fixture_matches_prometheus_client() -> None:
    """Sample by sample, the same (name, labels, value) as prometheus_client, in the same order.

    Comparable: samples. prometheus_client keeps sample names as written (`vllm:..._total`,
    `..._created`, `..._bucket`), so those match one to one. Not comparable: family names, which
    prometheus_client rewrites (a counter `foo_total` becomes family `foo`) while llmobs keeps TYPE names
    as written and leaves that to the normalizer; so types are compared after stripping `_total`.
    """
    text = read(FIXTURE)
    families = list(text_string_to_metric_families(text))
    theirs = [(s.name, dict(s.labels), s.value, s.timestamp) for f in families for s in f.samples]
    page = parse_text(text)
    ours = [(s.name, dict(s.labels), s.value, s.timestamp_ms) for s in page.samples]
    assert len(ours) == 425 and page.skipped == {}
    assert ours == theirs
    their_types = {f.name: f.type for f in families}
    our_types = {
        (name.removesuffix("_total") if kind == "counter" else name): kind for name, kind in page.types.items()
    }
    assert our_types == their_types
    # vLLM 0.32 writes `_created` as separate gauge families; they are ordinary samples here
    assert any(s.name.endswith("_created") for s in page.samples)


def test_fixture_warm_equals_cold_and_uses_bulk_path() -> None:
    text = read(FIXTURE)
    parser = TextParser()
    cold = parser.parse(text)
    assert parser.last_path == "lines"  # a first scrape
    assert norm(parser.parse(text)) == norm(cold)
    assert parser.last_path == "bulk"  # the warm fast path applies to vLLM pages
    changed = text.replace(" 0.0\n", " 1.0\n")
    assert norm(parser.parse(changed)) == norm(parse_text(changed))


# --- hypothesis properties ---------------------------------------------------------------------------

NAMES = st.sampled_from(["m", "m_total", "vllm:kv", "n_bucket", "_x", "9bad", "a-b", ""])
LABEL_NAMES = st.sampled_from(["a", "b", "le", "model_name", "_z", "9", "a b", ""])
RAW_VALUES = st.text(alphabet=st.sampled_from('ab ,{}="\\\n#\t\u2028é'), max_size=8)
NUMBERS = st.sampled_from(["1", "0.0", "-2.5e3", "NaN", "+Inf", "-inf", "Inf", "x", "", "1_0", "0x1p3"])


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@st.composite
def sample_lines(draw: st.DrawFn) -> str:
    name = draw(NAMES)
    labels = draw(st.lists(st.tuples(LABEL_NAMES, RAW_VALUES), max_size=3))
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
    series = draw(st.sampled_from([name, f"{name}{{{body}}}", f"{name} {{{body},}}", f"{name}{{}}"]))
    value = draw(NUMBERS)
    tail = draw(st.sampled_from(["", " 1700000000000", " 12.5", " NaN", " # {t=\"1\"} 1", " 1 2", "\r"]))
    return f"{series} {value}{tail}"


COMMENTS = st.sampled_from(
    [
        "# HELP m some help",
        "# HELP m other \\n help",
        "# TYPE m counter",
        "# TYPE m bogus",
        "# TYPE n_bucket histogram",
        "# UNIT m seconds",
        "# EOF",
        "# just a comment",
        "#",
        "",
        "   ",
    ]
)
LINES = st.one_of(sample_lines(), COMMENTS, st.text(max_size=30))
PAGES = st.lists(LINES, max_size=25).map("\n".join)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check_accounting(text: str, page: ParsedPage, openmetrics: bool) -> None:
    """Every non-comment non-blank line (on an OpenMetrics page: before `# EOF`) is a sample or counted under
    a sample reason; on an OpenMetrics page every non-blank line after `# EOF` is counted as after_eof, and
    a page without `# EOF` yields nothing and says so."""
    lines = [line.strip(BLANKS) for line in text.split("\n")]
    eof = lines.index("# EOF") if openmetrics and "# EOF" in lines else len(lines)
    sample_lines_before = sum(1 for line in lines[:eof] if line and not line.startswith("#"))
    counted = sum(n for reason, n in page.skipped.items() if reason in SAMPLE_REASONS)
    if openmetrics and eof == len(lines):
        assert page.samples == [] and page.skipped["missing_eof"] >= 1
    else:
        assert len(page.samples) + counted == sample_lines_before
    assert page.skipped.get("after_eof", 0) == sum(1 for line in lines[eof + 1 :] if line)
    assert all(n > 0 for n in page.skipped.values())


@SETTINGS
@given(st.text(max_size=300), st.booleans())
def test_never_raises_on_any_text(text: str, openmetrics: bool) -> None:
    page = parse_text(text, openmetrics)
    _check_accounting(text, page, openmetrics)


@SETTINGS
@given(PAGES, st.booleans())
def test_never_raises_and_accounts_for_every_line(text: str, openmetrics: bool) -> None:
    page = parse_text(text, openmetrics)
    _check_accounting(text, page, openmetrics)
    for s in page.samples:
        assert isinstance(s.value, float) and isinstance(s.name, str)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PAGES, PAGES, st.sampled_from([20_000, 3, 0]), st.booleans())
def test_warm_equals_cold(first: str, second: str, max_entries: int, openmetrics: bool) -> None:
    """A parser that has seen other pages (and this one) gives exactly what a fresh parser gives."""
    parser = TextParser(max_cache_entries=max_entries)
    parser.parse(first, openmetrics)
    assert norm(parser.parse(second, openmetrics)) == norm(parse_text(second, openmetrics))
    assert norm(parser.parse(second, openmetrics)) == norm(parse_text(second, openmetrics))
    assert norm(parser.parse(first, not openmetrics)) == norm(parse_text(first, not openmetrics))
    assert norm(parser.parse(first, openmetrics)) == norm(parse_text(first, openmetrics))


def test_openmetrics_page_takes_bulk_path_and_matches_cold() -> None:
    text = read(FIXTURE) + "# EOF\n\n"
    parser = TextParser()
    cold = parser.parse(text, openmetrics=True)
    assert cold.skipped == {} and len(cold.samples) == 425
    assert norm(parser.parse(text, openmetrics=True)) == norm(cold)
    assert parser.last_path == "bulk"
    late = text + "late_sample 1\n"
    assert norm(parser.parse(late, openmetrics=True)) == norm(parse_text(late, openmetrics=True))
    assert parser.parse(late, openmetrics=True).skipped == {"after_eof": 1}


AFTER_VALUE = st.sampled_from(["", " ", "  1000", "\t", " #", "\r"])


@st.composite
def page_and_next_scrape(draw: st.DrawFn) -> tuple[str, str]:
    """A page and the 'next scrape' of it: mostly new values, sometimes a line glued, cut or replaced."""
    lines = draw(st.lists(LINES, max_size=20))
    nxt = []
    for line in lines:
        head, sep, _tail = line.rpartition(" ")
        how = draw(st.sampled_from(["value", "value", "value", "same", "glue", "other"]))
        if how == "value" and sep:
            line = f"{head} {draw(NUMBERS)}{draw(AFTER_VALUE)}"
        elif how == "glue" and sep:
            line = head + draw(NUMBERS)
        elif how == "other":
            line = draw(LINES)
        nxt.append(line)
    return "\n".join(lines), "\n".join(nxt)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(page_and_next_scrape())
def test_next_scrape_equals_cold(pages: tuple[str, str]) -> None:
    """After two scrapes of one page (which records its layout), the next scrape reads as a fresh parse."""
    first, nxt = pages
    parser = TextParser()
    parser.parse(first)
    parser.parse(first)
    assert norm(parser.parse(nxt)) == norm(parse_text(nxt))
    assert norm(parser.parse(first)) == norm(parse_text(first))


def test_fixture_next_scrapes_take_layout_path() -> None:
    text = read(FIXTURE)
    parser = TextParser()
    parser.parse(text)
    parser.parse(text)
    changed = text.replace(" 0.0\n", " 2.5\n")
    assert norm(parser.parse(changed)) == norm(parse_text(changed))
    assert parser.last_path == "same_layout"
    glued = changed.replace("process_open_fds 34.0", "process_open_fds34.0")
    assert norm(parser.parse(glued)) == norm(parse_text(glued))
    assert parser.last_path != "same_layout"  # a line changed shape: the layout no longer holds
    assert parser.parse(glued).skipped == {"malformed": 1}


@settings(max_examples=200, deadline=None)
@given(sample_lines())
def test_series_fast_path_agrees_with_general(line: str) -> None:
    """A blank between a name and its `{` sends the series text to the token-by-token reader; the one-regex
    reader of simple `name{labels}` texts must read every line exactly as that one does."""
    head = line.split(" ", 1)[0]
    assume("{" in head)
    spaced = line.replace("{", " {", 1)
    assert norm(parse_text(spaced)) == norm(parse_text(line))


def test_warm_samples_are_ordinary_frozen_samples() -> None:
    """Samples built slot by slot on the warm paths equal, and are as frozen as, constructed ones."""
    import dataclasses

    parser = TextParser()
    text = 'm{a="1"} 1\nn 2\n'
    for _ in range(3):  # line loop, bulk, same layout
        page = parser.parse(text)
        assert page.samples == [Sample("m", {"a": "1"}, 1.0, None), Sample("n", {}, 2.0, None)]
        with pytest.raises(dataclasses.FrozenInstanceError):
            page.samples[0].value = 3.0  # type: ignore[misc]


def test_a_warm_page_reads_the_same_before_and_after_its_samples_are_built(fixture_page: str) -> None:
    """A same-layout page builds its `Sample` objects only when `samples` is read; its `values`, `sample(i)`
    and length read the same as the built samples, and so does the page itself once they are built."""
    parser = TextParser()
    parser.parse(fixture_page)
    parser.parse(fixture_page)
    changed = fixture_page.replace(" 0.0\n", " 2.5\n")
    page = parser.parse(changed)
    assert parser.last_path == "same_layout"
    values, single = list(page.values), [page.sample(i) for i in range(len(page))]
    built = page.samples
    assert values == [s.value for s in built] and single == built
    assert len(page) == len(built) == len(parse_text(changed).samples)
    assert norm(page) == norm(parse_text(changed))
    page.samples = built[:3]  # a consumer that cuts the page sees the cut everywhere
    assert len(page) == 3 and page.values == [s.value for s in built[:3]] and page.sample(2) == built[2]


def test_lone_surrogates_and_control_characters() -> None:
    text = 'm{a="\ud800\x00\x1b"} 1\n\ud800 1\nm\x00 1\n\x0b\n'
    page = parse_text(text)
    assert [dict(s.labels) for s in page.samples] == [{"a": "\ud800\x00\x1b"}]
    assert page.skipped == {"malformed": 3}


def test_parsers_of_replicas_share_series_entries_and_junk_cannot_flush_the_pool(fixture_page: str) -> None:
    """Replicas of one model write the same series texts: every target's parser ends up holding the very
    same label dicts (one copy in memory, whatever the number of targets), with identical results; a page
    of fresh junk series adds at most SHARE_PER_PAGE entries to the shared pool."""
    a, b = TextParser(), TextParser()
    pa, pb = a.parse(fixture_page), b.parse(fixture_page)
    assert [(s.name, s.labels, s.value) for s in pa.samples] == [(s.name, s.labels, s.value) for s in pb.samples]
    assert all(x.labels is y.labels for x, y in zip(pa.samples, pb.samples, strict=True))
    before = shared_series_count()
    junk = "".join(f'junk_{i}{{a="{i}.5"}} 1\n' for i in range(SHARE_PER_PAGE * 3))
    assert len(TextParser().parse(junk).samples) == SHARE_PER_PAGE * 3
    assert shared_series_count() <= before + SHARE_PER_PAGE
