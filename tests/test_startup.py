"""Startup: the benchmark spawns a real `treedistill serve` and gets `initialize` answered; no SDK is loaded,
nor the CLI's progress bars, nor the near-duplicate search's datasketch (and scipy), nor the price table, nor
numpy and pandas (which sqlite-utils imports when they are installed); each tool's input schema is made once."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from pydantic import ConfigDict

from tests.conftest import ROOT


def test_startup_benchmark_runs_ours_beside_the_bare_sdk_and_prints_the_medians():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "startup_bench.py"), "--runs", "1", "--phases"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"run 1: initialize answered after [\d.]+ s \([\d.]+ s of CPU\), tools/list \(\d{2} tools\) "
                        r"after [\d.]+ s; bare SDK server: [\d.]+ s \([\d.]+ s of CPU\), [\d.]+ s", lines[0])
    assert lines[1].startswith("median of 1: ") and "the 1.0 s target" in lines[1]
    assert lines[2].startswith("bare SDK server, median of 1: ")
    assert re.match(r"ours / bare SDK: [\d.]+ \(initialize\), [\d.]+ \(CPU\)", lines[3])
    assert lines[4] == "phases of one start (seconds, one process):"
    assert lines[5].split() == ["wall", "CPU"]
    assert re.match(r" +of which the SDK's Tool.from_function \(\d{2} tools\) +[\d.]+ +[\d.]+$", lines[9])
    assert lines[10].lstrip().startswith("Engine.start on a fresh database")


def test_serving_imports_nothing_heavy_before_a_call(tmp_path):
    # `treedistill serve` as a client starts it: initialize, tools/list, then stdin closes and the server exits.
    # The CLI's progress bars (rich.progress; the SDK loads rich's console for its log handler), sqlite-utils'
    # numpy and pandas, the dataset card's yaml, and the doctor module (it names the setup in the banner that only
    # a person at a terminal sees) stay out. The price table loads 1 s after the engine starts (made 60 s here,
    # so that a slow machine cannot load it before the server ends).
    heavy = ("openai", "anthropic", "treedistill.server.cli.live_progress", "rich.progress", "datasketch", "scipy",
             "genai_prices", "numpy", "pandas", "yaml", "treedistill.server.cli.doctor",
             "treedistill.server.endpoint_check")
    code = ("import atexit, sys; import treedistill.server.engine as engine; engine.PRICE_PRELOAD_DELAY = 60; "
            f"atexit.register(lambda: print('loaded:', sorted(m for m in {heavy!r} if m in sys.modules), "
            "file=sys.stderr)); from treedistill.server.cli.main import main; main(['serve'])")
    requests = [{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}},
                {"jsonrpc": "2.0", "method": "notifications/initialized"},
                {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}]
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "OPENAI_API_KEY": "k",
           "TREEDISTILL_DB": str(tmp_path / "x.db")}
    # stdin closes only once both replies are in: the server ends at its end, cancelling a request still running.
    with subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env) as server:
        server.stdin.write("".join(json.dumps(request) + "\n" for request in requests))
        server.stdin.flush()
        replies = [json.loads(server.stdout.readline()) for _ in range(2)]
        server.stdin.close()
        errors = server.stderr.read()
        assert server.wait(timeout=60) == 0, errors[-2000:]
    assert [reply["id"] for reply in replies] == [1, 2] and len(replies[1]["result"]["tools"]) > 40
    assert errors.splitlines()[-1] == "loaded: []"


def test_the_price_table_loads_in_a_thread_after_the_engine_starts(tmp_path):
    code = f"""
import asyncio, sys, threading, time
import treedistill.server.engine as engine_module
engine_module.PRICE_PRELOAD_DELAY = 0.05
async def main():
    engine = await engine_module.Engine({str(tmp_path / 'x.db')!r}, {{'OPENAI_API_KEY': 'k'}}).start()
    print('at start:', 'genai_prices' in sys.modules)
    deadline = time.monotonic() + 30
    while 'genai_prices.data_snapshot' not in sys.modules and time.monotonic() < deadline:
        await asyncio.sleep(0.01)  # the loop keeps running: the table loads beside it, in its own thread
    for thread in [t for t in threading.enumerate() if t.name == 'price-table']:
        thread.join()
    print('after:', 'genai_prices.data_snapshot' in sys.modules)
    await engine.close()
asyncio.run(main())
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[:2] == ["at start: False", "after: True"]


def test_what_the_start_up_and_each_sdk_loaded_is_frozen_once_out_of_the_collectors_sight(tmp_path):
    # A full collection walks every tracked object on the event loop; once the start-up's modules, the price table and
    # an SDK are frozen it walks only what came after (server/heap.py): 50-65 ms of stall per pass before.
    code = f"""
import asyncio, gc, time
import treedistill.server.engine as engine_module
from treedistill.server.models import ModelSpec
from treedistill.server.providers import build_provider
engine_module.PRICE_PRELOAD_DELAY = 0.05
def tracked(thing):
    return any(obj is thing for obj in gc.get_objects())
async def main():
    engine = await engine_module.Engine({str(tmp_path / 'x.db')!r}, {{'OPENAI_API_KEY': 'k'}}).start()
    print('at start:', gc.get_freeze_count(), tracked(engine_module.Engine))
    deadline = time.monotonic() + 30
    while not gc.get_freeze_count() and time.monotonic() < deadline:  # the price table's thread freezes at its end
        await asyncio.sleep(0.01)
    print('start-up frozen:', gc.get_freeze_count() > 10000, tracked(engine_module.Engine))
    environ = {{'OPENAI_API_KEY': 'k', 'ANTHROPIC_API_KEY': 'k'}}
    for provider in ('openai', 'anthropic'):
        build_provider(ModelSpec(provider=provider, model='m'), environ)
        sdk = __import__(provider)
        class Between:
            pass
        build_provider(ModelSpec(provider=provider, model='n'), environ)  # no second freeze
        print(provider, 'SDK tracked:', tracked(sdk.AsyncClient if provider == 'anthropic' else sdk.AsyncOpenAI),
              'made after it:', tracked(Between))
    await engine.close()
asyncio.run(main())
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["at start: 0 True", "start-up frozen: True False",
                                        "openai SDK tracked: False made after it: True",
                                        "anthropic SDK tracked: False made after it: True"]


def test_numpy_still_imports_after_the_store_hid_it_from_sqlite_utils():
    code = ("import sys; import treedistill.server.store.catalog; assert 'numpy' not in sys.modules; "
            "import numpy; from treedistill.server.text import minhash_lsh; print(numpy.zeros(2).tolist())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[0.0, 0.0]"


def test_input_schemas_are_those_of_argument_models_that_refuse_extra_keys(server):
    # strict_tool adds `additionalProperties: false` to the schema the SDK made instead of generating a second
    # one from a stricter model: what the server sends must be that model's schema to the byte, key order included.
    tools = server._tool_manager.list_tools()
    assert len(tools) > 40
    for tool in tools:
        sdk_model = tool.fn_metadata.arg_model
        strict = type(sdk_model.__name__, (sdk_model,), {
            "model_config": ConfigDict(extra="forbid", title=sdk_model.__name__), "__module__": __name__})
        assert json.dumps(tool.parameters) == json.dumps(strict.model_json_schema(by_alias=True)), tool.name
