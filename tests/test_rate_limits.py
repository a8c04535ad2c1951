"""Optional requests/min and tokens/min caps, shared by every call to an endpoint."""

from __future__ import annotations

import time

import pytest

from treedistill.server.engine import Engine
from treedistill.server.providers.base import RateLimitInfo
from treedistill.server.scheduling.rate_gate import RateGate
from treedistill.server.store.catalog import Store, open_database
from treedistill.server.store.pacing import EndpointPacing

pytestmark = pytest.mark.anyio


async def test_requests_per_minute_cap_spaces_the_calls(db_path, env, llm):
    engine = await Engine(db_path, env, requests_per_minute=300).start()  # one call per 0.2 s
    try:
        project = engine.create_project("Capped", max_concurrency=8)
        started = time.monotonic()
        job, _ = await engine.auto_distill(project.id, levels=1, tags_per_level=2, questions_per_tag=2)
        while engine.get_progress(job["id"]).status == "running":
            await engine.wait_for_job_change(job["id"], 1)
        elapsed = time.monotonic() - started
    finally:
        await engine.close()
    assert llm.stats()["requests"] == 7
    assert elapsed >= 6 * 0.2  # 7 calls, the first one free


def gate_on(db_path, **caps) -> RateGate:
    """A gate on its own connection to the database, as another process would have."""
    return RateGate(EndpointPacing(Store(open_database(db_path))), "openai http://endpoint", **caps)


async def test_tokens_per_minute_cap_waits_for_the_bucket_to_refill(db_path):
    gate = gate_on(db_path, tokens_per_minute=60_000)  # 1,000 tokens a second; the bucket holds 6 s of them
    ticket = await gate.wait()  # a full bucket lets the first call through at once
    assert ticket.expected_tokens == 500
    gate.observe(ticket, None, used_tokens=600)  # calls now expect 600 tokens
    started = time.monotonic()
    for _ in range(9):  # 5,400 tokens left: nine more calls at once
        await gate.wait()
    assert time.monotonic() - started < 0.3
    await gate.wait()
    assert time.monotonic() - started >= 0.5  # the tenth waits for 600 tokens at 1,000 a second


async def test_two_processes_share_one_pace(db_path):
    first, second = gate_on(db_path, requests_per_minute=600), gate_on(db_path, requests_per_minute=600)
    started = time.monotonic()
    for gate in (first, second) * 5:
        await gate.wait()
    assert time.monotonic() - started >= 0.85  # 10 requests 0.1 s apart, not 5 in each process


async def test_learned_limits_pace_below_them_and_a_429_spaces_the_return(db_path):
    gate = gate_on(db_path)
    gate.observe(await gate.wait(), RateLimitInfo(requests_limit=1200, requests_remaining=1000,
                                                  requests_reset_seconds=0.05), used_tokens=100)
    started = time.monotonic()
    for _ in range(5):
        await gate.wait()
    elapsed = time.monotonic() - started
    assert 4 * 0.05 <= elapsed < 4 * 0.05 * 1.5  # 1,200/min learned: 0.05 s apart (with a 5% margin)
    gate.rate_limited(await gate.wait(), 0.3, None, default_pause=2.0)
    started = time.monotonic()
    await gate.wait()
    first = time.monotonic() - started
    await gate.wait()
    assert first >= 0.28 and time.monotonic() - started >= first + 0.07  # the pause, then wider spacing
