"""The benchmark scripts keep working: each runs at a tiny size and prints its figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize(("script", "args", "expected"), [
    ("auto_distill_bench.py", ["--smoke"], "ratio"),
    ("progress_100k.py", ["--questions", "2000", "--tags", "20"], "get_progress: median"),
    ("export_100k.py", ["--records", "300"], "| alpaca, think, jsonl |"),
    ("event_loop_stalls.py", ["--sizes", "2000"], "auto_distill planning 2,000 answers"),
    ("rate_limit_bench.py", ["--smoke"], "(429 + retry-after only): completed, 7 calls"),
    ("batch_cost_bench.py", ["--smoke"], "batch / online cost per 1,000 answers"),
    ("calls_per_call.py", ["--smoke"], "bare pool of the same SDK calls:"),
    ("queue_writes.py", ["--items", "20"], "| claim (one item, its own commit) |"),
    ("sdk_cost_bench.py", ["--calls", "10"], "treedistill OpenAIChatProvider.complete (streamed, raw events)"),
    ("progress_under_load.py", ["--levels", "1", "--tags", "2", "--questions", "2"],
     "get_progress while the job runs: p50"),
    ("decontaminate_bench.py", ["--questions", "2000", "--benchmark", "200", "--planted", "10"],
     "| both | 1,800 | 400 | 9 | 9/9 |"),
    ("report_bench.py", ["--records", "2000", "--near-duplicates"], "| whole project, per tag | 2,000 | 1,000 |"),
    pytest.param("report_view_bench.py", ["--tags", "80"], "80 tags (40 leaves drawn)", marks=pytest.mark.skipif(
        not Path("/usr/bin/chromium").exists(), reason="needs Chromium (apt-get install chromium)")),
    ("review_load_bench.py", ["--questions", "400", "--tags", "4", "--no-browser"],
     "| review_dataset, first page (200), all (400 match) |"),
    ("tree_import_bench.py", ["--tags", "300"], "| import_tree again (all skipped) | 0 added, 300 skipped |"),
    ("semantic_dup_bench.py", ["--questions", "2000"], "| 2,000 | 384 |"),
    ("real_model/eval_student.py", ["--smoke"], "| Optics | 1 | 2.00 | - | 0% |"),
])
def test_benchmark_script_runs(script, args, expected):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert expected in done.stdout


def test_the_standins_heavy_tail_keeps_the_mean_and_stretches_the_tail():
    import random
    import statistics

    from tests.standin_llm import Faults, _delay

    rng = random.Random(7)
    jittered = sorted(_delay(Faults(latency=0.1, jitter=0.5), rng) for _ in range(20_000))
    tailed = sorted(_delay(Faults(latency=0.1, tail=1.0), rng) for _ in range(20_000))
    assert statistics.mean(jittered) == pytest.approx(0.1, rel=0.02)
    assert statistics.mean(tailed) == pytest.approx(0.1, rel=0.05)
    assert jittered[-1] <= 0.15 and tailed[int(len(tailed) * 0.99)] > 0.4  # p99 about 6x the mean
    assert statistics.median(tailed) < 0.07  # most replies come quicker than the mean
