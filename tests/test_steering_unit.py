"""Fast unit tests of steering: template validation and filling, style plans, and the schema step on an old
database."""

from __future__ import annotations

import hashlib
import sqlite3
from collections import Counter

import pytest
from sqlite_utils import Database

from treedistill.server.errors import InvalidInput
from treedistill.server.models import AnswerStyle, QuestionStyles
from treedistill.server.store import migrations
from treedistill.server.store.catalog import Store, open_database
from treedistill.server.text import prompts
from treedistill.server.text.prompts.templates import KINDS, placeholders_in, template_version, validate_template
from treedistill.server.text.styles import plan_styles, share_out


def test_placeholders_are_read_in_order_with_literal_braces_skipped() -> None:
    assert placeholders_in('{path} {{"tags": []}} {count}\n{existing}') == ["path", "count", "existing"]


@pytest.mark.parametrize(("template", "message"), [
    ("{count} {existing} {", "Stray '{' at line 1, column 20"),
    ("{count}\n{existing} }", "Stray '}' at line 2, column 12"),
    ("{count} {existing} {a{b}}", "Stray '{' at line 1, column 20"),
    ("{count} {existing} {}", "'{}' at line 1, column 20 is not a placeholder"),
    ("{count} {existing} {parent:>10}", "'{parent:>10}'"),
    ("{count} {existing} {style}", "Unknown placeholder(s) {style} in the tags template"),
    ("{existing}", "must contain {count}"),
])
def test_invalid_templates_are_refused_naming_the_problem(template: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_template("tags", template)
    assert message in str(caught.value)


def test_every_default_template_passes_its_own_validation() -> None:
    for language in prompts.LANGUAGES:
        for kind in KINDS:
            template, custom, version = prompts.template_of(language, kind)
            validate_template(kind, template)
            assert not custom and version == template_version(template, custom=False)
    assert prompts.prompt_version("en", "tags") != prompts.prompt_version("zh", "tags")


def test_without_steering_no_block_leaves_a_trace() -> None:
    for text in (prompts.tags_prompt("en", "A > B", 3, []), prompts.answer_system("en", "A"),
                 prompts.judge_prompt("en", "A", "Q?", "Ans"), prompts.questions_prompt("zh", "甲 > 乙", 2, [])):
        assert "\n\n\n" not in text and "\x00" not in text and not text.endswith("\n")
    assert prompts.answer_system("en", "A").startswith(
        "You are an expert in A. Answer the user's question accurately and thoroughly.\nFirst think")


@pytest.mark.parametrize(("language", "digest"), [
    ("en", "c518065e3b5cfd1ca02084ecc8dd83c7ec6d8841dd4431f236e9fc7a657c0809"),
    ("zh", "b85997e1913395777914f05a745a1f29112941b6774e7a22dcb360a86ecc7b31")])
def test_a_project_that_sets_nothing_sends_exactly_the_prompts_it_sent_before_templates(language, digest) -> None:
    """Digests of the four prompts as the fixed prompt sets wrote them (before guidance, styles and templates)."""
    texts = [prompts.tags_prompt(language, "T > A", 3, ["x"]), prompts.questions_prompt(language, "T > A", 4, ["y"]),
             prompts.answer_system(language, "T > A"), prompts.judge_prompt(language, "T", "Q?", "Ans")]
    assert hashlib.sha256("\x1e".join(texts).encode()).hexdigest() == digest


def test_guidance_and_style_values_are_never_read_as_placeholders() -> None:
    steer = prompts.Steering(guidance="Use {curly} braces {{ and }} freely", answer_style=AnswerStyle(notes="{x}"))
    text = prompts.answer_system("en", "A {path}", steer)
    assert "Use {curly} braces {{ and }} freely" in text and "- {x}" in text and "A {path}" in text


def test_share_out_follows_the_weights_exactly() -> None:
    import random

    chosen = share_out({"a": 3, "b": 1, "c": 1}, 10, random.Random(1))
    assert Counter(chosen) == {"a": 6, "b": 2, "c": 2}
    assert share_out({}, 5, random.Random(1)) == [] and share_out({"a": 1}, 0, random.Random(1)) == []


def test_small_plans_follow_the_weights_over_many_tags() -> None:
    styles = QuestionStyles(types={"mc": 1, "numeric": 1, "code": 1, "scenario": 1})
    totals = Counter(slot.type for tag in range(400) for slot in plan_styles(styles, 3, seed=f"{tag}:0"))
    assert sum(totals.values()) == 1200 and all(270 <= count <= 330 for count in totals.values())
    assert plan_styles(styles, 3, "7:0") == plan_styles(styles, 3, "7:0")  # the same work asks the same plan
    assert plan_styles(None, 3, "x") == [] and plan_styles(QuestionStyles(), 3, "x") == []


def test_the_steering_step_migrates_an_old_database_keeping_its_rows(tmp_path, monkeypatch) -> None:
    path = tmp_path / "old.db"
    db = Database(sqlite3.connect(path, isolation_level=None))
    steps = migrations.MIGRATIONS
    monkeypatch.setattr(migrations, "MIGRATIONS", [step for step in steps if step.__name__ != "m012_steering"])
    migrations.migrate(db)
    monkeypatch.setattr(migrations, "MIGRATIONS", steps)
    db.execute("INSERT INTO projects (name, topic, language, question_model, answer_model, max_concurrency,"
               " created_at) VALUES ('Old', 'Old', 'en', '{\"model\": \"m\"}', '{\"model\": \"m\"}', 2, 'then')")
    db.conn.close()

    store = Store(open_database(path))
    project = store.get_project(1)
    assert (project.guidance, project.question_styles, project.answer_style) == ("", None, None)
    columns = {table: {column.name for column in store.db[table].columns} for table in ("tags", "questions",
                                                                                       "answers")}
    assert {"prompt_version"} <= columns["tags"] and {"prompt_version"} <= columns["answers"]
    assert {"prompt_version", "question_type", "difficulty", "audience"} <= columns["questions"]
    assert {"prompt_templates", "prompt_overrides"} <= set(store.db.table_names())
