"""The exporter process's garbage-collector policy, used only by `llmobs run` (never on import or by a
library user's `Pipeline`): it freezes the heap and changes the collector's thresholds, which are
process-wide settings that belong to whoever owns the process.
"""

from __future__ import annotations

import gc


class GcPolicy:
    """Keeps the cyclic garbage collector off the scrape cycle's critical path (a `Pipeline` cycle hook).

    At 1,000 targets the exporter holds millions of long-lived, acyclic objects (parser caches, tracker
    windows); every automatic full collection walks all of them (~1 s, stalling the loop mid-cycle so that
    healthy targets' exchanges overrun), and younger collections keep re-scanning the objects a cycle
    creates. So, between cycles (in the idle time before the next one): after the warm-up cycles, collect
    and `gc.freeze()` what survives, so later collections skip it; every `freeze_every` cycles collect and
    freeze again (the survivors of the last cycles, e.g. new window points); every `full_every` cycles
    `gc.unfreeze()` and collect everything, so that a cycle that became garbage while frozen is reclaimed
    too (the frozen objects are freed by reference counting when dropped, which is how almost all of them
    go). Automatic full collections are made rare (`gc.set_threshold`): they happen here instead.
    """

    def __init__(self, warmup_cycles: int = 2, freeze_every: int = 12, full_every: int = 720) -> None:
        self.warmup_cycles = warmup_cycles
        self.freeze_every = freeze_every
        self.full_every = full_every
        self.collections = 0
        self._saved_threshold: tuple[int, int, int] | None = None

    def start(self) -> None:
        if self._saved_threshold is None:
            self._saved_threshold = gc.get_threshold()
            gen0, gen1, _ = self._saved_threshold
            gc.set_threshold(max(gen0, 10_000), gen1, 1_000)

    def after_cycle(self, cycles: int) -> None:
        n = cycles - self.warmup_cycles
        if n < 0:
            return
        if n % self.full_every == 0:
            gc.unfreeze()
        elif n % self.freeze_every != 0:
            return
        gc.collect()
        gc.freeze()
        self.collections += 1

    def stop(self) -> None:
        gc.unfreeze()
        if self._saved_threshold is not None:
            gc.set_threshold(*self._saved_threshold)
            self._saved_threshold = None
