"""The engine's turns on the event loop (server/loop_share.py): a request that arrives while engine tasks saturate
the loop waits for a slice of engine work, not for every ready task's work (issue 19: get_progress p99 290 ms)."""

from __future__ import annotations

import asyncio

import pytest

from treedistill.server import loop_share as loop_share_module
from treedistill.server.loop_share import LoopShare, loop_share
from treedistill.server.models import TERMINAL_STATUSES

TASKS = 16
STEPS = 30


async def steps_ahead_of_requests(turn) -> list[int]:
    """Run TASKS engine tasks of STEPS steps each, passing `turn()` between steps; meanwhile requests arrive one
    after the other (a timer due at once stands for a socket read that wakes an MCP request); returns, for each,
    the engine steps that ran between its arrival and its handling."""
    loop = asyncio.get_running_loop()
    steps: list[int] = []

    async def engine_task(n: int) -> None:
        for _ in range(STEPS):
            steps.append(n)
            await turn()

    async def requests() -> list[int]:
        ahead = []
        while len(steps) < TASKS * STEPS - TASKS:
            at_arrival = len(steps)  # it arrives now; the loop notices it when it next reads its sockets
            handled = loop.create_future()
            loop.call_later(0, handled.set_result, None)
            await handled
            ahead.append(len(steps) - at_arrival)
        return ahead

    engines = [asyncio.create_task(engine_task(n)) for n in range(TASKS)]
    ahead = await requests()
    await asyncio.gather(*engines)
    assert len(steps) == TASKS * STEPS
    return ahead


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_request_waits_for_one_slice_not_for_every_ready_task():
    # Plain yielding (what the engine did): every ready task's step runs before the request is handled.
    plain = await steps_ahead_of_requests(lambda: asyncio.sleep(0))
    assert min(plain) >= TASKS
    # With turns and an empty slice, one task's step begins each slice: at most one runs before a request (after
    # the first, which arrives as all the tasks take their first step).
    share = LoopShare(asyncio.get_running_loop(), slice_seconds=0.0)
    shared = await steps_ahead_of_requests(share.take_turn)
    assert len(shared) > TASKS * STEPS // 2
    assert max(shared[1:]) <= 1
    assert share.waits > 0


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_turns_within_a_slice_never_wait():
    share = LoopShare(asyncio.get_running_loop(), slice_seconds=60.0)
    for _ in range(1000):
        await share.take_turn()
    assert share.waits == 0


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_task_cancelled_while_waiting_leaves_the_others_going():
    share = LoopShare(asyncio.get_running_loop(), slice_seconds=0.0)
    await share.take_turn()  # begins a slice: the next turn waits
    waiting = asyncio.create_task(share.take_turn())
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert waiting.cancelled()
    await asyncio.wait_for(share.take_turn(), 1.0)  # the next slice comes all the same
    assert loop_share() is loop_share()  # one per loop


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_running_job_takes_turns_at_its_steps(started, monkeypatch):
    """The engine's steps are turns (a claim, each call, each streamed chunk, each item settling): with an empty
    slice, a job's tasks wait for the loop to serve requests again and again. Without the turns (issue 19's
    get_progress p99 of 290 ms) they would never wait."""
    loop = asyncio.get_running_loop()
    share = LoopShare(loop, slice_seconds=0.0)
    monkeypatch.setitem(loop_share_module._shares, loop, share)
    engine = await started()
    project = engine.create_project("Turns", max_concurrency=8)
    job, _ = await engine.auto_distill(project.id, 1, 4, 4, confirm_large=True)
    while (progress := engine.get_progress(job["id"])).status not in TERMINAL_STATUSES:
        await engine.wait_for_job_change(job["id"], 1.0)
    assert (progress.status, progress.calls_done) == ("completed", 21)
    assert share.waits >= 2 * progress.calls_done
