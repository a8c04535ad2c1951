"""Pages of a project's questions for review (the review app, and the review_dataset tool): server-side filters,
counts, and near-duplicate groups, so a 100,000-question project never travels to the client whole."""

from __future__ import annotations

from pydantic import BaseModel, Field

from treedistill.server.duplicate_search import DuplicateSearch
from treedistill.server.errors import InvalidInput
from treedistill.server.models import AnswerStyle, QuestionStyles
from treedistill.server.store.catalog import Store
from treedistill.server.store.review import ReviewQueries
from treedistill.server.text.near_dup import DEFAULT_THRESHOLD, keep_order

MAX_DUPLICATE_GROUPS = 500  # near_duplicates lists at most this many groups (find_duplicates' own bound)
ROWS_PER_QUERY = 500  # ids per rows_by_id statement (SQLite bounds the parameters of one statement)


class ReviewRow(BaseModel):
    id: int
    tag_id: int
    tag_path: str
    text: str
    answered: bool
    rating: int | None = None
    confirmed: bool = False
    score: int | None = None
    question_type: str | None = None
    difficulty: str | None = None
    audience: str | None = None
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
    guidance: str = Field("", description="The project's guidance")
    question_styles: QuestionStyles | None = Field(None, description="The project's question-style mix")
    answer_style: AnswerStyle | None = Field(None, description="The project's answer style")
    style_values: dict[str, list[str]] = Field(default_factory=dict, description=(
        "question_type, difficulty, audience: the values the project's questions were asked for (for filters)"))
    styles: dict[str, str] = Field(default_factory=dict, description="The style filters of this page")
    tag_id: int | None
    tag_path: str | None
    filter: str
    score_below: int | None
    counts: ReviewCounts = Field(..., description="Over the project (or tag_id's subtree), whatever the filter")
    total: int = Field(..., description="Questions matching the filter, over all pages")
    offset: int
    limit: int
    questions: list[ReviewRow]
    groups_found: int | None = Field(None, description="near_duplicates only: groups found over the scope")
    groups_listed: int | None = Field(None, description=(
        "near_duplicates only: groups listed (at most 500; when fewer than groups_found, delete some duplicates "
        "and look again)"))


class DuplicateGroups:
    """The near-duplicate groups of a project (or a subtree) from the last search, per (project, tag, threshold),
    kept while no question is added or deleted there: a search reads every question (seconds at 100,000), and the
    review app asks for a page after every rating. Only the grouping is kept; which member to keep depends on the
    review state and is chosen again for each page."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._reports: dict[tuple[int, int | None, float], tuple[tuple[int, int], list[list[int]], int]] = {}

    async def groups(self, queries: ReviewQueries, search: DuplicateSearch, project_id: int, tag_id: int | None,
                     threshold: float) -> tuple[list[list[int]], int]:
        """(member ids of the listed groups, groups found)."""
        key, version = (project_id, tag_id, threshold), queries.question_version(project_id, tag_id)
        cached = self._reports.get(key)
        if cached is not None and cached[0] == version:
            return cached[1], cached[2]
        report = await search.find_duplicates(project_id, tag_id, threshold, MAX_DUPLICATE_GROUPS)
        listed = [[member.question_id for member in group.questions] for group in report.groups]
        self._reports.pop(key, None)
        while len(self._reports) >= self.size:
            self._reports.pop(next(iter(self._reports)))  # the oldest
        self._reports[key] = (version, listed, report.group_count)
        return listed, report.group_count


async def review_page(store: Store, search: DuplicateSearch, project_id: int, tag_id: int | None = None,
                      kind: str = "all", score_below: int | None = None, limit: int = 200,
                      offset: int = 0, duplicates: DuplicateGroups | None = None,
                      styles: dict[str, str | None] | None = None) -> ReviewPage:
    """One page of questions with their review state; see ReviewPage. `styles` narrows the scope (counts
    included) to a question type, difficulty or audience."""
    project = store.get_project(project_id)
    tag = store.get_tag(project_id, tag_id) if tag_id is not None else None
    if kind == "score_below" and score_below is None:
        raise InvalidInput("filter 'score_below' needs score_below (e.g. 7: answers the judge scored under 7).")
    queries = ReviewQueries(store, styles)
    if queries.styles and kind == "near_duplicates":
        raise InvalidInput("near_duplicates looks at every question of the scope; leave out the style filters.")
    counts = queries.counts(project_id, tag_id, score_below)
    groups_found = groups_listed = None
    if kind == "near_duplicates":
        groups, groups_found = await (duplicates or DuplicateGroups()).groups(queries, search, project_id, tag_id,
                                                                              DEFAULT_THRESHOLD)
        groups_listed = len(groups)
        total, rows = _duplicate_rows(queries, project_id, groups, limit, offset)
    else:
        total = queries.matching(counts, kind)
        rows = ([ReviewRow(**row) for row in queries.page(project_id, tag_id, kind, score_below, limit, offset)]
                if offset < total else [])  # nothing there: no need to scan for it
    return ReviewPage(project_id=project_id, project_name=project.name, topic=project.topic,
                      guidance=project.guidance, question_styles=project.question_styles,
                      answer_style=project.answer_style, style_values=queries.style_values(project_id),
                      styles=queries.styles, tag_id=tag_id,
                      tag_path=tag.path if tag else None, filter=kind, score_below=score_below,
                      counts=ReviewCounts(**counts), total=total, offset=offset, limit=limit, questions=rows,
                      groups_found=groups_found, groups_listed=groups_listed)


def _duplicate_rows(queries: ReviewQueries, project_id: int, groups: list[list[int]], limit: int,
                    offset: int) -> tuple[int, list[ReviewRow]]:
    """The members of the near-duplicate groups, group after group, paged like any other list; the member to keep
    is chosen from the groups' current review state."""
    members = [(number, qid) for number, group in enumerate(groups, start=1) for qid in group]
    shown = members[offset:offset + limit]
    on_page = sorted({number for number, _ in shown})
    wanted = [qid for number in on_page for qid in groups[number - 1]]
    found: dict[int, dict] = {}
    for start in range(0, len(wanted), ROWS_PER_QUERY):  # a group may be larger than a page
        found.update(queries.rows_by_id(project_id, wanted[start:start + ROWS_PER_QUERY]))
    keep = {number: max((found[qid] for qid in groups[number - 1] if qid in found), key=keep_order,
                        default={"id": None})["id"] for number in on_page}
    rows = [ReviewRow(**found[qid], group=number, keep=qid == keep[number]) for number, qid in shown if qid in found]
    return len(members), rows
