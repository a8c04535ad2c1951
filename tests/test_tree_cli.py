"""`treedistill tree import|export` and `treedistill distill --tree FILE`, as a subprocess against the stand-in."""

from __future__ import annotations

import sqlite3

from tests.drive import cli, one_error_line
from tests.test_cli import stored

SYLLABUS = "# Mechanics\nThe first term.\n## Kinematics\n- Velocity\n- Acceleration\n# Optics\n"


def paths(db_path) -> list[str]:
    with sqlite3.connect(db_path) as db:
        return [row[0] for row in db.execute("SELECT path FROM tags ORDER BY depth, id")]


def test_distill_with_a_tree_imports_it_and_distills_its_leaves_without_tag_calls(env, db_path, llm, tmp_path):
    syllabus = tmp_path / "physics.md"
    syllabus.write_text(SYLLABUS, encoding="utf-8")
    command = ["distill", "Physics", "--tree", str(syllabus), "--questions", "2", "--concurrency", "2", "--plain"]
    done = cli(env, db_path, *command)
    assert done.returncode == 0, done.stderr
    assert "Tree: added 5 tag(s), 0 already there." in done.stdout + done.stderr
    assert paths(db_path) == ["Mechanics", "Optics", "Mechanics > Kinematics", "Mechanics > Kinematics > Velocity",
                              "Mechanics > Kinematics > Acceleration"]
    assert stored(db_path) == {"tags": 5, "questions": 6, "answers": 6}  # 3 leaves x 2
    tasks = [request["task"] for request in llm.requests()]
    assert (tasks.count("tags"), tasks.count("questions"), tasks.count("answer")) == (0, 3, 6)

    again = cli(env, db_path, *command)  # the same command again: nothing new, nothing paid
    assert again.returncode == 0, again.stderr
    assert "Tree: added 0 tag(s), 5 already there." in again.stdout + again.stderr
    assert stored(db_path) == {"tags": 5, "questions": 6, "answers": 6} and len(llm.requests()) == 9

    # --estimate with --tree: the plan as if the outline were imported; nothing is written, no model called.
    lenses = tmp_path / "lenses.json"
    lenses.write_text('{"Optics": ["Lenses"]}', encoding="utf-8")
    estimate = cli(env, db_path, "distill", "Physics", "--tree", str(lenses), "--questions", "2", "--estimate")
    assert estimate.returncode == 0, estimate.stderr
    assert "3 model calls; up to 0 tags, 2 questions, 2 answers." in estimate.stdout  # only Lenses is new
    fresh = cli(env, tmp_path / "fresh.db", "distill", "Optics", "--tree", str(syllabus), "--questions", "1",
                "--estimate")
    assert "6 model calls; up to 0 tags, 3 questions, 3 answers." in fresh.stdout, fresh.stderr
    assert stored(db_path) == {"tags": 5, "questions": 6, "answers": 6} and len(llm.requests()) == 9
    assert not (tmp_path / "fresh.db").exists()

    exported = cli(env, db_path, "tree", "export", "--format", "markdown")
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout == "- Mechanics\n  - Kinematics\n    - Velocity\n    - Acceleration\n- Optics\n"
    branch = cli(env, db_path, "tree", "export", "--project", "Physics", "--under", "Mechanics > Kinematics")
    assert branch.stdout == "Kinematics\n  Velocity\n  Acceleration\n"


def test_tree_import_merges_under_a_tag_and_reports_by_line(env, db_path, llm, tmp_path):
    syllabus = tmp_path / "physics.md"
    syllabus.write_text(SYLLABUS, encoding="utf-8")
    assert cli(env, db_path, "distill", "Physics", "--tree", str(syllabus), "--no-answer", "--questions", "1",
               "--plain").returncode == 0
    toc = tmp_path / "more.txt"
    toc.write_text("1 Velocity\n1.1 Average velocity\n2 Jerk\n", encoding="utf-8")
    dry = cli(env, db_path, "tree", "import", str(toc), "--under", "Mechanics > Kinematics", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        "Would add 2 tag(s) under 'Mechanics > Kinematics' of project 'Physics'; 1 already there.",
        "  + Mechanics > Kinematics > Velocity > Average velocity", "  + Mechanics > Kinematics > Jerk",
        "Dry run: nothing was written."]
    assert len(paths(db_path)) == 5
    done = cli(env, db_path, "tree", "import", str(toc), "--under", "Mechanics > Kinematics")
    assert done.stdout.splitlines()[0].startswith("Added 2 tag(s)") and len(paths(db_path)) == 7

    bad = tmp_path / "bad.txt"
    bad.write_text("Waves\n    Sound\n  Light\n", encoding="utf-8")
    for command in (["tree", "import", str(bad)], ["distill", "Acoustics", "--tree", str(bad)]):
        refused = cli(env, db_path, *command)
        assert refused.returncode == 2
        assert "line 3: indented by 2" in one_error_line(refused.stderr)
    assert len(paths(db_path)) == 7
    with sqlite3.connect(db_path) as db:  # the refused distill made no project
        assert [row[0] for row in db.execute("SELECT name FROM projects")] == ["Physics"]
