"""The manual flow through the MCP client, in both protocol eras: projects, tags, questions, answers."""

from __future__ import annotations

import asyncio

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.conftest import FAKE_ANTHROPIC_KEY, FAKE_OPENAI_KEY
from tests.drive import call, call_error, table_counts

pytestmark = pytest.mark.anyio


async def test_manual_distillation_end_to_end(client, llm):
    project = await call(client, "create_project", name="Sports", max_concurrency=3)
    assert project["topic"] == "Sports" and project["question_model"]["model"] == "standin"

    top = await call(client, "generate_tags", project_id=project["id"], count=3)
    assert [tag["depth"] for tag in top["tags"]] == [1, 1, 1]
    first = top["tags"][0]
    children = await call(client, "generate_tags", project_id=project["id"], parent_tag_id=first["id"], count=4)
    assert len(children["tags"]) == 4 and children["parent_path"] == first["name"]
    leaf = children["tags"][0]
    assert leaf["path"] == f"{first['name']} > {leaf['name']}"

    extracted = await call(client, "extract_questions", project_id=project["id"], tag_id=leaf["id"], count=5)
    assert len(extracted["questions"]) == 5
    # The full path (topic included) went into the prompt: the stand-in echoes it in each question.
    assert all(f"Sports > {leaf['path']}" in q["text"] for q in extracted["questions"])

    question = extracted["questions"][0]
    result = await call(client, "answer_question", project_id=project["id"], question_id=question["id"])
    answer = result["answer"]
    assert result["generated"] is True
    assert answer["answer"].startswith("Answer to:") and "<think>" not in answer["answer"]
    assert answer["reasoning"].startswith("Reasoning about:")
    assert answer["reasoning_source"] == "think_tags"  # a non-reasoning teacher, prompted to think
    assert answer["input_tokens"] > 0 and answer["output_tokens"] > 0

    tree = await call(client, "get_tree", project_id=project["id"])
    assert (tree["tag_count"], tree["leaf_count"], tree["question_count"]) == (7, 6, 5)
    assert len(tree["roots"]) == 3 and len(tree["roots"][0]["children"]) == 4

    page = await call(client, "list_questions", project_id=project["id"], tag_id=first["id"], answered=True)
    assert page["total"] == 1 and page["questions"][0]["id"] == question["id"]
    unanswered = await call(client, "list_questions", project_id=project["id"], answered=False, limit=2)
    assert unanswered["total"] == 4 and len(unanswered["questions"]) == 2

    projects = await call(client, "list_projects")
    summary = projects["projects"][0]
    assert (summary["tags"], summary["questions"], summary["answers"]) == (7, 5, 1)
    assert summary["input_tokens"] > 0


async def test_answer_is_idempotent_unless_regenerate(client, llm):
    project = await call(client, "create_project", name="Idem")
    tag = (await call(client, "generate_tags", project_id=project["id"], count=1))["tags"][0]
    question = (await call(client, "extract_questions", project_id=project["id"], tag_id=tag["id"], count=1))
    qid = question["questions"][0]["id"]
    await call(client, "answer_question", project_id=project["id"], question_id=qid)
    before = llm.stats()["requests"]
    again = await call(client, "answer_question", project_id=project["id"], question_id=qid)
    assert again["generated"] is False and llm.stats()["requests"] == before
    fresh = await call(client, "answer_question", project_id=project["id"], question_id=qid, regenerate=True)
    assert fresh["generated"] is True and llm.stats()["requests"] == before + 1


@pytest.mark.parametrize(("provider", "flag", "source"), [
    ("openai", "reasoning_content", "reasoning_content"),
    ("openai", "reasoning_field", "reasoning"),
    ("openai", "think", "think_tags"),
    ("openai", "think_open_missing", "think_tags"),
    ("anthropic", "thinking", "thinking_blocks"),
    ("anthropic", "", "think_tags"),
])
async def test_reasoning_is_captured_apart_from_the_answer(client, llm, provider, flag, source):
    teacher = {"provider": provider, "model": f"standin+{flag}" if flag else "standin"}
    if provider == "anthropic" and flag == "thinking":
        teacher["thinking_budget"] = 2048
    project = await call(client, "create_project", name=f"R {provider} {flag}", answer_model=teacher)
    tag = (await call(client, "generate_tags", project_id=project["id"], count=1))["tags"][0]
    qid = (await call(client, "extract_questions", project_id=project["id"], tag_id=tag["id"], count=1))[
        "questions"][0]["id"]
    answer = (await call(client, "answer_question", project_id=project["id"], question_id=qid))["answer"]
    assert answer["reasoning_source"] == source
    assert answer["reasoning"].startswith("Reasoning about:")
    assert answer["answer"].startswith("Answer to:")
    assert "think>" not in answer["answer"] and "Answer to" not in answer["reasoning"]


async def test_teacher_without_reasoning_is_asked_again_then_fails_loudly(client, llm, db_path):
    project = await call(client, "create_project", name="Mute", answer_model={"model": "standin+none"})
    tag = (await call(client, "generate_tags", project_id=project["id"], count=1))["tags"][0]
    qid = (await call(client, "extract_questions", project_id=project["id"], tag_id=tag["id"], count=1))[
        "questions"][0]["id"]
    message = await call_error(client, "answer_question", project_id=project["id"], question_id=qid)
    assert "no reasoning" in message
    assert table_counts(db_path)["answers"] == 0
    prompts = [r for r in llm.requests() if r["task"] == "answer"]
    assert len(prompts) == 2  # re-asked once with the missing section pointed out, then a visible failure
    assert "require_reasoning=false" in message


async def test_duplicates_from_the_model_are_dropped_and_topped_up(client, llm, db_path):
    project = await call(client, "create_project", name="Dupes", question_model={"model": "standin+dupes"})
    first = await call(client, "generate_tags", project_id=project["id"], count=4)
    second = await call(client, "generate_tags", project_id=project["id"], count=4)
    names = [tag["name"] for tag in first["tags"] + second["tags"]]
    assert len(names) == 8
    assert len({name.casefold().strip("?! ") for name in names}) == 8
    tag_id = first["tags"][0]["id"]
    one = await call(client, "extract_questions", project_id=project["id"], tag_id=tag_id, count=5)
    two = await call(client, "extract_questions", project_id=project["id"], tag_id=tag_id, count=5)
    texts = [q["text"] for q in one["questions"] + two["questions"]]
    assert len(texts) == 10 and len({t.casefold().rstrip("?! ") for t in texts}) == 10
    assert table_counts(db_path)["questions"] == 10


async def test_malformed_json_is_repaired(client, llm):
    project = await call(client, "create_project", name="Broken", question_model={"model": "standin+malformed"})
    tags = await call(client, "generate_tags", project_id=project["id"], count=3)
    assert len(tags["tags"]) == 3 and all("```" not in tag["name"] for tag in tags["tags"])
    assert all(r["json_mode"] for r in llm.requests())  # structured mode was requested


async def test_unusable_output_is_retried_with_feedback_then_fails_with_nothing_stored(client, llm, db_path):
    project = await call(client, "create_project", name="Garbage", question_model={"model": "standin+garbage"})
    message = await call_error(client, "generate_tags", project_id=project["id"], count=3)
    assert "gave up after 2 attempts: OutputFormatError" in message
    assert table_counts(db_path)["tags"] == 0
    assert llm.stats()["requests"] == 3 * 2  # two fresh attempts, each re-asking twice with the error shown


async def test_bad_input_is_refused_and_changes_nothing(client, llm, db_path):
    project = await call(client, "create_project", name="Valid")
    before = table_counts(db_path)
    cases = [
        ("create_project", {"name": "   "}, "name must not be empty"),
        ("create_project", {"name": "Valid"}, "already exists"),
        ("create_project", {"name": "X", "language": "fr"}, "language"),
        ("create_project", {"name": "X", "question_model": {"provider": "mistral", "model": "m"}}, "provider"),
        ("create_project", {"name": "X", "max_concurrency": 0}, "max_concurrency"),
        ("generate_tags", {"project_id": 999}, "No project with id 999"),
        ("generate_tags", {"project_id": project["id"], "parent_tag_id": 555}, "No tag with id 555"),
        ("generate_tags", {"project_id": project["id"], "count": 0}, "count"),
        ("generate_tags", {"project_id": project["id"], "count": 101}, "count"),
        ("extract_questions", {"project_id": project["id"], "tag_id": 42}, "No tag with id 42"),
        ("answer_question", {"project_id": project["id"], "question_id": 7}, "No question with id 7"),
        ("get_tree", {"project_id": 31337}, "No project"),
    ]
    for tool, arguments, expected in cases:
        message = await call_error(client, tool, **arguments)
        assert expected in message, (tool, message)
    assert table_counts(db_path) == before
    assert llm.stats()["requests"] == 0


async def test_missing_api_key_is_reported_by_name(db_path, llm):
    from treedistill.server.app import create_server

    env = {"TREEDISTILL_MODEL": "standin", "OPENAI_BASE_URL": "https://llm.example.com/v1"}
    async with Client(create_server(db_path, env)) as client:
        message = await call_error(client, "create_project", name="NoKey")
        assert "OPENAI_API_KEY" in message
        team = {"provider": "anthropic", "model": "claude", "api_key_env": "MY_TEAM_KEY"}
        message = await call_error(client, "create_project", name="NoKey", question_model=team, answer_model=team)
        assert "MY_TEAM_KEY" in message
    assert table_counts(db_path)["projects"] == 0


async def test_keys_never_reach_database_logs_or_results(client, llm, db_path, caplog, capfd):
    caplog.set_level("DEBUG")
    project = await call(client, "create_project", name="Secret", answer_model={"provider": "anthropic",
                                                                                  "model": "standin"})
    tag = (await call(client, "generate_tags", project_id=project["id"], count=2))["tags"][0]
    qid = (await call(client, "extract_questions", project_id=project["id"], tag_id=tag["id"], count=2))[
        "questions"][0]["id"]
    results = [await client.call_tool("answer_question", {"project_id": project["id"], "question_id": qid})]
    llm.configure(fail_next=[401, 401, 401, 401, 401, 401])
    results.append(await client.call_tool("answer_question", {"project_id": project["id"], "question_id": qid,
                                                              "regenerate": True}))
    assert results[-1].is_error
    results.append(await client.call_tool("list_projects", {}))
    seen = "".join(str(r.content) + str(r.structured_content) for r in results)
    seen += caplog.text + "".join(capfd.readouterr())
    for path in db_path.parent.iterdir():
        seen += path.read_bytes().decode("latin-1")
    for key in (FAKE_OPENAI_KEY, FAKE_ANTHROPIC_KEY):
        assert key not in seen
        assert key[-8:] not in seen


async def test_slow_teacher_result_survives_a_client_timeout(server, llm):
    llm.configure(latency=1.0)
    async with Client(server) as client:
        project = await call(client, "create_project", name="Slow")
        llm.configure(latency=0)
        tag = (await call(client, "generate_tags", project_id=project["id"], count=1))["tags"][0]
        qid = (await call(client, "extract_questions", project_id=project["id"], tag_id=tag["id"], count=1))[
            "questions"][0]["id"]
        llm.configure(latency=1.0)
        with pytest.raises(MCPError, match="[Tt]imed out|[Tt]imeout"):
            await client.call_tool("answer_question", {"project_id": project["id"], "question_id": qid},
                                   read_timeout_seconds=0.2)
        # The paid call goes on; asking again joins it (or returns it stored) instead of paying twice.
        again = await call(client, "answer_question", project_id=project["id"], question_id=qid)
        assert again["answer"]["answer"].startswith("Answer to:")
        assert sum(1 for r in llm.requests() if r["task"] == "answer") == 1


async def test_interrupted_generate_tags_returns_its_stored_result(server, llm):
    async with Client(server) as client:
        project = await call(client, "create_project", name="Interrupted")
        llm.configure(latency=0.6)
        with pytest.raises(MCPError, match="[Tt]imed out|[Tt]imeout"):
            await client.call_tool("generate_tags", {"project_id": project["id"], "count": 3},
                                   read_timeout_seconds=0.1)
        await asyncio.sleep(0)  # nothing to await on the server side from here: the call runs on its own
        llm.configure(latency=0)
        again = await call(client, "generate_tags", project_id=project["id"], count=3)
        assert len(again["tags"]) == 3
        assert llm.stats()["requests"] == 1
        tree = await call(client, "get_tree", project_id=project["id"])
        assert tree["tag_count"] == 3


async def test_progress_notifications_while_waiting(server, llm):
    updates = []

    async def on_progress(progress, total, message):
        updates.append(message)

    async with Client(server) as client:
        project = await call(client, "create_project", name="Beats")
        llm.configure(latency=0.7)
        result = await client.call_tool("generate_tags", {"project_id": project["id"], "count": 2},
                                        progress_callback=on_progress)
        assert not result.is_error
    assert updates and all("waiting for the model" in message for message in updates)


async def test_chinese_project_uses_chinese_prompts(client, llm):
    project = await call(client, "create_project", name="中医", language="zh")
    tags = await call(client, "generate_tags", project_id=project["id"], count=2)
    assert all("子主题" in tag["name"] for tag in tags["tags"])
