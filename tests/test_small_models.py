"""A small model's habits (items wrapped in objects, the prompt's example and the parent copied) through the
MCP tools: only real items are stored, and the re-ask says why the others were refused."""

from __future__ import annotations

import pytest

from tests.test_manual_tools import call, table_counts

pytestmark = pytest.mark.anyio


async def test_echoes_and_wrapped_items_never_become_tags_or_questions(client, llm, db_path):
    project = await call(client, "create_project", name="Basketball",
                         question_model={"model": "standin+objects+echo"})
    tags = await call(client, "generate_tags", project_id=project["id"], count=3)
    names = [tag["name"] for tag in tags["tags"]]
    assert names == ["Basketball Subtopic 1", "Basketball Subtopic 2", "Basketball Subtopic 3"]
    # One reply kept its one real item; the top-up's reply had none, so it was re-asked with the reasons.
    tag_calls = llm.requests()
    assert len(tag_calls) == 3
    questions = await call(client, "extract_questions", project_id=project["id"], tag_id=tags["tags"][0]["id"],
                           count=2)
    texts = [question["text"] for question in questions["questions"]]
    assert len(texts) == 2 and all(text.startswith("Question ") and text.endswith("?") for text in texts)
    assert table_counts(db_path)["tags"] == 3 and table_counts(db_path)["questions"] == 2
    follow_up = llm.requests()[-1]
    assert follow_up["status"] == 200 and len(llm.requests()) == 5


async def test_the_reask_names_the_refused_items(client, llm):
    project = await call(client, "create_project", name="Chess", question_model={"model": "standin+echo"})
    await call(client, "generate_tags", project_id=project["id"], count=2)
    requests = llm.requests()
    assert len(requests) == 2 and requests[0]["prompt_key"] != requests[1]["prompt_key"]
    assert requests[0]["task_key"] == requests[1]["task_key"]  # the same task, asked again with feedback
    feedback = requests[1]["last_user"]
    assert "'sub-topic 1' is a placeholder" in feedback and "'Chess' repeats the tag path" in feedback
