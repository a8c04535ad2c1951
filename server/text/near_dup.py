"""Near-duplicate questions: token-set Jaccard similarity, searched exactly with a prefix filter.

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

The search is exact, not sampled (unlike MinHash): a candidate must share one of the first
|x| - ceil(t * |x|) + 1 of the query's tokens (rarest first), which holds for every pair with
Jaccard >= t, then the similarity is computed in full.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Hashable, Iterable
from typing import Any

from pydantic import BaseModel, Field

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


def tokens(text: str) -> tuple[frozenset[str], tuple[str, ...]]:
    """(content tokens, the numbers in order) of a question."""
    words: set[str] = set()
    numbers: list[str] = []
    for match in _TOKEN.finditer(normalize(text)):
        if match.lastgroup == "num":
            numbers.append(match.group().lstrip("0") or "0")
        elif match.lastgroup == "word":
            if match.group() not in _STOPWORDS:
                words.add(_stem(match.group()))
        else:
            for run in _CJK_STOP.sub(" ", match.group()).split():
                words.update(run[i:i + 2] for i in range(max(len(run) - 1, 1)))
    return frozenset(words | {f"#{n}" for n in numbers}), tuple(numbers)


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
        self._entries: dict[Hashable, tuple[frozenset[str], tuple[str, ...]]] = {}

    def add(self, key: Hashable, text: str) -> None:
        entry = tokens(text)
        self._entries[key] = entry
        for token in entry[0]:
            self._postings[token].append(key)

    def matches(self, text: str) -> list[tuple[Hashable, float]]:
        """Indexed keys whose question is a near-duplicate of `text`, most similar first."""
        words, numbers = tokens(text)
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
    kept = []
    for text in candidates:
        if not index.matches(text):
            index.add(("kept", len(kept)), text)
            kept.append(text)
    return kept


def group_near_duplicates(items: Iterable[tuple[Hashable, str]],
                          threshold: float = DEFAULT_THRESHOLD) -> list[tuple[list[Hashable], float]]:
    """Groups (keys in input order, highest pair similarity) of connected near-duplicates, singletons left out."""
    index = NearDupIndex(threshold)
    parent: dict[Hashable, Hashable] = {}
    best: dict[Hashable, float] = {}
    order: list[Hashable] = []

    def root(key: Hashable) -> Hashable:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for key, text in items:
        parent[key] = key
        order.append(key)
        for other, score in index.matches(text):
            a, b = root(key), root(other)
            if a != b:
                parent[a] = b
            top = root(key)
            best[top] = max(best.get(a, 0.0), best.get(b, 0.0), best.get(top, 0.0), score)
        index.add(key, text)
    groups: dict[Hashable, list[Hashable]] = defaultdict(list)
    for key in order:
        groups[root(key)].append(key)
    return [(members, round(best[top], 3)) for top, members in groups.items() if len(members) > 1]


class DuplicateMember(BaseModel):
    question_id: int
    tag_path: str
    text: str
    answered: bool
    confirmed: bool


class DuplicateGroup(BaseModel):
    similarity: float = Field(..., description="Highest Jaccard similarity between two members")
    keep_question_id: int = Field(..., description="The member to keep: confirmed, best rated, answered, oldest")
    remove_question_ids: list[int]
    questions: list[DuplicateMember]


class DuplicateReport(BaseModel):
    project_id: int
    threshold: float
    questions_checked: int
    group_count: int = Field(..., description="Groups found; only the first `limit` are listed")
    duplicate_count: int = Field(..., description="Questions that could be removed, over all groups")
    groups: list[DuplicateGroup]
    removable_question_ids: list[int] = Field(..., description="remove_question_ids of the listed groups; "
                                                               "pass them to delete_question")


def report_duplicates(project_id: int, rows: Iterable[dict[str, Any]], threshold: float,
                      limit: int) -> DuplicateReport:
    """Group near-duplicate questions (rows of CurationStore.question_rows) and pick the one to keep in each."""
    by_id = {row["id"]: row for row in rows}
    found = group_near_duplicates(((qid, row["text"]) for qid, row in by_id.items()), threshold)
    groups = []
    for members, score in found[:limit]:
        rows_of = [by_id[qid] for qid in members]
        keep = max(rows_of, key=lambda r: (r["confirmed"], r["rating"] or 0, r["answered"], r["score"] or 0, -r["id"]))
        groups.append(DuplicateGroup(
            similarity=score, keep_question_id=keep["id"],
            remove_question_ids=[r["id"] for r in rows_of if r is not keep],
            questions=[DuplicateMember(question_id=r["id"], tag_path=r["tag_path"], text=r["text"],
                                       answered=bool(r["answered"]), confirmed=bool(r["confirmed"])) for r in rows_of],
        ))
    return DuplicateReport(
        project_id=project_id, threshold=threshold, questions_checked=len(by_id), group_count=len(found),
        duplicate_count=sum(len(members) - 1 for members, _ in found), groups=groups,
        removable_question_ids=[qid for group in groups for qid in group.remove_question_ids],
    )
