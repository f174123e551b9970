"""The Gateway API Inference Extension's endpoint picker (EPP), read as a door.

Names and labels from the project's documentation (site-src/guides/metrics-and-observability.md, "Exposed
metrics"), not from a running picker: tests/fixtures/gie-epp-metrics-from-docs.txt is written from that table.
The model is the `model_name` label (the model the client asked for; `target_model_name` is what it was
rewritten to).

- `arrivals`: `inference_objective_request_total`.
- `rejected`: `inference_objective_request_error_total` (the documented error counter; the table names no error
  kind, so every error the picker counts is taken as a refusal).
- `pending`: `inference_extension_flow_control_queue_size` summed over fairness ids and priorities: requests
  held by the picker's flow control, not yet dispatched (experimental; None where flow control is off).
- latency: `inference_objective_request_duration_seconds`.
"""

from __future__ import annotations

from collections.abc import Sequence

from llmobs.sources.door.reading import DoorReading, ReadingBuilder, by_name
from llmobs.sources.textformat import Sample

KIND = "gie-epp"
_LATENCY = "inference_objective_request_duration_seconds"


def read_gie_epp(samples: Sequence[Sample], default_model: str | None) -> DoorReading:
    page = by_name(samples)
    b = ReadingBuilder(default_model)
    b.add("arrivals", page.get("inference_objective_request_total", ()), "model_name")
    b.add("rejected", page.get("inference_objective_request_error_total", ()), "model_name")
    b.add("pending", page.get("inference_extension_flow_control_queue_size", ()), "model_name")
    b.add_histogram(_LATENCY, [*page.get(_LATENCY + "_bucket", ()), *page.get(_LATENCY + "_count", ()),
                               *page.get(_LATENCY + "_sum", ())], "model_name")
    return b.build()
