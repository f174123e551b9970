"""The scaler's protos and the code generated from them — nothing hand-written lives here but this docstring.

`externalscaler.proto` is KEDA's, verbatim (package externalscaler, service ExternalScaler);
`answers.proto` is the opt-in native front end's answer table (messages only). Regenerate with
`python -m llmobs.serving.scaler.codegen`; tests/serving/scaler/test_scaler_proto.py fails on any drift, and
exporters/scaler-frontend builds its C++ code from these same files."""
