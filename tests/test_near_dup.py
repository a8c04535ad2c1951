"""Near-duplicate questions: the similarity on seeded paraphrases, the exact indexed search, the MinHash LSH
grouping against it, and find_duplicates / add_questions / extract_questions through the MCP client (on 20,000
questions while other tools must keep answering)."""

from __future__ import annotations

import asyncio
import functools
import itertools
import random
import sys
import time

import pytest
from mcp import Client

from benchmarks.event_loop_stalls import synthetic_questions
from treedistill.server.store.catalog import Store, open_database
from treedistill.server.text import near_dup
from treedistill.server.text.minhash_lsh import MAX_MISS, NUM_PERM, lsh_bands
from treedistill.server.text.near_dup import (
    DEFAULT_THRESHOLD,
    NearDupIndex,
    drop_near_duplicates,
    group_near_duplicates,
    similarity,
    tokens,
)
from tests.drive import stored
from tests.drive import call, call_error

pytestmark = pytest.mark.anyio

# Rewordings that keep the content words: near-duplicates at the default threshold.
PARAPHRASES = [
    ("What are the main causes of inflation in developing economies?",
     "What are the primary causes of inflation in developing economies?"),
    ("How does photosynthesis convert light energy into chemical energy?",
     "In photosynthesis, how is light energy converted into chemical energy?"),
    ("Explain the role of mitochondria in cellular respiration.",
     "What role do mitochondria play in cellular respiration?"),
    ("How does a zero-coupon bond differ from a coupon bond in terms of interest rate risk?",
     "In terms of interest rate risk, how do zero-coupon bonds differ from coupon bonds?"),
    ("What is inflation?", "Define inflation."),
    ("什么是光合作用？", "光合作用是什么？"),
]
# Same topic, different question: never near-duplicates.
DISTINCT = [
    ("What are the main causes of inflation?", "What are the main effects of inflation?"),
    ("How do central banks control inflation?", "How do central banks measure inflation?"),
    ("What is inflation?", "What causes inflation?"),
    ("What is 2 + 2?", "What is 2 + 3?"),
    ("Question 1: how does Tactics work in Football?", "Question 2: how does Tactics work in Football?"),
    ("How do vaccines train the immune system?", "How does the immune system respond to viral infection?"),
    ("光合作用的产物是什么？", "呼吸作用的产物是什么？"),
]


@pytest.mark.parametrize(("a", "b"), PARAPHRASES)
def test_paraphrases_are_near_duplicates(a, b):
    assert similarity(a, b) >= DEFAULT_THRESHOLD
    assert drop_near_duplicates([b], [a]) == []


@pytest.mark.parametrize(("a", "b"), DISTINCT)
def test_different_questions_are_not(a, b):
    assert similarity(a, b) < DEFAULT_THRESHOLD
    assert drop_near_duplicates([b], [a]) == [b]


def test_the_indexed_search_finds_exactly_what_brute_force_finds():
    rng = random.Random(4)
    words = "inflation rate bank policy money supply demand price market growth trade tax debt bond".split()
    texts = [" ".join(rng.sample(words, rng.randint(2, 6))) + "?" for _ in range(400)]
    sets = [tokens(text)[0] for text in texts]
    jaccard = lambda a, b: len(a & b) / len(a | b)  # noqa: E731
    for threshold in (0.5, 0.7, 0.9):
        index = NearDupIndex(threshold)
        found = set()
        for i, text in enumerate(texts):
            found |= {(j, i) for j, _ in index.matches(text)}
            index.add(i, text)
        expected = {(i, j) for i, j in itertools.combinations(range(len(texts)), 2)
                    if jaccard(sets[i], sets[j]) >= threshold}
        assert found == expected and expected


def test_groups_are_connected_and_in_input_order():
    texts = [PARAPHRASES[0][0], "Why is the sky blue?", PARAPHRASES[0][1], PARAPHRASES[1][1], PARAPHRASES[1][0]]
    groups = group_near_duplicates(enumerate(texts))
    assert sorted(members for members, _ in groups) == [[0, 2], [3, 4]]
    assert all(score == 1.0 for _, score in groups)
    assert drop_near_duplicates(texts, []) == texts[:2] + texts[3:4]


async def test_find_and_remove_duplicates_across_the_project(client, llm, db_path):
    project = await call(client, "create_project", name="Economics")
    tags = (await call(client, "generate_tags", project_id=project["id"], count=2))["tags"]
    pid, (a, b) = project["id"], (tag["id"] for tag in tags)
    seeded_a = [first for first, _ in PARAPHRASES[:3]] + ["How are exchange rates determined?"]
    seeded_b = [second for _, second in PARAPHRASES[:3]] + ["What determines the unemployment rate?"]
    await call(client, "add_questions", project_id=pid, tag_id=a, questions=seeded_a)
    added = await call(client, "add_questions", project_id=pid, tag_id=b, questions=seeded_b)
    assert not added["skipped"]  # near-duplicates in another tag are left to find_duplicates
    await call(client, "answer_question", project_id=pid, question_id=6)  # an answered copy is the one kept

    report = await call(client, "find_duplicates", project_id=pid)
    assert (report["questions_checked"], report["group_count"], report["duplicate_count"]) == (8, 3, 3)
    groups = sorted(report["groups"], key=lambda g: min(q["question_id"] for q in g["questions"]))
    assert [sorted(q["question_id"] for q in g["questions"]) for g in groups] == [[1, 5], [2, 6], [3, 7]]
    assert [g["keep_question_id"] for g in groups] == [1, 6, 3]
    assert sorted(report["removable_question_ids"]) == [2, 5, 7]
    assert (await call(client, "find_duplicates", project_id=pid, tag_id=a))["group_count"] == 0
    strict = await call(client, "find_duplicates", project_id=pid, threshold=0.8)
    assert strict["group_count"] == 2  # the mitochondria pair is 0.75 similar

    await call(client, "delete_question", project_id=pid, question_ids=report["removable_question_ids"])
    assert (await call(client, "find_duplicates", project_id=pid))["group_count"] == 0
    assert stored(db_path)["questions"] == 5


async def test_new_questions_stay_diverse(client, llm, db_path):
    project = await call(client, "create_project", name="Biology")
    tag = (await call(client, "generate_tags", project_id=project["id"], count=1))["tags"][0]
    pid = project["id"]
    first = [first for first, _ in PARAPHRASES[:2]]
    await call(client, "add_questions", project_id=pid, tag_id=tag["id"], questions=first)
    result = await call(client, "add_questions", project_id=pid, tag_id=tag["id"], questions=[
        PARAPHRASES[0][1], first[1].upper(), "Why do cells divide?", "Why do cells divide by mitosis?",
        "why do cells  divide"])
    assert [q["text"] for q in result["added"]] == ["Why do cells divide?", "Why do cells divide by mitosis?"]
    assert sorted((s["text"], s["reason"].split(" of ")[0]) for s in result["skipped"]) == sorted([
        (PARAPHRASES[0][1], "near-duplicate"), (first[1].upper(), "duplicate"), ("why do cells divide", "duplicate")])
    kept = await call(client, "add_questions", project_id=pid, tag_id=tag["id"], questions=[PARAPHRASES[0][1]],
                      allow_near_duplicates=True)
    assert len(kept["added"]) == 1
    assert "No tag with id" in await call_error(client, "add_questions", project_id=pid, tag_id=99, questions=["Q?"])

    # The stand-in always proposes "Question 1: how does <tag> work in the context of <path>?" first. A reworded
    # copy of it is stored, so extraction must not add the near-duplicate, and says why it fell short.
    path = f"Biology > {tag['name']}"
    reworded = f"Question 1 - in the context of {path}, how does {tag['name']} work?"
    await call(client, "add_questions", project_id=pid, tag_id=tag["id"], questions=[reworded])
    before = stored(db_path)["questions"]
    message = await call_error(client, "extract_questions", project_id=pid, tag_id=tag["id"], count=1)
    assert "repeating existing questions" in message
    assert stored(db_path)["questions"] == before


@functools.cache
def exact_groups_of_synthetic(count: int, seed: int, threshold: float) -> list[tuple[list[int], float]]:
    return exact_groups(synthetic_questions(count, seed), threshold)


def exact_groups(texts: list[str], threshold: float) -> list[tuple[list[int], float]]:
    """The reference: every near-duplicate pair from the exact indexed search, joined into groups."""
    index, parent, best = NearDupIndex(threshold), list(range(len(texts))), [0.0] * len(texts)

    def root(node):
        while parent[node] != node:
            node = parent[node]
        return node

    for position, text in enumerate(texts):
        for other, score in index.matches(text):
            a, b = root(position), root(other)
            parent[a] = b
            best[b] = max(best[a], best[b], score)
        index.add(position, text)
    groups: dict[int, list[int]] = {}
    for position in range(len(texts)):
        groups.setdefault(root(position), []).append(position)
    return [(members, round(best[top], 3)) for top, members in groups.items() if len(members) > 1]


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.9])
def test_lsh_groups_are_the_exact_groups(threshold):
    rng = random.Random(11)
    words = "inflation rate bank policy money supply demand price market growth trade tax debt bond".split()
    texts = synthetic_questions(3000, seed=3) + [" ".join(rng.sample(words, rng.randint(2, 6))) + "?"
                                                 for _ in range(400)]
    progress = []
    found = group_near_duplicates(enumerate(texts), threshold, lambda done, total: progress.append((done, total)))
    expected = exact_groups(texts, threshold)
    assert len(expected) > 100
    assert found == expected
    assert progress[-1] == (3 * len(texts), 3 * len(texts))
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)


def test_lsh_bands_find_a_pair_at_the_threshold():
    for threshold in (0.3, 0.5, 0.7, 0.9, 1.0):
        bands, rows = lsh_bands(threshold)
        assert bands * rows <= NUM_PERM
        assert (1 - threshold ** rows) ** bands <= MAX_MISS
        assert rows == NUM_PERM or (1 - threshold ** (rows + 1)) ** (NUM_PERM // (rows + 1)) > MAX_MISS


# Planted in a large project: (texts, the indexes that must form one group; None: no group).
PLANTED = [
    (["How does zorblax flux affect gravimetric torsion in 1987?",
      "In 1987, how does gravimetric torsion affect zorblax flux?",  # the same words reordered
      "Describe how zorblax flux affects gravimetric torsion in 1987."],  # other framing, a plural
     [0, 1, 2]),
    (["What limits quibbleton lattice stiffness at 40 kelvin?",
      "What limits quibbleton lattice stiffness at 41 kelvin?",  # another number: another problem
      "At 40 kelvin, what limits the quibbleton lattice stiffness?"],
     [0, 2]),
    (["Why do florpish enzymes denature near volcanic vents?",
      "Why do florpish proteins unfold near volcanic vents?"],  # 4 of 8 content words shared: 0.5 < 0.7
     None),
]


def fill_project(db_path, project_id: int, tag_ids: list[int], questions: int) -> list[int]:
    """Insert the planted questions, then `questions` synthetic ones, straight through the store; the planted ids."""
    store = Store(open_database(db_path))
    tags = [store.get_tag(project_id, tag_id) for tag_id in tag_ids]
    texts = synthetic_questions(questions, seed=5)
    per_tag = len(texts) // len(tags) + 1
    with store.transaction():
        planted = [q.id for texts_, _ in PLANTED for q in store.insert_questions(project_id, tags[0], texts_)]
        for number, tag in enumerate(tags):
            store.insert_questions(project_id, tag, texts[number * per_tag:(number + 1) * per_tag])
    store.db.conn.close()
    return planted


async def test_find_duplicates_on_20k_questions_leaves_other_tools_responsive(server, llm, db_path):
    async with Client(server) as client:  # one protocol era: what is measured is the server's event loop
        await find_duplicates_while_other_tools_answer(client, db_path)


async def find_duplicates_while_other_tools_answer(client: Client, db_path) -> None:
    project = await call(client, "create_project", name="Scale")
    pid = project["id"]
    tags = (await call(client, "generate_tags", project_id=pid, count=10))["tags"]
    planted = fill_project(db_path, pid, [tag["id"] for tag in tags], 20_000)
    job = await call(client, "auto_distill", project_id=pid, levels=1, tags_per_level=11, questions_per_tag=1,
                     answer=False)  # one more tag: a small job for get_progress to read
    updates = []

    async def on_progress(done, total, message):
        updates.append((done, total))

    switch_interval = sys.getswitchinterval()
    search = asyncio.create_task(client.call_tool("find_duplicates", {"project_id": pid, "limit": 500},
                                                  progress_callback=on_progress))
    await asyncio.sleep(0.05)
    latencies = []
    while not search.done():
        for tool, arguments in (("get_progress", {"job_id": job["job_id"]}), ("list_projects", {})):
            started = time.perf_counter()
            await call(client, tool, **arguments)
            latencies.append((time.perf_counter() - started, tool, search.done()))
        await asyncio.sleep(0.02)
    result = search.result()
    assert not result.is_error, result.content[0].text
    report = result.structured_content

    during = [(seconds, tool) for seconds, tool, done in latencies if not done]
    assert len(during) >= 6, latencies  # the search took long enough to be measured against
    assert max(during)[0] < 0.5, max(during)
    assert updates and updates[-1][0] == updates[-1][1]
    assert sys.getswitchinterval() == switch_interval  # shortened during the search only

    assert report["questions_checked"] == 20_008
    groups = {tuple(sorted(q["question_id"] for q in group["questions"])) for group in report["groups"]}
    start = 0
    for texts, members in PLANTED:
        ids = planted[start:start + len(texts)]
        start += len(texts)
        in_groups = {qid for group in groups for qid in group if qid in ids}
        if members is None:
            assert not in_groups
        else:
            assert tuple(ids[i] for i in members) in groups
            assert in_groups == {ids[i] for i in members}
    expected = exact_groups_of_synthetic(20_000, 5, DEFAULT_THRESHOLD)
    assert report["group_count"] == len(expected) + 2
    assert report["duplicate_count"] == sum(len(members) - 1 for members, _ in expected) + 3


def test_big_buckets_are_paired_in_steps_and_match_the_exact_groups():
    # 400 questions sharing four of their five content words: at 0.5 most fall into the same LSH buckets,
    # far above the size paired as one matrix.
    letters = "bcdfghjklmnpqrtvwxyz"
    texts = [f"How does the zorblax quantum flux capacitor handle load zq{a}{b}?" for a in letters for b in letters]
    assert len({tokens(text) for text in texts}) == 400 and similarity(texts[0], texts[1]) == 0.75
    found = group_near_duplicates(enumerate(texts), 0.5)
    assert found == exact_groups(texts, 0.5) == [(list(range(400)), 0.75)]


async def test_a_search_that_would_compare_too_many_pairs_is_refused(client, llm, db_path, monkeypatch):
    monkeypatch.setattr(near_dup, "MAX_CANDIDATE_PAIRS", 2000)  # 0.6 needs about 1,500 here, 0.3 about 3,000
    project = await call(client, "create_project", name="Loose")
    tag = (await call(client, "generate_tags", project_id=project["id"], count=1))["tags"][0]
    await call(client, "add_questions", project_id=project["id"], tag_id=tag["id"], allow_near_duplicates=True,
               questions=[f"Why does the {word} tide rise near the harbour?" for word in
                          "red blue green grey black white pink gold teal navy cyan plum".split()])
    assert (await call(client, "find_duplicates", project_id=project["id"], threshold=0.6))["group_count"] == 1
    message = await call_error(client, "find_duplicates", project_id=project["id"], threshold=0.3)
    assert "12 questions share too many words" in message and "Nothing was compared" in message
