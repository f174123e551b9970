"""A stand-in Kubernetes API server (pods, nodes, autoscaling/v2 HorizontalPodAutoscalers and KEDA
keda.sh/v1alpha1 ScaledObjects; list + watch) for testing discovery with the real `kubernetes` client over HTTP.

It speaks the wire format of the real API server: `PodList`/`NodeList` bodies with
`metadata.resourceVersion` and `limit`/`continue` paging; `?watch=true` answers a chunked stream of
`{"type": ..., "object": ...}` lines (ADDED, MODIFIED, DELETED, BOOKMARK when `allowWatchBookmarks`,
and `ERROR` carrying a `Status` with code 410 "Expired" for a resourceVersion older than the
compaction point); label selectors (equality) and `spec.nodeName` field selectors, including an object
leaving a selector being sent as DELETED, as the real server does. Tests drive it from their thread:
`upsert`, `delete`, `bookmark`, `expire`, `drop_watches`, `fail_next`.

Pods can be read and patched one by one (`GET`/`PATCH /api/v1/namespaces/<ns>/pods/<name>`): a JSON merge
patch (RFC 7386) or a strategic merge patch of metadata, which bumps the resourceVersion and is sent to
watchers as MODIFIED; `refuse_patches` answers the next patches with an error status as the real server
would (403 Forbidden without RBAC `patch`); every patch received is kept in `patches`.

`keda_installed = False` answers ScaledObject requests 404 NotFound, as an API server without KEDA's CRD does.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

KINDS = {"pods": "Pod", "nodes": "Node", "horizontalpodautoscalers": "HorizontalPodAutoscaler",
         "scaledobjects": "ScaledObject"}
API_VERSIONS = {"pods": "v1", "nodes": "v1", "horizontalpodautoscalers": "autoscaling/v2",
                "scaledobjects": "keda.sh/v1alpha1"}


@dataclass
class _Entry:
    rv: int
    resource: str
    type: str          # ADDED, MODIFIED, DELETED, BOOKMARK
    obj: dict[str, Any]
    old: dict[str, Any] | None


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


def _labels_match(obj: dict[str, Any], selector: str) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.split("=", 1)
            if labels.get(k.rstrip("=")) != v:
                return False
        elif term not in labels:
            return False
    return True


def _fields_match(obj: dict[str, Any], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        k, _, v = term.partition("=")
        if k == "spec.nodeName" and (obj.get("spec") or {}).get("nodeName", "") != v:
            return False
        if k == "metadata.namespace" and (obj.get("metadata") or {}).get("namespace", "") != v:
            return False
    return True


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge_patch(out.get(key), value)
    return out


class FakeApiServer:
    """State and control surface; `url` once started. Thread-safe: tests mutate, uvicorn's loop reads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rv = 100
        self.objects: dict[str, dict[str, dict[str, Any]]] = {r: {} for r in KINDS}
        self.keda_installed = True
        self.always_gone = False  # every watch answers ERROR 410 at once (a proxy or server stuck that way)
        self.log: list[_Entry] = []
        self.compacted_rv = 0
        self.requests: Counter[str] = Counter()   # "list pods", "watch nodes", ...
        self._expire_gen = 0
        self._drop_gen = 0
        self._fail: list[int] = []
        self._refuse: list[int] = []
        self.patches: list[tuple[str, str, str, dict[str, Any]]] = []  # (namespace, name, content type, body)
        self._closing = False
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- state changes (test thread) -------------------------------------------------------------

    def _key(self, obj: dict[str, Any]) -> str:
        meta = obj["metadata"]
        return f"{meta.get('namespace', '')}/{meta['name']}"

    def upsert(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        with self._lock:
            self.rv += 1
            meta = obj.setdefault("metadata", {})
            meta["resourceVersion"] = str(self.rv)
            meta.setdefault("uid", f"uid-{meta.get('namespace', '')}-{meta['name']}")
            obj.setdefault("kind", KINDS[resource])
            obj.setdefault("apiVersion", API_VERSIONS[resource])
            key = self._key(obj)
            old = self.objects[resource].get(key)
            self.objects[resource][key] = obj
            self.log.append(_Entry(self.rv, resource, "MODIFIED" if old else "ADDED", obj, old))
        return obj

    def delete(self, resource: str, namespace: str, name: str) -> None:
        with self._lock:
            old = self.objects[resource].pop(f"{namespace}/{name}")
            self.rv += 1
            gone = copy.deepcopy(old)
            gone["metadata"]["resourceVersion"] = str(self.rv)
            self.log.append(_Entry(self.rv, resource, "DELETED", gone, old))

    def bookmark(self, resource: str) -> int:
        """Unrelated writes advanced the resourceVersion; open watches get a BOOKMARK carrying it."""
        with self._lock:
            self.rv += 5
            obj = {"kind": KINDS[resource], "apiVersion": API_VERSIONS[resource],
                   "metadata": {"resourceVersion": str(self.rv)}}
            self.log.append(_Entry(self.rv, resource, "BOOKMARK", obj, None))
            return self.rv

    def expire(self) -> None:
        """Compact history: open watches get ERROR 410 and end; watches from older versions get 410 too."""
        with self._lock:
            self.rv += 1
            self.compacted_rv = self.rv
            self._expire_gen += 1

    def drop_watches(self) -> None:
        """End every open watch stream (an API server restart or load-balancer idle timeout)."""
        with self._lock:
            self._drop_gen += 1

    def fail_next(self, n: int, status: int = 500) -> None:
        with self._lock:
            self._fail.extend([status] * n)

    def refuse_patches(self, n: int, status: int = 403) -> None:
        """Answer the next `n` pod patches with `status` (403: the service account may not patch pods)."""
        with self._lock:
            self._refuse.extend([status] * n)

    def annotations(self, namespace: str, name: str) -> dict[str, str]:
        with self._lock:
            obj = self.objects["pods"].get(f"{namespace}/{name}") or {}
            return dict((obj.get("metadata") or {}).get("annotations") or {})

    # -- HTTP ------------------------------------------------------------------------------------

    def _match(self, obj: dict[str, Any] | None, namespace: str, q: dict[str, str]) -> bool:
        if obj is None:
            return False
        if namespace and (obj.get("metadata") or {}).get("namespace") != namespace:
            return False
        return _labels_match(obj, q.get("labelSelector", "")) and _fields_match(obj, q.get("fieldSelector", ""))

    async def _handle(self, request: Request) -> Response:
        resource = request.url.path.rsplit("/", 1)[-1]
        namespace = request.path_params.get("namespace", "")
        q = dict(request.query_params)
        watching = q.get("watch", "").lower() in ("true", "1")
        with self._lock:
            self.requests[f"{'watch' if watching else 'list'} {resource}"] += 1
            fail = self._fail.pop(0) if self._fail else None
            # a watch belongs to the server's state when it arrived: `drop_watches`/`expire` after that end it,
            # even if its stream has not started yet (tests count requests, then act)
            gens = (self._expire_gen, self._drop_gen)
        if fail is not None:
            return JSONResponse(_status(fail, "InternalError", "injected failure"), status_code=fail)
        if resource == "scaledobjects" and not self.keda_installed:
            return JSONResponse(_status(404, "NotFound", "the server could not find the requested resource"),
                                status_code=404)
        if watching:
            return StreamingResponse(self._stream(resource, namespace, q, gens), media_type="application/json")
        return JSONResponse(self._list(resource, namespace, q))

    async def _pod(self, request: Request) -> Response:
        """GET or PATCH one pod."""
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        key = f"{namespace}/{name}"
        if request.method == "GET":
            with self._lock:
                obj = copy.deepcopy(self.objects["pods"].get(key))
            if obj is None:
                return JSONResponse(_status(404, "NotFound", f'pods "{name}" not found'), status_code=404)
            return JSONResponse(obj)
        content_type = request.headers.get("content-type", "").split(";")[0]
        body = json.loads(await request.body())
        with self._lock:
            self.requests["patch pods"] += 1
            self.patches.append((namespace, name, content_type, body))
            refuse = self._refuse.pop(0) if self._refuse else None
        if refuse is not None:
            reason = {403: "Forbidden", 404: "NotFound", 409: "Conflict", 422: "Invalid", 429: "TooManyRequests"}
            return JSONResponse(_status(refuse, reason.get(refuse, "InternalError"),
                                        f'pods "{name}" is forbidden: User cannot patch resource "pods"'
                                        if refuse == 403 else "refused by the test"), status_code=refuse)
        if content_type not in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            return JSONResponse(_status(415, "UnsupportedMediaType", f"unsupported patch type {content_type}"),
                                status_code=415)
        with self._lock:
            current = self.objects["pods"].get(key)
        if current is None:
            return JSONResponse(_status(404, "NotFound", f'pods "{name}" not found'), status_code=404)
        patched = _merge_patch(copy.deepcopy(current), body)
        return JSONResponse(self.upsert("pods", patched))

    def _list(self, resource: str, namespace: str, q: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            items = [copy.deepcopy(o) for _, o in sorted(self.objects[resource].items())
                     if self._match(o, namespace, q)]
            rv = self.rv
        offset = 0
        if q.get("continue"):
            offset_s, _, rv_s = q["continue"].partition(":")
            offset, rv = int(offset_s), int(rv_s)
        limit = int(q.get("limit") or 0) or len(items) or 1
        page = items[offset:offset + limit]
        for o in page:  # list items carry no kind/apiVersion, as the real server sends them
            o.pop("kind", None)
            o.pop("apiVersion", None)
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if offset + limit < len(items):
            meta["continue"] = f"{offset + limit}:{rv}"
        return {"kind": f"{KINDS[resource]}List", "apiVersion": API_VERSIONS[resource], "metadata": meta,
                "items": page}

    async def _stream(self, resource: str, namespace: str, q: dict[str, str],
                      gens: tuple[int, int]) -> AsyncIterator[bytes]:
        pos = int(q.get("resourceVersion") or 0)
        deadline = time.monotonic() + float(q.get("timeoutSeconds") or 1800)
        bookmarks = q.get("allowWatchBookmarks", "").lower() in ("true", "1")
        with self._lock:
            expire_gen, drop_gen = gens
            too_old = pos < self.compacted_rv or self.always_gone
        if too_old:
            yield self._line("ERROR", _status(410, "Expired", f"too old resource version: {pos}"))
            return
        while not self._closing and time.monotonic() < deadline:
            with self._lock:
                if self._expire_gen != expire_gen:
                    expired = True
                else:
                    expired = False
                    pending = [e for e in self.log if e.rv > pos and e.resource == resource]
                dropped = self._drop_gen != drop_gen
            if expired:
                yield self._line("ERROR", _status(410, "Expired", f"too old resource version: {pos}"))
                return
            if dropped:
                return
            for e in pending:
                pos = e.rv
                if e.type == "BOOKMARK":
                    if bookmarks:
                        yield self._line("BOOKMARK", e.obj)
                    continue
                now_in, was_in = self._match(e.obj, namespace, q), self._match(e.old, namespace, q)
                if e.type == "DELETED":
                    if was_in:
                        yield self._line("DELETED", e.obj)
                elif now_in:
                    yield self._line("MODIFIED" if was_in and e.type == "MODIFIED" else "ADDED", e.obj)
                elif was_in:
                    yield self._line("DELETED", e.obj)  # left the selector
            await asyncio.sleep(0.005)

    @staticmethod
    def _line(kind: str, obj: dict[str, Any]) -> bytes:
        return (json.dumps({"type": kind, "object": obj}) + "\n").encode()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> FakeApiServer:
        app = Starlette(routes=[
            Route("/api/v1/pods", self._handle), Route("/api/v1/nodes", self._handle),
            Route("/api/v1/namespaces/{namespace}/pods", self._handle),
            Route("/api/v1/namespaces/{namespace}/pods/{name}", self._pod, methods=["GET", "PATCH"]),
            Route("/apis/autoscaling/v2/horizontalpodautoscalers", self._handle),
            Route("/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers", self._handle),
            Route("/apis/keda.sh/v1alpha1/scaledobjects", self._handle),
            Route("/apis/keda.sh/v1alpha1/namespaces/{namespace}/scaledobjects", self._handle),
        ])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                     lifespan="off", access_log=False))
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("stand-in API server failed to start")
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        self._closing = True
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)


def pod(name: str, namespace: str = "llm", *, ip: str = "10.0.0.1", node: str = "gpu-node-a", ready: bool = True,
        labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
        ports: list[dict[str, Any]] | None = None, gpus: int = 1, phase: str = "Running",
        uid: str | None = None, created: str = "2026-01-05T10:00:00Z",
        ready_since: str = "2026-01-05T10:01:30Z") -> dict[str, Any]:
    """A pod in the shape the API server returns (the fields discovery reads, plus realistic neighbours).
    Every condition carries `lastTransitionTime` as the kubelet writes it; Ready's is `ready_since`."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace,
                            "labels": {"app.kubernetes.io/name": "vllm", **(labels or {})},
                            "annotations": dict(annotations or {}), "creationTimestamp": created}
    if uid:
        meta["uid"] = uid
    return {
        "metadata": meta,
        "spec": {"nodeName": node, "containers": [{
            "name": "vllm", "image": "vllm/vllm-openai:v0.11.0",
            "ports": ports if ports is not None else [{"name": "http", "containerPort": 8000, "protocol": "TCP"}],
            "resources": {"limits": {"nvidia.com/gpu": str(gpus)}, "requests": {"nvidia.com/gpu": str(gpus)}},
        }]},
        "status": {"phase": phase, "podIP": ip, "hostIP": "192.168.1.10", "conditions": [
            {"type": "Initialized", "status": "True", "lastTransitionTime": created},
            {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": ready_since},
            {"type": "ContainersReady", "status": "True" if ready else "False", "lastTransitionTime": ready_since},
        ]},
    }


def node(name: str, product: str = "NVIDIA-H100-80GB-HBM3", memory_mib: str = "81559",
         zone: str = "eu-west-1a") -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {
        "kubernetes.io/hostname": name, "nvidia.com/gpu.product": product, "nvidia.com/gpu.memory": memory_mib,
        "nvidia.com/gpu.count": "8", "topology.kubernetes.io/zone": zone}},
        "status": {"capacity": {"nvidia.com/gpu": "8"}}}


def hpa(name: str, namespace: str = "llm", *, target: str = "vllm", desired: int = 1, current: int = 1,
        last_scale: str | None = None, min_replicas: int = 1, max_replicas: int = 8,
        able_to_scale: str = "True", scaling_active: str = "True", limited: str = "False") -> dict[str, Any]:
    """An autoscaling/v2 HorizontalPodAutoscaler as the HPA controller writes its status for an external
    metric (KEDA's): `currentReplicas`, `desiredReplicas`, `lastScaleTime` (omitted until it first scaled),
    `currentMetrics` and the AbleToScale / ScalingActive / ScalingLimited conditions with their reasons."""
    status: dict[str, Any] = {
        "currentReplicas": current, "desiredReplicas": desired,
        "currentMetrics": [{"type": "External", "external": {
            "metric": {"name": "s0-llmobs-queue-depth-llama", "selector": {"matchLabels": {
                "scaledobject.keda.sh/name": name.removeprefix("keda-hpa-")}}},
            "current": {"averageValue": "2500m"}}}],
        "conditions": [
            {"type": "AbleToScale", "status": able_to_scale, "lastTransitionTime": "2026-01-05T10:00:00Z",
             "reason": "ReadyForNewScale" if able_to_scale == "True" else "FailedGetScale",
             "message": "recommended size matches current size"},
            {"type": "ScalingActive", "status": scaling_active, "lastTransitionTime": "2026-01-05T10:00:00Z",
             "reason": "ValidMetricFound" if scaling_active == "True" else "FailedGetExternalMetric",
             "message": "the HPA was able to successfully calculate a replica count from external metric"},
            {"type": "ScalingLimited", "status": limited, "lastTransitionTime": "2026-01-05T10:00:00Z",
             "reason": "DesiredWithinRange" if limited == "False" else "TooManyReplicas",
             "message": "the desired count is within the acceptable range"},
        ],
    }
    if last_scale is not None:
        status["lastScaleTime"] = last_scale
    return {"metadata": {"name": name, "namespace": namespace,
                         "labels": {"app.kubernetes.io/managed-by": "keda-operator",
                                    "scaledobject.keda.sh/name": name.removeprefix("keda-hpa-")}},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                     "minReplicas": min_replicas, "maxReplicas": max_replicas,
                     "metrics": [{"type": "External", "external": {
                         "metric": {"name": "s0-llmobs-queue-depth-llama"},
                         "target": {"type": "AverageValue", "averageValue": "4"}}}]},
            "status": status}


def scaled_object(name: str, namespace: str = "llm", *, models: tuple[str, ...] = ("llama",),
                  target: str = "vllm", ready: str = "True", active: str = "True", fallback: str = "False",
                  paused: str = "False", hpa_name: str | None = "", failures: int = 0) -> dict[str, Any]:
    """A keda.sh/v1alpha1 ScaledObject with llmobs external triggers (`metadata.model`) and the status KEDA's
    operator writes: `hpaName`, `externalMetricNames`, `health` (numberOfFailures, Happy/Failing) and the
    Ready / Active / Fallback / Paused conditions with KEDA's reasons and messages. `hpa_name=None` leaves
    `status.hpaName` out (KEDA then names the HPA `keda-hpa-<name>`)."""
    metric_names = [f"s{i}-llmobs-queue-depth-{m}" for i, m in enumerate(models)]
    status: dict[str, Any] = {
        "scaleTargetKind": "apps/v1.Deployment",
        "scaleTargetGVKR": {"group": "apps", "version": "v1", "kind": "Deployment", "resource": "deployments"},
        "originalReplicaCount": 1, "lastActiveTime": "2026-01-05T10:05:00Z",
        "externalMetricNames": metric_names,
        "health": {n: {"numberOfFailures": failures, "status": "Failing" if failures else "Happy"}
                   for n in metric_names},
        "conditions": [
            {"type": "Ready", "status": ready,
             "reason": "ScaledObjectReady" if ready == "True" else "ScaledObjectCheckFailed",
             "message": "ScaledObject is defined correctly and is ready for scaling"},
            {"type": "Active", "status": active,
             "reason": "ScalerActive" if active == "True" else "ScalerNotActive",
             "message": "Scaling is performed because triggers are active"},
            {"type": "Fallback", "status": fallback,
             "reason": "FallbackExists" if fallback == "True" else "NoFallbackFound",
             "message": "At least one trigger is falling back on this scaled object" if fallback == "True"
             else "No fallbacks are active on this scaled object"},
            {"type": "Paused", "status": paused, "reason": "ScaledObjectUnpaused",
             "message": "pause annotation removed for ScaledObject"},
        ],
    }
    if hpa_name is not None:
        status["hpaName"] = hpa_name or f"keda-hpa-{name}"
    return {"metadata": {"name": name, "namespace": namespace},
            "spec": {"scaleTargetRef": {"name": target}, "minReplicaCount": 1, "maxReplicaCount": 8,
                     "fallback": {"failureThreshold": 3, "replicas": 4},
                     "triggers": [{"type": "external", "metadata": {
                         "scalerAddress": "llmobs-scaler.llmobs.svc:9401", "model": m, "signal": "queue_depth",
                         "target": "4"}} for m in models]},
            "status": status}


def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll `cond` until it holds (watch events arrive asynchronously); AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)
