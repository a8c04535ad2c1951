"""get_tree on a large tree through the MCP client: bounded by default, with the cut said in the result, and
max_depth, tag_id, summary and max_tags to see the rest."""

from __future__ import annotations

import json

import pytest
from mcp import Client

from tests.drive import call, call_error

pytestmark = pytest.mark.anyio

DEFAULT_BOUND_CHARS = 100_000  # about 25k tokens


async def three_levels_of_ten(client: Client) -> tuple[int, list[dict]]:
    """A project with 10 top-level tags, 10 under each and 10 under those: 1,110 tags, 1,000 leaves."""
    pid = (await call(client, "create_project", name="Sports", max_concurrency=8))["id"]
    top = (await call(client, "generate_tags", project_id=pid, count=10))["tags"]
    parents = top
    for _ in range(2):
        children = []
        for parent in parents:
            children += (await call(client, "generate_tags", project_id=pid, parent_tag_id=parent["id"],
                                    count=10))["tags"]
        parents = children
    return pid, top


async def tree_text(client: Client, **arguments) -> tuple[dict, str]:
    result = await client.call_tool("get_tree", arguments)
    assert not result.is_error, result.content[0].text
    return result.structured_content, result.content[0].text


async def test_a_large_tree_is_bounded_by_default_and_says_how_to_see_more(client, llm):
    pid, top = await three_levels_of_ten(client)

    tree, text = await tree_text(client, project_id=pid)
    assert len(text) < DEFAULT_BOUND_CHARS, len(text)
    assert (tree["tag_count"], tree["leaf_count"], tree["shown_tags"], tree["truncated"]) == (1110, 1000, 110, True)
    assert "110 of 1110 tags" in tree["note"] and "tag_id" in tree["note"] and "summary=true" in tree["note"]
    assert [root["id"] for root in tree["roots"]] == [tag["id"] for tag in top]
    second = [child for root in tree["roots"] for child in root["children"]]
    assert len(second) == 100 and all(c["children"] == [] and c["hidden_children"] == 10 for c in second)
    assert all(root["hidden_children"] == 0 for root in tree["roots"])

    everything, full_text = await tree_text(client, project_id=pid, max_tags=5000)
    assert everything["shown_tags"] == 1110 and not everything["truncated"] and everything["note"] is None
    leaves = [leaf for root in everything["roots"] for mid in root["children"] for leaf in mid["children"]]
    assert len(leaves) == 1000 and all(leaf["depth"] == 3 and leaf["path"].count(" > ") == 2 for leaf in leaves)
    # Compact JSON: the same tree indented would be 1.5 times the size or more.
    assert len(json.dumps(everything, ensure_ascii=False, indent=2)) > 1.5 * len(full_text)


async def test_max_depth_tag_id_and_summary(client, llm):
    pid, top = await three_levels_of_ten(client)

    shallow, _ = await tree_text(client, project_id=pid, max_depth=1)
    assert shallow["shown_tags"] == 10 and all(r["children"] == [] and r["hidden_children"] == 10
                                               for r in shallow["roots"])

    branch, _ = await tree_text(client, project_id=pid, tag_id=top[3]["id"])
    assert (branch["tag_id"], branch["tag_count"], branch["leaf_count"], branch["shown_tags"]) == (
        top[3]["id"], 111, 100, 111)
    assert not branch["truncated"] and [r["id"] for r in branch["roots"]] == [top[3]["id"]]
    assert all(leaf["path"].startswith(top[3]["path"] + " > ")
               for mid in branch["roots"][0]["children"] for leaf in mid["children"])

    one_below, _ = await tree_text(client, project_id=pid, tag_id=top[3]["id"], max_depth=1)
    assert one_below["shown_tags"] == 11 and one_below["truncated"] and "below tag" in one_below["note"]

    summary, text = await tree_text(client, project_id=pid, summary=True)
    assert summary["roots"] == [] and len(text) < 5_000
    assert [(row["id"], row["children"], row["tags"], row["leaves"], row["questions"]) for row in summary["summary"]
            ] == [(tag["id"], 10, 111, 100, 0) for tag in top]

    leaf = (await tree_text(client, project_id=pid, tag_id=top[0]["id"], max_depth=2))[0]["roots"][0]
    leaf = leaf["children"][0]["children"][0]
    await call(client, "extract_questions", project_id=pid, tag_id=leaf["id"], count=3)
    summary, _ = await tree_text(client, project_id=pid, summary=True)
    assert summary["summary"][0]["questions"] == 3 and summary["question_count"] == 3

    other = (await call(client, "create_project", name="Chemistry"))["id"]
    assert f"No tag with id {top[0]['id']} in project {other}" in await call_error(
        client, "get_tree", project_id=other, tag_id=top[0]["id"])
