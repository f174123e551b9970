#!/usr/bin/env python3
"""Write docs/metrics.md (the metric reference) from the metric catalogue, src/llmobs/metrics_catalogue.py.

    .venv/bin/python scripts/generate_metrics_doc.py          # rewrite the committed file
    .venv/bin/python scripts/generate_metrics_doc.py --check  # exit 1 if it differs from the generator's

The tables are the catalogue's rows; the prose around them (what each component is, what its label values
mean) is here, one intro per catalogue section.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from llmobs.metrics_catalogue import (  # noqa: E402
    CATALOGUE,
    DOOR_LABELS,
    GPU_LABELS,
    OTLP_HISTOGRAMS,
    SIGNAL_LABELS,
    TARGET_LABELS,
    MetricSpec,
    section,
)
from scripts.generated_files import write_or_check  # noqa: E402

HEADER = """\
# llmobs metric reference (public contract)

<!-- generated from src/llmobs/metrics_catalogue.py by scripts/generate_metrics_doc.py: edit those, then run
     `make generate` -->

Every series llmobs exports. Dashboards, alerts and users depend on these names and labels; change
them only with a migration note. Units are base units (seconds, ratios 0–1, tokens, requests/s); the unit
column writes them as OTLP does (UCUM: `s`, `By`, `1` for a ratio, `{request}` for a count of requests).

Common labels on every model × endpoint signal: `model` (vLLM `model_name`), `endpoint` (the target's
name, default its URL host:port), `node` and `gpu_model` (empty when unknown; filled from target
config, Kubernetes discovery or the node agent). Quantile series add `quantile` ∈ {`0.5`,`0.9`,`0.99`}.
Windowed signals use the signal window (`signals.window_seconds`, default 60 s).

One quantity, one row: where a series is also read under another name, the row says so — its OTLP
metric (docs/otlp.md), the KEDA scaler `signal` that serves the same quantity (docs/keda-scaler.md) and the
external metric name KEDA then sees (with a hash when the model name is not a slug or the trigger sets
selectors, another aggregate or a forecast horizon).
"""


@dataclass(frozen=True)
class Section:
    key: str  # the catalogue's `section`
    title: str
    intro: str
    common_labels: tuple[str, ...] = ()


SECTIONS: tuple[Section, ...] = (
    Section("target", "Target health", "", TARGET_LABELS),
    Section("serving", "Serving signals", "", SIGNAL_LABELS),
    Section("exporter", "Exporter self-metrics", ""),
    Section("feedback", "Feedback (exported by `llmobs.feedback`; see docs/feedback.md)", """\
User feedback posted to the feedback API (`POST /v1/feedback`, its own port). Label values are bounded:
`app` is the posting app when it is in `feedback.allowed_apps`, else `other`; `model` is the model name
when it is in `feedback.allowed_models`, or (when that list is unset) among the first
`feedback.max_models` (default 50) distinct models this replica's store has seen, else `other`.
`rating` is the normalised rating: `positive` (thumbs up, 4–5 stars), `neutral` (3 stars), `negative`
(thumbs down, 1–2 stars). Windowed series use the feedback window (`feedback.window_seconds`, default
3600 s — feedback is sparse, so the signal window is too short) on the server's receive time, at a
granularity of 1/60 of the window; a ratio over an empty window is NaN. Each replica exports its own
store: aggregate counters with `sum()` across replicas (see docs/feedback.md, scale-out).
"""),
    Section("forecast", "Forecast (exported by `ForecastService`'s collector, docs/forecasting.md)", """\
Computed off the scrape loop every `refresh_seconds` (default 15 s) from the model's demand history;
`collect()` only copies the last snapshot. A model appears once it has history. While a model's
history is too short (or all zero) the forecast falls back to last value and says why.
"""),
    Section("scaler", "KEDA scaler (exported by `llmobs.serving.scaler` when `scaler.enabled`; see "
                      "docs/keda-scaler.md)", """\
Registered on the exporter's registry by `serve_scaler(..., registry=...)`.
"""),
    Section("gpu", "GPU (exported by `llmobs agent`; see docs/gpu-and-kubernetes.md)", """\
The node agent (`llmobs agent`, a DaemonSet, port 9403) reads NVML; every per-GPU series has the labels
`node`, `gpu` (NVML index), `gpu_uuid` (`GPU-…`, or `MIG-…` for a MIG instance), `gpu_model` (product name
as gpu-feature-discovery labels nodes, `NVIDIA-H100-80GB-HBM3`) and `gpu_instance` (MIG GPU-instance id,
empty for a whole GPU). A field the GPU answers NotSupported is absent (and never asked again); a lost GPU
has `llmobs_gpu_up 0` and no other series. How each per-GPU field is read from NVML is
`src/llmobs/sources/gpu/fields.yaml`.
""", GPU_LABELS),
    Section("attribution", "Kubernetes attribution, cost and discovery health (exported by `llmobs agent` and "
                           "the central exporter; see docs/gpu-and-kubernetes.md)", ""),
    Section("door", "Doors (routers and proxies in front of the replicas, `doors:`; see docs/doors.md)", """\
Per model as it arrives at a door: the vLLM router, the LiteLLM proxy or the Gateway API Inference Extension's
endpoint picker. `model` is the replicas' name (after the door's `model_map`), so these join the serving signals
`on (model)`; a model scaled to zero has door series and no serving series. `door` is the door's name and
`door_kind` its kind.
""", DOOR_LABELS),
    Section("chain", "The scaling chain (central exporter with `kubernetes.watch_autoscalers: true`; see "
                     "docs/keda-scaler.md)", """\
What the autoscaler did with llmobs' recommendation (`llmobs_desired_replicas`): the HPA's desired and
current replicas, the model's pods Ready or not, and KEDA's ScaledObject conditions, joined per model
through the ScaledObject triggers that name a `model` (types `external`/`external-push`) and the HPA KEDA
names in `status.hpaName`. Read from HPA and ScaledObject watches; absent without them.
"""),
)


def _code(names: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _labels(spec: MetricSpec, common: tuple[str, ...]) -> str:
    if common and spec.labels[:len(common)] == common:
        return _code(spec.labels[len(common):]) or "—"
    if not spec.labels:
        return "none" if common else "—"
    return ("only " if common else "") + _code(spec.labels)


def _meaning(spec: MetricSpec) -> str:
    """The row's doc, else its help as a table cell (lower case unless it starts with an acronym, no stop)."""
    if spec.doc:
        return spec.doc
    text = spec.help.rstrip(".")
    return text[0].lower() + text[1:] if text[1:2].islower() else text


def _also(spec: MetricSpec) -> str:
    names = []
    if spec.otlp_name:
        names.append(f"OTLP `{spec.otlp_name}`")
    if spec.keda_signal:
        names.append(f"KEDA signal `{spec.keda_signal}` (metric `{spec.keda_metric}[-<hash>]`)")
    return "; ".join(names)


def _table(sec: Section, specs: tuple[MetricSpec, ...]) -> str:
    columns: list[tuple[str, object]] = [
        ("metric", lambda s: f"`{s.name}`"), ("type", lambda s: s.type), ("unit", lambda s: f"`{s.unit}`"),
        ("labels" if not sec.common_labels else "other labels", lambda s: _labels(s, sec.common_labels)),
        ("meaning", _meaning)]
    if any(s.vllm_series for s in specs):
        columns.append(("source vLLM series (canonical ← aliases)", lambda s: s.vllm_series or "—"))
    if any(_also(s) for s in specs):
        columns.append(("also read as", lambda s: _also(s) or "—"))
    lines = ["| " + " | ".join(c for c, _ in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(get(s) for _, get in columns) + " |" for s in specs]  # type: ignore[operator]
    return "\n".join(lines) + "\n"


def _otlp_histograms() -> str:
    rows = "".join(f"| `{h.name}` | histogram | `{h.unit}` | {h.vllm_series} | {h.description} |\n"
                   for h in OTLP_HISTOGRAMS.values())
    return ("## OTLP-only histograms (see docs/otlp.md)\n\nSent over OTLP only, with vLLM's own buckets "
            "(llmobs.serving.otlp_histograms); no Prometheus series.\n\n"
            "| OTLP metric | type | unit | vLLM series | meaning |\n|---|---|---|---|---|\n" + rows)


def render() -> str:
    untitled = {s.section for s in CATALOGUE} - {sec.key for sec in SECTIONS}
    if untitled:
        raise ValueError(f"catalogue sections without a SECTIONS entry: {sorted(untitled)}")
    parts = [HEADER]
    for sec in SECTIONS:
        specs = section(sec.key)
        intro = f"{sec.intro}\n" if sec.intro else ""
        if sec.common_labels:
            intro += (f"Every row has the labels {_code(sec.common_labels)} and the row's *other labels*,\n"
                      "except where it says `none` or `only …`.\n\n")
        parts.append(f"## {sec.title}\n\n{intro}{_table(sec, specs)}")
    parts.append(_otlp_histograms())
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    return write_or_check({"metrics.md": render()}, ROOT / "docs", "scripts/generate_metrics_doc.py",
                          __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
