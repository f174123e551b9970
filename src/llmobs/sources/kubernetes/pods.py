"""Pure mapping from pod and node JSON to scrape targets (no I/O: table-tested on plain dicts)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from llmobs.sources.kubernetes.config import KubernetesConfig
from llmobs.sources.targets import SchedulerLimits, Target

RawObject = Mapping[str, Any]


def endpoint_name(namespace: str, pod: str) -> str:
    """The `endpoint` label of a discovered replica. The node agent names the same pod the same way, so
    `llmobs_endpoint_info` from the agent joins the exporter's signals on (model, endpoint)."""
    return f"{namespace}/{pod}"


def pod_ready(pod: RawObject) -> bool:
    """Running, not terminating, with the Ready condition True: the only pods worth scraping."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    if meta.get("deletionTimestamp") or status.get("phase") != "Running" or not status.get("podIP"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())


def timestamp(value: object) -> float | None:
    """A Kubernetes RFC 3339 time (`2026-12-06T14:00:00Z`) as Unix seconds; None when absent or unreadable
    (a missing start only means that cold start is not measured)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def ready_since(pod: RawObject) -> float | None:
    """When the pod's Ready condition last turned True (its `lastTransitionTime`)."""
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready" and c.get("status") == "True":
            return timestamp(c.get("lastTransitionTime"))
    return None


def _port(value: object) -> int | None:
    """A TCP port from the API's JSON (an int, or a string of ASCII digits), or None: `int()` also took
    "+8_0" (port 80) and raised on "abc", ending every scrape cycle, and 99999 built a URL no client opens."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit()):
            return None
        value = int(text)
    return value if isinstance(value, int) and 0 < value < 65536 else None


def metrics_port(pod: RawObject, cfg: KubernetesConfig) -> int | None:
    """The annotation's port, else the first container port named like `cfg.port_names` (in that order);
    None when that port is not a TCP port (`skip_reason` says so)."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    raw = annotations.get(cfg.port_annotation)
    if raw is not None:
        return _port(raw)
    named: dict[str, object] = {}
    for container in (pod.get("spec") or {}).get("containers") or ():
        for p in container.get("ports") or ():
            if isinstance(p, Mapping) and p.get("name") and p.get("containerPort") is not None:
                named.setdefault(str(p["name"]), p["containerPort"])
    for name in cfg.port_names:
        if name in named:
            return _port(named[name])
    return None


def pod_ip(pod: RawObject) -> str | None:
    """The pod's IP as an address (IPv4 or IPv6), or None: a podIP of `evil@10.0.0.1` or `1.2.3.4:80/x#`
    built a URL that was another pod's, or one no client could parse (ending every scrape cycle)."""
    raw = (pod.get("status") or {}).get("podIP")
    if not isinstance(raw, str):
        return None
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        return None


def skip_reason(pod: RawObject, cfg: KubernetesConfig) -> str | None:
    """Why a ready pod has no scrape target (None when it has one, or is not ready): for a log line."""
    if not pod_ready(pod):
        return None
    if pod_ip(pod) is None:
        return f"podIP {(pod.get('status') or {}).get('podIP')!r:.80} is not an IP address"
    if metrics_port(pod, cfg) is None:
        raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(cfg.port_annotation)
        if raw is not None:
            return f"annotation {cfg.port_annotation}={raw!r:.40} is not a port (1-65535)"
        return f"no container port named {' or '.join(cfg.port_names)} with a port in 1-65535"
    return None


def gpu_count(pod: RawObject, resource: str) -> int:
    """GPUs the pod's containers ask for (limits, as the device plugin allocates by limits)."""
    total = 0
    for container in (pod.get("spec") or {}).get("containers") or ():
        limits = (container.get("resources") or {}).get("limits") or {}
        try:
            total += int(str(limits.get(resource, 0)))
        except ValueError:
            continue
    return total


_LIMIT_FLAGS = {"max-num-seqs": "max_num_seqs", "max-num-batched-tokens": "max_num_batched_tokens"}


def scheduler_limits(pod: RawObject) -> SchedulerLimits:
    """`--max-num-seqs` and `--max-num-batched-tokens` from the pod's container command lines, for the saturation
    ratios (vLLM does not publish them). Both `--flag N` and `--flag=N`, dashes or underscores, also inside a
    `sh -c` string; a value set another way (a `--config` file, an environment variable) or not a positive
    integer stays unknown rather than guessed."""
    found: dict[str, int] = {}
    for container in (pod.get("spec") or {}).get("containers") or ():
        words = [w for part in (*(container.get("command") or ()), *(container.get("args") or ()))
                 for w in str(part).split()]
        for i, word in enumerate(words):
            flag, eq, value = word.removeprefix("--").replace("_", "-").partition("=")
            key = _LIMIT_FLAGS.get(flag) if word.startswith("--") else None
            if key is None or key in found:
                continue
            if not eq:
                value = words[i + 1] if i + 1 < len(words) else ""
            if value.isdigit() and int(value) > 0:
                found[key] = int(value)
    return SchedulerLimits(found.get("max_num_seqs"), found.get("max_num_batched_tokens"))


def node_attributes(node: RawObject | None, cfg: KubernetesConfig) -> dict[str, str]:
    """GPU product/memory (gpu-feature-discovery labels) and zone of a node; {} for an unknown node."""
    if not node:
        return {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    out: dict[str, str] = {}
    if labels.get(cfg.gpu_product_label):
        out["gpu_model"] = labels[cfg.gpu_product_label]
    if labels.get(cfg.gpu_memory_label):
        out["gpu_memory_mib"] = labels[cfg.gpu_memory_label]
    if labels.get(cfg.zone_label):
        out["zone"] = labels[cfg.zone_label]
    return out


def pod_target(pod: RawObject, nodes: Mapping[str, RawObject], cfg: KubernetesConfig) -> Target | None:
    """The scrape target of a ready pod with a resolvable port; None otherwise.

    Labels: `node`, `gpu_model` (these two reach every signal), `namespace`, `pod`, `pod_uid`, `zone`,
    `gpu_memory_mib`, `gpu_count`, and `model` when the pod names its model in a label or annotation
    (otherwise the scraped `model_name` is the model), and `role` from the pod's disaggregation-role label."""
    if not pod_ready(pod):
        return None
    port = metrics_port(pod, cfg)
    ip = pod_ip(pod)
    if port is None or ip is None:
        return None
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    host = f"[{ip}]" if ":" in ip else ip
    path = ((meta.get("annotations") or {}).get(cfg.path_annotation) or cfg.metrics_path)
    if not path.startswith("/"):
        path = "/" + path
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    node = spec.get("nodeName", "")
    labels: dict[str, str] = {"namespace": namespace, "pod": name, "pod_uid": meta.get("uid", ""), "node": node}
    labels.update(node_attributes(nodes.get(node), cfg))
    model = ((meta.get("labels") or {}).get(cfg.model_label)
             or (meta.get("annotations") or {}).get(cfg.model_label))
    if model:
        labels["model"] = model
    role = (meta.get("labels") or {}).get(cfg.role_label)
    if role:
        labels["role"] = role  # checked against the page by the signal tracker, never trusted blindly
    gpus = gpu_count(pod, cfg.gpu_resource)
    if gpus:
        labels["gpu_count"] = str(gpus)
    return Target(url=f"{cfg.scheme}://{host}:{port}{path}", name=endpoint_name(namespace, name), labels=labels,
                  created_at=timestamp(meta.get("creationTimestamp")), ready_at=ready_since(pod),
                  scheduler=scheduler_limits(pod))
