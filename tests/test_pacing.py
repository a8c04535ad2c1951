"""Pacing that costs nothing until there is something to pace, holds across processes, and converges blind."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time

import pytest

from tests.conftest import ROOT
from treedistill.server.engine import Engine
from treedistill.server.models import TERMINAL_STATUSES
from treedistill.server.providers.base import RateLimitInfo
from treedistill.server.scheduling.rate_gate import BLIND_DECREASE, MARGIN, RateGate
from treedistill.server.store.catalog import Store, open_database
from treedistill.server.store.pacing import EndpointPacing

pytestmark = pytest.mark.anyio
ENDPOINT = "openai http://endpoint"


def gate_on(db_path, **caps) -> RateGate:
    """A gate on its own connection to the database, as another process would have."""
    return RateGate(EndpointPacing(Store(open_database(db_path))), ENDPOINT, **caps)


async def test_an_endpoint_without_limits_writes_no_pacing_state(db_path, env, llm):
    engine = await Engine(db_path, env).start()
    writes: list[str] = []
    engine.store.db.conn.set_trace_callback(  # writes to endpoint rows (" model=" rows hold learned capabilities)
        lambda sql: writes.append(sql) if "endpoints" in sql and " model=" not in sql
        and not sql.lstrip().upper().startswith("SELECT") else None)
    try:
        project = engine.create_project("Unlimited", max_concurrency=4)
        job, _ = await engine.auto_distill(project.id, levels=1, tags_per_level=2, questions_per_tag=2)
        while engine.get_progress(job["id"]).status not in TERMINAL_STATUSES:
            await engine.wait_for_job_change(job["id"], 1)
        assert engine.get_progress(job["id"]).status == "completed"
    finally:
        engine.store.db.conn.set_trace_callback(None)
        await engine.close()
    assert llm.stats()["requests"] == 7
    assert writes == []
    rows = Store(open_database(db_path)).rows("SELECT endpoint FROM endpoints WHERE endpoint NOT LIKE '% model=%'")
    assert rows == []


async def test_an_unpaced_gate_lets_calls_through_without_touching_the_database(db_path):
    gate = gate_on(db_path)
    statements: list[str] = []
    gate.pacing.db.conn.set_trace_callback(statements.append)
    for _ in range(50):
        gate.observe(await gate.wait(), None, used_tokens=300)
    assert len(statements) <= 1  # one look at the shared row (at most once a second), no writes
    assert gate.pacing.get(ENDPOINT) is None


async def test_a_known_limit_costs_one_statement_per_call(db_path):
    gate = gate_on(db_path)
    limits = RateLimitInfo(requests_limit=60_000, requests_remaining=5000, requests_reset_seconds=0.1)
    gate.observe(await gate.wait(), limits, used_tokens=100)  # learns the limit: the endpoint is paced from now
    statements: list[str] = []
    gate.pacing.db.conn.set_trace_callback(statements.append)
    for _ in range(20):
        gate.observe(await gate.wait(), limits, used_tokens=100)
    writes = [sql for sql in statements if sql.lstrip().upper().startswith("UPDATE")]
    assert len(writes) == 20 and len(statements) <= 22  # the slot, nothing else (headers unchanged: no write)


async def test_waiting_calls_hold_no_slots(db_path):
    gate = gate_on(db_path, requests_per_minute=600)  # 0.1 s apart
    waits = [asyncio.create_task(gate.wait()) for _ in range(5)]
    first = await waits[0]
    row = gate.pacing.get(ENDPOINT)
    # Four calls wait, yet only the slot after the first one is taken: nothing is reserved while waiting.
    assert row["next_slot"] - first.sent_at == pytest.approx(0.1, abs=0.005)
    sent = [first.sent_at] + [(await wait).sent_at for wait in waits[1:]]
    gaps = [b - a for a, b in zip(sent, sent[1:])]
    # one slot each, 0.1 s apart (a late wake-up shortens the next gap, never the pace), none held back
    assert sent[-1] - sent[0] >= 0.38 and all(gap < 0.15 for gap in gaps), gaps


async def test_blind_429s_widen_once_per_burst_then_narrow_with_successes(db_path):
    gate = gate_on(db_path)
    tickets = [await gate.wait() for _ in range(4)]  # unpaced: all four go at once
    for ticket in tickets:  # the burst's four 429s: the pause, and one widening from the first Retry-After
        gate.rate_limited(ticket, 0.1, None, default_pause=2.0)
    first = 0.1 / BLIND_DECREASE
    row = gate.pacing.get(ENDPOINT)
    assert row["interval"] == pytest.approx(first) and row["rate_limited"] == 4
    started = time.time()
    probe = await gate.wait()
    assert probe.sent_at - started >= 0.09  # waited out the pause
    gate.rate_limited(probe, 0.1, None, default_pause=2.0)  # the first call after the pause: still that burst
    assert gate.pacing.get(ENDPOINT)["interval"] == pytest.approx(first)
    later = await gate.wait()
    gate.rate_limited(later, 0.1, None, default_pause=2.0)  # a new burst: widened again, once
    assert gate.pacing.get(ENDPOINT)["interval"] == pytest.approx(first / BLIND_DECREASE)
    ticket = await gate.wait()
    for _ in range(10):
        gate.observe(ticket, None, used_tokens=100)
    rate = 1 / gate.pacing.get(ENDPOINT)["interval"]
    # ten successes: ten steps of 1% of the rate set at the cut
    assert rate == pytest.approx(BLIND_DECREASE / first * 1.10)


_SENDER = textwrap.dedent("""
    import asyncio, json, sys, time
    from treedistill.server.providers.base import RateLimitInfo
    from treedistill.server.scheduling.rate_gate import RateGate
    from treedistill.server.store.catalog import Store, open_database
    from treedistill.server.store.pacing import EndpointPacing

    async def main(db, calls):
        gate = RateGate(EndpointPacing(Store(open_database(db))), "openai http://endpoint")
        limits = RateLimitInfo(requests_limit=600, requests_remaining=500, requests_reset_seconds=0.1)
        print("ready", flush=True)
        sys.stdin.readline()  # both processes start together
        sent = []
        for _ in range(calls):
            ticket = await gate.wait()
            sent.append(ticket.sent_at)
            gate.observe(ticket, limits, used_tokens=100)  # every reply carries the limit headers
        print(json.dumps(sent))

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
""")


async def test_two_processes_on_one_endpoint_stay_within_its_known_limit(db_path):
    open_database(db_path).conn.close()  # migrated once, before both start
    gate = gate_on(db_path)  # the limit was learned earlier (by either process): 600/min
    gate.observe(await gate.wait(), RateLimitInfo(requests_limit=600, requests_remaining=500), used_tokens=100)
    senders = [subprocess.Popen([sys.executable, "-c", _SENDER, str(db_path), "12"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}) for _ in range(2)]
    for sender in senders:
        assert sender.stdout.readline().strip() == "ready", sender.stderr.read()
    for sender in senders:
        sender.stdin.write("go\n")
        sender.stdin.flush()
    outputs = [sender.communicate(timeout=60) for sender in senders]
    assert all(sender.returncode == 0 for sender in senders), outputs
    sent = sorted(t for out, _ in outputs for t in json.loads(out))
    spacing = 60 / 600 * MARGIN
    assert len(sent) == 24
    # 24 calls in two processes: spaced as one pace (a doubled rate would take half as long) ...
    assert sent[-1] - sent[0] >= 23 * spacing * 0.97
    # ... and never bunched: each call has a slot of its own (a late wake-up may shorten the next gap, never
    # two slots' worth), so any k + 1 calls span at least k - 1 spacings
    assert all(sent[j] - sent[i] >= (j - i - 1) * spacing for i in range(len(sent)) for j in range(i + 1, len(sent)))
    # no more than the limit's rate in any second
    assert max(sum(1 for t in sent if s <= t < s + 1.0) for s in sent) <= 10


async def test_a_short_first_retry_after_is_outgrown_by_the_longer_ones_of_later_bursts(db_path):
    """A bucket refilling a request every 0.1 s answers its first 429 with whatever is left of the current 0.1 s
    (here 0.01 s: a spacing ten times too short). The later bursts' Retry-Afters (0.09 s) count, up to twice the
    spacing each time: two bursts reach the bucket's spacing, where steps of 1/BLIND_DECREASE took seven."""
    gate = gate_on(db_path)
    gate.rate_limited(await gate.wait(), 0.01, None, default_pause=2.0)
    assert gate.pacing.get(ENDPOINT)["interval"] == pytest.approx(0.01 / BLIND_DECREASE)
    spacings = []
    for _ in range(2):
        ticket = await gate.wait()  # after the pause and past the last widening: a new burst
        while ticket.sent_at < gate.pacing.get(ENDPOINT)["decreased_at"]:
            ticket = await gate.wait()
        gate.rate_limited(ticket, 0.09, None, default_pause=2.0)
        spacings.append(gate.pacing.get(ENDPOINT)["interval"])
    assert spacings[0] == pytest.approx(2 * 0.01 / BLIND_DECREASE / BLIND_DECREASE)
    assert spacings[1] >= 0.1  # the bucket's own spacing, reached in two bursts


async def test_blind_burst_of_an_endpoint_that_counts_refused_requests_teaches_the_spacing(db_path):
    gate = gate_on(db_path)
    tickets = [await gate.wait() for _ in range(4)]
    # A bucket of 10 requests/s that charges refused requests: each 429 of the burst waits 0.1 s longer.
    for number, ticket in enumerate(tickets):
        gate.rate_limited(ticket, 0.01 + 0.1 * number, None, default_pause=2.0)
    row = gate.pacing.get(ENDPOINT)
    # not 0.01 / BLIND_DECREASE (the slack: time passing between the calls here lengthens the measured step)
    assert row["interval"] == pytest.approx(0.1 / BLIND_DECREASE, rel=0.25)
    assert row["paused_until"] - time.time() == pytest.approx(0.31, abs=0.02)


async def test_calls_waiting_at_the_gate_when_their_job_is_cancelled_are_never_paid(db_path, env, llm):
    engine = await Engine(db_path, env, requests_per_minute=60).start()  # one call a second
    try:
        project = engine.create_project("Gated", max_concurrency=4)
        job, _ = await engine.auto_distill(project.id, levels=1, tags_per_level=4, questions_per_tag=1)
        while llm.stats()["requests"] < 2:  # the root's tags, then the first question call; three more wait
            await engine.wait_for_job_change(job["id"], 0.05)
        engine.cancel_job(job["id"])
        sent = llm.stats()["requests"]
        await asyncio.sleep(2.5)  # the waiting calls' slots come and go: each finds its job stopped
        assert llm.stats()["requests"] == sent
        assert engine.get_progress(job["id"]).status == "cancelled"
    finally:
        await engine.close()
