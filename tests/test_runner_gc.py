"""The runner pauses cyclic garbage collection inside each catch-up batch (projections/runner.py with
projections/collector.py): no collection walks a batch's decoded events, and the collector is left
as it was found."""

from __future__ import annotations

import gc
from typing import Any

from projections.runner import ProjectionRunner
from services.platform import Platform


def test_no_collection_inside_a_batch_and_the_collector_left_as_found(sqlite_platform: Platform) -> None:
    runner: ProjectionRunner = sqlite_platform.runner
    runner.reset(*runner.projections)
    inside: list[bool] = []
    collections: list[int] = []
    step = runner.step_together

    def watched(names: Any = None) -> Any:
        inside.append(gc.isenabled())
        gc.collect(0)  # an explicit collection still runs; only the automatic ones pause
        before = len(collections)
        garbage: list[Any] = []
        for _ in range(50_000):  # far past the young generation's threshold (700 allocations)
            garbage.append([])
        result = step(names)
        inside.append(len(collections) == before)
        return result

    def counted(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    runner.step_together = watched  # type: ignore[method-assign]
    gc.callbacks.append(counted)
    try:
        assert gc.isenabled()
        applied = runner.catch_up()
        assert gc.isenabled()
        gc.disable()
        runner.catch_up()
        assert not gc.isenabled()  # a caller's own choice is kept
    finally:
        gc.enable()
        gc.callbacks.remove(counted)
        del runner.step_together
    assert applied > 0
    assert inside and not any(inside[0::2])  # disabled inside every batch
    assert all(inside[1::2])  # and no automatic collection there

