"""The deployable KEDA examples in keda/ parse, reference each other correctly, and carry metadata the
scaler accepts — an example that KEDA or llmobs would reject is worse than none."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

import pytest
import yaml

from llmobs.serving.scaler.config import ScalerConfig
from llmobs.serving.scaler.metadata import parse_metadata
from llmobs.serving.scaler.metrics_api import PATH
from tests.conftest import REPO

KEDA_DIR = REPO / "keda"
HORIZONS = ScalerConfig().horizons()


def documents() -> list[dict]:
    docs = []
    for path in sorted(KEDA_DIR.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def of_kind(kind: str) -> list[dict]:
    return [d for d in documents() if d["kind"] == kind]


def test_examples_cover_every_trigger_type_and_a_composite() -> None:
    types = {t["type"] for so in of_kind("ScaledObject") for t in so["spec"]["triggers"]}
    assert types == {"external", "external-push", "metrics-api"}
    assert any("scalingModifiers" in so["spec"].get("advanced", {}) for so in of_kind("ScaledObject"))
    assert of_kind("TriggerAuthentication")


@pytest.mark.parametrize("so", of_kind("ScaledObject"), ids=lambda so: so["metadata"]["name"])
def test_scaled_object_metadata_is_accepted(so: dict) -> None:
    auths = {(a["metadata"]["namespace"], a["metadata"]["name"]): a for a in of_kind("TriggerAuthentication")}
    spec = so["spec"]
    assert so["apiVersion"] == "keda.sh/v1alpha1" and spec["scaleTargetRef"]["name"]
    for trigger in spec["triggers"]:
        if trigger["type"] in ("external", "external-push"):
            meta = trigger["metadata"]
            assert re.fullmatch(r"[a-z0-9.-]+:[0-9]+", meta["scalerAddress"])
            parse_metadata(meta, HORIZONS)  # raises MetadataError naming the key
            ref = trigger.get("authenticationRef")
            if ref:
                auth = auths[(so["metadata"]["namespace"], ref["name"])]
                params = {p["parameter"] for p in auth["spec"]["secretTargetRef"]}
                assert params <= {"caCert", "tlsClientCert", "tlsClientKey"} and "caCert" in params
        else:
            meta = trigger["metadata"]
            url = urlsplit(meta["url"])
            assert url.path == PATH and meta["valueLocation"] == "value"
            query = dict(parse_qsl(url.query, strict_parsing=True))
            parse_metadata(query, HORIZONS)
            float(meta["targetValue"])
    if "fallback" in spec:  # KEDA only allows fallback with AverageValue metrics
        modifiers = spec.get("advanced", {}).get("scalingModifiers")
        if modifiers:
            assert modifiers.get("metricType", "AverageValue") == "AverageValue"
        else:
            assert all(t.get("metricType", "AverageValue") == "AverageValue" for t in spec["triggers"])
    modifiers = spec.get("advanced", {}).get("scalingModifiers")
    if modifiers:
        names = {t["name"] for t in spec["triggers"]}
        used = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", modifiers["formula"])) - {"max", "min", "ceil", "floor"}
        assert used == names, f"formula uses {used}, triggers are {names}"
        float(modifiers["target"])
