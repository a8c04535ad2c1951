"""MCP resources through the client, in both protocol eras: templates, the project list, a tag tree and a
question with its answer, and readable errors."""

from __future__ import annotations

import json

import pytest
from mcp import MCPError

from tests.drive import distilled_project
from tests.drive import call

pytestmark = pytest.mark.anyio


async def read_json(client, uri: str):
    contents = (await client.read_resource(uri)).contents
    assert len(contents) == 1 and contents[0].mime_type == "application/json" and contents[0].uri == uri
    return json.loads(contents[0].text)


async def test_templates_are_listed(client):
    templates = {t.name: t for t in (await client.list_resource_templates()).resource_templates}
    assert {name: t.uri_template for name, t in templates.items()} == {
        "projects": "treedistill://projects{?search}",
        "tag_tree": "treedistill://projects/{project_id}/tree",
        "question": "treedistill://projects/{project_id}/questions/{question_id}",
    }
    assert all(t.description and t.mime_type == "application/json" for t in templates.values())


async def test_browse_projects_trees_and_answers(client, llm):
    pid = await distilled_project(client)
    await call(client, "create_project", name="Chemistry", topic="Organic chemistry")

    listed = await read_json(client, "treedistill://projects")
    assert [(p["name"], p["questions"], p["answers"]) for p in listed["projects"]] == [
        ("Sports", 12, 12), ("Chemistry", 0, 0)]
    assert [p["name"] for p in (await read_json(client, "treedistill://projects?search=ORGANIC"))["projects"]] == [
        "Chemistry"]

    tree = await read_json(client, f"treedistill://projects/{pid}/tree")
    assert tree == await call(client, "get_tree", project_id=pid)

    question_id = (await call(client, "list_questions", project_id=pid))["questions"][0]["id"]
    await call(client, "rate_item", project_id=pid, question_id=question_id, rating=5)
    item = await read_json(client, f"treedistill://projects/{pid}/questions/{question_id}")
    assert item["question"]["id"] == question_id and item["question"]["answered"] is True
    assert item["answer"]["answer"] == f"Answer to: {item['question']['text']}"
    assert item["answer"]["reasoning"].startswith("Reasoning about:") and item["answer"]["rating"] == 5

    leaf = tree["roots"][0]["children"][0]["id"]
    new = (await call(client, "extract_questions", project_id=pid, tag_id=leaf, count=1))["questions"][0]
    item = await read_json(client, f"treedistill://projects/{pid}/questions/{new['id']}")
    assert item["question"]["text"] == new["text"] and item["answer"] is None


@pytest.mark.parametrize(("uri", "message"), [
    ("treedistill://projects/99/tree", "No project with id 99; call list_projects"),
    ("treedistill://projects/abc/tree", "project_id must be a number"),
    ("treedistill://projects/1/questions/999", "No question with id 999 in project 1"),
    ("treedistill://nothing", "Unknown resource"),
])
async def test_errors_are_readable(client, llm, uri, message):
    await call(client, "create_project", name="Sports")
    with pytest.raises(MCPError, match=message):
        await client.read_resource(uri)


async def test_resources_list_names_each_projects_tree(client, llm):
    apps = ["ui://treedistill/review", "ui://treedistill/dashboard"]  # the MCP Apps pages (tests/test_ui_resources.py)
    assert [str(r.uri) for r in (await client.list_resources()).resources] == apps
    sports = (await call(client, "create_project", name="Sports"))["id"]
    chemistry = (await call(client, "create_project", name="Chemistry", topic="Organic chemistry"))["id"]
    listed = [r for r in (await client.list_resources()).resources if str(r.uri) not in apps]
    assert [(str(r.uri), r.name, r.title, r.mime_type) for r in listed] == [
        (f"treedistill://projects/{sports}/tree", f"tag_tree_{sports}", "Tag tree: Sports", "application/json"),
        (f"treedistill://projects/{chemistry}/tree", f"tag_tree_{chemistry}", "Tag tree: Chemistry",
         "application/json")]
    assert "Organic chemistry" in listed[1].description
    tree = await read_json(client, str(listed[1].uri))
    assert tree["project_id"] == chemistry and tree["roots"] == []


async def test_completions_for_project_ids_and_prompt_arguments(client, llm):
    from mcp_types import PromptReference, ResourceTemplateReference

    ids = [(await call(client, "create_project", name=name, topic=topic))["id"] for name, topic in (
        ("Sports", "Football tactics"), ("Chemistry", "Organic chemistry"), ("Chess", "Chess openings"))]
    for _ in range(9):  # ids 4 to 12, so that typing "1" finds 1, 10, 11 and 12
        ids.append((await call(client, "create_project", name=f"Filler {len(ids) + 1}"))["id"])
    tree = ResourceTemplateReference(type="ref/resource", uri="treedistill://projects/{project_id}/tree")
    question = ResourceTemplateReference(type="ref/resource",
                                         uri="treedistill://projects/{project_id}/questions/{question_id}")

    async def values(ref, name: str, typed: str) -> list[str]:
        return (await client.complete(ref, {"name": name, "value": typed})).completion.values

    assert await values(tree, "project_id", "") == [str(i) for i in ids]
    assert await values(tree, "project_id", "1") == ["1", "10", "11", "12"]
    assert await values(tree, "project_id", "CHE") == [str(ids[1]), str(ids[2])]  # by name
    assert await values(question, "project_id", "organic") == [str(ids[1])]  # by topic
    assert await values(tree, "project_id", "nothing like it") == []

    auto = PromptReference(type="ref/prompt", name="auto_distillation")
    manual = PromptReference(type="ref/prompt", name="manual_distillation")
    assert await values(auto, "language", "") == ["en", "zh"]
    assert await values(manual, "language", "z") == ["zh"]
    assert await values(auto, "levels", "") == ["1", "2", "3", "4", "5"]
    assert await values(manual, "topic", "ch") == ["Chemistry", "Chess", "Chess openings"]
    assert await values(auto, "topic", "Org") == ["Organic chemistry"]
