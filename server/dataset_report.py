"""The dataset report: per tag and overall, what a project's data holds and how good it looks.

Figures come from one pass over the scope's questions through covering indexes (lengths are stored as
integers, so no text is read), the failed answer items, the decontamination matches and the project's cost;
the lexical near-duplicate rate, which reads every question's text, only when asked for, and with it the semantic
one from the stored embeddings (no model is called: questions without a vector are left out of that rate). Token counts are an
estimate from characters (TOKENS_PER_CHAR, per language), the same kind the cost estimate uses.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

from treedistill.server.config import MAX_REPORT_TAGS
from treedistill.server.errors import InvalidInput
from treedistill.server.store.catalog import Store
from treedistill.server.store.curation import CurationStore
from treedistill.server.store.report import MIX_COLUMNS, ReportQueries
from treedistill.server.store.vectors import VectorStore
from treedistill.server.text.near_dup import DEFAULT_THRESHOLD, report_duplicates, report_groups
from treedistill.server.text.semantic_dup import group_similar

TOKENS_PER_CHAR = {"en": 0.25, "zh": 0.7}  # ~4 characters per token in English; a Chinese character ~0.7
ALL_GROUPS = 10**9
# Upper bounds (exclusive, estimated tokens) of the length histograms' bins; the last bin is open-ended.
LENGTH_BINS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
LENGTH_BIN_LABELS = tuple(f"{low}-{high - 1}" for low, high in zip((0, *LENGTH_BINS), LENGTH_BINS)) + (
    f"{LENGTH_BINS[-1]}+",)
Breakdown = Literal["children", "tags"]


class LengthDistribution(BaseModel):
    count: int
    p10: int
    p50: int
    p90: int
    histogram: dict[str, int] = Field(..., description=(
        "Lengths per bin of estimated tokens (0-15, 16-31, ... doubling up to 8192+), every bin listed"))


class ScopeFigures(BaseModel):
    tag_id: int | None = Field(None, description="null: the whole scope")
    tag_path: str | None = None
    parent_id: int | None = Field(None, description="The tag's parent (null: a top-level tag, or the whole scope)")
    questions: int
    answered: int
    failed: int = Field(..., description="Unanswered questions whose answer call failed")
    held_out: int = Field(..., description="Evaluation questions (hold_out)")
    near_duplicate_rate: float | None = Field(None, description=(
        "Lexical near-duplicates that could be removed, per question (null unless near_duplicates=true)"))
    semantic_near_duplicate_rate: float | None = Field(None, description=(
        "Semantic near-duplicates (cosine of stored embeddings >= the project's semantic_threshold) that could be "
        "removed, per question with a vector (null unless near_duplicates=true and the project has an "
        "embedding_model with vectors)"))
    embedded: int | None = Field(None, description="Questions with a vector of the embedding model (with the rate)")
    question_tokens: LengthDistribution | None = None
    answer_tokens: LengthDistribution | None = None
    reasoning_tokens: LengthDistribution | None = None
    with_reasoning_share: float | None = Field(None, description="Answers with a reasoning trace, per answer")
    score_histogram: dict[str, int] = Field(..., description="Answers per judge score 1-10")
    unscored: int = Field(..., description="Answers the judge has not scored")
    mix: dict[str, dict[str, int]] = Field(default_factory=dict, description=(
        "Questions per value of each known per-question field (type, difficulty, ...)"))
    contamination_matched: int = Field(..., description="Questions with a decontamination match")
    contamination_excluded: int = Field(..., description="Of those, left out of training (match not kept)")


class DatasetReport(BaseModel):
    project_id: int
    project_name: str
    tag_id: int | None
    token_estimate: str
    overall: ScopeFigures
    breakdown: Breakdown = "children"
    tags: list[ScopeFigures] = Field(..., description=(
        "breakdown 'children': one per child of the scope (top-level tags for a project), over its subtree; "
        "'tags': one per tag of the scope's subtree (tag_id's own tag included), over its own questions only"))
    cost: float | None = Field(None, description="USD over all of the project's calls; null when a price is unknown")
    cost_per_1000_answers: float | None = Field(None, description="The project's cost per 1,000 stored answers")


@dataclass
class _Tally:
    questions: int = 0
    answered: int = 0
    failed: int = 0
    held_out: int = 0
    removable: int = 0
    semantic_removable: int = 0
    embedded: int = 0
    with_reasoning: int = 0
    matched: int = 0
    excluded: int = 0
    question_chars: list[int] = field(default_factory=list)
    answer_chars: list[int] = field(default_factory=list)
    reasoning_chars: list[int] = field(default_factory=list)
    scores: Counter = field(default_factory=Counter)
    mix: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))

    def add(self, row: tuple, failed: bool, contamination: bool | None) -> None:
        _, _, held, q_chars, answered, a_chars, r_chars, score, *mix = row
        self.questions += 1
        self.held_out += held
        self.failed += failed
        self.question_chars.append(q_chars)
        if contamination is not None:
            self.matched += 1
            self.excluded += contamination
        for column, value in zip(MIX_COLUMNS, mix):
            if value is not None:
                self.mix[column][str(value)] += 1
        if not answered:
            return
        self.answered += 1
        self.answer_chars.append(a_chars)
        if r_chars:
            self.with_reasoning += 1
            self.reasoning_chars.append(r_chars)
        self.scores[score] += 1

    def figures(self, per_char: float, tag: tuple[int, str, int | None] | None, near_duplicates: bool,
                semantic: bool = False) -> ScopeFigures:
        tag_id, tag_path, parent_id = tag or (None, None, None)
        return ScopeFigures(
            tag_id=tag_id, tag_path=tag_path, parent_id=parent_id, questions=self.questions,
            answered=self.answered, failed=self.failed, held_out=self.held_out,
            near_duplicate_rate=_share(self.removable, self.questions) if near_duplicates else None,
            semantic_near_duplicate_rate=_share(self.semantic_removable, self.embedded) if semantic else None,
            embedded=self.embedded if semantic else None,
            question_tokens=_distribution(self.question_chars, per_char),
            answer_tokens=_distribution(self.answer_chars, per_char),
            reasoning_tokens=_distribution(self.reasoning_chars, per_char),
            with_reasoning_share=_share(self.with_reasoning, self.answered),
            score_histogram={str(score): self.scores[score] for score in range(1, 11)},
            unscored=self.scores[None], mix={column: dict(counts) for column, counts in self.mix.items()},
            contamination_matched=self.matched, contamination_excluded=self.excluded)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _distribution(chars: list[int], per_char: float) -> LengthDistribution | None:
    """p10/p50/p90 (nearest rank) and the histogram (LENGTH_BINS) of estimated tokens."""
    if not chars:
        return None
    chars.sort()

    def rank(p: int) -> int:
        return math.ceil(chars[max(math.ceil(p / 100 * len(chars)) - 1, 0)] * per_char)

    bins = Counter(bisect.bisect_right(LENGTH_BINS, math.ceil(count * per_char)) for count in chars)
    return LengthDistribution(count=len(chars), p10=rank(10), p50=rank(50), p90=rank(90),
                              histogram={label: bins[index] for index, label in enumerate(LENGTH_BIN_LABELS)})


def build_report(store: Store, project_id: int, tag_id: int | None, near_duplicates: bool = False,
                 breakdown: Breakdown = "children") -> DatasetReport:
    """The report of a project (or a tag's subtree), broken down by the scope's children, or by every tag of it
    (`breakdown="tags"`, each over its own questions: what a treemap of the tree draws). Blocking: meant for a
    worker thread on a read-only connection. The project and tag must exist (the caller checks). Raises
    InvalidInput when a per-tag breakdown would list more than MAX_REPORT_TAGS tags."""
    project = store.get_project(project_id)
    queries = ReportQueries(store)
    tags = queries.tags(project_id)
    paths = {tag: path for tag, _, path in tags}
    parents = {tag: parent for tag, parent, _ in tags}
    child_of = _children_of(tags, tag_id)
    if breakdown == "tags":
        child_of = {tag: tag for tag in (*child_of, *([tag_id] if tag_id is not None else []))}
        if len(child_of) > MAX_REPORT_TAGS:
            raise InvalidInput(f"That scope has {len(child_of):,} tags; a per-tag report lists at most "
                               f"{MAX_REPORT_TAGS:,}. Report on a tag lower in the tree, or break it down by children.")
    failed = queries.failed_questions(project_id, tag_id)
    contaminated = queries.contaminated(project_id)
    overall, per_child = _Tally(), defaultdict(_Tally)
    under: dict[int, int | None] = {}  # question -> the entry of `tags` it counts in
    for row in queries.question_rows(project_id, tag_id):
        question_id, question_tag = row[0], row[1]
        child = child_of.get(question_tag)
        under[question_id] = child
        for tally in (overall, per_child[child]) if child is not None else (overall,):
            tally.add(row, question_id in failed, contaminated.get(question_id))
    semantic = near_duplicates and project.embedding_model is not None
    if near_duplicates:
        rows = list(CurationStore(store).question_rows(project_id, tag_id))
        for group in report_duplicates(project_id, rows, DEFAULT_THRESHOLD, ALL_GROUPS).groups:
            for question_id in group.remove_question_ids:
                overall.removable += 1
                if under.get(question_id) is not None:
                    per_child[under[question_id]].removable += 1
    if semantic:
        ids, vectors = VectorStore(store).vectors(project_id, project.embedding_model, tag_id, subtree=True)
        by_id = {row["id"]: row for row in rows}
        found = [([ids[n] for n in members], score)
                 for members, score in group_similar(vectors, project.semantic_threshold)]
        for name, question_ids in (("embedded", ids), ("semantic_removable", [
                qid for group in report_groups(project_id, by_id, found, project.semantic_threshold, ALL_GROUPS).groups
                for qid in group.remove_question_ids])):
            for question_id in question_ids:
                for tally in (overall, per_child[under[question_id]]) if under.get(question_id) is not None \
                        else (overall,):
                    setattr(tally, name, getattr(tally, name) + 1)
    per_char = TOKENS_PER_CHAR.get(project.language, TOKENS_PER_CHAR["en"])
    cost, unpriced = queries.project_cost(project_id)
    known_cost = cost if not unpriced else None
    project_answers = overall.answered if tag_id is None else None
    return DatasetReport(
        project_id=project_id, project_name=project.name, tag_id=tag_id,
        token_estimate=f"characters x {per_char} ({project.language}); an estimate, not a tokenizer's count",
        overall=overall.figures(per_char, None, near_duplicates, semantic),
        breakdown=breakdown,
        tags=[per_child[child].figures(per_char, (child, paths[child], parents[child]), near_duplicates, semantic)
              for child in sorted(set(child_of.values()))],
        cost=known_cost,
        cost_per_1000_answers=(round(known_cost / project_answers * 1000, 4)
                               if known_cost is not None and project_answers else None),
    )


def _children_of(tags: list[tuple[int, Any, str]], scope: int | None) -> dict[int, int]:
    """Each tag in the scope's subtree (the scope excluded) -> the scope's child it lies under."""
    parent = {tag: parent_id for tag, parent_id, _ in tags}
    children: dict[int, int] = {}
    for tag in parent:
        path = [tag]
        while parent[path[-1]] != scope and parent[path[-1]] is not None:
            path.append(parent[path[-1]])
        if parent[path[-1]] == scope:
            children[tag] = path[-1]
    return children
