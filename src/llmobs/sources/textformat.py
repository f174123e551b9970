"""Fast, forgiving parser for Prometheus text 0.0.4 and OpenMetrics 1.0 pages.

Why not prometheus_client's parser: llmobs scrapes many vLLM targets every few seconds, and
prometheus_client's ``text_string_to_metric_families`` costs milliseconds per vLLM page and raises on the
first bad line, so one garbled line loses the whole scrape. This parser

* never raises on any ``str``: bad lines are skipped and counted by reason in ``ParsedPage.skipped``
  (``malformed``, ``bad_value``, ``bad_timestamp``, ``bad_labels``, ``bad_exemplar``, ``duplicate`` for
  sample lines; ``bad_comment``, ``duplicate_meta`` for ``#`` lines; on OpenMetrics pages
  ``after_eof``, ``missing_eof`` and ``bad_histogram``), so the scraper can export *why* a page was
  partly unreadable;
* is stateful per target (:class:`TextParser`): a target's page repeats the same series every scrape, so the
  parse of each series' ``name{labels}`` text is cached, and a warm page is read with ``map`` over C
  functions rather than a Python loop per line (see :class:`TextParser` for the three paths);
* returns flat samples (:class:`Sample`) plus the ``# TYPE`` / ``# HELP`` maps, and leaves family grouping
  and any ``_total`` / ``_created`` interpretation to the normalizer, which knows vLLM's naming history.

Format notes (what is accepted, and what deliberately differs from Prometheus):

* The format is the caller's to say (``parse(text, openmetrics=...)``; the scraper decides it by the page's
  Content-Type), never guessed from the page: on a text-format page ``# EOF`` is an ordinary comment.
* Lines are split on ``\\n`` only (never ``str.splitlines``: characters such as U+2028 are legal inside
  label values); a trailing ``\\r`` (CRLF pages) and leading/trailing blanks/tabs are ignored. Tokens
  are separated by blanks and tabs only: any other control character makes the line bad.
* Label values may contain anything, including ``,`` ``}`` ``{`` ``=`` and spaces; ``\\\\``, ``\\"`` and
  ``\\n`` are unescaped, any other backslash sequence is kept literally (as Prometheus does). A trailing
  comma before ``}`` is accepted; a repeated label name, or ``__name__`` as a label, makes the line
  ``bad_labels``.
* Values and timestamps are ASCII numbers as Go's ``ParseFloat`` reads them (``NaN``, ``+Inf``, ``-Inf``,
  ``Infinity`` in any case); ``1_000``, non-ASCII digits and embedded control characters, all of which
  Python's ``float()`` would accept, are ``bad_value`` / ``bad_timestamp``, as Prometheus fails them.
* A sample's timestamp is kept as milliseconds: text-format timestamps are already ms; OpenMetrics
  timestamps are seconds and are multiplied by 1000.
* OpenMetrics only: exemplars (``value [ts] # {labels} value [ts]``) are checked and dropped (a malformed
  one makes the line ``bad_exemplar``); lines after ``# EOF`` are counted as ``after_eof``; a page without
  its closing ``# EOF`` is truncated and none of it is used (every sample line counted as
  ``missing_eof``); a negative counter-like value (``_total`` of a counter, ``_bucket``/``_count`` of a
  histogram or summary, ``_gcount`` of a gauge histogram) is ``bad_value``; a histogram whose buckets
  are out of order, decreasing, or lack ``+Inf`` loses its bucket lines (counted as ``bad_histogram``).
  ``# UNIT`` lines are accepted and ignored; ``_created`` series are ordinary samples. On a text-format
  page anything after the value but a timestamp makes the line bad (no exemplars there).
* Duplicate series (same name and same label *set*, whatever the label order) keep the first sample.
  Duplicate ``# TYPE`` / ``# HELP`` lines for one family keep the first and count as ``duplicate_meta``.
* Not supported: UTF-8 quoted metric or label names (``{"my.metric"}``), counted as ``malformed`` /
  ``bad_labels``; hex float values (Go accepts ``0x1p3``), counted as ``bad_value``.
"""

from __future__ import annotations

import math
import re
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from itertools import compress, repeat
from operator import attrgetter, gt, is_, is_not, itemgetter

__all__ = ["SHARE_PER_PAGE", "ParsedPage", "Sample", "TextParser", "parse_text", "shared_series_count"]


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample line: the full sample name (``foo_bucket``, ``foo_total``...), its labels and value.

    ``labels`` may be a dict shared by every parse of the same series from one :class:`TextParser`
    (that sharing is what makes warm parses cheap), so consumers must treat it as read-only.
    """

    name: str
    labels: Mapping[str, str]
    value: float
    timestamp_ms: float | None


class ParsedPage:
    """Everything read from one page; ``skipped`` maps a reason to the number of lines skipped for it.

    ``layout`` is the same object exactly when the samples are the same series in the same order as an
    earlier page of this parser (a warm page); None otherwise. It lets per-layout work downstream be reused
    (`normalize`).

    A warm page keeps its samples as their series and values and builds the `Sample` objects when
    ``samples`` is first read: `values` and `sample` read a page without building them, which is what
    `normalize` does with a layout it has routed before. Building ~300 objects was 40 % of a warm vLLM
    page's parse, and the fleet simulator reads a page of every replica at every scrape.
    """

    __slots__ = ("_samples", "_series", "_values", "helps", "layout", "skipped", "types")

    def __init__(self, samples: list[Sample] | None = None, types: dict[str, str] | None = None,
                 helps: dict[str, str] | None = None, skipped: dict[str, int] | None = None,
                 layout: object | None = None) -> None:
        self._samples: list[Sample] | None = [] if samples is None else samples
        self._series: list[_Entry] | None = None  # with `_values`: the samples not built yet
        self._values: list[float] | None = None
        self.types: dict[str, str] = {} if types is None else types
        self.helps: dict[str, str] = {} if helps is None else helps
        self.skipped: dict[str, int] = {} if skipped is None else skipped
        self.layout = layout

    @classmethod
    def _deferred(cls, series: list[_Entry], values: list[float], types: dict[str, str], helps: dict[str, str],
                  skipped: dict[str, int], layout: object | None) -> ParsedPage:
        """A page whose samples are built from `series` and `values` when first read."""
        page = cls(None, types, helps, skipped, layout)
        page._samples, page._series, page._values = None, series, values
        return page

    @property
    def samples(self) -> list[Sample]:
        if self._samples is None:
            assert self._series is not None and self._values is not None
            self._samples = _build(self._series, self._values)
            self._series = self._values = None
        return self._samples

    @samples.setter
    def samples(self, samples: list[Sample]) -> None:
        self._samples, self._series, self._values = samples, None, None

    @property
    def values(self) -> list[float]:
        """The samples' values in page order (a new list once the samples are built: read it, do not keep
        it across changes to ``samples``)."""
        if self._values is not None:
            return self._values
        return [s.value for s in self.samples]

    def sample(self, index: int) -> Sample:
        """The `index`-th sample, built alone if the samples are not built yet."""
        if self._samples is not None:
            return self._samples[index]
        assert self._series is not None and self._values is not None
        entry = self._series[index]
        return Sample(entry[0], entry[1], self._values[index], None)

    def __len__(self) -> int:
        """The number of samples."""
        return len(self._values) if self._values is not None else len(self.samples)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ParsedPage):
            return NotImplemented
        return ((self.samples, self.types, self.helps, self.skipped, self.layout)
                == (other.samples, other.types, other.helps, other.skipped, other.layout))

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass it replaces

    def __repr__(self) -> str:
        return (f"ParsedPage(samples={self.samples!r}, types={self.types!r}, helps={self.helps!r}, "
                f"skipped={self.skipped!r}, layout={self.layout!r})")


# Set slots directly: a frozen dataclass's __init__ goes through object.__setattr__ four times and costs
# about as much as the rest of a warm line's work. The member descriptors write the same slots (read from the
# class __dict__: `Sample.name` is the same descriptor, but typed as the field's value).
_new = object.__new__
_set_name: Callable[[Sample, str], None] = Sample.__dict__["name"].__set__
_set_labels: Callable[[Sample, Mapping[str, str]], None] = Sample.__dict__["labels"].__set__
_set_value: Callable[[Sample, float], None] = Sample.__dict__["value"].__set__
_set_ts: Callable[[Sample, float | None], None] = Sample.__dict__["timestamp_ms"].__set__

_rpartition = str.rpartition
_first = itemgetter(0)
_second = itemgetter(1)
_third = itemgetter(2)
_fourth = itemgetter(3)
_consume: Callable[[Iterable[object]], object] = partial(deque, maxlen=0)  # run a map() for its side effects, in C


_BLANKS = " \t\r"
_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# One `name="value"` pair; the value pattern is the unrolled `([^"\\]|\\.)*` so it stays linear on huge values.
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"([^"\\]*(?:\\.[^"\\]*)*)"[ \t]*')
_SIMPLE_PAIR = r'[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*"'
_SIMPLE_SERIES_RE = re.compile(rf"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{{((?:{_SIMPLE_PAIR},)*(?:{_SIMPLE_PAIR})?)\}})?")
_SIMPLE_PAIR_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"\\]*)"')
_ESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)
# What a value or timestamp token may be made of; float() then decides (digits, sign, point, exponent,
# inf/infinity/nan). Keeps out what float() would accept and Go's ParseFloat (Prometheus) refuses:
# `1_000`, non-ASCII digits, and whitespace float() would strip (e.g. \x1c, which str.split() splits on).
_NUMBER_RE = re.compile(r"[0-9A-Za-z.+\-]+")
# An OpenMetrics exemplar after `#`: `{labels} value [timestamp]`.
_EXEMPLAR_RE = re.compile(r'[ \t]*\{((?:[^"{}]|"(?:[^"\\]|\\.)*")*)\}[ \t]+([^ \t]+)(?:[ \t]+([^ \t]+))?[ \t]*\Z')
# Characters that str.strip()/float() treat as whitespace besides blanks, tabs, CR and LF. A page with one of
# them (or any non-ASCII character) has its warm values checked one by one (see TextParser.parse).
_ODD_SPACES = ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f")
# OpenMetrics: (family type, sample suffix) pairs whose value may not be negative.
_COUNTER_LIKE = {("counter", "_total"), ("histogram", "_bucket"), ("histogram", "_count"), ("summary", "_count"),
                 ("gaugehistogram", "_bucket"), ("gaugehistogram", "_gcount")}
_SUFFIXES = ("_total", "_created", "_bucket", "_count", "_sum", "_gcount", "_gsum", "_info")
_UNESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
_META_RE = re.compile(r"#[ \t]+(HELP|TYPE|UNIT)(?:[ \t]+([^ \t]*)(?:[ \t]+(.*))?)?\Z", re.DOTALL)
_TYPES = frozenset(
    {"counter", "gauge", "histogram", "summary", "untyped", "unknown", "gaugehistogram", "stateset", "info"}
)
_Identity = tuple[str, frozenset[tuple[str, str]]]
_Entry = tuple[str, dict[str, str], _Identity, str]  # name, labels, identity, series text
# Series texts longer than this are parsed every time instead of cached, so a page with a few huge label
# values cannot pin megabytes per cache entry.
_MAX_CACHED_KEY = 4096
# Process-wide pools of parsed series texts and comment lines, shared by every TextParser: replicas of one
# model write the very same `name{labels}` texts and HELP/TYPE lines, so 1,000 targets of a few models need
# a few thousand entries, not 1,000 copies (which were most of the exporter's memory at 1,000 targets).
# Entries are immutable (labels dicts are read-only, see Sample), so sharing changes no result. Bounded:
# when a pool is full it is cleared (entries held by parsers stay alive; only new ones stop being shared
# until the pool refills), so a target that writes fresh junk every scrape cannot grow it.
_SHARED_MAX = 50_000
# New entries one page may add to the shared pool: a vLLM page has a few hundred series per model; a page of
# 100k fresh junk series would otherwise flush the pool on every scrape.
SHARE_PER_PAGE = 2_000
_shared_series: dict[str, _Entry] = {}
_shared_comments: dict[str, tuple[str, tuple[str, str, str] | None]] = {}


def shared_series_count() -> int:
    """How many series texts the process-wide pool holds now (at most 50,000; a page adds at most
    `SHARE_PER_PAGE`): what to watch when the exporter's memory grows with its number of targets."""
    return len(_shared_series)


def _share_series(entry: _Entry) -> None:
    if len(_shared_series) >= _SHARED_MAX:
        _shared_series.clear()
    _shared_series[entry[3]] = entry


class _Skip(Exception):
    """Raised inside the cold path to skip the current line with ``reason``."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _number(token: str, reason: str) -> float:
    """A value or timestamp token as Prometheus reads it (see `_NUMBER_RE`); raises ``_Skip(reason)``."""
    if _NUMBER_RE.fullmatch(token) is None:
        raise _Skip(reason)
    try:
        return float(token)
    except ValueError:
        raise _Skip(reason) from None


def _check_exemplar(text: str) -> None:
    """An OpenMetrics exemplar (the text after `#`) must be `{labels} value [timestamp]`."""
    m = _EXEMPLAR_RE.match(text)
    if m is None or not text[:1].isspace():
        raise _Skip("bad_exemplar")
    labels = m.group(1)
    try:
        if labels.strip(" \t") and _parse_series_general("x{" + labels + "}")[2] != len(labels) + 3:
            raise _Skip("bad_exemplar")
    except _Skip:
        raise _Skip("bad_exemplar") from None
    _number(m.group(2), "bad_exemplar")
    if m.group(3) is not None:
        _number(m.group(3), "bad_exemplar")


def _unescape(text: str) -> str:
    """Undo ``\\\\``, ``\\"`` and ``\\n``; other backslash sequences stay literal, as in Prometheus."""
    return _ESCAPE_RE.sub(lambda m: _UNESCAPES.get(m.group(1), m.group(0)), text)


def _build(hits: list[_Entry], values: list[float]) -> list[Sample]:
    """Samples for cached series and their values, built slot by slot in C loops (no timestamps).

    The objects are frozen dataclasses; setting their slots through the member descriptors is what
    ``__init__`` does, minus four Python-level ``object.__setattr__`` calls, and nothing else has seen
    these objects yet.
    """
    n = len(hits)
    samples = list(map(_new, repeat(Sample, n)))
    _consume(map(_set_name, samples, map(_first, hits)))
    _consume(map(_set_labels, samples, map(_second, hits)))
    _consume(map(_set_value, samples, values))
    _consume(map(_set_ts, samples, repeat(None, n)))
    return samples


@dataclass(slots=True)
class _Layout:
    """Where a page's lines were: per line its cache entry (None for non-sample lines), the non-sample
    lines' exact text and what they produced; masks and prefixes are derived on first use."""

    entries: list[_Entry | None]
    hits: list[_Entry]
    misses: tuple[str, ...]
    types: dict[str, str]
    helps: dict[str, str]
    skipped: dict[str, int]
    prefixes: list[str] | None = None  # per line: its series text, or "" (always a prefix)
    miss_mask: bytes = b""
    hit_mask: bytes = b""


def _before_final_eof(lines: list[str]) -> list[str] | None:
    """The lines before an OpenMetrics page's closing ``# EOF`` (only blank lines may follow it), or None.

    The warm paths treat any ``# EOF`` as unusual; cutting the normal closing one off first lets
    OpenMetrics pages take them too (they yield no timestamped samples, so no unit change).
    """
    end = len(lines)
    while end and not lines[end - 1].strip(_BLANKS):
        end -= 1
    if end and lines[end - 1].strip(_BLANKS) == "# EOF":
        return lines[: end - 1]
    return None


_value_of = attrgetter("value")


def _picker(indices: tuple[int, ...]) -> Callable[[list[Sample]], tuple[Sample, ...]]:
    """A C-level getter of ``samples[i] for i in indices`` as a tuple (itemgetter returns a bare item for one)."""
    if len(indices) == 1:
        only = indices[0]
        return lambda samples: (samples[only],)
    return itemgetter(*indices)


@dataclass(slots=True)
class _OpenMetricsChecks:
    """The value checks OpenMetrics asks of one page layout: counter-like samples may not be negative, and a
    histogram's cumulative buckets (in page order) may not decrease. Buckets of a histogram whose bounds
    are not strictly increasing up to +Inf are bad whatever their values. Kept per warm layout and run
    with C-level getters, since a warm vLLM page is checked every scrape."""

    counter_like: tuple[int, ...]
    buckets: tuple[int, ...]  # every checked bucket, histogram after histogram
    groups: tuple[tuple[int, ...], ...]  # the same, per histogram
    inside: bytes  # per consecutive pair in `buckets`: 1 when both belong to one histogram
    bad_buckets: frozenset[int]
    pick_counters: Callable[[list[Sample]], tuple[Sample, ...]] | None
    pick_buckets: Callable[[list[Sample]], tuple[Sample, ...]] | None

    @classmethod
    def of(cls, samples: list[Sample], types: dict[str, str]) -> _OpenMetricsChecks:
        counter_like: list[int] = []
        groups: dict[tuple[str, frozenset[tuple[str, str]]], list[tuple[int, str]]] = {}
        for i, s in enumerate(samples):
            family, suffix = s.name, ""
            kind = types.get(family)
            if kind is None:
                for suffix in _SUFFIXES:
                    if family.endswith(suffix):
                        kind = types.get(family[: -len(suffix)])
                        if kind is not None:
                            family = family[: -len(suffix)]
                            break
                else:
                    suffix = ""
            if kind is None:
                continue
            if (kind, suffix) in _COUNTER_LIKE:
                counter_like.append(i)
            if suffix == "_bucket" and kind in ("histogram", "gaugehistogram"):
                rest = frozenset((k, v) for k, v in s.labels.items() if k != "le")
                groups.setdefault((family, rest), []).append((i, s.labels.get("le", "")))
        ordered: list[tuple[int, ...]] = []
        bad: set[int] = set()
        for members in groups.values():
            try:
                bounds = [float(le) if _NUMBER_RE.fullmatch(le) else math.nan for _, le in members]
            except ValueError:
                bounds = [math.nan]
            if all(map(gt, bounds[1:], bounds)) and bounds[-1] == math.inf:
                ordered.append(tuple(i for i, _ in members))
            else:
                bad.update(i for i, _ in members)
        # A histogram's buckets may not decrease, so its first bucket stands for all of them: the others need
        # no sign check of their own.
        checked = set(i for group in ordered for i in group[1:]) | bad
        counter_like = [i for i in counter_like if i not in checked]
        buckets = tuple(i for group in ordered for i in group)
        inside = bytearray()
        for group in ordered:
            if inside or group is not ordered[0]:
                inside.append(0)  # the pair across two histograms
            inside.extend(b"\x01" * (len(group) - 1))
        return cls(tuple(counter_like), buckets, tuple(ordered), bytes(inside), frozenset(bad),
                   _picker(tuple(counter_like)) if counter_like else None, _picker(buckets) if buckets else None)

    def apply(self, page: ParsedPage) -> None:
        """Drop the samples that break OpenMetrics' rules from `page`, counting them by reason."""
        samples = page.samples
        negative = self.pick_counters is not None and any(
            map(gt, repeat(0.0), map(_value_of, self.pick_counters(samples))))
        decreasing = False
        if self.pick_buckets is not None:
            cumulative = list(map(_value_of, self.pick_buckets(samples)))
            decreasing = any(compress(map(gt, cumulative, cumulative[1:]), self.inside))
        if not (negative or decreasing or self.bad_buckets):
            return
        bad_hist: set[int] = set(self.bad_buckets)
        for group in self.groups if decreasing else ():
            values = [samples[i].value for i in group]
            if any(map(gt, values, values[1:])):
                bad_hist.update(group)
        bad_value = {i for i in self.counter_like if samples[i].value < 0} - bad_hist if negative else set()
        page.samples = [s for i, s in enumerate(samples) if i not in bad_value and i not in bad_hist]
        page.layout = None  # not the layout's samples any more
        skipped = page.skipped
        if bad_value:
            skipped["bad_value"] = skipped.get("bad_value", 0) + len(bad_value)
        if bad_hist:
            skipped["bad_histogram"] = skipped.get("bad_histogram", 0) + len(bad_hist)

def _parse_series(line: str) -> tuple[str, dict[str, str], int]:
    """Parse ``name{labels}`` at the start of ``line``; return name, labels and the index just past them.

    Most series texts have braces, no blanks inside them and no backslashes: one regex match plus a
    ``findall`` reads those. Anything else goes to :func:`_parse_series_general`, which gives the same
    answer on this subset (tested) and also handles blanks, escapes and errors.
    """
    m = _SIMPLE_SERIES_RE.match(line)
    if m is not None and m.group(2) is not None:
        pairs = _SIMPLE_PAIR_RE.findall(m.group(2))
        labels = dict(pairs)
        if len(labels) == len(pairs):
            return m.group(1), labels, m.end()
    return _parse_series_general(line)


def _parse_series_general(line: str) -> tuple[str, dict[str, str], int]:
    """Parse ``name{labels}`` at the start of ``line`` one token at a time; raises ``_Skip`` when bad."""
    m = _NAME_RE.match(line)
    if m is None:
        raise _Skip("malformed")
    name = m.group()
    pos = m.end()
    n = len(line)
    while pos < n and line[pos] in " \t":
        pos += 1
    labels: dict[str, str] = {}
    if pos >= n or line[pos] != "{":
        return name, labels, m.end()
    pos += 1
    while True:
        while pos < n and line[pos] in " \t":
            pos += 1
        if pos < n and line[pos] == "}":
            return name, labels, pos + 1
        lm = _LABEL_RE.match(line, pos)
        if lm is None:
            raise _Skip("bad_labels")
        key, value = lm.group(1), lm.group(2)
        if "\\" in value:
            value = _unescape(value)
        if key in labels:
            raise _Skip("bad_labels")
        labels[key] = value
        pos = lm.end()
        if pos < n and line[pos] == ",":
            pos += 1
        elif pos < n and line[pos] == "}":
            return name, labels, pos + 1
        else:
            raise _Skip("bad_labels")


class TextParser:
    """Stateful per scrape target: caches the parse of each series' name+labels text across scrapes.

    A target's page repeats the same series every scrape, so after the first scrape nearly every line is
    ``cache[text before the value]`` + ``float(value)``. ``parse`` tries, in order:

    1. :meth:`_parse_same_layout` — same lines in the same places as the last page, only values differ
       (a steady target): ``startswith`` per line, ``float`` per value, no hashing;
    2. :meth:`_parse_bulk` — every sample line's series is cached: ``rpartition`` + lookup + ``float``,
       all in C loops;
    3. :meth:`_parse_lines` — the reference, line by line, for first scrapes and anything unusual
       (new series, timestamps, exemplars, duplicates, bad values, text after ``# EOF``).

    Paths 1 and 2 give up rather than guess, so all three give identical results (property-tested).
    The series cache is bounded by ``max_cache_entries``: once
    full it takes no new entries, and it is cleared at the start of the next parse and refills from that
    page. A target's working set is stable, so that only happens when series churn (or when one page has
    more series than the bound; such a page then mostly parses cold, still correctly).
    Results are identical warm or cold; only speed differs. Not thread-safe: one parser per target.
    """

    __slots__ = ("_checks", "_comments", "_last_misses", "_last_path", "_layout", "_max", "_openmetrics", "_series",
                 "_share_budget", "_strict")

    def __init__(self, max_cache_entries: int = 20_000) -> None:
        self._max = max(0, int(max_cache_entries))
        # series text (`name{labels}` exactly as on the page) -> (name, labels, identity, text), where identity
        # is (name, frozenset of labels): differently written texts of one series (label order, `foo`
        # vs `foo{}`) share it, which is how duplicates are recognised. frozenset caches its hash.
        self._series: dict[str, _Entry] = {}
        # whole `# HELP` / `# TYPE` / `# UNIT` line -> (kind, family, text), or None if the line is a
        # bad comment; vLLM pages are ~30 % such lines, so they are cached too.
        self._comments: dict[str, tuple[str, str, str] | None] = {}
        # The lines of the last bulk-parsed page that were not cached samples (HELP/TYPE, blanks,
        # garbage), with the types/helps/skipped they produced: a target repeats them every scrape, and
        # comparing them to the last page's is ten times cheaper than reading them again.
        self._last_misses: tuple[tuple[str, ...], dict[str, str], dict[str, str], dict[str, int]] | None = None
        self._layout: _Layout | None = None  # the last bulk-parsed page's shape, see _parse_same_layout
        self._share_budget = SHARE_PER_PAGE
        self._openmetrics = False
        self._strict = False
        # The OpenMetrics checks of the last warm layout (ParsedPage.layout -> its checks).
        self._checks: tuple[object, _OpenMetricsChecks] | None = None
        self._last_path = ""

    @property
    def last_path(self) -> str:
        """Which reader parsed the last page: "same_layout", "bulk" or "lines" (see the class docstring); ""
        before the first. Results never depend on it; it shows whether a target's pages stay on the warm paths
        (a steady vLLM page needs the line loop only on its first scrape)."""
        return self._last_path

    @property
    def cached_series(self) -> int:
        """How many series texts this parser caches now (at most `max_cache_entries`; texts over 4 KiB are
        never cached): the parser's share of the exporter's memory per target."""
        return len(self._series)

    def parse(self, text: str, openmetrics: bool = False) -> ParsedPage:
        """Parse one page; never raises for any ``str`` (bad lines are counted in ``skipped``).

        `openmetrics`: the page is OpenMetrics (by its Content-Type), else the Prometheus text format."""
        # Caches are only ever cleared here, between pages, so the duplicate check sees stable entries.
        if len(self._series) >= self._max:
            self._series.clear()
        if len(self._comments) >= self._max:
            self._comments.clear()
        lines = text.split("\n")
        self._share_budget = SHARE_PER_PAGE
        if openmetrics != self._openmetrics:  # `# EOF` means something else now: forget the remembered pages
            self._layout = self._last_misses = None
            self._openmetrics = openmetrics
        # float() reads more than Prometheus does. On a page of ASCII without odd whitespace (every vLLM
        # page) a value float() accepts can only be wrong by an `_`, which the warm paths check in bulk; on
        # any other page the warm paths are skipped and each value is checked (`_strict`).
        self._strict = not text.isascii() or any(c in text for c in _ODD_SPACES)
        page = None
        if self._series and not self._strict:  # a first scrape (empty cache) goes straight to the line loop
            body = _before_final_eof(lines) if openmetrics else lines
            if body is not None:  # an OpenMetrics page without its `# EOF` is for the line loop to judge
                page, self._last_path = self._parse_same_layout(body), "same_layout"
                if page is None:
                    page, self._last_path = self._parse_bulk(body), "bulk"
        if page is None:
            page, self._last_path = self._parse_lines(lines), "lines"
        if openmetrics and page.samples:
            self._check_openmetrics(page)
        return page

    def _check_openmetrics(self, page: ParsedPage) -> None:
        """Apply OpenMetrics' value rules (see :class:`_OpenMetricsChecks`); a warm layout's checks are kept."""
        layout = page.layout
        cached = self._checks
        if layout is not None and cached is not None and cached[0] is layout:
            checks = cached[1]
        else:
            checks = _OpenMetricsChecks.of(page.samples, page.types)
            if layout is not None:
                self._checks = (layout, checks)
        checks.apply(page)

    def _parse_same_layout(self, lines: list[str]) -> ParsedPage | None:
        """The warmest path: the page has the last bulk-parsed page's layout, only values differ.

        A steady target's page keeps its lines in place from one scrape to the next: same comments, same
        series texts at the same line numbers. Checking that with ``str.startswith`` against the remembered
        series texts skips splitting and hashing every line (the cache lookup hashes the whole text before
        the value, which is most of the page). Gives up (None) on any difference, or on a value ``float()``
        rejects. Result: exactly the line loop's, for the same reasons as :meth:`_parse_bulk` (a tail that
        ``float()`` accepts after the text and a blank is one number), and no duplicates since the layout
        had none.
        """
        lay = self._layout
        if lay is None or len(lines) != len(lay.entries):
            return None
        if lay.prefixes is None:  # built on first use: a layout that changes every scrape never pays for it
            lay.prefixes = ["" if e is None else e[3] for e in lay.entries]
            lay.miss_mask = bytes(map(is_, lay.entries, repeat(None)))  # compress() takes any truthy items
            lay.hit_mask = bytes(map(is_not, lay.entries, repeat(None)))
        if not all(map(str.startswith, lines, lay.prefixes)):
            return None
        if lay.misses and tuple(compress(lines, lay.miss_mask)) != lay.misses:
            return None
        hits = lay.hits
        tails = list(map(str.removeprefix, compress(lines, lay.hit_mask), map(_fourth, hits)))
        if not all(map(str.startswith, tails, repeat(" ", len(tails)))) or "_" in "".join(tails):
            return None  # `1_000`: float() reads it, Prometheus does not
        try:
            values = list(map(float, tails))
        except ValueError:
            return None
        return ParsedPage._deferred(hits, values, dict(lay.types), dict(lay.helps), dict(lay.skipped), lay)

    def _parse_bulk(self, lines: list[str]) -> ParsedPage | None:
        """The warm path for a page whose every sample line is ``<cached series text> <value>``.

        It does the per-line work with ``map`` over C functions instead of a Python loop (about twice as
        fast). It gives up, returning None so that :meth:`_parse_lines` parses the page, as soon as the
        page holds anything that needs the line loop's judgement: a line the cache does not know that yields
        a sample, ``# EOF``, a value ``float()`` rejects, or a duplicate series. Everything else a miss can
        be (comments, blank lines, garbage) only touches types/helps/skipped, whose result does not depend
        on its order relative to samples, so the outcome is exactly the line loop's. Misses are read in
        their page order, and their outcome is a pure function of those lines, hence `_last_misses`.
        """
        parts = list(map(_rpartition, lines, repeat(" ", len(lines))))
        entries = list(map(self._series.get, map(_first, parts)))
        page = ParsedPage()
        misses = tuple(compress(lines, map(is_, entries, repeat(None)))) if None in entries else ()
        kept: tuple[dict[str, str], dict[str, str], dict[str, int]] = ({}, {}, {})
        if misses:
            last = self._last_misses
            if last is not None and last[0] == misses:
                # Same metadata/blank/garbage lines as the last bulk-parsed page: same outcome.
                page.types, page.helps, page.skipped = dict(last[1]), dict(last[2]), dict(last[3])
                misses = last[0]
            else:
                if not self._read_misses(misses, page):
                    return None
                misses = tuple(map(sys.intern, misses))  # kept until the layout changes: one copy per text
                self._last_misses = last = (misses, dict(page.types), dict(page.helps), dict(page.skipped))
            kept = (last[1], last[2], last[3])  # never mutated: the layout may share them
        hits: list[_Entry] = list(filter(None, entries))
        tails = list(map(_third, compress(parts, entries)))
        if "_" in "".join(tails):
            return None  # `1_000`: float() reads it, Prometheus does not
        try:
            values = list(map(float, tails))
        except ValueError:
            return None
        if len(set(map(_third, hits))) != len(hits):
            return None
        page.samples = _build(hits, values)
        self._layout = page.layout = _Layout(entries, hits, misses, *kept)
        return page

    def _read_misses(self, misses: tuple[str, ...], page: ParsedPage) -> bool:
        """Apply a warm page's non-sample lines in order; False if one is ``# EOF`` or yields a sample.

        Known HELP/TYPE lines (a third of a vLLM page) are applied straight from the comment cache; a
        cache key is a stripped line, so a line found there reads exactly as :meth:`_comment` would.
        """
        comments_get = self._comments.get
        types, helps, skipped = page.types, page.helps, page.skipped
        for line in misses:
            meta = comments_get(line)
            if meta is not None and meta[0]:
                kind, family, text = meta
                target = types if kind == "TYPE" else helps
                if family in target:
                    skipped["duplicate_meta"] = skipped.get("duplicate_meta", 0) + 1
                else:
                    target[family] = text
            elif line and (self._cold_counted(line, page, set(), []) or page.samples):
                return False
        return True

    def _parse_lines(self, lines: list[str]) -> ParsedPage:
        """Parse line by line: the reference semantics, and the path for anything unusual."""
        page = ParsedPage()
        samples = page.samples
        append = samples.append
        skipped = page.skipped
        seen: set[_Identity] = set()
        seen_add = seen.add
        series = self._series
        cache_get = series.get
        shared_get = _shared_series.get
        room = self._max - len(series)
        timestamped: list[int] = []
        rest: Iterator[str] = iter(lines)
        eof = False
        strict = self._strict
        for line in rest:
            # Warm line: exactly `<cached series text> <value>`. If float() accepts the tail, the tail is
            # one number (float rejects inner blanks, '#', '{'; `_` and, on a `_strict` page, odd
            # whitespace are checked here), so the cold path would read the very same sample; anything
            # else falls through to the cold path.
            head, _, tail = line.rpartition(" ")
            entry = cache_get(head)
            if entry is None:
                entry = shared_get(head)  # another target's parse of the same series text
                if entry is not None and room > 0 and head not in series:
                    series[entry[3]] = entry
                    room -= 1
            if entry is not None and "_" not in tail and (not strict or _NUMBER_RE.fullmatch(tail)):
                try:
                    value = float(tail)
                except ValueError:
                    pass
                else:
                    ident = entry[2]
                    if ident in seen:
                        skipped["duplicate"] = skipped.get("duplicate", 0) + 1
                    else:
                        seen_add(ident)
                        s = _new(Sample)
                        _set_name(s, entry[0])
                        _set_labels(s, entry[1])
                        _set_value(s, value)
                        _set_ts(s, None)
                        append(s)
                    continue
            if self._cold_counted(line, page, seen, timestamped):
                eof = True
                break
        if not self._openmetrics:
            return page
        if eof:
            after = sum(1 for line in rest if line.strip(_BLANKS))
            if after:
                skipped["after_eof"] = after
        elif samples:
            # No `# EOF`: the page was cut short (OpenMetrics' way to tell a truncated page), so none of it
            # is used, as Prometheus fails such a scrape.
            skipped["missing_eof"] = len(samples)
            page.samples = []
            return page
        else:
            skipped["missing_eof"] = 1
        # OpenMetrics timestamps are seconds; keep the interface's milliseconds.
        for i in timestamped:
            old = samples[i]
            ts = old.timestamp_ms
            samples[i] = Sample(old.name, old.labels, old.value, None if ts is None else ts * 1000.0)
        return page

    def _cold_counted(self, line: str, page: ParsedPage, seen: set[_Identity], timestamped: list[int]) -> bool:
        """:meth:`_cold`, counting a skipped line by its reason; True at ``# EOF``."""
        try:
            return self._cold(line, page, seen, timestamped)
        except _Skip as skip:
            reason = skip.reason
        except Exception:  # the contract is "never raise": count, do not crash
            reason = "malformed"
        page.skipped[reason] = page.skipped.get(reason, 0) + 1
        return False

    def _cold(self, raw: str, page: ParsedPage, seen: set[_Identity], timestamped: list[int]) -> bool:
        """Parse a line the warm path could not; return True at ``# EOF``. Raises ``_Skip`` to skip."""
        line = raw.strip(_BLANKS)
        if not line:
            return False
        if line[0] == "#":
            return self._comment(line, page)
        series = self._series
        name, labels, end = _parse_series(line)
        if "__name__" in labels:
            raise _Skip("bad_labels")  # the name is given once, before the braces
        key = line[:end]
        entry = series.get(key)
        if entry is None:
            entry = _shared_series.get(key)
            if entry is None:
                entry = (name, labels, (name, frozenset(labels.items())), key)
                if len(key) <= _MAX_CACHED_KEY and self._share_budget > 0:
                    self._share_budget -= 1
                    _share_series(entry)
            if len(series) < self._max and len(key) <= _MAX_CACHED_KEY:
                series[entry[3]] = entry
        rest = line[end:]
        if rest and rest[0] not in " \t":
            raise _Skip("malformed")  # e.g. `foo{a="b"}1` or `foo-bar 1`
        if self._openmetrics:
            before, hashmark, exemplar = rest.partition("#")
            if hashmark:
                if before[-1:] not in (" ", "\t"):
                    raise _Skip("bad_value")
                _check_exemplar(exemplar)
        else:
            before = rest  # no exemplars in the text format: a `#` here is a bad timestamp
        # Blanks and tabs separate tokens; str.split() would also split on \x1c and the like, turning
        # `1\x1c5` into a value and an invented timestamp.
        tokens = [t for t in before.replace("\t", " ").split(" ") if t]
        if not tokens or len(tokens) > 2:
            raise _Skip("malformed")
        value = _number(tokens[0], "bad_value")
        ts: float | None = None
        if len(tokens) == 2:
            ts = _number(tokens[1], "bad_timestamp")
            if not math.isfinite(ts):
                raise _Skip("bad_timestamp")
        if entry[2] in seen:
            raise _Skip("duplicate")
        seen.add(entry[2])
        if ts is not None:
            timestamped.append(len(page.samples))
        sample = _new(Sample)
        _set_name(sample, entry[0])
        _set_labels(sample, entry[1])
        _set_value(sample, value)
        _set_ts(sample, ts)
        page.samples.append(sample)
        return False

    def _comment(self, line: str, page: ParsedPage) -> bool:
        """Apply a ``#`` line: HELP/TYPE are recorded, UNIT and plain comments ignored; True at ``# EOF`` of
        an OpenMetrics page (on a text-format page it is an ordinary comment)."""
        if line == "# EOF" and self._openmetrics:
            return True
        comments = self._comments
        if line in comments:
            meta = comments[line]
        else:
            shared = _shared_comments.get(line)
            if shared is None:
                shared = (line, self._read_meta(line))
                if len(line) <= _MAX_CACHED_KEY:
                    if len(_shared_comments) >= _SHARED_MAX:
                        _shared_comments.clear()
                    _shared_comments[line] = shared
            key, meta = shared
            if len(comments) < self._max and len(line) <= _MAX_CACHED_KEY:
                comments[key] = meta
        if meta is None:
            raise _Skip("bad_comment")
        kind, family, text = meta
        if kind == "":
            return False  # plain comment or UNIT
        target = page.types if kind == "TYPE" else page.helps
        if family in target:
            raise _Skip("duplicate_meta")
        target[family] = text
        return False

    @staticmethod
    def _read_meta(line: str) -> tuple[str, str, str] | None:
        """Classify a comment line: (kind, family, text); kind "" means ignore; None means bad comment."""
        m = _META_RE.match(line)
        if m is None:
            return ("", "", "")  # a plain comment (`# anything`, `#HELP` without a blank)
        kind, family, text = m.group(1), m.group(2), m.group(3)
        if not family or _NAME_RE.fullmatch(family) is None:
            return None
        if kind == "TYPE":
            if text is None or text not in _TYPES:
                return None
            return ("TYPE", family, text)
        if kind == "HELP":
            text = text or ""
            return ("HELP", family, _unescape(text) if "\\" in text else text)
        return ("", "", "")  # UNIT: accepted, not needed by llmobs


def parse_text(text: str, openmetrics: bool = False) -> ParsedPage:
    """Parse one page with a fresh :class:`TextParser` (no cache carried between calls)."""
    return TextParser().parse(text, openmetrics)
