#!/usr/bin/env python3
"""Fit a simulator step profile to a running vLLM server and write it as a profile YAML.

usage: calibrate_profile.py --base-url http://HOST:PORT --model NAME --max-num-seqs 8 \\
           --max-num-batched-tokens 256 --block-size 32 --kv-blocks 256 --out my-profile.yaml

The server must be idle and serve nothing else while this runs (every probe assumes it is alone), and the
engine settings given must be the ones the server was started with: they decide how a prompt is chunked.
Prompts are sent as token ids drawn from the server's own tokenizer (`/tokenize`), so their lengths are exact
for any model, and each is new (random ids), so the prefix cache does not shorten a prefill.

What is measured (`llmobs.simulate.calibrate` explains the rows each makes):
* prefill: lone requests with max_tokens=1 at prompt lengths from 4 tokens to eight chunks of
  max_num_batched_tokens (as max_model_len allows); the client TTFT, median over the repeats;
* decode: N identical requests at once (N from 1 to max_num_seqs, short and long prompts), each client's
  (E2E − TTFT)/(output − 1), median over the N requests and the repeats.
The fit is a non-negative least squares on relative error; the YAML's `fit:` says how far each kind of probe
is from what the profile predicts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from llmobs.simulate.calibrate import (
    Observation,
    ProfileFit,
    decode_observation,
    fit_profile,
    prefill_observation,
    profile_yaml,
)
from llmobs.simulate.errors import SimulationInputError

SEED_TEXT = ("the quick brown fox jumps over the lazy dog while a model serves tokens from its cache; every request "
             "waits in a queue, is prefilled in chunks and decodes one token per step until it is done")


@dataclass(frozen=True)
class Plan:
    """Which probes to send: derived from the engine settings by `plan_for`."""

    max_num_batched_tokens: int
    prefill_lengths: tuple[int, ...]
    prefill_repeats: int
    decode_batches: tuple[int, ...]
    decode_prompts: tuple[int, ...]
    decode_output: int
    decode_repeats: int


def plan_for(*, max_num_batched_tokens: int, max_num_seqs: int, max_model_len: int, kv_tokens: int,
             quick: bool = False) -> Plan:
    """Probes that separate every coefficient: prompts of one to eight chunks (the chunk count separates the
    per-step cost from the request overhead; a last chunk of 4 tokens, the per-step cost from the per-token
    one), batches from 1 to max_num_seqs (the per-sequence cost), and short and long decode contexts (the
    per-KV-token cost), all within max_model_len and the KV cache."""
    b = max_num_batched_tokens
    longest = max_model_len - 2
    lengths = sorted({min(n, longest) for n in (4, b // 2, b, b + 4, 2 * b, 2 * b + 4, 3 * b, 4 * b, 6 * b, 8 * b)
                      if n >= 1})
    output = min(128, max_model_len // 4)
    batches = sorted({1, 2, max(1, max_num_seqs // 2), max_num_seqs})
    long_prompt = max(16, min(max_model_len // 2, kv_tokens // max_num_seqs - output - 1))
    if quick:
        return Plan(b, tuple(lengths), 3, tuple(sorted({1, max_num_seqs // 2 or 1, max_num_seqs})),
                    (16, long_prompt), min(output, 64), 2)
    return Plan(b, tuple(lengths), 7, tuple(batches), (16, long_prompt), output, 3)


class Probe:
    """Streams completions with prompts of exact token counts and times them as a client does."""

    def __init__(self, client: httpx.AsyncClient, base_url: str, model: str, token_pool: Sequence[int],
                 rng: random.Random) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.pool = list(token_pool)
        self.rng = rng

    def prompt(self, tokens: int) -> list[int]:
        return [self.rng.choice(self.pool) for _ in range(tokens)]

    async def timed(self, prompt_tokens: int, max_tokens: int) -> tuple[float, float]:
        """(TTFT, E2E) in seconds for one completion of exactly `max_tokens` tokens."""
        body = {"model": self.model, "prompt": self.prompt(prompt_tokens), "max_tokens": max_tokens,
                "min_tokens": max_tokens, "ignore_eos": True, "temperature": 0.0, "stream": True,
                # the first token is sent at once, the rest in one chunk at the end: the client and the API
                # server spend no CPU on per-token events, which a busy host would count as engine time
                "stream_interval": max_tokens}
        started = time.perf_counter()
        ttft = -1.0
        async with self.client.stream("POST", f"{self.base_url}/v1/completions", json=body) as response:
            if response.status_code != 200:
                detail = (await response.aread()).decode(errors="replace")[:200]
                raise RuntimeError(f"completion failed with HTTP {response.status_code}: {detail}")
            async for line in response.aiter_lines():
                if ttft < 0 and line.startswith("data: {") and json.loads(line[6:]).get("choices"):
                    ttft = time.perf_counter() - started
        e2e = time.perf_counter() - started
        if ttft < 0:
            raise RuntimeError("the server streamed no token")
        return ttft, e2e


async def token_pool(client: httpx.AsyncClient, base_url: str, model: str) -> list[int]:
    """Token ids the model's tokenizer produces for ordinary text: safe to send as a prompt."""
    response = await client.post(f"{base_url.rstrip('/')}/tokenize", json={"model": model, "prompt": SEED_TEXT})
    response.raise_for_status()
    ids = sorted(set(response.json()["tokens"]))
    if len(ids) < 8:
        raise RuntimeError(f"/tokenize gave only {len(ids)} distinct tokens for the seed text")
    return ids


async def measure(base_url: str, model: str, plan: Plan, *, seed: int = 0, log=print) -> list[Observation]:
    """Run the plan's probes against an idle server; one observation per prefill length and per decode shape.

    The repeats go round all the shapes in turn rather than one shape after another: on a host whose other load
    comes and goes, a slow spell then lands on every shape a little instead of on one shape wholly, where it
    would read as that shape's cost (a long-context decode probe taken in a slow second became a KV cost)."""
    rng = random.Random(seed)
    decode_shapes = [(batch, prompt) for prompt in plan.decode_prompts for batch in plan.decode_batches]
    ttfts: dict[int, list[float]] = {length: [] for length in plan.prefill_lengths}
    tpots: dict[tuple[int, int], list[float]] = {shape: [] for shape in decode_shapes}
    async with httpx.AsyncClient(timeout=httpx.Timeout(120.0)) as client:
        probe = Probe(client, base_url, model, await token_pool(client, base_url, model), rng)
        for _ in range(3):  # warm-up: the first requests of a process pay one-off costs
            await probe.timed(8, 4)
        for _ in range(plan.prefill_repeats):
            for length in plan.prefill_lengths:
                ttfts[length].append((await probe.timed(length, 1))[0])
        for _ in range(plan.decode_repeats):
            for batch, prompt in decode_shapes:
                runs = await asyncio.gather(*(probe.timed(prompt, plan.decode_output) for _ in range(batch)))
                tpots[batch, prompt] += [(e2e - ttft) / (plan.decode_output - 1) for ttft, e2e in runs]
    observations: list[Observation] = []
    for length, values in ttfts.items():
        observations.append(prefill_observation(length, statistics.median(values), plan.max_num_batched_tokens))
        log(f"prefill {length:5d} tokens: TTFT median {statistics.median(values) * 1000:7.2f} ms")
    for (batch, prompt), values in tpots.items():
        observations.append(decode_observation(batch, prompt, plan.decode_output, statistics.median(values)))
        log(f"decode {batch:3d} × {prompt:4d}+{plan.decode_output} tokens: TPOT median "
            f"{statistics.median(values) * 1000:6.3f} ms")
    return observations


def describe(fit: ProfileFit) -> str:
    p = fit.profile
    coefficients = ", ".join(f"{k} {getattr(p, k) * 1000:.4g} ms" for k in
                             ("fixed_s", "prefill_step_s", "prefill_token_s", "decode_seq_s", "kv_token_s",
                              "request_overhead_s"))
    figures = fit.figures()
    errors = "; ".join(f"{kind}: median {v['median_abs_error_pct']}% max {v['max_abs_error_pct']}% "
                       f"({v['count']} probes)" for kind, v in figures.items() if isinstance(v, dict))
    return f"{coefficients}\nfit error: {errors}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True, help="the vLLM server, e.g. http://127.0.0.1:8000")
    parser.add_argument("--model", required=True, help="the served model name")
    parser.add_argument("--max-num-seqs", type=int, required=True)
    parser.add_argument("--max-num-batched-tokens", type=int, required=True)
    parser.add_argument("--block-size", type=int, required=True)
    parser.add_argument("--kv-blocks", type=int, required=True,
                        help="KV cache blocks (the server log's 'GPU KV cache size' / block size)")
    parser.add_argument("--max-model-len", type=int, default=0, help="default: what /v1/models reports")
    parser.add_argument("--name", default="", help="profile name (default: the model name)")
    parser.add_argument("--gpu", default="", help="GPU name as `llmobs forecast capacity` knows it")
    parser.add_argument("--model-config", type=Path, help="the model's config.json, for KV capacity")
    parser.add_argument("--hardware", default="", help="what it ran on, for the profile's source line")
    parser.add_argument("--quick", action="store_true", help="fewer probes and repeats (~20 s on a small model)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--check", action="store_true",
                        help="check the arguments and print the probe plan, without contacting the server "
                             "(max_model_len defaults to 8192 when not given)")
    args = parser.parse_args(argv)

    if args.model_config is not None:
        try:
            json.loads(args.model_config.read_text())
        except (OSError, ValueError) as exc:
            print(f"calibrate_profile: cannot read --model-config {args.model_config}: {exc}", file=sys.stderr)
            return 2
    max_model_len = args.max_model_len
    if args.check:
        plan = plan_for(max_num_batched_tokens=args.max_num_batched_tokens, max_num_seqs=args.max_num_seqs,
                        max_model_len=max_model_len or 8192, kv_tokens=args.kv_blocks * args.block_size,
                        quick=args.quick)
        print(f"probe plan: prefill lengths {list(plan.prefill_lengths)} × {plan.prefill_repeats}, decode batches "
              f"{list(plan.decode_batches)} × prompts {list(plan.decode_prompts)} × {plan.decode_repeats}; "
              f"would write {args.out}")
        return 0
    if not max_model_len:
        models = httpx.get(f"{args.base_url.rstrip('/')}/v1/models", timeout=10).json()["data"]
        max_model_len = int(next(m["max_model_len"] for m in models if m["id"] == args.model))
    plan = plan_for(max_num_batched_tokens=args.max_num_batched_tokens, max_num_seqs=args.max_num_seqs,
                    max_model_len=max_model_len, kv_tokens=args.kv_blocks * args.block_size, quick=args.quick)
    observations = asyncio.run(measure(args.base_url, args.model, plan, seed=args.seed))
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    where = f" on {args.hardware}" if args.hardware else ""
    source = (f"scripts/calibrate_profile.py against {args.model} (vLLM at {args.base_url}){where}, {when}: "
              f"{len(plan.prefill_lengths)} prefill lengths × {plan.prefill_repeats}, decode batches "
              f"{list(plan.decode_batches)} × prompts {list(plan.decode_prompts)} × {plan.decode_repeats}")
    model_config = json.loads(args.model_config.read_text()) if args.model_config else None
    try:
        fit = fit_profile(observations, name=args.name or args.model, source=source, gpu=args.gpu,
                          model_config=model_config)
    except SimulationInputError as exc:
        print(f"calibrate_profile: {exc}", file=sys.stderr)
        return 1
    engine = {"kv_blocks": args.kv_blocks, "block_size": args.block_size, "max_num_seqs": args.max_num_seqs,
              "max_num_batched_tokens": args.max_num_batched_tokens, "max_model_len": max_model_len}
    header = ["Step-time profile fitted by scripts/calibrate_profile.py (docs/simulate-profiles.md).",
              "step = fixed_s + prefill_step_s·[runs a prompt chunk] + prefill_token_s × prompt tokens",
              "       + decode_seq_s × decoding sequences + kv_token_s × KV tokens read;",
              "every request also spends request_overhead_s in the API server (counted in TTFT and E2E).",
              "`engine:` holds the settings the server ran with; `fit:` the probes' error against this profile."]
    args.out.write_text(profile_yaml(fit, engine=engine, header=header))
    print(describe(fit))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
