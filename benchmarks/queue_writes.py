"""Pages an item's claim and its finish write to SQLite's log, and what each costs, through the queue's own methods.

    python benchmarks/queue_writes.py               # 300 items of a 400-answer job
    python benchmarks/queue_writes.py --items 20    # tests/test_benchmarks.py

Every page a commit changes is a frame of 4 KiB appended to the write-ahead log, and copied back into the database
at the next checkpoint. A count of frames does not move with the machine's load, unlike the microseconds beside it.
The log is not checkpointed meanwhile (as in the engine, whose checkpoints run in a thread of their own).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from treedistill.server.models import ModelSpec  # noqa: E402
from treedistill.server.store.catalog import Store, open_database  # noqa: E402
from treedistill.server.store.queue import WorkItem, WorkQueue  # noqa: E402
from treedistill.server.store.workers import WorkerRegistry  # noqa: E402

FRAME_BYTES = 24 + 4096  # a frame's header and its page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=300, help="items claimed and finished, one at a time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "queue.db"
        store = Store(open_database(path))
        queue, workers = queue_with_a_job(store, args.items + 100)
        store.db.execute("PRAGMA wal_autocheckpoint=0")
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        log = Path(f"{path}-wal")
        claims, finishes = [], []
        for _ in range(args.items):
            (item,), claim = measured(log, lambda: queue.claim(1, workers.id, most=1))
            claims.append(claim)
            finishes.append(measured(log, lambda: finish(store, queue, item))[1])
        indexes = [name for (name,) in store.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'work_items' AND sql IS NOT NULL"
            " ORDER BY name")]
    print(f"work_items indexes: {', '.join(indexes)}")
    print("| step | log frames per commit | us per step (median) |")
    print("|---|---|---|")
    for name, steps in (("claim (one item, its own commit)", claims), ("finish (hold, done, commit)", finishes)):
        print(f"| {name} | {statistics.mean(s[0] for s in steps):.2f} | {statistics.median(s[1] for s in steps):.0f} |")


def queue_with_a_job(store: Store, answers: int) -> tuple[WorkQueue, WorkerRegistry]:
    """A project with `answers` questions and a running job with an answer item for each, and a live worker."""
    spec = ModelSpec(model="m")
    project = store.insert_project("Queue writes", "Tea", "en", spec, spec, 16)
    (tag,) = store.insert_tags(project.id, None, ["Green tea"])
    queue = WorkQueue(store)
    with store.transaction():
        questions = store.insert_questions(project.id, tag, [f"Question number {n}?" for n in range(answers)])
        job_id = queue.create_job(project.id, {"answer": True})
        queue.add_job_items(project.id, job_id, [{"kind": "answer", "question_id": q.id} for q in questions])
        queue.set_job_status(job_id, "running")
    workers = WorkerRegistry(store, "bench", timeout=600)
    workers.register()
    return queue, workers


def finish(store: Store, queue: WorkQueue, item: WorkItem) -> None:
    """Finish the item as the engine does: its lease held, then done, in one transaction."""
    with store.transaction():
        queue.hold(item)
        queue.finish_item(item, "done", result={"question_id": item.question_id})


def measured(log: Path, step: Callable[[], object]) -> tuple[object, tuple[float, float]]:
    """(what `step` returned, (log frames it added, microseconds it took))."""
    before = os.path.getsize(log) if log.exists() else 0
    started = time.perf_counter()
    result = step()
    elapsed = (time.perf_counter() - started) * 1e6
    return result, ((os.path.getsize(log) - before) / FRAME_BYTES, elapsed)


if __name__ == "__main__":
    main()
