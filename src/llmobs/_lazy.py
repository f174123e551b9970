"""Lazy package exports: a package keeps its public names while importing none of its modules up front.

Why: `llmobs.config` embeds small config models that live in component packages (agent, feedback, the
scaler); importing such a model runs the package's `__init__`, which used to import the whole component
(uvicorn, gRPC, the Kubernetes client). With `lazy_exports`, `from llmobs.feedback import serve_feedback`
still works, and only that access imports `llmobs.feedback.server`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`(__getattr__, __dir__)` for `package`, where `exports` maps a public name to its submodule
    (relative to the package, e.g. `"server"`), or to `"submodule:attribute"` where the attribute has
    another name there (`"METRICS": "metrics_catalogue:CATALOGUE"`)."""

    def __getattr__(name: str) -> Any:
        target = exports.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = target.partition(":")
        value = getattr(importlib.import_module(f"{package}.{module}"), attribute or name)
        globals_of_package = importlib.import_module(package).__dict__
        globals_of_package[name] = value  # cache: later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted({*importlib.import_module(package).__dict__, *exports})

    return __getattr__, __dir__
