"""Steering what is made, through the MCP client in both protocol eras: guidance in every prompt, a project's own
prompt templates (validated, versioned, never leaking), question styles asked for and stored per question, the
answer style, and the zh prompt set. The stand-in records every prompt it receives."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.drive import call, call_error
from treedistill.server.text.prompts import en, zh

pytestmark = pytest.mark.anyio

GUIDANCE = "Audience: high-school physics students. Use SI units. Avoid calculus."
STYLES = {"types": {"multiple-choice with four options": 3, "problem-solving with numbers": 1},
          "difficulties": {"exam level": 1}, "audiences": {"student": 1, "teacher": 1}}


def prompts_of(llm, task: str | None = None) -> list[str]:
    """The whole prompt (system, then first user message) of every logged request, of one task if given."""
    return [f"{entry['system']}\n{entry['user']}" for entry in llm.requests()
            if task is None or entry["task"] == task]


async def distill_one_leaf(client, project_id: int, questions: int = 2) -> tuple[dict, list[dict]]:
    """One tag, `questions` questions, all answered and judged by hand; returns the tag and the questions."""
    tag = (await call(client, "generate_tags", project_id=project_id, count=1))["tags"][0]
    asked = (await call(client, "extract_questions", project_id=project_id, tag_id=tag["id"],
                        count=questions))["questions"]
    for question in asked:
        await call(client, "answer_question", project_id=project_id, question_id=question["id"])
    await call(client, "score_answers", project_id=project_id)
    return tag, asked


async def test_guidance_reaches_tag_question_answer_and_judge_prompts(client, llm):
    llm.configure(record_prompts=True)
    project = await call(client, "create_project", name="Physics", guidance=GUIDANCE)
    assert project["guidance"] == GUIDANCE
    await distill_one_leaf(client, project["id"])
    assert {entry["task"] for entry in llm.requests()} == {"tags", "questions", "answer", "judge"}
    for task in ("tags", "questions", "answer", "judge"):
        assert prompts_of(llm, task) and all(GUIDANCE in prompt for prompt in prompts_of(llm, task)), task

    llm.reset()
    llm.configure(record_prompts=True)
    await call(client, "update_project", project_id=project["id"], guidance="")
    await call(client, "generate_tags", project_id=project["id"], count=1)
    assert not any("Guidance" in prompt or GUIDANCE in prompt for prompt in prompts_of(llm))


async def test_job_guidance_adds_to_the_projects_for_that_job_only(client, llm):
    llm.configure(record_prompts=True)
    project = await call(client, "create_project", name="Optics", guidance=GUIDANCE)
    job_guidance = "This job: focus on lenses and mirrors."
    job = await call(client, "auto_distill", project_id=project["id"], levels=1, tags_per_level=2,
                     questions_per_tag=2, guidance=job_guidance)
    done = await call(client, "get_progress", job_id=job["job_id"], wait_seconds=60)
    assert done["status"] == "completed" and done["params"]["guidance"] == job_guidance
    job_prompts = prompts_of(llm)
    assert {entry["task"] for entry in llm.requests()} == {"tags", "questions", "answer"}
    assert len(job_prompts) == 1 + 2 + 4
    assert all(GUIDANCE in prompt and job_guidance in prompt for prompt in job_prompts)

    await call(client, "score_answers", project_id=project["id"])  # not part of the job: the project's only
    judge = prompts_of(llm, "judge")
    assert len(judge) == 4 and all(GUIDANCE in p and job_guidance not in p for p in judge)


async def test_a_custom_template_is_exactly_what_the_model_receives(client, llm):
    llm.configure(record_prompts=True)
    project = await call(client, "create_project", name="Mechanics", guidance=GUIDANCE)
    template = ("Exam writer. Topic path: {path}; focus on {parent}.\n{guidance}\nWrite {count} questions.\n"
                "Already asked:\n{existing}\nUse {{braces}} literally.")
    saved = await call(client, "set_prompt", project_id=project["id"], kind="questions", template=template)
    assert saved["source"] == "custom" and saved["template"] == template and saved["version"].startswith("custom:")
    tag = (await call(client, "generate_tags", project_id=project["id"], count=1))["tags"][0]
    await call(client, "extract_questions", project_id=project["id"], tag_id=tag["id"], count=3)

    (received,) = [entry["user"] for entry in llm.requests() if entry["task"] == "questions"]
    path = f"Mechanics > {tag['name']}"
    filled = (f"Exam writer. Topic path: {path}; focus on {tag['name']}.\n"
              f"Guidance from the dataset's owner (follow it):\n{GUIDANCE}\nWrite 3 questions.\n"
              "Already asked:\n(none yet)\nUse {braces} literally.")
    # The template as filled, then the output contract the server always adds (the JSON with the exact count).
    assert received == f"{filled}\n\n{en.CONTRACTS['questions'].format(count=3, parent=tag['name'])}"

    answer_template = "You teach {path}. Be brief."
    await call(client, "set_prompt", project_id=project["id"], kind="answer", template=answer_template)
    questions = (await call(client, "list_questions", project_id=project["id"]))["questions"]
    await call(client, "answer_question", project_id=project["id"], question_id=questions[0]["id"])
    (system,) = [entry["system"] for entry in llm.requests() if entry["task"] == "answer"]
    # Guidance left out of the template still follows it, before the reasoning contract.
    assert system == (f"You teach {path}. Be brief.\n\nGuidance from the dataset's owner (follow it):\n{GUIDANCE}"
                      f"\n\n{en.CONTRACTS['answer']}")


@pytest.mark.parametrize(("kind", "template", "named"), [
    ("questions", "Write {count} about {topic}; avoid {existing}", "{topic}"),
    ("questions", "Write {count} questions; avoid {existing}.\nJSON like {\"a\": 1}", "line 2, column 11"),
    ("tags", "Write {count} sub-topics } of {path}; avoid {existing}", "Stray '}'"),
    ("tags", "Write sub-topics of {path}; avoid {existing}", "{count}"),
    ("questions", "Write {count} questions about {path}", "{existing}"),
    ("judge", "Grade {answer}", "{question}"),
    ("answer", "Expert in {path.upper}", "{path.upper}"),
    ("answer", "Expert in {path!r}", "{path!r}"),
    ("answer", "Expert in {0}", "{0}"),
    ("answer", "   ", "empty"),
])
async def test_bad_templates_are_refused_naming_the_problem_and_nothing_is_saved(client, llm, db_path, kind,
                                                                                 template, named):
    project = await call(client, "create_project", name="Refusals")
    error = await call_error(client, "set_prompt", project_id=project["id"], kind=kind, template=template)
    assert named in error
    prompts = (await call(client, "get_prompts", project_id=project["id"]))["prompts"]
    assert [prompt["source"] for prompt in prompts] == ["default"] * 5  # tags, questions, answer, judge, eval_judge
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM prompt_templates").fetchone()[0] == 0


async def test_unknown_prompt_kind_and_oversized_template_are_refused(client, llm):
    project = await call(client, "create_project", name="Kinds")
    assert "kind" in await call_error(client, "set_prompt", project_id=project["id"], kind="system",
                                      template="{path}")
    huge = "{count} {existing} " + "x" * 20_001
    assert "20000" in (await call_error(client, "set_prompt", project_id=project["id"], kind="tags",
                                        template=huge)).replace(",", "")


async def test_versions_are_recorded_exported_and_never_rewritten(client, llm, tmp_path):
    project = await call(client, "create_project", name="Versions")
    pid = project["id"]
    before = {p["kind"]: p for p in (await call(client, "get_prompts", project_id=pid))["prompts"]}
    assert set(before) == {"tags", "questions", "answer", "judge", "eval_judge"}
    assert all(p["source"] == "default" and p["version"].startswith("default:") for p in before.values())
    assert before["questions"]["required"] == ["count", "existing"] and "style" in before["questions"]["placeholders"]
    tag, first = await distill_one_leaf(client, pid, questions=1)

    custom = await call(client, "set_prompt", project_id=pid, kind="questions",
                        template="Questions on {path}: {count}, not {existing}")
    again = await call(client, "set_prompt", project_id=pid, kind="questions",
                       template="Questions on {path}: {count}, not {existing}")
    assert again["version"] == custom["version"] != before["questions"]["version"]
    second = (await call(client, "extract_questions", project_id=pid, tag_id=tag["id"], count=1))["questions"]
    await call(client, "answer_question", project_id=pid, question_id=second[0]["id"])
    reset = await call(client, "reset_prompt", project_id=pid, kind="questions")
    assert reset["source"] == "default" and reset["version"] == before["questions"]["version"]

    page = (await call(client, "list_questions", project_id=pid))["questions"]
    assert [q["prompt_version"] for q in page] == [before["questions"]["version"], custom["version"]]
    report = await call(client, "export_dataset", project_id=pid, format="raw", path="raw.jsonl")
    records = [json.loads(line) for line in Path(report["files"][0]["path"]).read_text().splitlines()]
    assert [(r["question_id"], r["question_prompt_version"]) for r in records] == [
        (first[0]["id"], before["questions"]["version"]), (second[0]["id"], custom["version"])]
    assert {r["tag_prompt_version"] for r in records} == {before["tags"]["version"]}
    assert {r["answer_prompt_version"] for r in records} == {before["answer"]["version"]}


async def test_a_prompt_override_never_leaks_into_another_project(client, llm):
    llm.configure(record_prompts=True)
    marker = "ZEBRA-ONLY-IN-PROJECT-A"
    first = await call(client, "create_project", name="Project A", guidance="A's own guidance")
    second = await call(client, "create_project", name="Project B")
    for kind, template in (("tags", f"{marker} {{count}} {{existing}}"), ("answer", f"{marker} {{path}}")):
        await call(client, "set_prompt", project_id=first["id"], kind=kind, template=template)
    await distill_one_leaf(client, second["id"])
    assert prompts_of(llm) and not any(marker in p or "A's own guidance" in p for p in prompts_of(llm))
    assert {p["source"] for p in (await call(client, "get_prompts", project_id=second["id"]))["prompts"]} == {
        "default"}


async def test_a_style_mix_is_asked_for_and_stored_per_question(client, llm, tmp_path):
    llm.configure(record_prompts=True)
    project = await call(client, "create_project", name="Exam", question_styles=STYLES,
                         answer_style={"max_words": 200, "formats": ["worked_example"]})
    pid = project["id"]
    tag = (await call(client, "generate_tags", project_id=pid, count=1))["tags"][0]
    made = (await call(client, "extract_questions", project_id=pid, tag_id=tag["id"], count=8))["questions"]

    (prompt,) = prompts_of(llm, "questions")
    plan = [line.strip().split(". ", 1)[1] for line in prompt.splitlines() if line.startswith("  ")]
    stored = [f"type: {q['question_type']}; difficulty: {q['difficulty']}; audience: {q['audience']}" for q in made]
    assert plan == stored  # the n-th question stores the n-th line of the plan it was asked to follow
    kinds = [q["question_type"] for q in made]
    assert (kinds.count("multiple-choice with four options"), kinds.count("problem-solving with numbers")) == (6, 2)
    assert [q["audience"] for q in made].count("teacher") == 4 and {q["difficulty"] for q in made} == {"exam level"}

    numeric = await call(client, "list_questions", project_id=pid, question_type="problem-solving with numbers")
    assert numeric["total"] == 2 and {q["id"] for q in numeric["questions"]} <= {q["id"] for q in made}
    page = await call(client, "review_dataset", project_id=pid, audience="teacher")
    assert (page["total"], page["counts"]["questions"]) == (4, 4)
    assert page["style_values"]["question_type"] == sorted(STYLES["types"])
    assert page["question_styles"]["types"] == STYLES["types"] and page["answer_style"]["max_words"] == 200

    for question in made[:3]:
        await call(client, "answer_question", project_id=pid, question_id=question["id"])
    systems = [entry["system"] for entry in llm.requests() if entry["task"] == "answer"]
    assert all("- at most 200 words" in s and "at least one worked example" in s for s in systems)
    report = await call(client, "export_dataset", project_id=pid, format="raw", path="mc.jsonl",
                        answered_only=False, question_type="multiple-choice with four options", audience="student")
    records = [json.loads(line) for line in Path(report["files"][0]["path"]).read_text().splitlines()]
    expected = [q["id"] for q in made if q["question_type"].startswith("multiple") and q["audience"] == "student"]
    assert [r["question_id"] for r in records] == expected
    assert all((r["question_type"], r["difficulty"], r["audience"]) ==
               ("multiple-choice with four options", "exam level", "student") for r in records)


async def test_a_jobs_style_mix_replaces_the_projects(client, llm):
    project = await call(client, "create_project", name="Job styles", question_styles=STYLES)
    job = await call(client, "auto_distill", project_id=project["id"], levels=1, tags_per_level=2,
                     questions_per_tag=4, answer=False, question_styles={"types": {"code": 1}})
    assert (await call(client, "get_progress", job_id=job["job_id"], wait_seconds=60))["status"] == "completed"
    questions = (await call(client, "list_questions", project_id=project["id"]))["questions"]
    assert len(questions) == 8
    assert {(q["question_type"], q["difficulty"], q["audience"]) for q in questions} == {("code", None, None)}


async def test_without_styles_questions_keep_the_default_instruction(client, llm):
    llm.configure(record_prompts=True)
    project = await call(client, "create_project", name="Plain")
    tag = (await call(client, "generate_tags", project_id=project["id"], count=1))["tags"][0]
    made = (await call(client, "extract_questions", project_id=project["id"], tag_id=tag["id"], count=3))["questions"]
    (prompt,) = prompts_of(llm, "questions")
    assert en.STYLE_DEFAULT_TYPE in prompt and en.STYLE_DEFAULT_DIFFICULTY in prompt and "plan" not in prompt
    assert "Guidance" not in prompt and "\n\n\n" not in prompt
    assert {(q["question_type"], q["difficulty"], q["audience"]) for q in made} == {(None, None, None)}


async def test_the_zh_prompt_set_has_the_same_features(client, llm):
    llm.configure(record_prompts=True)
    guidance = "面向高中生，使用国际单位制。"
    project = await call(client, "create_project", name="物理", language="zh", guidance=guidance,
                         question_styles={"types": {"选择题": 1}, "difficulties": {"考试难度": 1}},
                         answer_style={"max_words": 300, "formats": ["steps"]})
    pid = project["id"]
    await call(client, "set_prompt", project_id=pid, kind="tags", template="标签路径：{path}\n列出{count}个子主题，避开：\n{existing}")
    await distill_one_leaf(client, pid, questions=2)
    for task in ("tags", "questions", "answer", "judge"):
        assert all(guidance in p for p in prompts_of(llm, task)), task
    (tags_prompt,) = prompts_of(llm, "tags")
    assert tags_prompt.startswith("\n标签路径：物理\n列出1个子主题，避开：\n（暂无）") and zh.CONTRACTS["tags"][:10] in tags_prompt
    (questions_prompt,) = prompts_of(llm, "questions")
    assert "1. 类型：选择题；难度：考试难度" in questions_prompt and "2. 类型：选择题；难度：考试难度" in questions_prompt
    assert all("- 不超过 300 字" in p and "编号步骤" in p for p in prompts_of(llm, "answer") + prompts_of(llm, "judge"))
    stored = (await call(client, "list_questions", project_id=pid))["questions"]
    assert {(q["question_type"], q["difficulty"]) for q in stored} == {("选择题", "考试难度")}


async def test_megabyte_guidance_is_refused_and_changes_nothing(client, llm, db_path):
    huge = "be precise. " * 100_000
    assert "guidance" in await call_error(client, "create_project", name="Huge", guidance=huge)
    project = await call(client, "create_project", name="Small", guidance="short")
    assert "guidance" in await call_error(client, "update_project", project_id=project["id"], guidance=huge)
    assert "guidance" in await call_error(client, "auto_distill", project_id=project["id"], guidance=huge)
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT name, guidance FROM projects").fetchall() == [("Small", "short")]
        assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0
