"""Pages of a project's questions for review (the review app, and the review_dataset tool): server-side filters,
counts, and near-duplicate groups, so a 100,000-question project never travels to the client whole."""

from __future__ import annotations

from pydantic import BaseModel, Field

from treedistill.server.curator import Curator
from treedistill.server.errors import InvalidInput
from treedistill.server.store.catalog import Store
from treedistill.server.store.review import ReviewQueries
from treedistill.server.text.near_dup import DEFAULT_THRESHOLD

MAX_DUPLICATE_GROUPS = 500  # near_duplicates lists at most this many groups (find_duplicates' own bound)


class ReviewRow(BaseModel):
    id: int
    tag_id: int
    tag_path: str
    text: str
    answered: bool
    rating: int | None = None
    confirmed: bool = False
    score: int | None = None
    group: int | None = Field(None, description="near_duplicates only: the group this question belongs to (1, 2, ...)")
    keep: bool | None = Field(None, description="near_duplicates only: the member find_duplicates would keep")


class ReviewCounts(BaseModel):
    questions: int
    answered: int
    unanswered: int
    rated: int
    unrated: int
    confirmed: int
    unconfirmed: int
    scored: int
    score_below: int = Field(..., description="Answers scored below score_below (0 when it is not given)")


class ReviewPage(BaseModel):
    project_id: int
    project_name: str
    topic: str
    tag_id: int | None
    tag_path: str | None
    filter: str
    score_below: int | None
    counts: ReviewCounts = Field(..., description="Over the project (or tag_id's subtree), whatever the filter")
    total: int = Field(..., description="Questions matching the filter, over all pages")
    offset: int
    limit: int
    questions: list[ReviewRow]


async def review_page(store: Store, curator: Curator, project_id: int, tag_id: int | None = None,
                      kind: str = "all", score_below: int | None = None, limit: int = 200,
                      offset: int = 0) -> ReviewPage:
    """One page of questions with their review state; see ReviewPage."""
    project = store.get_project(project_id)
    tag = store.get_tag(project_id, tag_id) if tag_id is not None else None
    if kind == "score_below" and score_below is None:
        raise InvalidInput("filter 'score_below' needs score_below (e.g. 7: answers the judge scored under 7).")
    queries = ReviewQueries(store)
    counts = queries.counts(project_id, tag_id, score_below)
    if kind == "near_duplicates":
        total, rows = await _duplicate_rows(queries, curator, project_id, tag_id, limit, offset)
    else:
        total = queries.matching(counts, kind)
        rows = ([ReviewRow(**row) for row in queries.page(project_id, tag_id, kind, score_below, limit, offset)]
                if offset < total else [])  # nothing there: no need to scan for it
    return ReviewPage(project_id=project_id, project_name=project.name, topic=project.topic, tag_id=tag_id,
                      tag_path=tag.path if tag else None, filter=kind, score_below=score_below,
                      counts=ReviewCounts(**counts), total=total, offset=offset, limit=limit, questions=rows)


async def _duplicate_rows(queries: ReviewQueries, curator: Curator, project_id: int, tag_id: int | None,
                          limit: int, offset: int) -> tuple[int, list[ReviewRow]]:
    """The members of the near-duplicate groups, group after group, paged like any other list."""
    report = await curator.find_duplicates(project_id, tag_id, DEFAULT_THRESHOLD, MAX_DUPLICATE_GROUPS)
    members = [(number, member.question_id, member.question_id == group.keep_question_id)
               for number, group in enumerate(report.groups, start=1) for member in group.questions]
    shown = members[offset:offset + limit]
    found = queries.rows_by_id(project_id, [qid for _, qid, _ in shown])
    rows = [ReviewRow(**found[qid], group=number, keep=keep) for number, qid, keep in shown if qid in found]
    return len(members), rows
