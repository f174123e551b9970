"""Serving: the exporter's HTTP app, the Prometheus collector, OTLP push and the KEDA scaler (`scaler`).

Internal: these are the pieces `llmobs.Exporter` and `llmobs run` assemble, and their interfaces follow
the exporter's needs. A program that wants the exporter embeds `llmobs.Exporter`; the scaler subpackage
exports its own names.
"""

__all__: list[str] = []
