"""auto_distill on a tree people bring, through the MCP client: grow=false (or levels=0) asks questions exactly
for the tree's leaves and makes no tag call; tag_id works on one branch and touches nothing outside it."""

from __future__ import annotations

import sqlite3

import pytest

from tests.drive import call, call_error
from tests.test_tree_edit import LEAVES, MARKDOWN, leaf_paths

pytestmark = pytest.mark.anyio


def questions_per_path(db_path) -> dict[str, int]:
    with sqlite3.connect(db_path) as db:
        return dict(db.execute("SELECT t.path, COUNT(*) FROM questions q JOIN tags t ON t.id = q.tag_id"
                               " GROUP BY t.path"))


def snapshot_outside(db_path, branch_root: str) -> list[tuple]:
    """Every tag, question and answer outside a branch (by path), with their ids: what a branch job must not touch."""
    with sqlite3.connect(db_path) as db:
        outside = "t.path != :root AND t.path NOT LIKE :below"
        params = {"root": branch_root, "below": f"{branch_root} > %"}
        return [*db.execute(f"SELECT 'tag', t.id, t.path, t.parent_id FROM tags t WHERE {outside} ORDER BY t.id",
                            params),
                *db.execute(f"SELECT 'question', q.id, q.text, a.answer FROM questions q JOIN tags t ON t.id ="
                            f" q.tag_id LEFT JOIN answers a ON a.question_id = q.id WHERE {outside} ORDER BY q.id",
                            params)]


async def import_physics(client) -> tuple[int, dict[str, int]]:
    project_id = (await call(client, "create_project", name="Physics", max_concurrency=4))["id"]
    tree = await call(client, "import_tree", project_id=project_id, content=MARKDOWN, format="markdown")
    return project_id, {tag["path"]: tag["id"] for tag in tree["added_tags"]}


async def finish(client, job_id: int) -> dict:
    progress = await call(client, "get_progress", job_id=job_id, wait_seconds=60)
    assert progress["status"] == "completed", progress
    return progress


@pytest.mark.parametrize("shape", [{"grow": False}, {"levels": 0}])
async def test_grow_false_asks_questions_exactly_for_the_imported_leaves(client, llm, db_path, shape):
    project_id, _ = await import_physics(client)
    plan = dict(project_id=project_id, questions_per_tag=2, **shape)
    estimate = await call(client, "auto_distill", estimate_only=True, **plan)
    assert (estimate["planned_tags"], estimate["planned_questions"], estimate["planned_answers"],
            estimate["planned_calls"]) == (0, 10, 10, 5 + 10)
    assert estimate["estimate"]["tags"]["calls"] == 0 and estimate["estimate"]["questions"]["calls"] == 5
    assert llm.stats()["requests"] == 0
    started = await call(client, "auto_distill", **plan)
    assert (started["planned_tags"], started["planned_questions"], started["planned_calls"]) == (0, 10, 15)
    progress = await finish(client, started["job_id"])
    assert progress["questions"]["done"] == 10 and progress["answers"]["done"] == 10
    tasks = [request["task"] for request in llm.requests()]
    assert tasks.count("tags") == 0 and tasks.count("questions") == 5 and tasks.count("answer") == 10
    assert leaf_paths(db_path) == LEAVES  # the tree is as it was imported
    assert questions_per_path(db_path) == {leaf: 2 for leaf in LEAVES}
    again = await call(client, "auto_distill", **plan)
    assert again["job_id"] is None and again["planned_calls"] == 0
    empty = (await call(client, "create_project", name="Empty"))["id"]
    nothing = await call(client, "auto_distill", **{**plan, "project_id": empty})
    assert nothing["job_id"] is None and "needs import_tree or add_tags first" in nothing["message"]


async def test_a_branch_job_touches_nothing_outside_its_branch(client, llm, db_path):
    project_id, ids = await import_physics(client)
    # Something outside the branch first: questions and answers on Optics' leaves.
    await finish(client, (await call(client, "auto_distill", project_id=project_id, grow=False, questions_per_tag=1,
                                     tag_id=ids["Optics"]))["job_id"])
    assert questions_per_path(db_path) == {"Optics > Reflection": 1, "Optics > Refraction": 1}
    before = snapshot_outside(db_path, "Mechanics > Kinematics")
    llm.reset()
    kinematics = ids["Mechanics > Kinematics"]
    plan = dict(project_id=project_id, tag_id=kinematics, levels=1, tags_per_level=3, questions_per_tag=2)
    estimate = await call(client, "auto_distill", estimate_only=True, **plan)
    # Kinematics has 2 children: one more is made, then 3 leaves get 2 questions each.
    assert (estimate["planned_tags"], estimate["planned_questions"], estimate["planned_calls"]) == (1, 6, 1 + 3 + 6)
    progress = await finish(client, (await call(client, "auto_distill", **plan))["job_id"])
    assert (progress["tags"]["done"], progress["questions"]["done"], progress["answers"]["done"]) == (1, 6, 6)
    assert snapshot_outside(db_path, "Mechanics > Kinematics") == before
    for request in llm.requests():  # every prompt of the job was about the branch
        if request["task"] in ("tags", "questions"):
            assert "Physics > Mechanics > Kinematics" in request["last_user"]
    counts = questions_per_path(db_path)
    assert sum(n for path, n in counts.items() if path.startswith("Mechanics > Kinematics > ")) == 6
    # Uniform acceleration (depth 4) is below levels=1 of the branch: left alone, as deeper tags are by the root.
    assert "Mechanics > Kinematics > Acceleration > Uniform acceleration" not in counts
    # Two levels below Optics (depth 1): its new child (depth 2) is expanded too, as the job's follow-up.
    before = snapshot_outside(db_path, "Optics")
    plan = dict(project_id=project_id, tag_id=ids["Optics"], levels=2, tags_per_level=3, questions_per_tag=1,
                answer=False)
    started = await call(client, "auto_distill", **plan)
    assert (started["planned_tags"], started["planned_questions"]) == (1 + 3 * 3, 9)
    progress = await finish(client, started["job_id"])
    assert (progress["tags"]["done"], progress["questions"]["done"]) == (10, 9)
    assert snapshot_outside(db_path, "Optics") == before
    optics_leaves = {path for path in leaf_paths(db_path) if path.startswith("Optics > ")}
    assert len(optics_leaves) == 9 and all(path.count(" > ") == 2 for path in optics_leaves)
    assert all(questions_per_path(db_path)[path] == 1 for path in optics_leaves)
    assert "No tag with id 999999" in await call_error(client, "auto_distill", project_id=project_id,
                                                       tag_id=999_999)


async def test_edits_are_refused_while_work_is_in_flight_below_the_tag(client, llm, db_path):
    project_id, ids = await import_physics(client)
    llm.configure(latency=0.4)
    job = await call(client, "auto_distill", project_id=project_id, grow=False, questions_per_tag=1,
                     tag_id=ids["Mechanics"])
    velocity = ids["Mechanics > Kinematics > Velocity"]
    refusals = [
        await call_error(client, "rename_tag", project_id=project_id, tag_id=velocity, name="Speed"),
        await call_error(client, "move_tag", project_id=project_id, tag_id=ids["Mechanics > Kinematics"],
                         new_parent_tag_id=ids["Optics"]),
        await call_error(client, "add_tags", project_id=project_id, parent_tag_id=ids["Mechanics"], names=["Statics"]),
        await call_error(client, "import_tree", project_id=project_id, content="Statics", format="text",
                         parent_tag_id=ids["Mechanics > Kinematics"]),
        await call_error(client, "delete_tag", project_id=project_id, tag_id=velocity, confirm=True),
    ]
    for text in refusals:
        assert "queued or running on tag" in text and "Nothing was" in text, text
    # Outside the branch the tree stays editable.
    await call(client, "add_tags", project_id=project_id, parent_tag_id=ids["Optics"], names=["Diffraction"])
    await finish(client, job["job_id"])
    renamed = await call(client, "rename_tag", project_id=project_id, tag_id=velocity, name="Speed")
    assert renamed["path"] == "Mechanics > Kinematics > Speed"


def test_planner_on_a_branch_and_without_growing(db_path):
    """plan_top_up on real SQLite: grow=false and levels=0 plan questions for exactly the leaves; a branch plan
    has items only inside the branch; unmade_work counts a branch job's levels from its tag."""
    from treedistill.server.models import ModelSpec
    from treedistill.server.scheduling.planner import plan_top_up, unmade_work
    from treedistill.server.store.catalog import Store, open_database
    from treedistill.server.tree_editor import TreeEditor

    store = Store(open_database(db_path))
    spec = ModelSpec(model="standin")
    project_id = store.insert_project("Plan", "Plan", "en", spec, spec, 2).id
    TreeEditor(store).import_tree(project_id, MARKDOWN, "markdown")
    ids = {tag.path: tag.id for tag in store.all_tags(project_id)}
    leaves = sorted(ids[path] for path in LEAVES)
    for shape in ({"levels": 0}, {"levels": 3, "grow": False}):
        plan = plan_top_up(store, project_id, tags_per_level=9, questions_per_tag=2, answer=True, **shape)
        assert [item["kind"] for item in plan.items] == ["questions"] * 5
        assert sorted(item["tag_id"] for item in plan.items) == leaves
        assert (plan.tags, plan.tag_calls, plan.questions, plan.answers, plan.calls) == (0, 0, 10, 10, 15)
    optics = plan_top_up(store, project_id, levels=1, tags_per_level=3, questions_per_tag=1, answer=False,
                         tag_id=ids["Optics"])
    assert [(item["kind"], item["tag_id"]) for item in optics.items] == [
        ("tags", ids["Optics"]), ("questions", ids["Optics > Reflection"]), ("questions", ids["Optics > Refraction"])]
    assert (optics.tags, optics.questions) == (1, 3)
    branch = {"levels": 1, "base_depth": 2, "tags_per_level": 2, "questions_per_tag": 5, "answer": False}
    assert (unmade_work("tags", 2, 1, branch).tags, unmade_work("tags", 2, 1, branch).questions) == (1, 5)
    store.db.conn.close()
