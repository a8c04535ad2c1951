"""Dataset quality: the held-out evaluation set, decontamination and the dataset report. No MCP here."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, Field

from treedistill.server.dataset_report import Breakdown, DatasetReport, build_report
from treedistill.server.config import MAX_HOLD_OUT_RATIO
from treedistill.server.errors import InvalidInput, NotFound
from treedistill.server.export.reference_files import read_reference_files
from treedistill.server.export.writer import project_export_dir
from treedistill.server.store.catalog import Store
from treedistill.server.store.contamination import EVAL_SOURCE, ContaminationStore
from treedistill.server.store.curation import CurationStore
from treedistill.server.store.holdout import HOLD_OUT_BY, HoldOutRule, HoldoutStore
from treedistill.server.text.ngrams import DEFAULT_NGRAM, MIN_WORDS, NgramIndex, words

MAX_NGRAM = 50


class HoldOutReport(BaseModel):
    project_id: int
    rule: HoldOutRule | None = Field(None, description="The rule new questions follow; null: no held-out set")
    questions: int = Field(..., description="Questions with a split (all of the project's, under a rule)")
    held_out: int = Field(..., description="Questions held out for evaluation")
    units: int = Field(0, description="Leaves or subtrees decided (by leaf or subtree)")
    held_out_units: int = Field(0, description="Leaves or subtrees held out whole")


class SourceChecked(BaseModel):
    source: str = Field(..., description="'eval' (the held-out questions) or a benchmark file as given")
    references: int = Field(..., description="Reference texts read")
    matched_questions: int = Field(..., description="Training questions sharing an n-gram with one of them")


class ContaminationMatch(BaseModel):
    question_id: int
    question: str
    source: str
    matched: str = Field(..., description="The evaluation question or benchmark text it overlaps (first 300 chars)")
    ngram: str = Field(..., description="The shared run of words (normalised)")
    kept: bool = Field(..., description="true: the user keeps it in training exports")


class DecontaminationReport(BaseModel):
    project_id: int
    ngram: int
    checked: int = Field(..., description="Training questions checked")
    sources: list[SourceChecked]
    matches: int = Field(..., description="Matches stored for the project, all sources")
    excluded_questions: int = Field(..., description="Questions left out of training exports (a match not kept)")
    listed: list[ContaminationMatch] = Field(..., description="The first matches, those not kept first")


class DatasetQuality:
    """Hold-out, decontamination and the report of one database; shares the engine's Store."""

    def __init__(self, store: Store, db_path: str, *, allow_any_export_path: bool):
        self.store = store
        self.db_path = db_path
        self.allow_any_export_path = allow_any_export_path
        self.holdout = HoldoutStore(store)
        self.contamination = ContaminationStore(store)

    def hold_out(self, project_id: int, ratio: float | None = None, by: str = "question", seed: int = 0,
                 clear: bool = False) -> HoldOutReport:
        """Mark a share of the project's questions as evaluation items, recording the rule for new questions.

        by question: `ratio` of each leaf's questions (stratified); by leaf or subtree: whole leaves or
        top-level subtrees. The same seed gives the same split. `clear` removes the rule and every mark.
        Raises InvalidInput (nothing changed) for a ratio outside (0, 0.5] or an unknown `by`."""
        self.store.get_project(project_id)
        if clear:
            rule = None
        else:
            if by not in HOLD_OUT_BY:
                raise InvalidInput(f"by must be one of {', '.join(HOLD_OUT_BY)}, not {by!r}. Nothing was changed.")
            if ratio is None or not 0 < ratio <= MAX_HOLD_OUT_RATIO:
                raise InvalidInput(f"ratio must be above 0 and at most {MAX_HOLD_OUT_RATIO} (e.g. 0.1), not {ratio}. "
                                   "Nothing was changed.")
            rule = HoldOutRule(ratio=ratio, by=by, seed=seed)
        with self.store.transaction():
            self.holdout.apply(project_id, rule)
        return HoldOutReport(project_id=project_id, rule=rule, **self.holdout.summary(project_id))

    async def decontaminate(self, project_id: int, files: list[str] | None = None, ngram: int = DEFAULT_NGRAM,
                            field: str | None = None, against_eval: bool = True,
                            keep_question_ids: list[int] | None = None, limit: int = 50) -> DecontaminationReport:
        """Find training questions that share an `ngram`-word run with a held-out question or a benchmark file's
        text, store them as matches (excluded from training exports) and list them; `keep_question_ids` keeps
        those questions' matches in training. Files are read and checked first: a bad one changes nothing.
        The search runs in a worker thread on its own read-only connection."""
        self.store.get_project(project_id)
        if not MIN_WORDS <= ngram <= MAX_NGRAM:
            raise InvalidInput(f"ngram must be {MIN_WORDS} to {MAX_NGRAM} words, not {ngram}. Nothing was changed.")
        keep = list(dict.fromkeys(keep_question_ids or []))
        missing = CurationStore(self.store).missing_questions(project_id, keep) if keep else []
        if missing:
            raise NotFound(f"No question with id {', '.join(map(str, missing))} in project {project_id}; "
                           "call list_questions to see the ids. Nothing was changed.")
        export_dir = project_export_dir(self.db_path, project_id)

        def search() -> tuple[list[SourceChecked], list[tuple[int, str, str, str]], int]:
            references = read_reference_files(export_dir, files or [], field, self.allow_any_export_path)
            reader = ContaminationStore(Store.reader(self.db_path))
            try:
                if against_eval:
                    references = {EVAL_SOURCE: reader.eval_questions(project_id), **references}
                return _search(reader, project_id, references, ngram)
            finally:
                reader.store.close()

        sources, found, checked = await asyncio.to_thread(search)
        with self.store.transaction():
            self.contamination.replace(project_id, [source.source for source in sources], found, set(keep))
        counts = self.contamination.counts(project_id)
        return DecontaminationReport(
            project_id=project_id, ngram=ngram, checked=checked, sources=sources, matches=counts["matches"],
            excluded_questions=counts["excluded_questions"],
            listed=[ContaminationMatch(**row) for row in self.contamination.matches(project_id, limit)])

    async def dataset_report(self, project_id: int, tag_id: int | None = None, near_duplicates: bool = False,
                             breakdown: Breakdown = "children") -> DatasetReport:
        """The dataset report (see treedistill.server.dataset_report), built in a worker thread on its own
        read-only connection."""
        return await asyncio.to_thread(report_from_database, self.db_path, project_id, tag_id, near_duplicates,
                                       breakdown)


def report_from_database(db_path: str, project_id: int, tag_id: int | None, near_duplicates: bool,
                         breakdown: Breakdown = "children") -> DatasetReport:
    """The dataset report on a read-only connection of its own (the CLI's and the tool's). Raises NotFound."""
    reader = Store.reader(db_path)
    try:
        reader.get_project(project_id)
        if tag_id is not None:
            reader.get_tag(project_id, tag_id)
        return build_report(reader, project_id, tag_id, near_duplicates, breakdown)
    finally:
        reader.close()


def _search(reader: ContaminationStore, project_id: int, references: dict[str, list[str]],
            n: int) -> tuple[list[SourceChecked], list[tuple[int, str, str, str]], int]:
    """Every training question against each source's index; blocking, for a worker thread."""
    indexes = {source: NgramIndex(texts, n) for source, texts in references.items()}
    found: list[tuple[int, str, str, str]] = []
    per_source = dict.fromkeys(references, 0)
    checked = 0
    for question_id, text in reader.training_questions(project_id):
        checked += 1
        tokens = words(text)
        for source, index in indexes.items():
            overlap = index.first_overlap(tokens)
            if overlap is not None:
                per_source[source] += 1
                found.append((question_id, source, references[source][overlap.reference], overlap.ngram))
    sources = [SourceChecked(source=source, references=len(texts), matched_questions=per_source[source])
               for source, texts in references.items()]
    return sources, found, checked
