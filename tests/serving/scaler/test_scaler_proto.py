"""The gRPC contract: proto/externalscaler.proto is KEDA's protocol, and the committed code is generated from it.

KEDA's Go client is compiled from its own copy of the proto, so a renamed field or a changed number would
break the wire silently; the descriptor test pins every message, field, number and method. The drift
test regenerates with the pinned grpcio-tools and fails on any byte of difference (as the dashboards and
rules generators do)."""

from __future__ import annotations

from pathlib import Path

from google.protobuf.descriptor import FieldDescriptor

from llmobs.serving.scaler import codegen
from llmobs.serving.scaler.proto import externalscaler_pb2 as pb

STRING, INT64, DOUBLE, BOOL, MESSAGE = (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_INT64,
                                        FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_BOOL,
                                        FieldDescriptor.TYPE_MESSAGE)
KEDA_MESSAGES = {
    "ScaledObjectRef": {"name": (1, STRING), "namespace": (2, STRING), "scalerMetadata": (3, MESSAGE)},
    "IsActiveResponse": {"result": (1, BOOL)},
    "GetMetricSpecResponse": {"metricSpecs": (1, MESSAGE)},
    "MetricSpec": {"metricName": (1, STRING), "targetSize": (2, INT64), "targetSizeFloat": (3, DOUBLE)},
    "GetMetricsRequest": {"scaledObjectRef": (1, MESSAGE), "metricName": (2, STRING)},
    "GetMetricsResponse": {"metricValues": (1, MESSAGE)},
    "MetricValue": {"metricName": (1, STRING), "metricValue": (2, INT64), "metricValueFloat": (3, DOUBLE)},
}
KEDA_METHODS = {
    "IsActive": ("ScaledObjectRef", "IsActiveResponse", False),
    "StreamIsActive": ("ScaledObjectRef", "IsActiveResponse", True),
    "GetMetricSpec": ("ScaledObjectRef", "GetMetricSpecResponse", False),
    "GetMetrics": ("GetMetricsRequest", "GetMetricsResponse", False),
    "StreamMetricSpec": ("ScaledObjectRef", "GetMetricSpecResponse", True),
}


def test_descriptor_is_kedas_protocol() -> None:
    file = pb.DESCRIPTOR
    assert file.package == "externalscaler"
    assert set(file.message_types_by_name) == set(KEDA_MESSAGES)
    for name, fields in KEDA_MESSAGES.items():
        message = file.message_types_by_name[name]
        got = {f.name: (f.number, f.type) for f in message.fields}
        assert got == fields, name
    metadata = file.message_types_by_name["ScaledObjectRef"].fields_by_name["scalerMetadata"]
    assert metadata.message_type.GetOptions().map_entry
    repeated = [file.message_types_by_name[m].fields_by_name[f] for m, f in
                (("GetMetricSpecResponse", "metricSpecs"), ("GetMetricsResponse", "metricValues"))]
    assert all(f.is_repeated for f in repeated)
    service = file.services_by_name["ExternalScaler"]
    assert service.full_name == "externalscaler.ExternalScaler"
    methods = {m.name: (m.input_type.name, m.output_type.name, m.server_streaming) for m in service.methods}
    assert methods == KEDA_METHODS
    assert not any(m.client_streaming for m in service.methods)


def test_committed_code_matches_a_fresh_generation(tmp_path: Path) -> None:
    for fresh in codegen.generate(tmp_path):
        committed = codegen.PROTO_DIR / fresh.name
        assert committed.read_text() == fresh.read_text(), (
            f"{committed.name} drifted from {codegen.PROTO.name}: run python -m llmobs.serving.scaler.codegen")
