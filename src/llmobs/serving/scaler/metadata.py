"""Trigger metadata → a validated `ScalerQuery`, and the metric name KEDA will know it by.

KEDA sends every key of the trigger's `metadata` in `ScaledObjectRef.scalerMetadata` on every call
(`scalerAddress` too), so parsing happens per request (`triggers.TriggerRegistry` memoises it). A bad
key is a configuration error the operator must see, so it is reported as INVALID_ARGUMENT naming the
key — never silently defaulted. Metadata is bounded before anything else looks at it (`check_bounds`:
key count, key and value lengths, model names as vLLM and Hugging Face spell them), so a client cannot
make the scaler hold or hash megabytes per call. Metric names use only `[a-z0-9-]` (KEDA prefixes `s<index>-` and the
HPA carries the name as a label value); a short hash keeps two different queries from sharing a name
when the model name had to be rewritten or selectors were given.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from llmobs.serving.scaler.catalogue import AGGREGATES, SIGNALS

KEDA_KEYS: frozenset[str] = frozenset({
    # Keys KEDA itself reads from an external trigger's metadata and then passes through to us.
    "scalerAddress", "enableTLS", "unsafeSsl", "caCert", "tlsCertFile", "tlsClientCert", "tlsClientKey",
})
KEYS: frozenset[str] = frozenset({
    "model", "signal", "target", "activationTarget", "aggregate", "endpoint", "node", "namespace", "horizon",
    "bound",
})
# KEDA may pass a TLS PEM inline in the trigger's metadata (it reads these from there or from auth params).
PEM_KEYS: frozenset[str] = frozenset({"caCert", "tlsClientCert", "tlsClientKey"})
MAX_KEYS = 32  # every known key is 17; room for a few unknown ones, each reported by name
MAX_KEY_LENGTH = 64
MAX_VALUE_LENGTH = 1024  # selectors list endpoint/node names; nothing legitimate comes close
MAX_PEM_LENGTH = 16384
MAX_MODEL_LENGTH = 256
# Model names as vLLM reports them (`model_name`): a served name, a Hugging Face id
# (`meta-llama/Llama-3.1-8B-Instruct`) or a local path — printable, no whitespace, at most 256 characters.
DEFAULT_HORIZON_SECONDS = 300.0
MAX_TARGET = 1e15
"""Largest `target` / `activationTarget`. KEDA hands the HPA `targetSizeFloat` as a milli-quantity,
int64(target × 1000), which overflows above ~9.2e15 (and GetMetricSpec's int64 `targetSize` cannot even be
encoded above 9.2e18: the call failed as UNKNOWN). 1e15 still leaves room for any real target: even a whole
fleet's prompt tokens/s is many orders of magnitude below it."""
MAX_METRIC_NAME = 100
METRIC_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(s|m|h)?\s*$")
_UNIT = {None: 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


class MetadataError(ValueError):
    """A trigger metadata problem; `key` is the offending key (the gRPC error names it)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"metadata key {key!r}: {message}")
        self.key = key


@dataclass(frozen=True, slots=True)
class ScalerQuery:
    """What one trigger asks for. Selectors are None when absent (= every endpoint of the model)."""

    model: str
    signal: str
    target: float
    activation_target: float
    aggregate: str
    endpoints: frozenset[str] | None = None
    nodes: frozenset[str] | None = None
    namespaces: frozenset[str] | None = None
    horizon_seconds: float | None = None
    bound: str = "upper"

    @property
    def has_selectors(self) -> bool:
        return self.endpoints is not None or self.nodes is not None or self.namespaces is not None

    @property
    def metric_name(self) -> str:
        return metric_name(self)


def _number(meta: Mapping[str, str], key: str, default: float, *, positive: bool) -> float:
    """A finite number in (0, MAX_TARGET] (`positive`) or [0, MAX_TARGET], or MetadataError naming `key`."""
    raw = meta.get(key)
    if raw is None:
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise MetadataError(key, f"{raw!r} is not a number") from None
    if not math.isfinite(value):
        raise MetadataError(key, f"{raw!r} is not a finite number")
    if positive and value <= 0:
        raise MetadataError(key, f"must be > 0, got {raw!r}")
    if value < 0:
        raise MetadataError(key, f"must be >= 0, got {raw!r}")
    if value > MAX_TARGET:
        low = "> 0" if positive else ">= 0"
        raise MetadataError(key, f"{raw.strip()!r} is out of range: must be {low} and <= {MAX_TARGET:g} (KEDA passes "
                                 "it to the HPA as an int64 of thousandths)")
    return value


def _selector(meta: Mapping[str, str], key: str) -> frozenset[str] | None:
    raw = meta.get(key)
    if raw is None:
        return None
    values = frozenset(v.strip() for v in raw.split(",") if v.strip())
    if not values:
        raise MetadataError(key, "must list at least one value (comma-separated)")
    return values


def parse_duration(key: str, raw: str) -> float:
    """`300`, `300s`, `5m`, `1h` → seconds."""
    m = _DURATION.match(raw)
    if not m or float(m.group(1)) <= 0:
        raise MetadataError(key, f"{raw!r} is not a positive duration (seconds, or with an s/m/h suffix)")
    return float(m.group(1)) * _UNIT[m.group(2)]


def _shown(key: str) -> str:
    return key if len(key) <= MAX_KEY_LENGTH else key[:MAX_KEY_LENGTH] + "…"


def check_bounds(meta: Mapping[str, str]) -> None:
    """Reject metadata too large to be a trigger's (cheap: lengths only, before any copy or parse)."""
    if len(meta) > MAX_KEYS:
        raise MetadataError("scalerMetadata", f"{len(meta)} keys; a trigger has at most {MAX_KEYS}")
    for key, value in meta.items():
        if len(key) > MAX_KEY_LENGTH:
            raise MetadataError(_shown(key), f"key longer than {MAX_KEY_LENGTH} characters")
        limit = MAX_PEM_LENGTH if key in PEM_KEYS else MAX_VALUE_LENGTH
        if len(value) > limit:
            raise MetadataError(key, f"value is {len(value)} characters; at most {limit}")


def query_items(meta: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The metadata that decides the query — every key but KEDA's own, sorted: equal for two calls of the
    same trigger whatever `scalerAddress` or TLS keys KEDA adds (call `check_bounds` first)."""
    return tuple(sorted((k, v) for k, v in meta.items() if k not in KEDA_KEYS))


def parse_metadata(meta: Mapping[str, str], horizons: tuple[float, ...] = (60.0, 300.0, 900.0)) -> ScalerQuery:
    """Validate trigger metadata; raise `MetadataError` naming the first bad key."""
    check_bounds(meta)
    return parse_items(query_items(meta), horizons)


def parse_items(items: tuple[tuple[str, str], ...], horizons: tuple[float, ...]) -> ScalerQuery:
    """`parse_metadata` on bounded `query_items` output."""
    meta = dict(items)
    for key in meta:
        if key not in KEYS:
            raise MetadataError(key, f"unknown key; known keys: {', '.join(sorted(KEYS))}")
    model = meta.get("model", "").strip()
    if not model:
        raise MetadataError("model", "required (the vLLM model name, as in vLLM's model_name label)")
    if len(model) > MAX_MODEL_LENGTH or not model.isprintable() or any(c.isspace() for c in model):
        raise MetadataError("model", f"not a vLLM model name (at most {MAX_MODEL_LENGTH} printable characters, "
                                     "no whitespace)")
    signal = meta.get("signal", "queue_depth").strip()
    spec = SIGNALS.get(signal)
    if spec is None:
        raise MetadataError("signal", f"unknown signal {signal!r}; one of {', '.join(SIGNALS)}")
    target = _number(meta, "target", spec.default_target, positive=True)
    activation = _number(meta, "activationTarget", 0.0, positive=False)
    aggregate = meta.get("aggregate", spec.default_aggregate).strip()
    if aggregate not in AGGREGATES:
        raise MetadataError("aggregate", f"{aggregate!r} is not one of {', '.join(AGGREGATES)}")
    selectors = {k: _selector(meta, k) for k in ("endpoint", "node", "namespace")}
    horizon: float | None = None
    bound = "upper"
    if spec.source == "forecast":
        for key in ("aggregate", "endpoint", "node", "namespace"):
            if key in meta:
                raise MetadataError(key, f"does not apply to the model-level signal {signal!r}")
        if signal == "forecast_request_rate":
            horizon = parse_duration("horizon", meta["horizon"]) if "horizon" in meta else DEFAULT_HORIZON_SECONDS
            if horizon not in horizons:
                allowed = ", ".join(f"{h:g}" for h in horizons)
                raise MetadataError("horizon", f"{horizon:g} s is not a precomputed horizon ({allowed} s; "
                                               "scaler.forecast_horizons_seconds)")
            bound = meta.get("bound", "upper").strip()
            if bound not in ("upper", "point"):
                raise MetadataError("bound", f"{bound!r} is not 'upper' or 'point'")
    if spec.source == "door":  # summed over the doors the model arrives at: no replica to select
        for key in ("endpoint", "node", "namespace"):
            if key in meta:
                raise MetadataError(key, f"does not apply to the door signal {signal!r} (doors are not endpoints)")
    for key in ("horizon", "bound"):
        if key in meta and signal != "forecast_request_rate":
            raise MetadataError(key, "only applies to signal forecast_request_rate")
    return ScalerQuery(model, signal, target, activation, aggregate, selectors["endpoint"], selectors["node"],
                       selectors["namespace"], horizon, bound)


def _slug(text: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", text.lower())).strip("-")


def metric_name(q: ScalerQuery) -> str:
    """`llmobs-<signal>-<model>[-<hash>]`, always matching METRIC_NAME_RE and at most 100 characters.

    The hash (of every field that changes the value) is added when the model name was not already a
    slug or when selectors, a non-default aggregate or a horizon were given, so distinct queries never
    share a name.
    """
    signal = q.signal.replace("_", "-")
    model = _slug(q.model)
    spec = SIGNALS[q.signal]
    plain = (model == q.model and not q.has_selectors and q.aggregate == spec.default_aggregate
             and q.horizon_seconds is None and q.bound == "upper")
    prefix = f"llmobs-{signal}"
    if plain and len(prefix) + 1 + len(model) <= MAX_METRIC_NAME:
        return f"{prefix}-{model}"
    key = "\x1f".join([q.model, q.signal, q.aggregate, *(",".join(sorted(s)) if s is not None else "\x00"
                                                          for s in (q.endpoints, q.nodes, q.namespaces)),
                       repr(q.horizon_seconds), q.bound])
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    room = MAX_METRIC_NAME - len(prefix) - len(digest) - 2
    model = model[:room].strip("-")
    return f"{prefix}-{model}-{digest}" if model else f"{prefix}-{digest}"


def strip_index_prefix(name: str) -> str:
    """KEDA names metrics `s<index>-<name>` towards the HPA; accept either form."""
    m = re.match(r"^s[0-9]+-(.+)$", name)
    return m.group(1) if m else name
