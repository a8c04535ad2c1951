"""Trees people bring and edit, through the MCP client: import_tree, export_tree, add_tags, rename_tag, move_tag,
and auto_distill on an imported tree (grow=false) or on one branch (tag_id)."""

from __future__ import annotations

import json
import sqlite3

import anyio
import pytest

from tests.drive import call, call_error, table_counts

pytestmark = pytest.mark.anyio

MARKDOWN = """# Mechanics
Prose under a heading is skipped.
## Kinematics
- Velocity
- Acceleration
  - Uniform acceleration
## Dynamics
# Optics
1. Reflection
2. Refraction
"""
TEXT_TOC = """1 Mechanics
1.1 Kinematics
1.1.1 Velocity
1.1.2 Acceleration
1.1.2.1 Uniform acceleration
1.2 Dynamics
2 Optics
2.1 Reflection
2.2 Refraction
"""
TEXT_OUTLINE = "Mechanics\n    Kinematics\n        Velocity\n        Acceleration\n            Uniform acceleration\n" \
               "    Dynamics\nOptics\n    Reflection\n    Refraction\n"
JSON_NESTED = json.dumps({"Mechanics": {"Kinematics": {"Velocity": {}, "Acceleration": {"Uniform acceleration": None}},
                                        "Dynamics": {}}, "Optics": ["Reflection", "Refraction"]})
JSON_NAMED = json.dumps([{"name": "Mechanics", "children": [
    {"name": "Kinematics", "children": ["Velocity", {"name": "Acceleration", "children": ["Uniform acceleration"]}]},
    {"name": "Dynamics"}]}, {"name": "Optics", "children": [{"name": "Reflection"}, {"name": "Refraction"}]}])
EXPECTED_PATHS = ["Mechanics", "Optics", "Mechanics > Kinematics", "Mechanics > Dynamics", "Optics > Reflection",
                  "Optics > Refraction", "Mechanics > Kinematics > Velocity", "Mechanics > Kinematics > Acceleration",
                  "Mechanics > Kinematics > Acceleration > Uniform acceleration"]
LEAVES = {"Mechanics > Kinematics > Velocity", "Mechanics > Kinematics > Acceleration > Uniform acceleration",
          "Mechanics > Dynamics", "Optics > Reflection", "Optics > Refraction"}


def tag_rows(db_path) -> list[tuple]:
    """(path, depth, parent path) of every tag, parents first."""
    with sqlite3.connect(db_path) as db:
        return db.execute("SELECT t.path, t.depth, p.path FROM tags t LEFT JOIN tags p ON p.id = t.parent_id"
                          " ORDER BY t.depth, t.id").fetchall()


def leaf_paths(db_path) -> set[str]:
    with sqlite3.connect(db_path) as db:
        return {row[0] for row in db.execute("SELECT path FROM tags t WHERE NOT EXISTS"
                                             " (SELECT 1 FROM tags c WHERE c.parent_id = t.id)")}


async def question_path(client, project_id: int) -> str:
    """The tag path list_questions shows for the project's one question."""
    (question,) = (await call(client, "list_questions", project_id=project_id))["questions"]
    return question["tag_path"]


async def new_project(client, name: str = "Physics") -> int:
    return (await call(client, "create_project", name=name))["id"]


@pytest.mark.parametrize("fmt, content", [("markdown", MARKDOWN), ("text", TEXT_TOC), ("text", TEXT_OUTLINE),
                                          ("json", JSON_NESTED), ("json", JSON_NAMED)])
async def test_import_builds_the_exact_tree_and_a_second_import_adds_nothing(client, llm, db_path, fmt, content):
    project_id = await new_project(client)
    first = await call(client, "import_tree", project_id=project_id, content=content, format=fmt)
    assert (first["added"], first["skipped"], first["dry_run"]) == (9, 0, False)
    assert [tag["path"] for tag in first["added_tags"]] == [  # document order
        "Mechanics", "Mechanics > Kinematics", "Mechanics > Kinematics > Velocity",
        "Mechanics > Kinematics > Acceleration", "Mechanics > Kinematics > Acceleration > Uniform acceleration",
        "Mechanics > Dynamics", "Optics", "Optics > Reflection", "Optics > Refraction"]
    rows = tag_rows(db_path)
    assert [path for path, _, _ in rows] == EXPECTED_PATHS
    assert all(depth == path.count(" > ") + 1 and (parent or "") == path.rpartition(" > ")[0]
               for path, depth, parent in rows)
    again = await call(client, "import_tree", project_id=project_id, content=content, format=fmt)
    assert (again["added"], again["skipped"], again["added_tags"]) == (0, 9, [])
    assert tag_rows(db_path) == rows
    assert llm.stats()["requests"] == 0  # an import calls no model


@pytest.mark.parametrize("fmt", ["markdown", "text", "json"])
async def test_export_then_import_is_a_fixed_point(client, db_path, fmt):
    source = await new_project(client, "Source")
    await call(client, "import_tree", project_id=source, content=MARKDOWN, format="markdown")
    exported = await call(client, "export_tree", project_id=source, format=fmt)
    assert exported["tags"] == 9
    copy = await new_project(client, "Copy")
    imported = await call(client, "import_tree", project_id=copy, content=exported["content"], format=fmt)
    assert imported["added"] == 9
    assert (await call(client, "export_tree", project_id=copy, format=fmt))["content"] == exported["content"]
    again = await call(client, "import_tree", project_id=copy, content=exported["content"], format=fmt)
    assert (again["added"], again["skipped"]) == (0, 9)
    optics = next(tag["id"] for tag in imported["added_tags"] if tag["path"] == "Optics")
    branch = await call(client, "export_tree", project_id=copy, format="text", tag_id=optics)
    assert (branch["tags"], branch["content"]) == (3, "Optics\n  Reflection\n  Refraction\n")


async def test_import_merges_under_a_parent_with_the_duplicate_rule_of_generated_tags(client, db_path):
    project_id = await new_project(client)
    first = await call(client, "import_tree", project_id=project_id, content=MARKDOWN, format="markdown")
    mechanics = first["added_tags"][0]["id"]
    # Case, width, spacing and punctuation differ: the same tags after normalisation (text/dedup.py).
    more = "KINEMATICS\n  velocity!\n  Jerk\nDynamics \nStatics\n  Statics of fluids\n"
    dry = await call(client, "import_tree", project_id=project_id, content=more, format="text",
                     parent_tag_id=mechanics, dry_run=True)
    assert (dry["added"], dry["skipped"], dry["dry_run"]) == (3, 3, True)
    assert [tag["path"] for tag in dry["added_tags"]] == [
        "Mechanics > Kinematics > Jerk", "Mechanics > Statics", "Mechanics > Statics > Statics of fluids"]
    assert dry["skipped_paths"] == ["Mechanics > Kinematics", "Mechanics > Kinematics > Velocity",
                                    "Mechanics > Dynamics"]
    assert len(tag_rows(db_path)) == 9  # the dry run wrote nothing
    done = await call(client, "import_tree", project_id=project_id, content=more, format="text",
                      parent_tag_id=mechanics)
    assert (done["added"], done["skipped"], done["skipped_paths"]) == (3, 3, dry["skipped_paths"])
    assert [tag["path"] for tag in done["added_tags"]] == [tag["path"] for tag in dry["added_tags"]]
    assert len(tag_rows(db_path)) == 12
    # A repeat inside one outline is one tag too (its children merged).
    repeat = await call(client, "import_tree", project_id=project_id, format="text",
                        content="Waves\n  Sound\nWaves\n  Light\n")
    assert repeat["added"] == 3 and [t["path"] for t in repeat["added_tags"]] == ["Waves", "Waves > Sound",
                                                                                 "Waves > Light"]


async def test_bad_outlines_are_refused_by_line_and_change_nothing(client, db_path):
    project_id = await new_project(client)
    await call(client, "import_tree", project_id=project_id, content="Mechanics\n", format="text")
    before = table_counts(db_path)
    huge = "\n".join(f"Tag {n}" for n in range(100_000))
    cases = [
        ("text", "Mechanics\n    Kinematics\n  Dynamics\n", "line 3: indented by 2, which lines up with no line"),
        ("text", "Mechanics\n\tKinematics\n    Dynamics\n", "line 3: indentation mixes tabs and spaces"),
        ("markdown", "- A\n    - B\n  - C\n", "line 3: indented by 2"),
        ("json", json.dumps({"Energy": {"Heat": {"Energy": {"Heat": {}}}}}),
         "JSON at Energy > Heat > 'Energy': 'Energy' repeats the name of a tag above it"),
        ("text", huge, "line 20001: more than 20,000 tags in one import"),
        ("markdown", "# Mechanics\n-   \n", "line 2: empty tag name"),
        ("text", "Mechanics\n  " + "x" * 10_000 + "\n", "line 2: a tag name of 10,000 characters; at most 200"),
        ("text", "1.1 Kinematics\n1.2 Dynamics\n", "line 1: section 1.1 has no enclosing section"),
        ("json", '{"Mechanics": {"Kinematics": }', "line 1, column 30: not valid JSON"),
        ("json", '{"Mechanics": 3}', "JSON at Mechanics > (value): expected an object, a list or null"),
    ]
    for fmt, content, error in cases:
        text = await call_error(client, "import_tree", project_id=project_id, content=content, format=fmt)
        assert error in text and "Nothing was imported" in text, (error, text)
    # Under a tag, the names above the import point count as ancestors too.
    mechanics = json.loads((await call(client, "export_tree", project_id=project_id, format="json"))["content"])
    assert mechanics == [{"name": "Mechanics"}]
    tree = await call(client, "get_tree", project_id=project_id)
    assert "line 2: 'mechanics' repeats the name of a tag above it (Mechanics > Statics > mechanics)" in await call_error(
        client, "import_tree", project_id=project_id, content="Statics\n  mechanics\n", format="text",
        parent_tag_id=tree["roots"][0]["id"])
    assert "Input should be 'markdown', 'text' or 'json'" in (
        await call_error(client, "import_tree", project_id=project_id, content="A", format="yaml"))
    assert table_counts(db_path) == before


async def test_an_import_is_all_or_nothing(client, db_path):
    """A bad line at the very end leaves not one of the tags before it."""
    project_id = await new_project(client)
    content = "\n".join(f"Chapter {n}\n  Section {n}" for n in range(500)) + "\n    \tBad\n"
    assert "line 1001" in await call_error(client, "import_tree", project_id=project_id, content=content,
                                           format="text")
    assert table_counts(db_path)["tags"] == 0


async def test_add_rename_and_move_keep_siblings_unique_and_paths_whole(client, db_path):
    project_id = await new_project(client)
    tree = await call(client, "import_tree", project_id=project_id, content=MARKDOWN, format="markdown")
    ids = {tag["path"]: tag["id"] for tag in tree["added_tags"]}
    added = await call(client, "add_tags", project_id=project_id, parent_tag_id=ids["Mechanics"],
                       names=["Statics", "dynamics", "Statics", " Fluid  mechanics "])
    assert [t["path"] for t in added["added_tags"]] == ["Mechanics > Statics", "Mechanics > Fluid mechanics"]
    assert (added["added"], added["skipped"], added["skipped_paths"]) == (2, 1, ["Mechanics > Dynamics"])
    top = await call(client, "add_tags", project_id=project_id, parent_tag_id=None, names=["Thermodynamics"])
    assert top["added_tags"][0]["depth"] == 1
    assert "empty tag name" in await call_error(client, "add_tags", project_id=project_id,
                                                parent_tag_id=None, names=["Waves", "  "])

    kinematics = ids["Mechanics > Kinematics"]
    question = (await call(client, "add_questions", project_id=project_id, tag_id=ids[
        "Mechanics > Kinematics > Acceleration > Uniform acceleration"], questions=["What is a = dv/dt?"]))
    assert len(question["added"]) == 1
    assert "already has this name" in await call_error(client, "rename_tag", project_id=project_id,
                                                       tag_id=kinematics, name="STATICS")
    renamed = await call(client, "rename_tag", project_id=project_id, tag_id=kinematics, name="Motion")
    assert renamed["path"] == "Mechanics > Motion"
    assert ("Mechanics > Motion > Acceleration > Uniform acceleration", 4, "Mechanics > Motion > Acceleration") in \
        tag_rows(db_path)
    assert await question_path(client, project_id) == "Mechanics > Motion > Acceleration > Uniform acceleration"

    for target in (kinematics, ids["Mechanics > Kinematics > Acceleration"]):
        assert "cannot move into its own subtree" in await call_error(
            client, "move_tag", project_id=project_id, tag_id=kinematics, new_parent_tag_id=target)
    moved = await call(client, "move_tag", project_id=project_id, tag_id=ids["Mechanics > Kinematics > Acceleration"],
                       new_parent_tag_id=ids["Optics"])
    assert (moved["path"], moved["depth"], moved["parent_id"]) == ("Optics > Acceleration", 2, ids["Optics"])
    assert ("Optics > Acceleration > Uniform acceleration", 3, "Optics > Acceleration") in tag_rows(db_path)
    assert await question_path(client, project_id) == "Optics > Acceleration > Uniform acceleration"
    to_top = await call(client, "move_tag", project_id=project_id, tag_id=ids["Optics > Reflection"],
                        new_parent_tag_id=None)
    assert (to_top["path"], to_top["depth"], to_top["parent_id"]) == ("Reflection", 1, None)
    await call(client, "add_tags", project_id=project_id, parent_tag_id=ids["Mechanics"], names=["Refraction"])
    assert "already has this name" in await call_error(client, "move_tag", project_id=project_id,
                                                       tag_id=ids["Optics > Refraction"],
                                                       new_parent_tag_id=ids["Mechanics"])
    rows = tag_rows(db_path)
    assert all(depth == path.count(" > ") + 1 and (parent or "") == path.rpartition(" > ")[0]
               for path, depth, parent in rows)


def test_a_failure_in_the_middle_of_an_import_leaves_nothing(tmp_path, monkeypatch):
    """The import is one transaction: a write failing after hundreds of tags are in undoes all of them."""
    from treedistill.server.models import ModelSpec
    from treedistill.server.store.catalog import Store, open_database
    from treedistill.server.tree_editor import TreeEditor

    store = Store(open_database(tmp_path / "t.db"))
    spec = ModelSpec(provider="openai", model="standin")
    project = store.insert_project("Atomic", "Atomic", "en", spec, spec, 2)
    editor = TreeEditor(store)
    editor.import_tree(project.id, "Kept\n  Below\n", "text")
    real_insert, calls = store.insert_tags, []

    def failing_insert(*args, **kwargs):
        calls.append(1)
        if len(calls) == 700:
            raise sqlite3.OperationalError("disk I/O error (injected)")
        return real_insert(*args, **kwargs)

    monkeypatch.setattr(store, "insert_tags", failing_insert)
    content = "Kept\n" + "".join(f"  Section {n}\n    Part {n}\n" for n in range(500))
    with pytest.raises(sqlite3.OperationalError, match="injected"):
        editor.import_tree(project.id, content, "text")
    assert [tag.path for tag in store.all_tags(project.id)] == ["Kept", "Kept > Below"]
    monkeypatch.setattr(store, "insert_tags", real_insert)
    assert editor.import_tree(project.id, content, "text").added == 1000
    store.db.conn.close()


async def test_depth_bound_holds_for_imports_adds_and_moves(client, db_path):
    from treedistill.server.config import MAX_TAG_DEPTH

    project_id = await new_project(client)
    chain = "".join(f"{'  ' * level}Level {level + 1}\n" for level in range(MAX_TAG_DEPTH))
    tree = await call(client, "import_tree", project_id=project_id, content=chain + "Side\n  Below side\n",
                      format="text")
    ids = {tag["path"].rpartition(" > ")[2]: tag["id"] for tag in tree["added_tags"]}
    before = table_counts(db_path)
    assert f"line {MAX_TAG_DEPTH + 1}: 'Level {MAX_TAG_DEPTH + 1}' would be at depth {MAX_TAG_DEPTH + 1}" in \
        await call_error(client, "import_tree", project_id=project_id, format="text",
                         content=chain + f"{'  ' * MAX_TAG_DEPTH}Level {MAX_TAG_DEPTH + 1}\n")
    assert f"at most {MAX_TAG_DEPTH} levels deep" in await call_error(
        client, "add_tags", project_id=project_id, parent_tag_id=ids[f"Level {MAX_TAG_DEPTH}"], names=["Deeper"])
    assert f"would reach depth {MAX_TAG_DEPTH + 2}" in await call_error(
        client, "move_tag", project_id=project_id, tag_id=ids["Side"], new_parent_tag_id=ids[f"Level {MAX_TAG_DEPTH}"])
    assert table_counts(db_path) == before
    # A case-only rename keeps the tag (it is its own sibling, not a duplicate).
    assert (await call(client, "rename_tag", project_id=project_id, tag_id=ids["Side"], name="SIDE"))["path"] == "SIDE"


async def test_a_large_import_leaves_the_server_answering(client, db_path):
    """20,000 tags import in a worker thread: other calls are answered while it runs."""
    project_id = await new_project(client)
    content = "".join(f"Chapter {c}\n" + "".join(f"  Topic {c}.{t}\n" for t in range(199)) for c in range(100))
    answered_during_import, done = [], anyio.Event()

    async def big_import() -> None:
        report = await call(client, "import_tree", project_id=project_id, content=content, format="text")
        assert report["added"] == 20_000
        done.set()

    async def quick_calls() -> None:
        while not done.is_set():
            await call(client, "list_projects")
            if not done.is_set():
                answered_during_import.append(1)
            await anyio.sleep(0.05)

    async with anyio.create_task_group() as group:
        group.start_soon(big_import)
        group.start_soon(quick_calls)
    assert len(answered_during_import) >= 3  # a blocked event loop would answer none after the import began
    assert table_counts(db_path)["tags"] == 20_000
