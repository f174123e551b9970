"""A list+watch cache of one Kubernetes resource (the informer pattern), run in a background thread.

The `kubernetes` client is synchronous, so each watched collection gets a daemon thread:

    list (paged with limit/continue) → remember resourceVersion → watch from it (allowWatchBookmarks)
        ADDED/MODIFIED → store   DELETED → drop   BOOKMARK → advance resourceVersion only
        stream ends (server timeout) → watch again from the last resourceVersion (no relist)
        410 Gone (ERROR event or status) → relist, then watch from the new resourceVersion
        connection or HTTP trouble → retry after exponential backoff, from the last resourceVersion

Objects are kept as the raw JSON dicts (no model deserialisation: cheaper for thousands of pods and
nothing here needs the typed models). Readers take `snapshot()`, a consistent copy.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import watch
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

RawObject = dict[str, Any]


@dataclass
class WatchStats:
    """What the watcher has done; exported so a relist storm or reconnect loop is visible."""

    lists: int = 0
    watches: int = 0
    events: int = 0
    bookmarks: int = 0
    expired: int = 0
    errors: int = 0


class _RawWatch(watch.Watch):
    """A Watch that yields the raw event dicts. (`deserialize=False` would too, but the client then
    fails on ERROR events — it reads a `raw_object` key only its deserialising path sets — and a 410
    would surface as a KeyError instead of an ApiException.)"""

    def __init__(self) -> None:
        watch.Watch.__init__(self)  # (named, not super(): mypy's untyped_calls_exclude matches kubernetes' names)

    def get_return_type(self, func: Callable[..., Any]) -> Any:
        return None

    def events(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """`Watch.stream`'s raw events (the client leaves `stream` unannotated)."""
        events: Iterator[dict[str, Any]] = watch.Watch.stream(self, func, *args, **kwargs)
        return events


def object_key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return meta.get("uid") or f"{meta.get('namespace', '')}/{meta.get('name', '')}"


class ResourceWatcher:
    """Keeps an up-to-date dict of the objects one list function returns.

    `list_fn` is a `kubernetes.client.CoreV1Api` list method (`list_namespaced_pod`, `list_node`, ...);
    `args`/`kwargs` are its selector arguments. `on_change` runs in the watcher thread after every
    change (keep it cheap: bump a version, set an event)."""

    def __init__(self, name: str, list_fn: Callable[..., Any], *args: Any,
                 watch_timeout_seconds: int = 300, page_size: int = 500,
                 backoff_initial_seconds: float = 0.5, backoff_max_seconds: float = 30.0,
                 on_change: Callable[[], None] | None = None, **kwargs: Any) -> None:
        self.name = name
        self._list_fn = list_fn
        self._args = args
        self._kwargs = kwargs
        self.watch_timeout_seconds = watch_timeout_seconds
        self.page_size = page_size
        self.backoff_initial = backoff_initial_seconds
        self.backoff_max = backoff_max_seconds
        self._on_change = on_change
        self._objects: dict[str, RawObject] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._thread: threading.Thread | None = None
        self._watch: watch.Watch | None = None
        self.resource_version: str | None = None
        self.stats = WatchStats()
        self.last_error = ""

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"k8s-watch-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop and join. The watch may still be connecting when asked, so its socket is shut down
        repeatedly until the thread leaves (a blocked read only ends when its socket does)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        while self._thread is not None and self._thread.is_alive() and time.monotonic() < deadline:
            w = self._watch
            if w is not None:
                w.stop()
            self._thread.join(0.05)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait_synced(self, timeout: float | None = None) -> bool:
        """True once the first list has landed (the cache is complete, not just partial)."""
        return self._synced.wait(timeout)

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    def snapshot(self) -> list[RawObject]:
        with self._lock:
            return list(self._objects.values())

    # -- loop ------------------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = self.backoff_initial
        expired_again = False  # the last watch, started from a fresh list, expired at once too
        while not self._stop.is_set():
            try:
                if self.resource_version is None:
                    self._relist()
                self._watch_once()
                backoff = self.backoff_initial
                expired_again = False
            except ApiException as exc:
                if self._stop.is_set():
                    break
                if exc.status == 410:
                    self.stats.expired += 1
                    expired_at, self.resource_version = self.resource_version, None
                    if expired_again:
                        # a watch from a version the list just gave expiring again: relisting at once would
                        # list the whole namespace many times a second (130 lists in 7 s), so back off
                        self._failed("watch expired again right after a relist (410 Gone)", backoff)
                        backoff = min(self.backoff_max, backoff * 2)
                    else:
                        log.info("%s: watch expired (410 Gone) at resourceVersion %s; relisting",
                                 self.name, expired_at)
                    expired_again = True
                    continue
                self._failed(f"HTTP {exc.status} {exc.reason}", backoff)
                backoff = min(self.backoff_max, backoff * 2)
            except Exception as exc:  # connection reset, timeout, bad JSON: retry, never die
                if self._stop.is_set():
                    break  # stop() shut the socket down under the stream
                self._failed(f"{type(exc).__name__}: {exc}", backoff)
                backoff = min(self.backoff_max, backoff * 2)

    def _failed(self, message: str, backoff: float) -> None:
        self.stats.errors += 1
        level = logging.WARNING if self.last_error != message else logging.DEBUG
        self.last_error = message
        log.log(level, "%s: %s; retrying in %.1fs", self.name, message, backoff)
        self._stop.wait(backoff)

    def _relist(self) -> None:
        objects: dict[str, RawObject] = {}
        cont: str | None = None
        while True:
            kwargs = dict(self._kwargs, limit=self.page_size, _preload_content=False,
                          _request_timeout=(10, 60))
            if cont:
                kwargs["_continue"] = cont
            resp = self._list_fn(*self._args, **kwargs)
            body = json.loads(resp.data)
            for obj in body.get("items") or ():
                objects[object_key(obj)] = obj
            meta = body.get("metadata") or {}
            cont = meta.get("continue")
            if not cont:
                break
        self.stats.lists += 1
        with self._lock:
            self._objects = objects
        self.resource_version = meta.get("resourceVersion") or None
        if self.resource_version is None:
            raise ValueError("list response without metadata.resourceVersion")
        self._synced.set()
        self._changed()

    def _watch_once(self) -> None:
        w = _RawWatch()
        self._watch = w
        self.stats.watches += 1
        try:
            stream = w.events(self._list_fn, *self._args, resource_version=self.resource_version,
                              allow_watch_bookmarks=True, timeout_seconds=self.watch_timeout_seconds,
                              _request_timeout=(10, self.watch_timeout_seconds + 30),
                              **self._kwargs)
            for event in stream:
                if self._stop.is_set():
                    break
                self._apply(event)
        finally:
            self._watch = None

    def _apply(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if kind == "BOOKMARK":
            self.stats.bookmarks += 1
        elif kind in ("ADDED", "MODIFIED"):
            self.stats.events += 1
            with self._lock:
                self._objects[object_key(obj)] = obj
        elif kind == "DELETED":
            self.stats.events += 1
            with self._lock:
                self._objects.pop(object_key(obj), None)
        else:
            return
        if rv:
            self.resource_version = rv
        if kind != "BOOKMARK":
            self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()
