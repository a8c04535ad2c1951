"""How long import_tree, a repeated import and export_tree take at the import bound (20,000 tags).

    python benchmarks/tree_import_bench.py [--tags 20000]

A three-level outline (100 chapters x 10 sections x topics, cut to --tags lines) in the text format goes
through the same TreeEditor the import_tree tool and `treedistill tree import` use, on a fresh database:
the first import adds every tag, the second finds them all and adds nothing, the export writes the same text.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from treedistill.server.config import MAX_IMPORT_TAGS  # noqa: E402
from treedistill.server.models import ModelSpec  # noqa: E402
from treedistill.server.store.catalog import Store, open_database  # noqa: E402
from treedistill.server.tree_editor import TreeEditor  # noqa: E402


def outline(tags: int) -> str:
    lines = [line for chapter in range(100) for line in (
        f"Chapter {chapter}", *(f"{indent}{name}" for section in range(10) for indent, name in (
            ("  ", f"Section {chapter}.{section}"),
            *(("    ", f"Topic {chapter}.{section}.{topic}") for topic in range(19)))))]
    return "\n".join(lines[:tags]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=MAX_IMPORT_TAGS)
    args = parser.parse_args()
    content = outline(args.tags)
    with tempfile.TemporaryDirectory() as folder:
        store = Store(open_database(Path(folder) / "bench.db"))
        spec = ModelSpec(provider="openai", model="bench")
        project = store.insert_project("Bench", "Bench", "en", spec, spec, 1)
        editor = TreeEditor(store)
        print("| step | tags | seconds |\n|---|---|---|")
        for step in ("import_tree (all new)", "import_tree again (all skipped)"):
            started = time.perf_counter()
            report = editor.import_tree(project.id, content, "text")
            print(f"| {step} | {report.added:,} added, {report.skipped:,} skipped | "
                  f"{time.perf_counter() - started:.2f} |")
        started = time.perf_counter()
        text, count = editor.export_tree(project.id, "text")
        assert text == content, "export -> import is not a fixed point"
        print(f"| export_tree (text, same as imported) | {count:,} | {time.perf_counter() - started:.2f} |")
        store.db.conn.close()


if __name__ == "__main__":
    main()
