"""Optional features and the pip extra each needs: a missing one is one line naming the extra.

Why a check before importing: a feature started without its extra (say `llmobs forecast backtest` on a
core install) would otherwise die with a ModuleNotFoundError traceback deep in pandas' importers. Each
feature's entry point calls `require(feature)` first; the CLI prints the error's message and exits 2.
`importlib.util.find_spec` only looks the modules up, so the check costs microseconds and imports nothing.
"""

from __future__ import annotations

from importlib.util import find_spec

# feature (= the extra's name) -> top-level modules it imports
EXTRAS: dict[str, tuple[str, ...]] = {
    "forecast": ("numpy", "pandas", "sklearn", "statsmodels", "matplotlib", "threadpoolctl"),
    "otlp": ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.grpc", "opentelemetry.exporter.otlp.proto.http"),
    "kubernetes": ("kubernetes",),
    "agent": ("pynvml", "kubernetes"),
    "scaler": ("grpc", "grpc_health", "google.protobuf"),
    "feedback": (),
}


class MissingExtraError(RuntimeError):
    """A feature was started without the pip extra that installs its dependencies."""

    def __init__(self, feature: str, missing: str) -> None:
        self.feature, self.missing = feature, missing
        super().__init__(f"{feature} needs the [{feature}] extra ({missing} is not installed): "
                         f"pip install 'llmobs[{feature}]'")


def _installed(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing, or a broken install
        return False


def missing_modules(feature: str) -> list[str]:
    """The modules of `feature`'s extra that cannot be imported (empty when the extra is installed)."""
    return [m for m in EXTRAS[feature] if not _installed(m)]


def require(feature: str) -> None:
    """Raise MissingExtraError when `feature`'s extra is not installed."""
    missing = missing_modules(feature)
    if missing:
        raise MissingExtraError(feature, missing[0])
