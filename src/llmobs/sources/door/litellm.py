"""The LiteLLM proxy (`litellm[proxy]`, open source), read as a door.

Its page is the proxy's own `/metrics` once `litellm_settings.callbacks: ["prometheus"]` is set (no enterprise
licence needed in 1.108; the page asks for a key unless `require_auth_for_metrics_endpoint: false`, and checking
a key needs the proxy's database). Names from `litellm/integrations/prometheus.py` and
`litellm/types/integrations/prometheus.py`, checked against a captured page
(tests/fixtures/litellm-1.108.7-proxy-metrics.txt). The model is the `requested_model` label: the model group a
client asked for (a name the proxy does not know is written `other`).

- `arrivals`: `litellm_proxy_total_requests_metric_total` (every request the proxy answered, any `status_code`).
- `rejected`: `litellm_proxy_failed_requests_metric_total` with a 5xx `exception_status`: the proxy could not get
  an answer from a backend (connection refused reads `Openai.InternalServerError`, 500); 4xx failures are the
  client's and not counted.
- `pending`: not exported (the open-source proxy has no in-flight gauge): None.
- latency: `litellm_request_total_latency_metric` (proxy side, arrival to end of processing).
"""

from __future__ import annotations

from collections.abc import Sequence

from llmobs.sources.door.reading import DoorReading, ReadingBuilder, by_name
from llmobs.sources.textformat import Sample

KIND = "litellm"
_MODEL = ("requested_model", "model_group")
_LATENCY = "litellm_request_total_latency_metric"


def read_litellm(samples: Sequence[Sample], default_model: str | None) -> DoorReading:
    page = by_name(samples)
    b = ReadingBuilder(default_model)
    b.add("arrivals", page.get("litellm_proxy_total_requests_metric_total", ()), *_MODEL)
    b.add("rejected", [s for s in page.get("litellm_proxy_failed_requests_metric_total", ())
                       if s.labels.get("exception_status", "").startswith("5")], *_MODEL)
    b.add_histogram(_LATENCY, [*page.get(_LATENCY + "_bucket", ()), *page.get(_LATENCY + "_count", ()),
                               *page.get(_LATENCY + "_sum", ())], *_MODEL)
    return b.build()
