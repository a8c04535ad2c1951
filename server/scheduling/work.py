"""What each kind of work item does: expand a tag, extract questions, answer a question, judge an answer
(and continue a dialogue: server/scheduling/dialogue_work.py).

Every executor is idempotent: it first looks at what is already stored and asks the model only
for what is missing, and it commits each reply's results the moment they are parsed. Inside a
job, new tags and questions queue their own follow-up items in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from treedistill.server.text import prompts
from treedistill.server.text.prompts import Steering
from treedistill.server.store.curation import CurationStore
from treedistill.server.store.holdout import HoldoutStore
from treedistill.server.store.preference import PAIR_KINDS
from treedistill.server.text.dedup import normalize, unique_new
from treedistill.server.errors import NotFound, OutputFormatError
from treedistill.server.text.judge import parse_verdict
from treedistill.server.scheduling import dialogue_work, preference_work
from treedistill.server.scheduling.calls import LLMCaller
from treedistill.server.scheduling.embedding import drop_semantic_duplicates, run_embed_item
from treedistill.server.scheduling.teacher import RAW_ECHO_LIMIT, ask_teacher, reasoning_source
from treedistill.server.scheduling.planner import grow_depth, item_calls
from treedistill.server.models import ModelSpec, Project, Question, Tag
from treedistill.server.text.near_dup import drop_near_duplicates
from treedistill.server.providers.base import ChatMessage, ChatRequest, ChatResult
from treedistill.server.store.queue import WorkItem, WorkQueue
from treedistill.server.store.vectors import VectorStore
from treedistill.server.store.catalog import PATH_SEPARATOR, Store
from treedistill.server.scheduling.steering import question_styles, steering
from treedistill.server.text.styles import StyleSlot, plan_styles
from treedistill.server.text.parsing import ListContext, QuestionList, TagList, list_schema, parse_list

FORMAT_ROUNDS = 3  # replies per call that may be re-asked with the parse error shown
TOPUP_ROUNDS = 4  # calls per item to fill the count when the model repeats existing items
AVOID_LIST_LIMIT = 60  # existing questions shown as "do not repeat"
T = TypeVar("T")


@dataclass
class WorkContext:
    store: Store
    queue: WorkQueue
    caller: LLMCaller
    on_done: Callable[[WorkItem], None] | None = None
    """Called in the transaction that finishes an item done (the scheduler claims what runs in its place there)."""


def prompt_path(project: Project, tag: Tag | None) -> str:
    """The path shown to the model: the project's topic, then the tag's own path."""
    return project.topic if tag is None else f"{project.topic}{PATH_SEPARATOR}{tag.path}"


async def execute(ctx: WorkContext, item: WorkItem) -> dict[str, Any]:
    """Run one work item to completion; returns a small JSON-able result."""
    project = ctx.store.get_project(item.project_id)
    if item.requested is not None and not item.target:
        # A manual call asks for `requested` more than the tag has when it first runs (no other item on the
        # same tag runs at the same time); fixed then, so a retry or a restart never asks for more.
        item.target = outputs_have(ctx.store, item) + item.requested
        ctx.queue.set_target(item.id, item.target)
    if item.kind == "tags":
        return await _expand_tag(ctx, item, project)
    if item.kind == "questions":
        return await _extract_questions(ctx, item, project)
    if item.kind == "judge":
        return await _judge(ctx, item, project)
    if item.kind == "embed":
        return await run_embed_item(ctx, item, project)
    if item.kind in PAIR_KINDS:
        return await preference_work.run_pair_item(ctx, item, project)
    if item.kind in ("student", "eval_judge"):  # an evaluation run's items (imported here: that module uses this one)
        from treedistill.server.scheduling.evaluation_work import execute_evaluation
        return await execute_evaluation(ctx, item, project)
    if item.kind == "turn":
        return await dialogue_work.continue_turn(ctx, item, project)
    return await _answer(ctx, item, project)


def finish_done(ctx: WorkContext, item: WorkItem, result: dict[str, Any]) -> None:
    """Record the item done under its lease (LeaseLost, nothing written, when it was taken back), and count it with
    its job. Call in a transaction: the scheduler's after the executor returns, or (one commit less per item) the
    executor's own last one: an answer's as its first write, a tags or questions item's after its last outputs."""
    ctx.queue.finish_item(item, "done", result=result)
    if item.job_id is not None:  # an answer counts here, with its item's completion (see _answer)
        ctx.queue.add_job_counts(item.job_id, calls_done=item_calls(item.kind), answers_done=int(item.kind == "answer"),
                                 turns_done=int(item.kind == "turn"))
    item.status = "done"  # a transaction that fails after this raises: the scheduler then never looks at it
    if ctx.on_done is not None:
        ctx.on_done(item)


def outputs_have(store: Store, item: WorkItem) -> int:
    """How many children (tags item) or questions (questions item) the item's tag has now."""
    if item.kind == "tags":
        return len(store.children(item.project_id, item.tag_id))
    return store.count_questions(item.tag_id)


def outputs_missing(store: Store, item: WorkItem) -> int:
    """How many of the tags or questions an item must make are still missing (an answer or verdict is one)."""
    if item.kind not in ("tags", "questions"):
        return 1
    return max(item.target - outputs_have(store, item), 0)


async def _ask_list(ctx: WorkContext, item: WorkItem, project: Project, prompt: str,
                    schema: type[TagList] | type[QuestionList]) -> list[str]:
    """Ask for the item's missing tags or questions, constrained to a list of exactly that many strings.

    Items that copy the prompt's example, echo the tag path or are in the wrong language are dropped;
    a reply with none left is re-asked with the reasons shown.
    """
    tag = ctx.store.get_tag(project.id, item.tag_id) if item.tag_id is not None else None
    path = (project.topic, *(tag.path.split(PATH_SEPARATOR) if tag is not None else ()))
    context = ListContext(language=project.language, path=path)
    count = outputs_missing(ctx.store, item) or None
    return await ask_json(ctx, item, ctx.caller.model_for(item, project, "question"), project.language, prompt,
                           lambda raw: parse_list(raw, schema, context), json_schema=list_schema(schema, count))


async def ask_json(ctx: WorkContext, item: WorkItem, spec: ModelSpec, language: str, prompt: str,
                    parse: Callable[[str], T], json_schema: dict[str, Any] | None = None) -> T:
    """Ask for JSON (of `json_schema` when given) and parse the reply, re-asking with the parse error shown
    up to FORMAT_ROUNDS times."""
    messages = [ChatMessage(role="user", content=prompt)]
    for round_number in range(1, FORMAT_ROUNDS + 1):
        request = ChatRequest(messages=messages, json_output=True, json_schema=json_schema)
        reply = await ctx.caller.call(item, spec, request)
        try:
            return parse(reply.content)
        except OutputFormatError as exc:
            if round_number == FORMAT_ROUNDS:
                raise
            messages = [*messages, ChatMessage(role="assistant", content=reply.content[:RAW_ECHO_LIMIT] or "(empty)"),
                        ChatMessage(role="user", content=prompts.format_feedback(language, str(exc)))]
    raise AssertionError("unreachable")


async def _expand_tag(ctx: WorkContext, item: WorkItem, project: Project) -> dict[str, Any]:
    parent = ctx.store.get_tag(project.id, item.tag_id) if item.tag_id is not None else None
    params = ctx.caller.job_params(item)
    steer = steering(ctx.store, project, params)
    version = prompts.prompt_version(project.language, "tags", steer)
    created: list[int] = []
    for _ in range(TOPUP_ROUNDS):
        siblings = ctx.store.children(project.id, item.tag_id)
        missing = item.target - len(siblings)
        if missing <= 0:
            return {"tag_ids": created}
        prompt = prompts.tags_prompt(project.language, prompt_path(project, parent), missing,
                                     [tag.name for tag in siblings], steer)
        names = await _ask_list(ctx, item, project, prompt, TagList)
        fresh = unique_new(names, {normalize(tag.name) for tag in siblings}, missing)
        with ctx.store.transaction():
            ctx.queue.hold(item)  # a process whose lease was taken back writes nothing
            tags = ctx.store.insert_tags(project.id, parent, fresh, version)
            if params is not None:
                _queue_below_tags(ctx, item, tags, params)
                ctx.queue.add_job_counts(item.job_id, tags_done=len(tags))
            created += [tag.id for tag in tags]
            _finish_if_complete(ctx, item, len(siblings) + len(tags), {"tag_ids": created})
        if item.status == "done":
            return {"tag_ids": created}
    _require_complete(ctx, item, "tags")
    return {"tag_ids": created}


def _finish_if_complete(ctx: WorkContext, item: WorkItem, have: int, result: dict[str, Any]) -> None:
    """In the transaction that stores an item's tags or questions: finish the item there when the tag now has `have`
    of them and that meets its target (one commit less than the scheduler's own finish after the executor returns)."""
    if have >= item.target:
        finish_done(ctx, item, result)


def _require_complete(ctx: WorkContext, item: WorkItem, outputs: str) -> None:
    """After the top-up rounds: fail (a fresh attempt may do better) while some of the target is missing."""
    missing = outputs_missing(ctx.store, item)
    if missing > 0:
        raise OutputFormatError(f"the model kept repeating existing {outputs}; {missing} still missing", raw="")


def _queue_below_tags(ctx: WorkContext, item: WorkItem, tags: list[Tag], params: dict[str, Any]) -> None:
    for tag in tags:
        if tag.depth < grow_depth(params):
            ctx.queue.add_item(item.project_id, "tags", job_id=item.job_id, tag_id=tag.id,
                               target=params["tags_per_level"])
        else:
            ctx.queue.add_item(item.project_id, "questions", job_id=item.job_id, tag_id=tag.id,
                               target=params["questions_per_tag"])


async def _extract_questions(ctx: WorkContext, item: WorkItem, project: Project) -> dict[str, Any]:
    tag = ctx.store.get_tag(project.id, item.tag_id)
    params = ctx.caller.job_params(item)
    steer, styles = steering(ctx.store, project, params), question_styles(project, params)
    version = prompts.prompt_version(project.language, "questions", steer)
    created: list[int] = []
    rejected: list[str] = []  # paraphrases of questions elsewhere in the project: shown as "do not repeat" too
    for _ in range(TOPUP_ROUNDS):
        of_tag = [q.text for q in ctx.store.questions_of_tag(tag.id)]
        missing = item.target - len(of_tag)
        if missing <= 0:
            return {"question_ids": created}
        # Seeded by the tag's state: the same work asks the same plan (a crash recovery finds its reply cached).
        plan = plan_styles(styles, missing, seed=f"{tag.id}:{len(of_tag)}")
        prompt = prompts.questions_prompt(project.language, prompt_path(project, tag), missing,
                                          (of_tag + rejected)[-AVOID_LIST_LIMIT:], steer, plan)
        texts = await _ask_list(ctx, item, project, prompt, QuestionList)
        taken = ctx.store.existing_question_norms(project.id, [normalize(text) for text in texts])
        fresh = drop_near_duplicates(unique_new(texts, taken, len(texts)), of_tag)
        vectors = None
        if project.embedding_model is not None:  # paraphrases that share no words, by cosine of embeddings
            candidates = fresh
            fresh, vectors = await drop_semantic_duplicates(ctx, item, project, tag, candidates)
            rejected += [text for text in candidates if text not in fresh]
        fresh = fresh[:missing]
        asked: dict[str, StyleSlot] = {}  # the n-th question of the reply was asked to follow the n-th line of the plan
        for number, text in enumerate(texts):
            asked.setdefault(normalize(text), plan[number] if number < len(plan) else StyleSlot())
        with ctx.store.transaction():
            ctx.queue.hold(item)
            questions = ctx.store.insert_questions(project.id, tag, fresh, [asked[normalize(t)] for t in fresh],
                                                   version)
            if params is not None and "focus" in params:
                HoldoutStore(ctx.store).assign_train(project.id, questions)
            else:
                HoldoutStore(ctx.store).assign_new(project.id, questions)
            if vectors is not None and questions:
                VectorStore(ctx.store).save(project.id, project.embedding_model, [q.id for q in questions],
                                            vectors[[fresh.index(q.text) for q in questions]])
            if params is not None:
                if params["answer"]:
                    for question in questions:
                        ctx.queue.add_item(project.id, "answer", job_id=item.job_id, question_id=question.id)
                ctx.queue.add_job_counts(item.job_id, questions_done=len(questions))
            created += [question.id for question in questions]
            _finish_if_complete(ctx, item, len(of_tag) + len(questions), {"question_ids": created})
        if item.status == "done":
            return {"question_ids": created}
    _require_complete(ctx, item, "questions")
    return {"question_ids": created}


async def _answer(ctx: WorkContext, item: WorkItem, project: Project) -> dict[str, Any]:
    question = ctx.store.get_question(project.id, item.question_id)
    result = {"question_id": question.id}
    # An answer item is counted when it is finished (finish_done), in the transaction that stores the answer: one
    # answered meanwhile (by hand, or by this item before a crash kept it from finishing) is counted once.
    if question.answered and not item.regenerate:
        with ctx.store.transaction():
            finish_done(ctx, item, result)
            dialogue_work.queue_next_turn(ctx, item, question.id, 2)
        return result
    spec = ctx.caller.model_for(item, project, "answer")
    params = ctx.caller.job_params(item)
    steer = steering(ctx.store, project, params)

    def store(reply: ChatResult) -> None:
        """Finish the item with its answer (call in a transaction; its first write takes the item's lease)."""
        finish_done(ctx, item, result)
        # Without regenerate, an answer stored meanwhile (and perhaps reviewed) is kept, never overwritten.
        ctx.store.save_answer(project.id, question.id, reply.content.strip(), (reply.reasoning or "").strip(),
                              reasoning_source(reply), reply.model or spec.model,
                              reply.input_tokens, reply.output_tokens, replace=item.regenerate,
                              prompt_version=prompts.prompt_version(project.language, "answer", steer))
        dialogue_work.queue_next_turn(ctx, item, question.id, 2)
        if params is not None and params.get("preference"):
            preference_work.queue_rival(ctx.queue, item, question.id)

    # Stored in the transaction that counts the paid reply; one served from the cache (paid before a crash) here.
    reply = await ask_teacher(ctx.caller, item, project, spec, answer_messages(project, question, steer), store)
    if item.status != "done":
        with ctx.store.transaction():
            store(reply)
    return result


def answer_messages(project: Project, question: Question, steer: Steering) -> list[ChatMessage]:
    """What the teacher (or a rival model) is sent to answer a question: the system prompt with the tag path, then
    the question."""
    return [
        ChatMessage(role="system", content=prompts.answer_system(
            project.language, f"{project.topic}{PATH_SEPARATOR}{question.tag_path}", steer)),
        ChatMessage(role="user", content=question.text),
    ]


async def _judge(ctx: WorkContext, item: WorkItem, project: Project) -> dict[str, Any]:
    """Score a stored answer 1-10 with a rationale; an answer already scored is kept unless regenerate."""
    curation = CurationStore(ctx.store)
    answer = curation.get_answer(project.id, item.question_id)
    if answer is None:
        raise NotFound(f"question {item.question_id} has no answer to judge")
    if answer.score is not None and not item.regenerate:
        return {"question_id": answer.question_id, "score": answer.score}
    # A judge model being tried rides on its items; the project remembers one only once it has worked.
    spec = curation.judge_for(project, ModelSpec.model_validate_json(item.model) if item.model else None)
    prompt = prompts.judge_prompt(project.language, f"{project.topic}{PATH_SEPARATOR}{answer.tag_path}",
                                  answer.question, answer.answer, steering(ctx.store, project))
    from treedistill.server.text.judge import verdict_schema

    verdict = await ask_json(ctx, item, spec, project.language, prompt, parse_verdict, json_schema=verdict_schema())
    with ctx.store.transaction():
        ctx.queue.hold(item)
        curation.save_score(answer.question_id, verdict.score, verdict.rationale, spec.model)
    return {"question_id": answer.question_id, "score": verdict.score}
