"""Semantic near-duplicates: an embedding model per project, questions embedded as they arrive (paid once, counted),
paraphrases that share no words caught at extraction and by find_duplicates(method=...), bad embedding replies
refused, and the grouping itself against brute force. Against the stand-in's /v1/embeddings
(tests/standin_embeddings.py), through the MCP client."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from tests.standin_embeddings import embed_text, paraphrase
from tests.test_manual_tools import call, call_error
from treedistill.server.text.near_dup import similarity
from treedistill.server.text.semantic_dup import group_similar, lsh_shape

pytestmark = pytest.mark.anyio

EMBED = {"model": "embed"}
# Paraphrases that share no content word (lexically unrelated), then an unrelated question.
CAR = ["Why does a car need oil?", "What makes an automobile require lubricant?"]
HOUSE = ["How do I buy a big house?", "Where can I purchase a large home?"]
OTHER = ["How do bees produce honey?"]


def embed_requests(llm) -> list[dict]:
    return [entry for entry in llm.requests() if entry["task"] == "embed"]


def vector_rows(db_path) -> list[tuple]:
    with sqlite3.connect(db_path) as conn:
        return conn.execute("SELECT v.question_id, q.tag_id, v.model, length(v.vector) FROM question_vectors v"
                            " JOIN questions q ON q.id = v.question_id ORDER BY v.question_id").fetchall()


def question_texts(db_path, tag_id: int) -> list[str]:
    with sqlite3.connect(db_path) as conn:
        return [row[0] for row in conn.execute("SELECT text FROM questions WHERE tag_id = ? ORDER BY id", (tag_id,))]


async def project_with_tags(client, count: int, **settings) -> tuple[int, list[int]]:
    project = await call(client, "create_project", name="Semantic", **settings)
    tags = (await call(client, "generate_tags", project_id=project["id"], count=count))["tags"]
    return project["id"], [tag["id"] for tag in tags]


def test_the_stand_in_makes_paraphrases_close_and_other_questions_far():
    for a, b in (CAR, HOUSE):
        assert similarity(a, b) == 0  # not one content word in common
        assert np.dot(embed_text(a), embed_text(b)) == pytest.approx(1.0)
    assert abs(np.dot(embed_text(CAR[0]), embed_text(OTHER[0]))) < 0.5


async def test_paraphrases_sharing_no_words_are_grouped_by_meaning_only(client, llm, db_path):
    pid, (a, b) = await project_with_tags(client, 2, embedding_model=EMBED)
    await call(client, "add_questions", project_id=pid, tag_id=a, questions=[CAR[0], HOUSE[0], OTHER[0]])
    await call(client, "add_questions", project_id=pid, tag_id=b, questions=[CAR[1], HOUSE[1]])

    assert (await call(client, "find_duplicates", project_id=pid))["group_count"] == 0  # lexical: none
    report = await call(client, "find_duplicates", project_id=pid, method="semantic")
    assert (report["method"], report["questions_checked"], report["group_count"]) == ("semantic", 5, 2)
    assert [sorted(q["question_id"] for q in g["questions"]) for g in report["groups"]] == [[1, 4], [2, 5]]
    assert sorted(report["removable_question_ids"]) == [4, 5]
    assert [g["similarity"] for g in report["groups"]] == [1.0, 1.0]
    # The five questions were embedded once, by tag, and are not embedded again by the next search.
    assert sorted(entry["inputs"] for entry in embed_requests(llm)) == [2, 3]
    assert [row[0] for row in vector_rows(db_path)] == [1, 2, 3, 4, 5]
    again = await call(client, "find_duplicates", project_id=pid, method="both")
    assert again["group_count"] == 2 and len(embed_requests(llm)) == 2
    assert (await call(client, "find_duplicates", project_id=pid, tag_id=a, method="semantic"))["group_count"] == 0


async def test_extraction_drops_a_paraphrase_of_the_tags_question_and_asks_for_more(client, llm, db_path):
    pid, (a, b) = await project_with_tags(client, 2, embedding_model=EMBED)
    first = await call(client, "extract_questions", project_id=pid, tag_id=a, count=2)
    assert len(first["questions"]) == 2
    assert len(vector_rows(db_path)) == 2  # embedded as they arrived, in the extraction's transaction
    await call(client, "update_project", project_id=pid, question_model={"model": "standin+paraphrase"})

    second = await call(client, "extract_questions", project_id=pid, tag_id=a, count=2)
    texts = question_texts(db_path, a)
    reworded = paraphrase(texts[0])
    assert reworded != texts[0] and similarity(reworded, texts[0]) < 0.7  # the lexical check lets it through
    assert len(second["questions"]) == 2 and reworded not in texts
    assert len(texts) == 4 and len(vector_rows(db_path)) == 4
    assert [row[1] for row in vector_rows(db_path)] == [a] * 4


async def test_without_an_embedding_model_the_paraphrase_is_kept(client, llm, db_path):
    pid, (a,) = await project_with_tags(client, 1)
    await call(client, "extract_questions", project_id=pid, tag_id=a, count=2)
    await call(client, "update_project", project_id=pid, question_model={"model": "standin+paraphrase"})
    await call(client, "extract_questions", project_id=pid, tag_id=a, count=2)
    texts = question_texts(db_path, a)
    assert paraphrase(texts[0]) in texts
    assert embed_requests(llm) == [] and vector_rows(db_path) == []
    error = await call_error(client, "find_duplicates", project_id=pid, method="semantic")
    assert "no embedding_model" in error


@pytest.mark.parametrize("scope", ["tag", "project"])
async def test_the_scope_decides_whose_questions_a_new_one_is_checked_against(client, llm, db_path, scope):
    pid = (await call(client, "create_project", name="Semantic", embedding_model=EMBED, semantic_scope=scope))["id"]
    tags = (await call(client, "generate_tags", project_id=pid, count=2))["tags"]
    (a, b), path = [tag["id"] for tag in tags], "Semantic > " + tags[1]["path"]
    first_of_b = f"Question 1: how does {path.split(' > ')[-1]} work in the context of {path}?"
    # In tag a, a rewording of the question the model will first write for tag b (lexically far from it).
    await call(client, "add_questions", project_id=pid, tag_id=a, questions=[paraphrase(first_of_b)])
    made = await call(client, "extract_questions", project_id=pid, tag_id=b, count=2)
    texts = [question["text"] for question in made["questions"]]
    assert (first_of_b in texts) == (scope == "tag")
    assert len(texts) == 2 and len(question_texts(db_path, b)) == 2


def test_grouping_finds_what_brute_force_finds():
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((2000, 48)).astype(np.float32)
    for n in range(0, 200, 2):  # 100 planted pairs at cosine ~0.95-0.99
        vectors[n + 1] = vectors[n] + rng.uniform(0.1, 0.3) * rng.standard_normal(48)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    gram = np.triu(vectors @ vectors.T, 1)
    for threshold in (0.8, 0.9):
        expected = {tuple(pair) for pair in np.argwhere(gram >= threshold).tolist()}
        found = {(members[0], members[1]) for members, _ in group_similar(vectors, threshold)
                 if len(members) == 2}
        assert found == expected and len(expected) >= 90
    assert lsh_shape(0.9)[0] <= 160


@pytest.mark.parametrize(("flag", "words"), [
    ("nan", "NaN or infinite values"),
    ("ragged", "varying dimension (63, 64)"),
    ("short", "returned 1 embeddings for 2 texts"),
])
async def test_an_unusable_embeddings_reply_fails_the_search_and_stores_nothing(client, llm, db_path, flag, words):
    pid, (a,) = await project_with_tags(client, 1, embedding_model={"model": f"embed+{flag}"})
    await call(client, "add_questions", project_id=pid, tag_id=a, questions=CAR)
    error = await call_error(client, "find_duplicates", project_id=pid, method="semantic")
    assert words in error and "nothing was stored" in error
    assert vector_rows(db_path) == []
    assert len(embed_requests(llm)) == 1  # refused at once: not retried


async def test_a_dimension_change_is_refused_and_a_new_model_re_embeds(client, llm, db_path):
    pid, (a,) = await project_with_tags(client, 1, embedding_model=EMBED)
    await call(client, "add_questions", project_id=pid, tag_id=a, questions=CAR)
    await call(client, "find_duplicates", project_id=pid, method="semantic")
    assert [row[2:] for row in vector_rows(db_path)] == [("embed@", 128)] * 2  # 64 float16 values each
    # The endpoint starts answering the same model name with 32 dimensions (stand-in: the dim32 flag).
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE projects SET embedding_model = ? WHERE id = ?", ('{"model":"embed+dim32"}', pid))
        conn.execute("UPDATE question_vectors SET model = 'embed+dim32@'")
    await call(client, "add_questions", project_id=pid, tag_id=a, questions=OTHER)
    error = await call_error(client, "find_duplicates", project_id=pid, method="semantic")
    assert "32-dimensional vectors, but this project's vectors have 64 dimensions" in error
    assert [row[0] for row in vector_rows(db_path)] == [1, 2]  # nothing mixed in

    await call(client, "update_project", project_id=pid, embedding_model={"model": "embed+dim32"})  # re-embeds all
    report = await call(client, "find_duplicates", project_id=pid, method="semantic")
    assert report["group_count"] == 1
    assert [row[2:] for row in vector_rows(db_path)] == [("embed+dim32@", 64)] * 3
    await call(client, "update_project", project_id=pid, remove_embedding_model=True)
    assert vector_rows(db_path) == []
    assert "no embedding_model" in await call_error(client, "find_duplicates", project_id=pid, method="both")


async def test_embedding_calls_are_counted_in_the_projects_usage(client, llm, db_path):
    pid, (a,) = await project_with_tags(client, 1, embedding_model={
        "model": "embed", "input_price_per_mtok": 100.0, "output_price_per_mtok": 0.0})
    usage_sql = "SELECT input_tokens, output_tokens, COALESCE(cost, 0), unpriced_calls FROM projects"
    with sqlite3.connect(db_path) as conn:
        before = conn.execute(usage_sql).fetchone()
    await call(client, "add_questions", project_id=pid, tag_id=a, questions=CAR + OTHER)
    await call(client, "find_duplicates", project_id=pid, method="semantic")
    with sqlite3.connect(db_path) as conn:
        after = conn.execute(usage_sql).fetchone()
    tokens = sum(len(text) // 4 + 1 for text in CAR + OTHER)
    assert (after[0] - before[0], after[1] - before[1], after[3] - before[3]) == (tokens, 0, 0)
    assert after[2] - before[2] == pytest.approx(tokens * 100 / 1e6)


@pytest.mark.parametrize(("arguments", "words"), [
    ({"embedding_model": {"provider": "anthropic", "model": "x"}}, "OpenAI-compatible /v1/embeddings"),
    ({"embedding_model": {"model": "e", "base_url": "https://elsewhere.example/v1"}}, "elsewhere.example"),
    ({"embedding_model": {"model": "e", "api_key_env": "OTHER_KEY"}}, "OTHER_KEY"),
    ({"semantic_threshold": 0.2}, "semantic_threshold"),
    ({"semantic_scope": "world"}, "semantic_scope"),
])
async def test_bad_semantic_settings_are_refused_and_nothing_is_written(client, llm, db_path, arguments, words):
    error = await call_error(client, "create_project", name="Refused", **arguments)
    assert words in error
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM projects").fetchone()[0] == 0


async def test_an_embedding_endpoint_that_is_down_fails_clearly(server, llm, db_path, env):
    from mcp import Client

    from treedistill.server.app import create_server

    down = {**env, "TREEDISTILL_ENDPOINTS": "http://127.0.0.1:9/v1"}
    async with Client(create_server(db_path, down, retry_base_delay=0.01, heartbeat_seconds=0.2,
                                    max_attempts=2)) as client:
        pid, (a,) = await project_with_tags(client, 1, embedding_model={"model": "e", "base_url": "http://127.0.0.1:9/v1"})
        await call(client, "add_questions", project_id=pid, tag_id=a, questions=CAR)
        error = await call_error(client, "find_duplicates", project_id=pid, method="semantic")
        assert "could not connect" in error
        assert vector_rows(db_path) == []


async def test_kill_9_during_embedding_pays_no_batch_twice(env, db_path, llm):
    """A real `serve` subprocess embeds 2 tags x 5 batches of 64 questions and is killed mid-way; the restarted
    one embeds the rest. No batch stored before the kill is asked again; at most the 2 in flight are."""
    import contextlib

    import anyio
    from mcp import Client

    from tests.drive import kill_server, stdio_server

    llm.configure(latency=0.4)
    with contextlib.suppress(Exception):  # the client's exit fails once its server is gone
        async with Client(stdio_server(env, db_path)) as client:
            pid, tags = await project_with_tags(client, 2)
            for tag_id in tags:
                for start in range(0, 320, 100):
                    await call(client, "add_questions", project_id=pid, tag_id=tag_id, allow_near_duplicates=True,
                               questions=[f"Tag {tag_id} question number {n}?" for n in range(start, min(start + 100, 320))])
            await call(client, "update_project", project_id=pid, embedding_model=EMBED)  # queues the embedding
            with anyio.fail_after(30):
                while len(vector_rows(db_path)) < 3 * 64:
                    await anyio.sleep(0.05)
            await kill_server(db_path)
    stored_at_kill = {row[0] for row in vector_rows(db_path)}
    asked_at_kill = len(embed_requests(llm))
    assert 3 * 64 <= len(stored_at_kill) < 640 and len(stored_at_kill) % 64 == 0
    with sqlite3.connect(db_path) as conn:
        text_of = dict(conn.execute("SELECT text, id FROM questions"))

    async with Client(stdio_server(env, db_path)):  # the embed items resume by themselves
        with anyio.fail_after(60):
            while len(vector_rows(db_path)) < 640:
                await anyio.sleep(0.1)
    after = embed_requests(llm)[asked_at_kill:]
    # Each of the ten batches was asked for; a batch whose reply was cached but not stored came from the cache.
    assert len({entry["first_input"] for entry in embed_requests(llm)}) == 10
    assert not [entry for entry in after if text_of[entry["first_input"]] in stored_at_kill]
    assert asked_at_kill + len(after) <= 10 + 2  # ten batches, and at most the two in flight paid again
    assert [row[0] for row in vector_rows(db_path)] == sorted(text_of.values())


async def test_the_dataset_report_gives_the_semantic_near_duplicate_rate_per_tag(client, llm, db_path):
    pid, (a, b) = await project_with_tags(client, 2, embedding_model=EMBED)
    await call(client, "add_questions", project_id=pid, tag_id=a, questions=[CAR[0], HOUSE[0], OTHER[0]])
    await call(client, "add_questions", project_id=pid, tag_id=b, questions=[CAR[1], HOUSE[1]])
    report = await call(client, "dataset_report", project_id=pid, near_duplicates=True)
    assert report["overall"]["embedded"] == 0 and report["overall"]["semantic_near_duplicate_rate"] is None
    await call(client, "find_duplicates", project_id=pid, method="semantic")  # embeds them
    report = await call(client, "dataset_report", project_id=pid, near_duplicates=True)
    overall, (tag_a, tag_b) = report["overall"], report["tags"]
    assert (overall["near_duplicate_rate"], overall["semantic_near_duplicate_rate"], overall["embedded"]) == (0, 0.4, 5)
    assert [(t["tag_id"], t["semantic_near_duplicate_rate"], t["embedded"]) for t in (tag_a, tag_b)] == [
        (a, 0.0, 3), (b, 1.0, 2)]
    await call(client, "delete_question", project_id=pid, question_ids=[4])  # a deleted question counts nowhere
    report = await call(client, "dataset_report", project_id=pid, near_duplicates=True)
    assert (report["overall"]["semantic_near_duplicate_rate"], report["overall"]["embedded"]) == (0.25, 4)
    assert (await call(client, "dataset_report", project_id=pid))["overall"]["semantic_near_duplicate_rate"] is None


def test_distill_with_an_embedding_model_embeds_every_question(env, db_path, llm):
    from tests.test_cli import cli as run

    done = run(env, db_path, "distill", "Chess", "--levels", "1", "--tags", "2", "--questions", "3", "--no-answer",
               "--embedding-model", "embed", "--plain")
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(db_path) as conn:
        assert json.loads(conn.execute("SELECT embedding_model FROM projects").fetchone()[0])["model"] == "embed"
    assert [row[2] for row in vector_rows(db_path)] == ["embed@"] * 6
    assert sorted(entry["inputs"] for entry in embed_requests(llm)) == [3, 3]
