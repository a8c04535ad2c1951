"""Optional requests/min and tokens/min caps, shared by every call to an endpoint."""

from __future__ import annotations

import time

import pytest

from treedistill.server.engine import Engine
from treedistill.server.scheduling.rate_gate import RateGate

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


async def test_tokens_per_minute_cap_waits_for_the_bucket_to_refill():
    gate = RateGate(tokens_per_minute=6000)  # refills 100 tokens a second
    await gate.wait()  # a full bucket lets the first call through at once
    gate.spend(6000 + 50)
    started = time.monotonic()
    await gate.wait()
    assert time.monotonic() - started >= 0.45  # 50 tokens in debt at 100 a second
