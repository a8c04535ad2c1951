"""Near-duplicate questions: token-set Jaccard similarity, searched exactly or through MinHash LSH.

Two questions are near-duplicates when the Jaccard similarity of their content-token sets is at
least the threshold (DEFAULT_THRESHOLD = 0.7) and they mention the same numbers in the same order. Content tokens are
the words of the normalised text without function words and question framing ("what", "explain",
"main", ...), with plural and verb endings trimmed; runs of Chinese/Japanese/Korean characters
become overlapping character pairs. So rewordings that keep the content words ("What are the main
causes of inflation?" / "Explain the primary causes of inflation.") match, while questions about a
different aspect ("... effects of inflation?") do not. Numbers are significant: two problems that
differ only in their numbers are different problems. Paraphrases that share no content words need
embeddings and are out of scope; and as character pairs carry less meaning than words, a one-character
change in a long Chinese question can still score above the threshold.

Two searches, one rule. NearDupIndex (used when new questions are checked against a tag's few
existing ones) is exact: a candidate must share one of the first |x| - ceil(t * |x|) + 1 of the
query's tokens (rarest first), which holds for every pair with Jaccard >= t. group_near_duplicates
(find_duplicates over a whole project) must scale to 100,000s of questions, where the prefix filter
turns quadratic on the words every question of a topic shares: it finds candidate pairs with MinHash
signatures (datasketch, in minhash_lsh.py) cut into LSH bands, the band keys also carrying the numbers, so only
questions with equal numbers can collide. The bands are chosen so that a pair exactly at the
threshold is missed with probability at most MAX_MISS (pairs above it far less often), and every
candidate is then checked with the exact rule: no false matches, and the same groups as the exact
search except, rarely, a missed borderline pair. Signatures use fixed seeds, so results are repeatable.
A threshold too loose for the project's size (most pairs would be candidates) is refused up front
(MAX_CANDIDATE_PAIRS) rather than left to run for minutes.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from pydantic import BaseModel, Field

from treedistill.server.errors import InvalidInput
from treedistill.server.text.dedup import normalize

DEFAULT_THRESHOLD = 0.7

_TOKEN = re.compile(
    r"(?P<cjk>[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]+)|(?P<num>\d+)|(?P<word>[^\W\d_]+)"
)
_STOPWORDS = frozenset("""
a an the of in on at to for from by with about into onto over under and or but nor if whether than then
is are was were be been being am do does did done have has had having can could should would will shall
may might must this that these those it its they them their there here he she his her we our you your i me my
what which who whom whose why when where how whats hows some any each every other others such so as
very more most much many also not no yes just only both either neither all one ones
explain describe discuss define give list outline tell show illustrate elaborate summarize summarise identify
please briefly detail detailed example examples main key primary major important significant common typical
different various specific particular overall general role
""".split())
_CJK_STOP = re.compile("为什么|什么|怎么|怎样|如何|哪些|哪个|哪里|哪儿|多少|是否|请问|请|主要|的|是|了|吗|呢")


def _stem(word: str) -> str:
    if len(word) > 5 and word.endswith("ing"):
        return word[:-3]
    if len(word) > 4 and word.endswith("ed"):
        return word[:-2]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _content_words(text: str, stems: dict[str, str]) -> tuple[set[str], tuple[str, ...]]:
    """(content tokens, the numbers in order); `stems` caches each word's token ("" for a function word)."""
    words: set[str] = set()
    numbers: list[str] = []
    for cjk, number, word in _TOKEN.findall(normalize(text)):
        if word:
            stem = stems.get(word)
            if stem is None:
                stem = stems[word] = "" if word in _STOPWORDS else _stem(word)
            if stem:
                words.add(stem)
        elif number:
            numbers.append(number.lstrip("0") or "0")
        else:
            for run in _CJK_STOP.sub(" ", cjk).split():
                words.update(run[i:i + 2] for i in range(max(len(run) - 1, 1)))
    words.update(f"#{n}" for n in numbers)
    return words, tuple(numbers)


Tokens = tuple[frozenset[str], tuple[str, ...]]  # a question's content tokens, and its numbers in order


def tokens(text: str, stems: dict[str, str] | None = None) -> Tokens:
    """(content tokens, the numbers in order) of a question; `stems` may cache words' tokens across questions."""
    words, numbers = _content_words(text, {} if stems is None else stems)
    return frozenset(words), numbers


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of two questions' content tokens; 0 when their numbers differ."""
    (ta, na), (tb, nb) = tokens(a), tokens(b)
    if na != nb or not ta or not tb:
        return 0.0
    return len(ta & tb) / len(ta | tb)


class NearDupIndex:
    """Questions indexed by content token; finds every indexed question within the threshold of a text."""

    def __init__(self, threshold: float = DEFAULT_THRESHOLD):
        if not 0 < threshold <= 1:
            raise ValueError("threshold must be in (0, 1]")
        self.threshold = threshold
        self._postings: dict[str, list[Hashable]] = defaultdict(list)
        self._entries: dict[Hashable, Tokens] = {}
        self._stems: dict[str, str] = {}  # each word's token, worked out once

    def add(self, key: Hashable, text: str) -> None:
        self._add(key, tokens(text, self._stems))

    def matches(self, text: str) -> list[tuple[Hashable, float]]:
        """Indexed keys whose question is a near-duplicate of `text`, most similar first."""
        return self._matches(tokens(text, self._stems))

    def add_unless_near(self, key: Hashable, text: str) -> bool:
        """Index `text` under `key` unless it is a near-duplicate of an indexed question; whether it was indexed
        (`matches` then `add`, with the text tokenized once)."""
        entry = tokens(text, self._stems)
        if self._matches(entry):
            return False
        self._add(key, entry)
        return True

    def _add(self, key: Hashable, entry: Tokens) -> None:
        self._entries[key] = entry
        for token in entry[0]:
            self._postings[token].append(key)

    def _matches(self, entry: Tokens) -> list[tuple[Hashable, float]]:
        words, numbers = entry
        if not words:
            return []
        rarest_first = sorted(words, key=lambda token: (len(self._postings.get(token, ())), token))
        prefix = len(words) - math.ceil(self.threshold * len(words) - 1e-9) + 1
        seen: set[Hashable] = set()
        found = []
        for token in rarest_first[:prefix]:
            for key in self._postings.get(token, ()):
                if key in seen:
                    continue
                seen.add(key)
                other, other_numbers = self._entries[key]
                if other_numbers != numbers:
                    continue
                score = len(words & other) / len(words | other)
                if score >= self.threshold:
                    found.append((key, score))
        return sorted(found, key=lambda pair: -pair[1])


def drop_near_duplicates(candidates: Iterable[str], existing: Iterable[str],
                         threshold: float = DEFAULT_THRESHOLD) -> list[str]:
    """The candidates that are near-duplicates neither of `existing` nor of an earlier kept candidate."""
    index = NearDupIndex(threshold)
    for number, text in enumerate(existing):
        index.add(("existing", number), text)
    return [text for number, text in enumerate(candidates) if index.add_unless_near(("candidate", number), text)]


# (sorted content tokens, numbers): tuples of strings, which the garbage collector stops tracking, so that
# its full passes over 100,000s of them stay short (a pass holds the GIL, stalling the event loop).
Entry = tuple[tuple[str, ...], tuple[str, ...]]
StepProgress = Callable[[int, int], None]  # (done, total), called from the thread doing the work

PROGRESS_EVERY = 2048  # entries between progress reports
# Bound on candidate_pair_bound: about 20 s of checking on a 2-core machine. The default threshold on
# 100,000 questions needed 0.7M of it in the benchmark; a loose one (0.3) pairs nearly everything.
MAX_CANDIDATE_PAIRS = 20_000_000


def group_near_duplicates(items: Iterable[tuple[Hashable, str]], threshold: float = DEFAULT_THRESHOLD,
                          progress: StepProgress | None = None) -> list[tuple[list[Hashable], float]]:
    """Groups (keys in input order, highest pair similarity) of connected near-duplicates, singletons left out.

    Questions with the same tokens and numbers count once (similarity 1); the distinct ones are paired by
    MinHash LSH and each candidate pair is checked with the exact rule (see the module docstring).
    """
    from treedistill.server.text import minhash_lsh  # numpy and datasketch: loaded by the first search, not at start

    if not 0 < threshold <= 1:
        raise ValueError("threshold must be in (0, 1]")
    report = progress or (lambda done, total: None)
    items = list(items)
    total = 3 * len(items)  # three passes: tokens, signatures, checking the candidate pairs
    keys: list[Hashable] = []
    entry_of: list[int] = []  # per input position: its distinct entry, -1 without content words (never matched)
    index_of: dict[Entry, int] = {}
    stems: dict[str, str] = {}
    for position, (key, text) in enumerate(items):
        keys.append(key)
        words, numbers = _content_words(text, stems)
        if words:
            entry_of.append(index_of.setdefault((tuple(sorted(words)), numbers), len(index_of)))
        else:
            entry_of.append(-1)
        if position % PROGRESS_EVERY == 0:
            report(position, total)
    del items
    entries = list(index_of)
    del index_of
    copies = [0] * len(entries)
    for entry in entry_of:
        if entry >= 0:
            copies[entry] += 1
    parent = list(range(len(entries)))
    best = [1.0 if count > 1 else 0.0 for count in copies]

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    signed = lambda done, count: report(len(keys) + len(keys) * done // count, total)  # noqa: E731
    band_keys = minhash_lsh.band_keys(entries, threshold, signed)
    bound = minhash_lsh.candidate_pair_bound(band_keys)
    if bound > MAX_CANDIDATE_PAIRS:
        raise InvalidInput(
            f"At threshold {threshold:g}, {len(keys):,} questions share too many words: about {bound:,} pairs would "
            f"have to be compared (the most is {MAX_CANDIDATE_PAIRS:,}). Use a higher threshold or "
            "a tag_id to search one subtree at a time. Nothing was compared.")
    for band, firsts, seconds in minhash_lsh.candidate_pairs(band_keys):
        report(2 * len(keys) + len(keys) * band // band_keys.shape[1], total)
        for i, j in zip(firsts, seconds):
            (words, numbers), (other, other_numbers) = entries[i], entries[j]
            if numbers != other_numbers:
                continue
            shared = len(set(words).intersection(other))
            score = shared / (len(words) + len(other) - shared)
            if score >= threshold:
                a, b = root(i), root(j)
                if a != b:
                    parent[b] = a
                best[a] = max(best[a], best[b], score)
    report(total, total)
    size = [0] * len(entries)
    for node, count in enumerate(copies):
        size[root(node)] += count
    groups: dict[int, list[int]] = {}  # by root, in the order of their first question, as the input
    for position, entry in enumerate(entry_of):
        if entry >= 0 and size[top := root(entry)] > 1:
            groups.setdefault(top, []).append(position)
    return [([keys[position] for position in positions], round(best[top], 3)) for top, positions in groups.items()]


class DuplicateMember(BaseModel):
    question_id: int
    tag_path: str
    text: str
    answered: bool
    confirmed: bool


class DuplicateGroup(BaseModel):
    similarity: float = Field(..., description=(
        "Highest similarity between two members: Jaccard of content words (lexical), cosine (semantic)"))
    keep_question_id: int = Field(..., description="The member to keep: confirmed, best rated, answered, oldest")
    remove_question_ids: list[int]
    questions: list[DuplicateMember]


class DuplicateReport(BaseModel):
    project_id: int
    method: str = Field("lexical", description="lexical (content words), semantic (embeddings) or both")
    threshold: float = Field(..., description="The method's threshold: Jaccard (lexical, both) or cosine (semantic)")
    semantic_threshold: float | None = Field(None, description="The cosine threshold (semantic, both)")
    questions_checked: int
    group_count: int = Field(..., description="Groups found; only the first `limit` are listed")
    duplicate_count: int = Field(..., description="Questions that could be removed, over all groups")
    groups: list[DuplicateGroup]
    removable_question_ids: list[int] = Field(..., description="remove_question_ids of the listed groups; "
                                                               "pass them to delete_question")


def keep_order(row: dict[str, Any]) -> tuple:
    """The sort key of a group's member to keep (the largest): confirmed, best rated, answered, best scored, oldest."""
    return row["confirmed"], row["rating"] or 0, row["answered"], row["score"] or 0, -row["id"]


def report_duplicates(project_id: int, rows: Iterable[dict[str, Any]], threshold: float,
                      limit: int, progress: StepProgress | None = None) -> DuplicateReport:
    """Group near-duplicate questions (rows of CurationStore.question_rows) and pick the one to keep in each."""
    by_id = {row["id"]: row for row in rows}
    found = group_near_duplicates(((qid, row["text"]) for qid, row in by_id.items()), threshold, progress)
    return report_groups(project_id, by_id, found, threshold, limit)


def report_groups(project_id: int, by_id: dict[int, dict[str, Any]], found: list[tuple[list[Hashable], float]],
                  threshold: float, limit: int, method: str = "lexical",
                  semantic_threshold: float | None = None) -> DuplicateReport:
    """The report of groups of question ids (with their highest similarity), picking the one to keep in each."""
    groups = []
    for members, score in found[:limit]:
        rows_of = [by_id[qid] for qid in members]
        keep = max(rows_of, key=keep_order)
        groups.append(DuplicateGroup(
            similarity=score, keep_question_id=keep["id"],
            remove_question_ids=[r["id"] for r in rows_of if r is not keep],
            questions=[DuplicateMember(question_id=r["id"], tag_path=r["tag_path"], text=r["text"],
                                       answered=bool(r["answered"]), confirmed=bool(r["confirmed"])) for r in rows_of],
        ))
    return DuplicateReport(
        project_id=project_id, method=method, threshold=threshold, semantic_threshold=semantic_threshold,
        questions_checked=len(by_id),
        group_count=len(found),
        duplicate_count=sum(len(members) - 1 for members, _ in found), groups=groups,
        removable_question_ids=[qid for group in groups for qid in group.remove_question_ids],
    )
