"""The person is asked, through the client, before a costly plan starts and before a subtree is deleted (MCP
elicitation, in both protocol eras): only their yes goes ahead; a no or a cancel changes nothing. Clients
without elicitation keep confirm_large / confirm."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import pytest
from mcp import Client
from mcp_types import ElicitRequestParams, ElicitResult

from treedistill.server.app import create_server
from tests.drive import call, call_error, table_counts

pytestmark = pytest.mark.anyio

DEAR = {"model": "standin", "input_price_per_mtok": 1000.0, "output_price_per_mtok": 1000.0}
SHAPE = {"levels": 2, "tags_per_level": 5, "questions_per_tag": 5}


class Person:
    """The person behind the client: answers every elicitation with `action` and records what they were shown."""

    def __init__(self, action: str, approve: bool = True) -> None:
        self.action, self.approve = action, approve
        self.shown: list[str] = []

    async def __call__(self, context: object, params: ElicitRequestParams) -> ElicitResult:
        self.shown.append(params.message)
        return ElicitResult(action=self.action, content={"approve": self.approve} if self.action == "accept" else None)


@pytest.fixture(params=["auto", "legacy"])
def connect(request, db_path, env) -> Callable[..., Client]:
    """A client of a server whose plans above one cent need confirming, once per protocol era."""
    server = create_server(db_path, {**env, "TREEDISTILL_CONFIRM_COST_ABOVE": "0.01"}, retry_base_delay=0.05)
    return lambda person=None: Client(server, mode=request.param, elicitation_callback=person)


def jobs(db_path) -> int:
    with sqlite3.connect(db_path) as conn:
        return conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]


async def test_a_costly_plan_starts_only_when_the_person_says_yes(connect, db_path, llm):
    person = Person("accept")
    async with connect(person) as client:
        project = await call(client, "create_project", name="Dear", question_model=DEAR, answer_model=DEAR)
        started = await call(client, "auto_distill", project_id=project["id"], **SHAPE)
        assert started["job_id"] is not None and started["created"] is True
        await call(client, "cancel_job", job_id=started["job_id"])
    [shown] = person.shown
    assert shown.startswith("This plan is expected to cost about $") and shown.endswith("?")
    assert ("above the $0.01 threshold. Start a distillation job of project 1: 156 model calls (30 tags, "
            "125 questions, 125 answers), about ") in shown


REFUSALS = pytest.mark.parametrize("answer", [("decline", True), ("cancel", True), ("accept", False)],
                                   ids=["decline", "cancel", "no"])


@REFUSALS
async def test_declined_or_cancelled_the_plan_starts_nothing_even_with_confirm_large(connect, db_path, llm, answer):
    person = Person(*answer)
    async with connect(person) as client:
        project = await call(client, "create_project", name="Dear", question_model=DEAR, answer_model=DEAR)
        before = table_counts(db_path)
        result = await call(client, "auto_distill", project_id=project["id"], confirm_large=True, **SHAPE)
    assert result["job_id"] is None and result["message"] == (
        "The person did not approve this plan: nothing was started.")
    assert len(person.shown) == 1 and jobs(db_path) == 0 and table_counts(db_path) == before
    assert llm.stats()["requests"] == 0


async def test_a_plan_below_the_threshold_and_an_estimate_ask_nothing(connect, db_path, llm):
    person = Person("decline")
    async with connect(person) as client:
        project = await call(client, "create_project", name="Cheap")
        await call(client, "auto_distill", project_id=project["id"], estimate_only=True, **SHAPE)
        started = await call(client, "auto_distill", project_id=project["id"], levels=1, tags_per_level=1,
                             questions_per_tag=1)
        await call(client, "get_progress", job_id=started["job_id"], wait_seconds=30)
    assert person.shown == [] and started["created"] is True


async def test_without_elicitation_confirm_large_still_decides(connect, db_path, llm):
    async with connect() as client:
        project = await call(client, "create_project", name="Dear", question_model=DEAR, answer_model=DEAR)
        message = await call_error(client, "auto_distill", project_id=project["id"], **SHAPE)
        assert "confirm_large=true" in message and jobs(db_path) == 0
        started = await call(client, "auto_distill", project_id=project["id"], confirm_large=True, **SHAPE)
        assert started["created"] is True
        await call(client, "cancel_job", job_id=started["job_id"])


async def seeded_tree(client: Client) -> int:
    """A project with two tags, the first with two children; returns the first tag's id."""
    project = await call(client, "create_project", name="Sports")
    top = await call(client, "generate_tags", project_id=project["id"], count=2)
    first = top["tags"][0]["id"]
    await call(client, "generate_tags", project_id=project["id"], parent_tag_id=first, count=2)
    return first


async def test_a_subtree_is_deleted_only_when_the_person_says_yes(connect, db_path, llm):
    person = Person("accept")
    async with connect(person) as client:
        tag_id = await seeded_tree(client)
        result = await call(client, "delete_tag", project_id=1, tag_id=tag_id)  # no confirm from the model
    assert result["deleted"] is True and result["tags"] == 3
    [shown] = person.shown
    assert shown.startswith("Delete the tag '") and shown.endswith(
        "of project 1 with everything below it: 3 tag(s), 0 question(s) and 0 answer(s)? This cannot be undone.")
    assert table_counts(db_path)["tags"] == 1


@REFUSALS
async def test_a_declined_deletion_deletes_nothing_even_with_confirm(connect, db_path, llm, answer):
    person = Person(*answer)
    async with connect(person) as client:
        tag_id = await seeded_tree(client)
        before = table_counts(db_path)
        result = await call(client, "delete_tag", project_id=1, tag_id=tag_id, confirm=True)
    assert result["deleted"] is False and "did not approve" in result["message"]
    assert table_counts(db_path) == before and len(person.shown) == 1


async def test_without_elicitation_confirm_still_decides_the_deletion(connect, db_path, llm):
    async with connect() as client:
        tag_id = await seeded_tree(client)
        preview = await call(client, "delete_tag", project_id=1, tag_id=tag_id)
        assert preview["deleted"] is False and "call again with confirm=true" in preview["message"]
        assert table_counts(db_path)["tags"] == 4
        deleted = await call(client, "delete_tag", project_id=1, tag_id=tag_id, confirm=True)
    assert deleted["deleted"] is True and table_counts(db_path)["tags"] == 1
