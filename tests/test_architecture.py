"""The design card's one-way arrows, checked on the import graph.

`LAYERS` is the whole order, low → high: a module may import its own top-level package or one in a
lower layer, never a peer or anything above. Packages in one layer are peers (they do not know each
other). Lazy imports inside functions count too: they decide what a feature needs once it starts.
Signals are pure (no network, file or process I/O); sources never import serving or the CLI. And
importing the library or its config loads none of the optional components' heavy libraries, so a core
install (tests/test_packaging.py) can use them.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

SRC = REPO / "src" / "llmobs"

# low → high; each entry is one layer of peer units (a unit is `llmobs.<top-level module or package>`)
LAYERS: tuple[tuple[str, ...], ...] = (
    ("llmobs._lazy",),  # lazy package exports, which the root package itself uses
    # dependency-free helpers: the version and public API (re-exported lazily), the bounded YAML loader,
    # extras, the metric catalogue, durations, the base of the config models
    ("llmobs", "llmobs._yaml", "llmobs._extras", "llmobs.metrics_catalogue", "llmobs.durations",
     "llmobs._config_model"),
    # what every command shares (one-line errors, DURATION options) and checks of the files a config names
    ("llmobs.cli_support", "llmobs.filechecks"),
    ("llmobs.metric_families",),  # catalogue rows -> prometheus_client families, for every collector
    ("llmobs.sources",),  # read the world: HTTP scrapes, text format, Kubernetes, NVML, traces
    ("llmobs.signals",),  # pure functions of samples
    ("llmobs.state",),  # the immutable published state
    ("llmobs.pipeline",),  # scrape → normalize → derive → publish
    ("llmobs.forecast",),  # demand forecasting over the state and traces
    ("llmobs.serving",),  # exporter HTTP, /metrics, KEDA scaler, OTLP, serve_asgi
    ("llmobs.feedback", "llmobs.agent", "llmobs.demo"),  # components that serve on their own ports
    ("llmobs.simulate",),  # request-level fleet simulation: renders demo pages, reads them with signals
    ("llmobs.config",),  # the root config: embeds component config models only
    ("llmobs.runtime", "llmobs.preflight"),  # starts what a config enables; checks the files it names
    ("llmobs.exporter",),  # the runtime as an async context manager, for programs that embed llmobs
    ("llmobs.cli",),
)
LAYER_OF = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}

IO_MODULES = {"httpx", "socket", "subprocess", "requests", "urllib", "aiohttp", "sqlite3", "uvicorn", "starlette",
              "grpc", "prometheus_client", "llmobs.serving", "llmobs.sources.scrape", "llmobs.pipeline",
              "llmobs.runtime", "llmobs.cli"}

# what the optional extras install (and the CLI framework): never loaded by `import llmobs` or its config
HEAVY = ("grpc", "opentelemetry", "kubernetes", "uvicorn", "starlette", "pandas", "sklearn", "statsmodels",
         "matplotlib", "typer")


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _facade_type_checking_blocks(tree: ast.Module) -> list[ast.If]:
    """The root package's `if TYPE_CHECKING:` blocks: the facade's names for type checkers."""
    return [node for node in tree.body if isinstance(node, ast.If) and isinstance(node.test, ast.Name)
            and node.test.id == "TYPE_CHECKING"]


def llmobs_imports(path: Path) -> set[str]:
    """Every llmobs module `path` imports, at the top or inside a function, relative imports resolved.

    One exception: the root `llmobs/__init__.py` re-exports the public API from every layer, lazily, and
    names those objects for type checkers in `if TYPE_CHECKING:` (tests/test_public_api.py checks the two
    agree); those imports never run, so they are not
    the root's dependencies. (The re-exports cannot hide an upward import: code inside llmobs may not import
    them from the root, see test_package_code_does_not_import_the_facade.)
    """
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out: set[str] = set()
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    if name == "llmobs":
        skipped = {id(n) for block in _facade_type_checking_blocks(tree) for n in ast.walk(block)}
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                out.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                out.add(node.module)
    return {m for m in out if m == "llmobs" or m.startswith("llmobs.")}


def unit(module: str) -> str:
    return ".".join(module.split(".")[:2])


def all_modules() -> dict[str, set[str]]:
    return {module_name(p): llmobs_imports(p) for p in sorted(SRC.rglob("*.py"))}


def test_every_module_has_a_layer() -> None:
    unplaced = sorted({unit(m) for m in all_modules()} - LAYER_OF.keys())
    assert not unplaced, f"add these to LAYERS in tests/test_architecture.py: {unplaced}"


def test_imports_go_down_the_layers() -> None:
    wrong = []
    for module, imports in all_modules().items():
        here = unit(module)
        for imported in sorted(imports):
            there = unit(imported)
            if there != here and LAYER_OF.get(there, -1) >= LAYER_OF.get(here, -1):
                wrong.append(f"{module} (layer {LAYER_OF.get(here)}) imports {imported} (layer {LAYER_OF.get(there)})")
    assert not wrong, "imports against the layer order:\n  " + "\n  ".join(wrong)


def _package_of(module: str, is_package: bool) -> str:
    """A module's package; modules at the top of llmobs (config, runtime, _yaml...) are nodes of their own,
    since the root package is only a namespace for them."""
    parent = module.rpartition(".")[0]
    return module if is_package or parent == "llmobs" else parent


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_package_cycles() -> None:
    """Package-level graph (every package, sub-packages included, and each top-level module): no two
    import each other, directly or through others."""
    packages = {module_name(p) for p in SRC.rglob("__init__.py")}
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        src = _package_of(module_name(path), path.name == "__init__.py")
        for imported in llmobs_imports(path):
            dst = _package_of(imported, imported in packages)
            if dst != src:
                graph.setdefault(src, set()).add(dst)
    assert _cycles(graph) == []


def _facade_exports() -> dict[str, str]:
    """The root package's `_EXPORTS` literal: public name -> "submodule" or "submodule:attribute"."""
    tree = ast.parse((SRC / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("llmobs/__init__.py has no _EXPORTS")


def test_package_code_does_not_import_the_facade() -> None:
    """`from llmobs import X` inside llmobs would reach any layer through the lazy re-exports; code inside
    the package imports from the module that defines X (only `__version__` lives in the root)."""
    facade = set(_facade_exports())
    wrong = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "llmobs" and not node.level:
                wrong += [f"{path.relative_to(SRC)}: {a.name}" for a in node.names if a.name in facade]
    assert not wrong, "import these from their modules:\n  " + "\n  ".join(wrong)


def test_the_checks_see_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _all_imports_of(package: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in (SRC / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
        out[str(path.relative_to(SRC))] = names
    return out


def _hits(names: set[str], forbidden: set[str]) -> set[str]:
    return {n for n in names if any(n == f or n.startswith(f + ".") for f in forbidden)}


def test_signals_do_no_io() -> None:
    for module, names in _all_imports_of("signals").items():
        assert not _hits(names, IO_MODULES), f"signals/{module} imports I/O: {_hits(names, IO_MODULES)}"


def test_sources_never_import_serving_or_cli() -> None:
    forbidden = {"llmobs.serving", "llmobs.cli", "llmobs.runtime", "llmobs.forecast", "llmobs.signals.derive"}
    for module, names in _all_imports_of("sources").items():
        assert not _hits(names, forbidden), f"{module}: {_hits(names, forbidden)}"


READ_TWO_PAGES = f"""
text = open({str(SRC.parents[1] / "tests" / "fixtures" / "vllm-0.32.0-cpu-metrics.txt")!r}).read()
tracker = SignalTracker("e")
tracker.observe(parse_page(text), 0.0)
assert tracker.observe(parse_page(text), 1.0)
load_config_text("{{}}")
"""


def _loaded_after(statement: str) -> set[str]:
    """Top-level names in sys.modules after `statement` in a fresh interpreter."""
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
                         env={"PYTHONPATH": str(SRC.parent), "PATH": "/usr/bin:/bin"})
    return set(json.loads(out.stdout.splitlines()[-1]))


@pytest.mark.parametrize("statement", [
    "import llmobs", "import llmobs.config", "from llmobs.config import load_config_text; load_config_text('{}')",
    # the whole public API, resolved, and a page read into signals: an embedding program pays for no extra
    "from llmobs import *\n" + READ_TWO_PAGES,
])
def test_library_and_config_load_no_heavy_library(statement: str) -> None:
    assert _loaded_after(statement) & set(HEAVY) == set()


@pytest.mark.parametrize("statement", ["import llmobs.runtime", "import llmobs.cli"])
def test_core_exporter_and_cli_load_no_optional_component(statement: str) -> None:
    """`llmobs run` and the CLI start on a core install: no extra's library is imported up front."""
    optional = {"grpc", "google", "opentelemetry", "kubernetes", "pynvml", "numpy", "pandas", "sklearn",
                "statsmodels", "matplotlib"}
    assert _loaded_after(statement) & optional == set()
