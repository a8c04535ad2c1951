"""Real endpoints' habits end to end: a small model's (items wrapped in objects, the prompt's example and the
parent copied: only real items are stored, the re-ask says why) and streams dropped half-way (retried)."""

from __future__ import annotations

import sqlite3

import pytest

from treedistill.server.engine import Engine
from tests.test_engine_truth import adds_up, settle
from tests.drive import call, table_counts

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


async def test_broken_streams_are_retried_and_never_stored(db_path, env, llm):
    """A third of the streamed replies drop half-way: the job still ends with exactly what it planned."""
    engine = await Engine(db_path, env, retry_base_delay=0.01).start()
    try:
        project = engine.create_project("Streams", max_concurrency=4)
        llm.configure(break_stream_rate=0.3, seed=5)
        job, _ = await engine.auto_distill(project.id, levels=1, tags_per_level=3, questions_per_tag=2)
        progress = await settle(engine, job["id"], timeout=60)
    finally:
        await engine.close()
    broken = [r for r in llm.requests() if r["outcome"] == "broken"]
    assert broken and all(r["stream"] for r in llm.requests())
    assert progress.status == "completed" and adds_up(progress)
    assert (progress.tags.done, progress.questions.done, progress.answers.done) == (3, 6, 6)
    assert table_counts(db_path)["answers"] == 6
    with sqlite3.connect(db_path) as conn:
        answers = [row[0] for row in conn.execute("SELECT answer FROM answers")]
    assert all(answer.startswith("Answer to: ") and answer.endswith("?") for answer in answers)  # whole replies
