"""The tools/list surface through the MCP client: unknown arguments refused, ids and integers bounded, titles,
descriptions and annotations, compact JSON text, the server's name and version, and a snapshot of the whole
schema so that an interface change is a deliberate diff."""

from __future__ import annotations

import json
import os
from importlib.metadata import version
from pathlib import Path

import pytest
from mcp import Client

import treedistill
from tests.drive import call, call_error, table_counts

pytestmark = pytest.mark.anyio

SNAPSHOT = Path(__file__).with_name("tools_list_snapshot.json")
INT64_MAX = 2**63 - 1


def id_parameters(tool) -> dict[str, bool]:
    """The tool's id parameters, each mapped to whether it is a list of ids."""
    found = {}
    for name, schema in tool.input_schema["properties"].items():
        if name == "repo_id":  # push_to_hub's Hub repository, 'namespace/name': a string, not one of our ids
            continue
        if name.endswith("_id"):
            found[name] = False
        elif name.endswith("_ids"):
            found[name] = True
    return found


async def seeded(client: Client) -> dict[str, int]:
    """A project with a tag, a question with its answer and a finished job: valid ids for every parameter."""
    project = await call(client, "create_project", name="Sports")
    started = await call(client, "auto_distill", project_id=project["id"], levels=1, tags_per_level=1,
                         questions_per_tag=1)
    await call(client, "get_progress", job_id=started["job_id"], wait_seconds=30)
    question = (await call(client, "list_questions", project_id=project["id"]))["questions"][0]
    return {"project_id": project["id"], "tag_id": question["tag_id"], "parent_tag_id": question["tag_id"],
            "question_id": question["id"], "question_ids": [question["id"]], "job_id": started["job_id"]}


def valid_arguments(tool, ids: dict[str, int]) -> dict:
    """Valid values for the tool's id parameters and its other required ones."""
    ids = {key: value for key, value in ids.items() if key in tool.input_schema["properties"]}
    others = {"questions": ["A brand new question?"], "rating": 3, "content": "A new tag", "format": "text",
              "names": ["A new tag"], "name": "A new name", "repo_id": "alice/sports-qa", "kind": "tags",
              "template": "{count} {existing}", "model": {"model": "standin"}}
    others = {key: value for key, value in others.items() if key in tool.input_schema.get("required", [])}
    return {**ids, **others, **({"answer": "A new answer."} if tool.name == "update_answer" else {})}


async def test_unknown_arguments_are_refused_naming_the_valid_ones(client, llm, db_path):
    ids = await seeded(client)
    before, requests = table_counts(db_path), llm.stats()["requests"]
    message = await call_error(client, "auto_distill", project_id=ids["project_id"], batch_count=100)
    assert "unknown argument 'batch_count'" in message
    assert ("this tool takes: answer, batch, batch_all_calls, batch_fallback_online, batch_size, batch_wait_seconds, "
            "confirm_large, estimate_only, extra_questions, focus_run, grow, guidance, judge_model, levels, margin, "
            "preference, project_id, question_styles, questions_per_tag, rejected_model, tag_id, tags_per_level" in message)
    assert table_counts(db_path) == before and llm.stats()["requests"] == requests  # no job was started

    for tool in (await client.list_tools()).tools:
        assert tool.input_schema.get("additionalProperties") is False, tool.name
        message = await call_error(client, tool.name, bogus_option=1)
        valid = ", ".join(sorted(tool.input_schema["properties"])) or "no arguments"
        assert f"unknown argument 'bogus_option'; this tool takes: {valid}" in message, (tool.name, message)
    assert table_counts(db_path) == before and llm.stats()["requests"] == requests


BAD_IDS = [INT64_MAX + 1, 2**70, 10**30, 0, -1, -(2**70), 1.5, "abc", "", None, [1], {"id": 1}]


async def test_bad_ids_get_a_clear_error_and_change_nothing(client, llm, db_path):
    ids = await seeded(client)
    before, requests = table_counts(db_path), llm.stats()["requests"]
    checked = 0
    for tool in (await client.list_tools()).tools:
        for name, is_list in id_parameters(tool).items():
            base = valid_arguments(tool, ids)
            for bad in BAD_IDS:
                if bad is None and not is_list and name not in tool.input_schema.get("required", []):
                    continue  # null means "none" for an optional id
                arguments = {**base, name: [ids["question_id"], bad] if is_list else bad}
                message = await call_error(client, tool.name, **arguments)
                assert message.startswith(f"Invalid arguments for {tool.name}:\n- {name}"), (tool.name, name, bad, message)
                assert "errors.pydantic.dev" not in message
                checked += 1
            # The largest id SQLite can hold is valid input; it names nothing: an error that says so, or nothing found.
            result = await client.call_tool(tool.name, {**base, name: [INT64_MAX] if is_list else INT64_MAX})
            if result.is_error:
                message = result.content[0].text
                assert str(INT64_MAX) in message and "Invalid arguments" not in message, (tool.name, name, message)
    assert checked > 200
    assert table_counts(db_path) == before and llm.stats()["requests"] == requests


async def test_other_integers_are_bounded(client, llm, db_path):
    ids = await seeded(client)
    before = table_counts(db_path)
    pid = ids["project_id"]
    for tool, arguments, field in [
        ("list_questions", {"offset": INT64_MAX + 1}, "offset"),
        ("list_questions", {"limit": 10**6}, "limit"),
        ("export_dataset", {"seed": 2**64}, "seed"),
        ("export_dataset", {"seed": -1}, "seed"),
        ("export_dataset", {"per_tag_cap": 10**12}, "per_tag_cap"),
        ("get_tree", {"max_depth": 0}, "max_depth"),
        ("get_tree", {"max_tags": 10**9}, "max_tags"),
        ("generate_tags", {"count": 2**64}, "count"),
    ]:
        message = await call_error(client, tool, project_id=pid, **arguments)
        assert message.startswith(f"Invalid arguments for {tool}:\n- {field}: "), (tool, message)
    assert table_counts(db_path) == before

    for tool in (await client.list_tools()).tools:
        for name, schema in tool.input_schema["properties"].items():
            for arm in schema.get("anyOf", [schema]):
                if arm.get("type") == "integer":
                    assert "minimum" in arm and "maximum" in arm, (tool.name, name)
                if arm.get("type") == "array" and arm["items"].get("type") == "integer":
                    assert "minimum" in arm["items"] and "maximum" in arm["items"], (tool.name, name)


async def test_argument_errors_read_as_the_tool_and_each_argument_with_its_rule(client, llm, db_path):
    """Not pydantic's text ("1 validation error for generate_tagsArguments", error types, input_type): the tool,
    then one line per argument with its rule and the value given, in both eras."""
    message = await call_error(client, "generate_tags", project_id=1, parent_tag_id="x", count=1000)
    assert message == ("Invalid arguments for generate_tags:\n"
                       "- parent_tag_id: Input should be a valid integer, unable to parse string as an integer "
                       "(got \"x\")\n"
                       "- count: Input should be less than or equal to 100 (got 1000)")
    message = await call_error(client, "create_project")
    assert message == "Invalid arguments for create_project:\n- name: Field required"
    assert table_counts(db_path)["projects"] == 0


async def test_every_tool_has_a_title_descriptions_and_true_annotations(client):
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    for tool in tools.values():
        assert tool.title and tool.description, tool.name
        hints = tool.annotations
        assert None not in (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint,
                            hints.open_world_hint), tool.name
        undocumented = [name for name, schema in tool.input_schema["properties"].items()
                        if not schema.get("description")]
        assert not undocumented, (tool.name, undocumented)
    assert len({tool.title for tool in tools.values()}) == len(tools)
    # Adding an answer destroys nothing; an export replaces a file already at its path.
    assert tools["answer_question"].annotations.destructive_hint is False
    assert "regenerate=true" in tools["answer_question"].description
    assert "replaces the\n    stored answer" in tools["answer_question"].description
    assert tools["cancel_job"].annotations.destructive_hint is False
    assert {name for name, tool in tools.items() if tool.annotations.destructive_hint} == {
        "update_answer", "delete_tag", "delete_question", "export_dataset",
        "hold_out"}  # hold_out replaces the split
    # find_duplicates(method="semantic") embeds questions that have no vector yet: a paid call, stored.
    assert tools["find_duplicates"].annotations.open_world_hint and tools["find_duplicates"].annotations.idempotent_hint
    assert {name for name, tool in tools.items() if tool.annotations.read_only_hint} == {
        "list_projects", "get_tree", "list_questions", "get_progress", "list_jobs",
        "review_dataset", "get_answer", "export_tree", "dataset_report", "get_push", "get_prompts",
        "list_preference_pairs", "get_evaluation", "list_evaluations", "get_dialogue"}
    assert all(not tool.annotations.open_world_hint for tool in tools.values() if tool.annotations.read_only_hint)


async def test_text_content_is_compact_json_of_the_structured_result(client, llm):
    ids = await seeded(client)
    for tool, arguments in [("list_projects", {}), ("get_tree", {"project_id": ids["project_id"]}),
                            ("list_questions", {"project_id": ids["project_id"]}),
                            ("get_progress", {"job_id": ids["job_id"]})]:
        result = await client.call_tool(tool, arguments)
        assert not result.is_error and len(result.content) == 1
        text = result.content[0].text
        assert json.loads(text) == result.structured_content
        assert text == json.dumps(result.structured_content, ensure_ascii=False, separators=(",", ":"))


async def test_server_info_names_the_package_version(server):
    async with Client(server) as client:
        info = client.server_info
    assert info.name == "treedistill" and info.title
    assert info.version == treedistill.__version__ == version("treedistill")


async def test_tools_list_matches_the_committed_snapshot(server):
    async with Client(server) as client:
        tools = (await client.list_tools()).tools
    current = [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools]
    current.sort(key=lambda tool: tool["name"])
    text = json.dumps(current, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(text, encoding="utf-8")
    expected = SNAPSHOT.read_text(encoding="utf-8") if SNAPSHOT.exists() else ""
    assert text == expected, (
        "tools/list changed (names, titles, descriptions, schemas or annotations). If the change is deliberate, "
        "regenerate the snapshot with `UPDATE_SNAPSHOT=1 python -m pytest tests/test_tool_surface.py -k snapshot` "
        f"and commit the diff of {SNAPSHOT.name}.")


async def test_a_missing_project_is_blamed_not_its_question(client, llm):
    await call(client, "create_project", name="Sports")
    assert await call_error(client, "get_answer", project_id=999, question_id=1) == (
        "Error executing tool get_answer: No project with id 999; call list_projects to see the ids.")
    assert await call_error(client, "get_answer", project_id=1, question_id=5) == (
        "Error executing tool get_answer: No question with id 5 in project 1; call list_questions to see the ids.")
