"""The replica scheduler on hand-checkable cases: with a profile where every step takes 1 s (or a known
time per token), the step at which each request gets its tokens can be counted on paper."""

from __future__ import annotations

import numpy as np
import pytest

from llmobs.simulate import EngineConfig, ReplicaEngine, SimRequest, SimulationInputError, StepProfile
from llmobs.simulate.stats import ReplicaStats

ONE_SECOND_STEPS = StepProfile("unit", fixed_s=1.0, prefill_token_s=0.0, decode_seq_s=0.0)


def engine(kv_blocks: int = 1000, profile: StepProfile = ONE_SECOND_STEPS, **settings: int) -> ReplicaEngine:
    settings.setdefault("max_model_len", 64)
    return ReplicaEngine(EngineConfig(kv_blocks=kv_blocks, **settings), profile, start=0.0, hash_block_tokens=16)


def test_the_batch_holds_at_most_max_num_seqs() -> None:
    e = engine(max_num_seqs=2)
    for i in range(3):
        e.submit(SimRequest(i, 0.0, prompt=4, output=3))
    e.advance(0.5)  # one step
    assert (len(e.running), len(e.waiting)) == (2, 1)


def test_a_long_prompt_is_prefilled_in_chunks_of_the_token_budget() -> None:
    e = engine(max_num_batched_tokens=8, max_num_seqs=4)
    r = SimRequest(0, 0.0, prompt=20, output=2)
    e.submit(r)
    e.drain()
    # 8 + 8 + 4 prompt tokens over three 1 s steps, the first token at the end of the third, one decode step
    assert (r.first_token, r.finish) == (3.0, 4.0)


def test_decoding_requests_take_their_token_before_a_new_prompt() -> None:
    e = engine(max_num_batched_tokens=8, max_num_seqs=4)
    first = SimRequest(0, 0.0, prompt=8, output=5)
    e.submit(first)
    e.advance(1.0)  # step 1: the whole 8-token budget prefills `first`
    second = SimRequest(1, 1.0, prompt=8, output=2)
    e.submit(second)
    e.drain()
    # step 2: `first` decodes (1 token), `second` gets the 7 left; step 3 finishes its prompt
    assert second.first_token == 3.0
    assert first.finish == 5.0  # tokens at the ends of steps 1 to 5: decoding never stalled


def test_when_kv_runs_out_the_newest_request_is_preempted_and_recomputed() -> None:
    # 6 blocks of 4 tokens; each request grows to 8 + 8 = 16 tokens = 4 blocks, two need 8 blocks
    e = engine(kv_blocks=6, block_size=4, max_model_len=24)
    old, new = SimRequest(0, 0.0, 8, 8), SimRequest(1, 0.0, 8, 8)
    e.submit(old)
    e.submit(new)
    e.drain()
    assert (old.preemptions, new.preemptions) == (0, 1)
    assert e.stats.preemptions == 1
    assert old.finish < new.finish and new.finish > 0
    assert e.free_blocks == 6  # every block came back


def test_a_request_that_cannot_get_its_first_blocks_waits_behind_the_head() -> None:
    e = engine(kv_blocks=4, block_size=4, max_model_len=16)
    big, small, tiny = SimRequest(0, 0.0, 12, 4), SimRequest(1, 0.0, 5, 1), SimRequest(2, 0.0, 2, 1)
    for r in (big, small, tiny):
        e.submit(r)
    e.advance(0.5)
    # `big` holds 3 of the 4 blocks; `small` needs 2, and FCFS lets nobody pass it (not even `tiny`)
    assert [r.index for r in e.running] == [0]
    e.drain()
    assert big.finish == 4.0  # prefilled in step 1, decoded in steps 2-4
    assert small.first_scheduled == tiny.first_scheduled == 4.0


def test_prefix_cache_hits_skip_the_cached_part_of_the_prompt() -> None:
    per_token = StepProfile("per-token", fixed_s=0.0, prefill_token_s=0.01, decode_seq_s=0.001)
    e = engine(profile=per_token)
    a = SimRequest(0, 0.0, prompt=48, output=1, hashes=(1, 2, 3))
    e.submit(a)
    e.drain()
    b = SimRequest(1, e.clock, prompt=48, output=1, hashes=(1, 2, 9))
    e.submit(b)
    e.drain()
    assert e.stats.prefix_hits == 32  # blocks 1 and 2 (16 tokens each) were cached
    assert e.stats.prefix_queries == 96
    assert b.first_token - b.arrival == pytest.approx(16 * 0.01)  # only the third block is prefilled
    assert a.first_token - a.arrival == pytest.approx(48 * 0.01)


def test_the_whole_prompt_cached_still_runs_its_last_token() -> None:
    e = engine(profile=StepProfile("p", fixed_s=0.0, prefill_token_s=0.01, decode_seq_s=0.001))
    for i in range(2):
        r = SimRequest(i, e.clock, prompt=32, output=1, hashes=(7, 8))
        e.submit(r)
        e.drain()
    assert e.stats.prefix_hits == 16  # 31 tokens could be reused, but only whole blocks: 16


def test_many_decode_steps_taken_at_once_give_the_same_times_as_one_by_one() -> None:
    profile = StepProfile("kv", fixed_s=0.005, prefill_token_s=1e-5, decode_seq_s=1e-4, kv_token_s=1e-7)

    def run(step_by_step: bool) -> list[float]:
        e = engine(kv_blocks=400, profile=profile, max_model_len=512)
        reqs = [SimRequest(i, 0.0, 50 + 10 * i, 30 + 17 * i) for i in range(6)]
        for r in reqs:
            e.submit(r)
        if step_by_step:
            t = 0.0
            while e.running or e.waiting:
                t += 0.001  # an instant every millisecond: runs of steps are cut into single steps
                e.advance(t)
        else:
            e.drain()
        return [r.finish for r in reqs]

    assert run(True) == pytest.approx(run(False), rel=1e-9)


def test_a_kv_cache_smaller_than_one_request_is_refused() -> None:
    with pytest.raises(SimulationInputError, match="cannot hold one request"):
        EngineConfig(kv_blocks=10, block_size=16, max_model_len=4096)


def test_settings_vllm_refuses_are_refused() -> None:
    with pytest.raises(SimulationInputError, match="max_num_batched_tokens"):
        EngineConfig(kv_blocks=1000, max_num_seqs=512, max_num_batched_tokens=256, max_model_len=256)
    with pytest.raises(SimulationInputError, match="max_num_seqs"):
        EngineConfig(kv_blocks=1000, max_num_seqs=0)


def _observed_one_by_one(finished: list[SimRequest], max_model_len: int) -> ReplicaStats:
    """The per-request histograms as observing each request at its finish gives them (`SimHistogram.observe`)."""
    ref = ReplicaStats(0.0, max_model_len)
    for r in finished:
        ref.h_e2e.observe(r.finish - r.arrival)
        ref.h_queue.observe(r.first_scheduled - r.arrival)
        ref.h_inference.observe(r.finish - r.first_scheduled)
        ref.h_prefill.observe(r.first_token - r.first_scheduled)
        ref.h_decode.observe(r.finish - r.first_token)
        ref.h_prompt.observe(r.prompt)
        ref.h_generation.observe(r.output)
        ref.h_preempt.observe(r.preemptions)
        if r.output > 1:
            ref.h_tpot.observe((r.finish - r.first_token) / (r.output - 1))
    return ref


# few finishes between two reads are observed one by one, many (≥ 48) in one numpy batch: both must agree
@pytest.mark.parametrize(("requests", "read_every_s"), [(10, 0.05), (300, 0.05), (300, 5.0)])
def test_the_page_histograms_count_every_finished_request_as_observing_each_at_its_finish(
        requests: int, read_every_s: float) -> None:
    """The per-request histograms are filled when the page reads them, a scrape interval's finishes at once:
    the page must show exactly (to the bit) what observing each request when it finished shows, at every read."""
    profile = StepProfile("varied", fixed_s=0.004, prefill_token_s=2e-5, decode_seq_s=3e-4, kv_token_s=1e-7)
    e = engine(kv_blocks=120, block_size=16, profile=profile, max_model_len=512, max_num_seqs=64)
    for i in range(requests):  # short and long, one-token outputs (no TPOT), enough to preempt
        e.submit(SimRequest(i, 0.0, prompt=1 + (i * 37) % 400, output=1 + (i * 53) % 90))
    reads, batches = 0, []
    while e.running or e.waiting:
        before = len(e.finished)
        e.advance(e.clock + read_every_s)
        batches.append(len(e.finished) - before)
        stats, ref = e.stats, _observed_one_by_one(e.finished, 512)
        for name in ("h_e2e", "h_queue", "h_inference", "h_prefill", "h_decode", "h_prompt", "h_generation",
                     "h_preempt", "h_tpot"):
            got, want = getattr(stats, name), getattr(ref, name)
            assert (got.counts, got.sum, got.count) == (want.counts, want.sum, want.count), name
        reads += 1
    assert len(e.finished) == requests and reads > 2
    assert requests < 100 or any(r.preemptions for r in e.finished)  # the big batch preempts
    assert max(batches) >= 48 if read_every_s > 1 else max(batches) < 48  # both ways of observing taken


def test_numpy_integer_settings_are_taken_as_plain_ints() -> None:
    config = EngineConfig(kv_blocks=np.int64(20000), max_num_seqs=np.int32(64))  # type: ignore[arg-type]
    assert (config.kv_blocks, config.max_num_seqs) == (20000, 64)
    assert type(config.kv_blocks) is int and type(config.max_num_seqs) is int


@pytest.mark.parametrize(("settings", "message"), [
    ({"kv_blocks": np.float64(2000.0)}, "engine kv_blocks must be an integer ≥ 1, not 2000.0$"),
    ({"kv_blocks": 1.5}, "engine kv_blocks must be an integer ≥ 1, not 1.5$"),
    ({"kv_blocks": True}, "engine kv_blocks must be an integer ≥ 1, not True$"),
    ({"kv_blocks": 2000, "block_size": "16"}, "engine block_size must be an integer ≥ 1, not '16'$"),
    ({"kv_blocks": np.int64(-3)}, "engine kv_blocks must be an integer ≥ 1, not -3$"),
    ({"kv_blocks": 2000, "prefix_caching": "no"}, "engine prefix_caching must be True or False, not 'no'$"),
])
def test_engine_settings_of_the_wrong_type_are_refused_plainly(settings: dict[str, object], message: str) -> None:
    with pytest.raises(SimulationInputError, match=message):
        EngineConfig(**settings)  # type: ignore[arg-type]
