"""The vLLM router (`vllm-router` on PyPI: the Rust router of vllm-project/router), read as a door.

Its Prometheus page (`--prometheus-port`, its own listener) has no model label: a router serves the one model
its workers serve, so the door target names it (`model:` in `doors:`). Which of its series say what, from the
router's `src/metrics.rs` and `src/routers/http/router.rs`, and checked against a captured page
(tests/fixtures/vllm-router-0.1.17-metrics.txt):

- `vllm_router_requests_total{route}` counts requests answered with a success only (recorded after the
  response); `vllm_router_retries_exhausted_total{route}` counts requests that got a retryable failure on
  every attempt, which is how a router with no worker answers (503 "No available workers", after 1 + 4
  retries); `vllm_router_request_errors_total{route,error_type="non_retryable_error"}` counts the other
  failures. Their sum is the requests the door answered: `arrivals`.
- `rejected` is `vllm_router_retries_exhausted_total`: refused for want of a usable worker.
  (`vllm_router_request_errors_total{error_type="no_available_workers"}` counts attempts, five per refused
  request, not requests.)
- `pending` is `vllm_router_running_requests{worker}` summed, where the policy keeps it (cache-aware and
  load-tracking policies; round robin does not export it).
- latency: `vllm_router_generate_duration_seconds` (successful requests, router side), else
  `vllm_router_request_duration_seconds` where a build records that.
"""

from __future__ import annotations

from collections.abc import Sequence

from llmobs.sources.door.reading import DoorReading, ReadingBuilder, by_name
from llmobs.sources.textformat import Sample

KIND = "vllm-router"
_LATENCY = ("vllm_router_generate_duration_seconds", "vllm_router_request_duration_seconds")


def read_vllm_router(samples: Sequence[Sample], default_model: str | None) -> DoorReading:
    page = by_name(samples)
    b = ReadingBuilder(default_model)
    b.add("arrivals", page.get("vllm_router_requests_total", ()))
    b.add("arrivals", page.get("vllm_router_retries_exhausted_total", ()))
    b.add("arrivals", [s for s in page.get("vllm_router_request_errors_total", ())
                       if s.labels.get("error_type") == "non_retryable_error"])
    b.add("rejected", page.get("vllm_router_retries_exhausted_total", ()))
    b.add("pending", page.get("vllm_router_running_requests", ()))
    for family in _LATENCY:
        if family + "_bucket" in page:
            b.add_histogram(family, [*page[family + "_bucket"], *page.get(family + "_count", ()),
                                     *page.get(family + "_sum", ())])
            break
    b.recognised = b.recognised or any(name.startswith("vllm_router_") for name in page)
    return b.build()
