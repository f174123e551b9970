"""KEDA's `externalscaler.proto` (verbatim: package externalscaler, service ExternalScaler) and the code
generated from it. Nothing hand-written lives here except this docstring: regenerate with
`python -m llmobs.serving.scaler.codegen`; tests/test_scaler_proto.py fails on any drift."""
