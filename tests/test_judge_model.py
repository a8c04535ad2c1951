"""score_answers(judge_model=...): the caller's judge model is remembered for the project only once a judge
call with it has worked; a model that fails every call must not become the project's judge."""

from __future__ import annotations

import pytest

from tests.test_curation import answered_ids
from tests.drive import distilled_project
from tests.drive import call, call_error

pytestmark = pytest.mark.anyio


async def test_a_failing_judge_model_is_not_remembered(client, llm):
    pid = await distilled_project(client)
    ids = await answered_ids(client, pid)
    llm.reset()

    llm.configure(fail_next=[404])  # the model does not exist
    message = await call_error(client, "score_answers", project_id=pid, question_ids=ids[:1],
                               judge_model={"provider": "openai", "model": "no-such-judge"})
    assert "could not score" in message
    report = await call(client, "score_answers", project_id=pid, question_ids=ids[:1])
    assert (report["judge_model"], report["judged"]) == ("standin", 1)  # the answer model judges, as before
    assert [r["model"] for r in llm.requests()] == ["no-such-judge", "standin"]

    good = {"provider": "anthropic", "model": "strict-judge"}
    report = await call(client, "score_answers", project_id=pid, question_ids=ids[1:2], judge_model=good)
    assert (report["judge_model"], report["judged"]) == ("strict-judge", 1)
    llm.configure(fail_next=[404])
    await call_error(client, "score_answers", project_id=pid, question_ids=ids[2:3],
                     judge_model={"provider": "anthropic", "model": "no-such-judge"})
    report = await call(client, "score_answers", project_id=pid, question_ids=ids[2:3])
    assert (report["judge_model"], report["judged"]) == ("strict-judge", 1)  # the last judge that worked


async def test_a_judge_model_is_remembered_when_some_calls_worked(client, llm):
    pid = await distilled_project(client)
    ids = await answered_ids(client, pid)
    llm.configure(fail_next=[400])  # one answer's own request is rejected, the other one is judged
    report = await call(client, "score_answers", project_id=pid, question_ids=ids[:2],
                        judge_model={"provider": "anthropic", "model": "strict-judge"})
    assert (report["judged"], report["failed"]) == (1, 1)
    assert (await call(client, "score_answers", project_id=pid, question_ids=ids[:2]))["judge_model"] == "strict-judge"


async def test_judge_calls_carry_the_verdict_schema(client, llm):
    """A judge call asks for the verdict's schema as tag and question calls ask for their list's: a
    structured-output endpoint then constrains the verdict (OpenAI json_schema, Anthropic's forced tool)."""
    from treedistill.server.text.judge import verdict_schema

    pid = await distilled_project(client)
    ids = await answered_ids(client, pid)
    llm.reset()
    report = await call(client, "score_answers", project_id=pid, question_ids=ids[:1])
    assert report["judged"] == 1
    report = await call(client, "score_answers", project_id=pid, question_ids=ids[1:2],
                        judge_model={"provider": "anthropic", "model": "strict-judge"})
    assert report["judged"] == 1
    sent = [r for r in llm.requests() if r["task"] == "judge"]
    assert [(r["api"], r["status"]) for r in sent] == [("openai", 200), ("anthropic", 200)]
    assert sent[0]["response_format"] == "json_schema" and sent[0]["schema"] == verdict_schema()
    assert sent[1]["tool"] is not None
    schema = verdict_schema()
    assert schema["properties"]["score"] == {"type": "integer", "minimum": 1, "maximum": 10}
    assert schema["required"] == ["score", "rationale"] and schema["additionalProperties"] is False
