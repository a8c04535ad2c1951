"""The MCP Apps side of the review app and dashboard, through the SDK's client: the ui:// resources and their
MIME type, the tools linking to them, the review_dataset pages (filters, counts, paging, near-duplicate groups)
and get_answer; the page's safety properties; the index the pages use."""

from __future__ import annotations

import base64
import hashlib
import re
import sqlite3
from pathlib import Path

import pytest

from tests.drive import call, call_error
from treedistill.server import ui
from treedistill.server.ui import DASHBOARD_URI, REVIEW_URI, SCRIPTS, app_html

pytestmark = pytest.mark.anyio
APP_MIME = "text/html;profile=mcp-app"


async def distilled(client, name: str = "Sports", tags: int = 2, questions: int = 3) -> int:
    project = await call(client, "create_project", name=name)
    started = await call(client, "auto_distill", project_id=project["id"], levels=1, tags_per_level=tags,
                         questions_per_tag=questions)
    done = await call(client, "get_progress", job_id=started["job_id"], wait_seconds=60)
    assert done["status"] == "completed", done
    return project["id"]


async def test_ui_resources_are_listed_and_read_as_mcp_apps(client):
    listed = {str(resource.uri): resource for resource in (await client.list_resources()).resources}
    for uri in (REVIEW_URI, DASHBOARD_URI):
        assert listed[uri].mime_type == APP_MIME
        read = await client.read_resource(uri)
        (content,) = read.contents
        assert content.mime_type == APP_MIME
        assert content.text.startswith("<!doctype html>") and 'http-equiv="Content-Security-Policy"' in content.text
    assert 'data-view="review"' in (await client.read_resource(REVIEW_URI)).contents[0].text
    assert 'data-view="dashboard"' in (await client.read_resource(DASHBOARD_URI)).contents[0].text


async def test_tools_link_to_the_apps_and_keep_their_text_results(client):
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    linked = {name: (tool.meta or {}).get("ui", {}).get("resourceUri") for name, tool in tools.items()}
    assert {name: uri for name, uri in linked.items() if uri} == {
        "review_dataset": REVIEW_URI, "dataset_report": REVIEW_URI, "auto_distill": DASHBOARD_URI,
        "get_progress": DASHBOARD_URI, "get_evaluation": REVIEW_URI}
    project_id = await distilled(client)
    result = await client.call_tool("review_dataset", {"project_id": project_id})
    assert not result.is_error and result.content[0].type == "text"  # text-only clients get the page as JSON
    assert '"questions":[' in result.content[0].text and result.structured_content["total"] == 6


async def test_review_pages_filter_count_and_page_on_the_server(client):
    project_id = await distilled(client)
    page = await call(client, "review_dataset", project_id=project_id)
    assert page["counts"] == {"questions": 6, "answered": 6, "unanswered": 0, "rated": 0, "unrated": 6,
                              "confirmed": 0, "unconfirmed": 6, "scored": 0, "score_below": 0}
    ids = [row["id"] for row in page["questions"]]
    assert ids == sorted(ids) and len(ids) == 6
    await call(client, "rate_item", project_id=project_id, question_id=ids[0], rating=4)
    await call(client, "confirm_item", project_id=project_id, question_ids=ids[:2])

    unrated = await call(client, "review_dataset", project_id=project_id, filter="unrated")
    assert unrated["total"] == 5 and ids[0] not in [row["id"] for row in unrated["questions"]]
    unconfirmed = await call(client, "review_dataset", project_id=project_id, filter="unconfirmed", limit=2,
                             offset=2)
    assert unconfirmed["total"] == 4 and [row["id"] for row in unconfirmed["questions"]] == ids[4:6]
    first = (await call(client, "review_dataset", project_id=project_id, limit=1))["questions"][0]
    assert first == {**first, "id": ids[0], "rating": 4, "confirmed": True, "answered": True, "score": None}

    tag_id = first["tag_id"]
    in_tag = await call(client, "review_dataset", project_id=project_id, tag_id=tag_id)
    assert in_tag["total"] == 3 and in_tag["tag_path"] == first["tag_path"]
    assert {row["tag_id"] for row in in_tag["questions"]} == {tag_id}
    assert (await call(client, "review_dataset", project_id=project_id, filter="unanswered"))["total"] == 0
    assert "needs score_below" in await call_error(client, "review_dataset", project_id=project_id,
                                                   filter="score_below")
    assert "No project" in await call_error(client, "review_dataset", project_id=999)


async def test_near_duplicate_groups_and_get_answer(client):
    project_id = await distilled(client, tags=1, questions=2)
    tag_id = (await call(client, "review_dataset", project_id=project_id))["questions"][0]["tag_id"]
    added = await call(client, "add_questions", project_id=project_id, tag_id=tag_id, allow_near_duplicates=True,
                       questions=["How does the offside rule work in football matches?",
                                  "How does the offside rule work in football?"])
    assert len(added["added"]) == 2
    groups = await call(client, "review_dataset", project_id=project_id, filter="near_duplicates")
    members = {row["id"]: row for row in groups["questions"]}
    assert set(members) >= {question["id"] for question in added["added"]}
    assert {members[q["id"]]["group"] for q in added["added"]} == {1}
    assert sum(1 for row in groups["questions"] if row["group"] == 1 and row["keep"]) == 1

    unanswered = added["added"][0]["id"]
    shown = await call(client, "get_answer", project_id=project_id, question_id=unanswered)
    assert shown["question"]["text"].startswith("How does the offside") and shown.get("answer") is None
    answered = groups["questions"][0]["id"] if groups["questions"][0]["answered"] else None
    some = (await call(client, "review_dataset", project_id=project_id, filter="answered"))["questions"][0]
    shown = await call(client, "get_answer", project_id=project_id, question_id=some["id"])
    assert shown["answer"]["answer"] and shown["answer"]["reasoning"] and shown["answer"]["model"] == "standin"
    assert answered is None or answered in members


def test_the_page_allows_only_its_own_script_and_style_and_no_other_origin():
    html = app_html("browser")
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    style = re.search(r"<style>(.*)</style>", html, re.S).group(1)

    def digest(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    assert len(scripts) == len(SCRIPTS) == 6
    assert f"script-src {' '.join(map(digest, scripts))};" in csp and f"style-src {digest(style)};" in csp
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp and "unsafe" not in csp
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", html)  # nothing loaded from elsewhere
    for name, script in zip(SCRIPTS, scripts):
        assert "eval(" not in script and "new Function" not in script, name
        if not name.startswith("vendor/"):  # ours: model text never goes through an HTML string
            assert "innerHTML" not in script and "insertAdjacentHTML" not in script, name
            assert "document.write" not in script and "DOMParser" not in script, name


def test_the_vendored_libraries_are_the_published_files_with_their_licences():
    """The vendored files are byte for byte the npm tarballs' files whose checksums vendor/README.md records."""
    vendor = Path(ui.__file__).parent / "static" / "vendor"
    readme = (vendor / "README.md").read_text()
    for name in ("markdown-it.min.js", "purify.min.js"):
        recorded = re.search(rf"`{re.escape(name)}` .*`([0-9a-f]{{64}})`", readme).group(1)
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == recorded, name
    assert "Copyright (c) 2014 Vitaly Puzrin" in (vendor / "LICENSE-markdown-it.txt").read_text()
    assert "Apache License" in (vendor / "LICENSE-dompurify.txt").read_text()


async def test_review_pages_use_the_project_index(client, db_path):
    await distilled(client, tags=1, questions=1)
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'questions_project'").fetchone()
        plan = " ".join(row[3] for row in conn.execute(
            "EXPLAIN QUERY PLAN SELECT q.id FROM questions q LEFT JOIN answers a INDEXED BY answers_review"
            " ON a.question_id = q.id WHERE q.project_id = 1 AND a.rating IS NULL ORDER BY q.id LIMIT 200"))
    assert "COVERING INDEX questions_project" in plan and "COVERING INDEX answers_review" in plan
    assert "TEMP B-TREE" not in plan


async def test_near_duplicate_groups_are_searched_again_only_when_questions_change(client, server, monkeypatch):
    from treedistill.server import review

    project_id = await distilled(client, tags=1, questions=2)
    tag_id = (await call(client, "review_dataset", project_id=project_id))["questions"][0]["tag_id"]
    pair = (await call(client, "add_questions", project_id=project_id, tag_id=tag_id, allow_near_duplicates=True,
                       questions=["How does the offside rule work in football matches?",
                                  "How does the offside rule work in football?"]))["added"]
    duplicate_search = server.engine.duplicate_search
    searches: list[int] = []
    search = duplicate_search.find_duplicates

    async def counted(*args, **kwargs):
        searches.append(args[0])
        return await search(*args, **kwargs)

    monkeypatch.setattr(duplicate_search, "find_duplicates", counted)
    page = await call(client, "review_dataset", project_id=project_id, filter="near_duplicates")
    assert searches == [project_id] and page["groups_found"] == page["groups_listed"] == 1
    keep = {row["id"] for row in page["questions"] if row["keep"]}
    other = next(question["id"] for question in pair if question["id"] not in keep)
    await call(client, "answer_question", project_id=project_id, question_id=other)
    await call(client, "confirm_item", project_id=project_id, question_ids=[other])
    page = await call(client, "review_dataset", project_id=project_id, filter="near_duplicates")
    assert searches == [project_id]  # the review state changed, the questions did not: no new search
    assert {row["id"] for row in page["questions"] if row["keep"]} == {other}  # yet the keep follows the review

    monkeypatch.setattr(review, "MAX_DUPLICATE_GROUPS", 1)
    await call(client, "add_questions", project_id=project_id, tag_id=tag_id, allow_near_duplicates=True,
               questions=["Why do cyclists shave their legs before a race?",
                          "Why do cyclists shave their legs before races?"])
    page = await call(client, "review_dataset", project_id=project_id, filter="near_duplicates")
    assert searches == [project_id, project_id]  # questions were added: searched again
    assert page["groups_found"] == 2 and page["groups_listed"] == 1 and {row["group"] for row in page["questions"]} == {1}
    assert (await call(client, "review_dataset", project_id=project_id))["groups_found"] is None
