"""Drain-aware scale-in: keep each vLLM pod's `controller.kubernetes.io/pod-deletion-cost` annotation at the
work it holds, so that when the HPA scales a Deployment in, the ReplicaSet removes the idlest replica instead
of one in the middle of long generations with a warm prefix cache.

Why an annotation: the ReplicaSet controller already orders the pods it deletes by this annotation (lower
first, after unscheduled, pending and not-Ready pods; Kubernetes >= 1.22, beta and on by default), so no
controller has to be replaced. What it cannot do is keep the value current: it is only as fresh as its last
write. llmobs knows each pod's running and waiting requests and KV-cache use from its scrapes, so it writes
the cost — coarsely quantised, at most once per pod per `min_patch_interval_seconds`, at most
`max_patches_per_second` in all, biggest changes first — because every write is an API-server request and a
pod watch event for every watcher of pods in the cluster.

Opt-in (`kubernetes.pod_deletion_cost.enabled`): it needs RBAC `patch` on pods, which the Helm chart grants
only then. A refused patch (403: the RBAC is missing) pauses all writes for `forbidden_backoff_seconds` and
is logged with the fix; every outcome is counted in `llmobs_pod_deletion_cost_patches_total{result}`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from llmobs.metric_families import family
from llmobs.signals.types import ModelEndpointSignals
from llmobs.sources.kubernetes.config import DeletionCostConfig
from llmobs.state import FleetState

__all__ = [
    "ANNOTATION",
    "DeletionCostCollector",
    "DeletionCostConfig",
    "DeletionCostWriter",
    "PatchRefused",
    "deletion_cost",
    "kubernetes_patcher",
]

log = logging.getLogger("llmobs.deletion_cost")

ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
INT32_MAX = 2**31 - 1
COST_PER_REQUEST = 1000  # a request in flight outweighs any amount of idle cache
COST_PER_KV_TENTH = 100  # KV-cache use in steps of 10 %: the warm prefix cache a deletion throws away

RESULT_OK = "ok"


def deletion_cost(rows: Iterable[ModelEndpointSignals]) -> int:
    """The annotation value for a pod whose scraped signals are `rows` (one per model it serves).

    1,000 per request running or waiting, plus 100 per 10 % of KV cache in use: an idle pod with a cold cache
    costs 0, one with a warm cache up to 1,000, any pod with work in flight more. NaN reads as 0 (an unknown
    load must not protect a pod); the value is clamped to int32, as Kubernetes requires."""
    work = 0.0
    kv = 0.0
    for r in rows:
        for value in (r.requests_running, r.requests_waiting):
            if math.isfinite(value) and value > 0:
                work += value
        if math.isfinite(r.kv_cache_utilization):
            kv = max(kv, min(1.0, max(0.0, r.kv_cache_utilization)))
    cost = COST_PER_REQUEST * math.ceil(work) + COST_PER_KV_TENTH * round(10 * kv)
    return min(INT32_MAX, cost)


class PatchRefused(Exception):
    """The API server did not apply a patch; `result` is the counted outcome (`forbidden`, `not_found`...)."""

    def __init__(self, result: str, message: str) -> None:
        super().__init__(message)
        self.result = result


Patcher = Callable[[str, str, int], None]
"""(namespace, pod, cost) → None; raises PatchRefused."""


@dataclass(slots=True)
class _PodBook:
    written: int | None = None
    written_at: float = -math.inf


class DeletionCostWriter:
    """One pass (`run_once`) reads the published state and writes the costs that changed, within the limits;
    `start()` runs passes on a daemon thread, off the scrape loop (a slow API server never delays a scrape)."""

    def __init__(self, current: Callable[[], FleetState], patch: Patcher, config: DeletionCostConfig,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._current = current
        self._patch = patch
        self.config = config
        self._clock = clock
        self._pods: dict[tuple[str, str], _PodBook] = {}
        self._paused_until = -math.inf
        self._tokens = config.max_patches_per_second
        self._tokens_at = clock()
        self.results: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def costs(self) -> dict[tuple[str, str], int]:
        """The last value written per (namespace, pod): what the annotation holds now, as far as llmobs knows."""
        with self._lock:
            return {key: book.written for key, book in self._pods.items() if book.written is not None}

    def result_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.results)

    def desired(self, state: FleetState) -> dict[tuple[str, str], int]:
        """(namespace, pod) → cost, for every up target discovery named by its pod that has signals (a target
        scraped once has none yet: writing 0 for it would mark a busy pod the first to delete)."""
        by_endpoint: dict[str, list[ModelEndpointSignals]] = {}
        for s in state.signals:
            by_endpoint.setdefault(s.attribution.endpoint, []).append(s)
        out: dict[tuple[str, str], int] = {}
        for health in state.targets:
            namespace, pod = health.labels.get("namespace"), health.labels.get("pod")
            rows = by_endpoint.get(health.endpoint)
            if health.up and namespace and pod and rows:
                out[(namespace, pod)] = deletion_cost(rows)
        return out

    def _take_token(self, now: float) -> bool:
        rate = self.config.max_patches_per_second
        self._tokens = min(rate, self._tokens + (now - self._tokens_at) * rate)  # a bucket of one second's worth
        self._tokens_at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def run_once(self) -> int:
        """Write the costs due now; returns how many writes were attempted."""
        now = self._clock()
        desired = self.desired(self._current())
        with self._lock:
            for gone in set(self._pods) - set(desired):
                del self._pods[gone]  # pod gone or down: forget it
            books = {key: self._pods.setdefault(key, _PodBook()) for key in desired}
        if now < self._paused_until:
            return 0
        due = [(abs(cost - (book.written if book.written is not None else -1)), key, cost)
               for key, cost in desired.items()
               if (book := books[key]).written != cost
               and now - book.written_at >= self.config.min_patch_interval_seconds]
        attempted = 0
        for _, key, cost in sorted(due, reverse=True):  # the biggest change first when the budget runs out
            if not self._take_token(now):
                break
            attempted += 1
            result = self._write(key, cost, now)
            if result in ("forbidden", "throttled", "error"):
                break  # paused: the rest waits for the next pass after the backoff
        return attempted

    def _write(self, key: tuple[str, str], cost: int, now: float) -> str:
        namespace, pod = key
        try:
            self._patch(namespace, pod, cost)
            result = RESULT_OK
        except PatchRefused as refused:
            result = refused.result
            self._refused(key, refused, now)
        except Exception as exc:  # the client raised something else (a bug or a new failure mode): count it
            result = "error"
            self._refused(key, PatchRefused("error", f"{type(exc).__name__}: {exc}"), now)
        with self._lock:
            self.results[result] += 1
            book = self._pods.get(key)
            if book is not None:
                book.written_at = now
                if result == RESULT_OK:
                    book.written = cost
        return result

    def _refused(self, key: tuple[str, str], refused: PatchRefused, now: float) -> None:
        namespace, pod = key
        if refused.result == "forbidden":
            self._paused_until = now + self.config.forbidden_backoff_seconds
            log.warning("pod-deletion-cost: patching pod %s/%s was forbidden (%s); writes paused for %.0f s. "
                        "Grant `patch` on pods (Helm: kubernetes.podDeletionCost.enabled=true) or disable "
                        "kubernetes.pod_deletion_cost", namespace, pod, refused, self.config.forbidden_backoff_seconds)
        elif refused.result in ("throttled", "error"):
            self._paused_until = now + self.config.error_backoff_seconds
            log.warning("pod-deletion-cost: patching pod %s/%s failed (%s: %s); writes paused for %.0f s",
                        namespace, pod, refused.result, refused, self.config.error_backoff_seconds)
        else:  # not_found (deleted meanwhile), conflict, invalid: this pod only
            log.info("pod-deletion-cost: pod %s/%s not patched (%s: %s)", namespace, pod, refused.result, refused)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(self.config.interval_seconds):
                try:
                    self.run_once()
                except Exception:  # keep the thread alive; the state read is the only other step
                    log.exception("pod-deletion-cost pass failed")

        self._thread = threading.Thread(target=loop, name="llmobs-deletion-cost", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


def kubernetes_patcher(api_client: object, timeout_seconds: float = 5.0) -> Patcher:
    """A Patcher over the `kubernetes` client: a JSON merge patch of the one annotation, results mapped to the
    counted outcomes (403 forbidden, 404 not_found, 409 conflict, 422 invalid, 429 throttled, else error)."""
    import urllib3
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(api_client)
    by_status = {403: "forbidden", 404: "not_found", 409: "conflict", 422: "invalid", 429: "throttled"}

    def patch(namespace: str, pod: str, cost: int) -> None:
        body = {"metadata": {"annotations": {ANNOTATION: str(cost)}}}
        try:
            core.patch_namespaced_pod(pod, namespace, body, field_manager="llmobs", _request_timeout=timeout_seconds,
                                      _content_type="application/merge-patch+json")
        except ApiException as exc:
            raise PatchRefused(by_status.get(exc.status or 0, "error"), f"HTTP {exc.status} {exc.reason}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:  # refused, reset, timed out
            raise PatchRefused("error", f"{type(exc).__name__}: {exc}") from exc

    return patch


class DeletionCostCollector(Collector):
    """`llmobs_pod_deletion_cost{namespace, pod}` (the value last written) and the patch outcomes."""

    def __init__(self, writer: DeletionCostWriter) -> None:
        self.writer = writer

    def collect(self) -> Iterator[Metric]:
        cost = family("llmobs_pod_deletion_cost")
        for (namespace, pod), value in sorted(self.writer.costs().items()):
            cost.add_metric([namespace, pod], float(value))
        patches = family("llmobs_pod_deletion_cost_patches_total")
        results: Mapping[str, int] = self.writer.result_counts()
        for result, n in sorted(results.items()):
            patches.add_metric([result], float(n))
        yield from (cost, patches)
