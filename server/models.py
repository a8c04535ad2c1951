"""Pydantic models shared by the engine, the store and the MCP tools."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from treedistill.server.push_models import PushState

Language = Literal["en", "zh"]
JobStatus = Literal["queued", "running", "completed", "completed_with_failures", "cancelled", "failed"]
TERMINAL_STATUSES = ("completed", "completed_with_failures", "cancelled", "failed")  # a job in one has ended


class ModelSpec(BaseModel):
    """Which model to call and how. Keys are named by environment variable, never stored."""

    provider: Literal["openai", "anthropic"] = Field(
        "openai", description="'openai' = any OpenAI-compatible endpoint (OpenAI, DeepSeek, vLLM, Ollama, ...)"
    )
    model: str = Field(..., min_length=1, max_length=200, description="Model name as the endpoint knows it")
    base_url: str | None = Field(None, max_length=2000,
                                 description="Endpoint URL; default from OPENAI_BASE_URL / ANTHROPIC_BASE_URL")
    api_key_env: str | None = Field(
        None, max_length=200,
        description="Name of the environment variable holding the key (default OPENAI_API_KEY / ANTHROPIC_API_KEY)")
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)
    json_mode: Literal["auto", "json_schema", "json_object_schema", "json_object", "none"] = Field(
        "auto", description=(
            "OpenAI-compatible only, for tag/question/judge calls: 'auto' tries JSON Schema structured output, "
            "then json_object with the schema, then json_object, then the prompt alone, stepping down on the "
            "endpoint's refusal and remembering what worked; another value forces that form ('none': prompt only)"))
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = Field(
        None, description="OpenAI reasoning models (o-series, gpt-5): how hard the model thinks")
    thinking_budget: int | None = Field(None, ge=1024, description="Anthropic only: extended-thinking budget tokens")
    timeout: float = Field(600.0, gt=0, le=7200, description="Seconds to wait for one call")
    extra_body: dict[str, Any] | None = Field(None, description="OpenAI only: extra JSON fields sent with each call")
    input_price_per_mtok: float | None = Field(
        None, ge=0, description="USD per million input tokens, for cost (default: the genai-prices library's)")
    output_price_per_mtok: float | None = Field(
        None, ge=0, description="USD per million output tokens, for cost (default: the genai-prices library's)")

    @model_validator(mode="after")
    def _both_prices_or_none(self) -> ModelSpec:
        if (self.input_price_per_mtok is None) != (self.output_price_per_mtok is None):
            raise ValueError("give both input_price_per_mtok and output_price_per_mtok, or neither (then the "
                             "genai-prices library's prices are used); one alone would count the other as free")
        return self


GUIDANCE_LIMIT = 20_000  # characters of guidance (project or job): a page of instructions, not a book
STYLE_NAME_LIMIT = 200  # characters of one question type, difficulty or audience
STYLE_CHOICES_LIMIT = 20  # choices per dimension of a question-style mix
StyleName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=STYLE_NAME_LIMIT)]
StyleWeight = Annotated[float, Field(gt=0, le=1000)]
StyleMix = Annotated[dict[StyleName, StyleWeight], Field(max_length=STYLE_CHOICES_LIMIT)]
AnswerFormat = Literal["prose", "steps", "bullets", "code", "tables", "worked_example"]


class QuestionStyles(BaseModel):
    """A weighted mix of question types, difficulty levels and audiences: each extraction asks for a concrete
    plan drawn from the weights, and each question stores the type, difficulty and audience it was asked for.
    An empty dimension keeps the default instruction (diverse in type / difficulty, no audience)."""

    types: StyleMix = Field(default_factory=dict, description=(
        "Question type -> weight, e.g. {\"multiple-choice with four options\": 2, \"problem-solving with numbers\": 1}; "
        "other ideas: factual, conceptual, how-to, scenario, comparison, code"))
    difficulties: StyleMix = Field(default_factory=dict, description=(
        "Difficulty -> weight, e.g. {\"beginner\": 1, \"exam level\": 3, \"expert\": 1}"))
    audiences: StyleMix = Field(default_factory=dict, description=(
        "Audience or persona -> weight, e.g. {\"high-school student\": 1, \"teacher\": 1}"))

    def is_empty(self) -> bool:
        return not (self.types or self.difficulties or self.audiences)


class AnswerStyle(BaseModel):
    """How the teacher should write its answers; stated in the answer (and judge) prompt."""

    max_words: int | None = Field(None, ge=20, le=20_000, description="Answers at most this many words")
    formats: list[AnswerFormat] = Field(default_factory=list, max_length=6, description=(
        "Forms the answer should use: prose, steps (numbered), bullets, code, tables, worked_example (at least "
        "one worked example)"))
    notes: str | None = Field(None, max_length=2000, description="Anything else about the answers' style")

    def is_empty(self) -> bool:
        return self.max_words is None and not self.formats and not (self.notes or "").strip()


class EffectivePrompt(BaseModel):
    """A kind of prompt as a project uses it now."""

    kind: Literal["tags", "questions", "answer", "judge", "eval_judge"]
    purpose: str
    source: Literal["default", "custom"] = Field(..., description="custom: the project's own template (set_prompt)")
    version: str = Field(..., description=(
        "Recorded on every tag, question and answer made with it: 'default:' or 'custom:' and a digest of the text"))
    template: str
    placeholders: dict[str, str] = Field(..., description="The placeholders this kind takes, and what each is")
    required: list[str] = Field(..., description="Placeholders a template of this kind must contain")
    updated_at: str | None = Field(None, description="When the custom template was set")


class Project(BaseModel):
    id: int
    name: str
    topic: str
    language: Language
    question_model: ModelSpec
    answer_model: ModelSpec
    max_concurrency: int
    require_reasoning: bool = Field(True, description=(
        "Answers must come with a reasoning trace (one re-ask, then the item fails); false stores answers "
        "without one, marked reasoning_source 'none'"))
    guidance: str = Field("", description=(
        "Free text (scope, audience, what to avoid, tone) put in every tag, question, answer and judge prompt"))
    question_styles: QuestionStyles | None = Field(None, description="The question-style mix; null: default mix")
    answer_style: AnswerStyle | None = Field(None, description="How answers are written; null: no requirement")
    embedding_model: ModelSpec | None = Field(None, description=(
        "OpenAI-compatible /v1/embeddings model for semantic near-duplicates; null: lexical checks only"))
    semantic_threshold: float = Field(0.9, description=(
        "Cosine similarity at or above which a new question is a semantic near-duplicate (with embedding_model)"))
    semantic_scope: Literal["tag", "project"] = Field("tag", description=(
        "Where extraction looks for semantic near-duplicates: the question's tag, or the whole project"))
    created_at: str


class ProjectSummary(Project):
    tags: int
    questions: int
    answers: int
    input_tokens: int
    output_tokens: int
    cost: float | None = Field(None, description="USD over all calls; null when a call's price was unknown")
    cost_known: bool = Field(True, description="false when some call of the project had no known price")
    unpriced_calls: int = Field(0, description="Calls whose model had no known price (not in cost)")
    price_source: str = Field("unknown", description=(
        "Where the prices come from: 'spec', 'genai-prices', 'unknown' (or e.g. 'genai-prices+spec')"))
    price_notes: list[str] = Field(default_factory=list, description="How a price was matched, where it matters")


class Tag(BaseModel):
    id: int
    name: str
    parent_id: int | None
    depth: int = Field(..., description="1 for a top-level tag")
    path: str = Field(..., description="Full tag path, e.g. 'Sports > Football > Tactics'")


class Question(BaseModel):
    id: int
    tag_id: int
    tag_path: str
    text: str
    answered: bool = False
    question_type: str | None = Field(None, description="The type it was asked for (question styles); null: none")
    difficulty: str | None = Field(None, description="The difficulty it was asked for; null: none")
    audience: str | None = Field(None, description="The audience it was asked for; null: none")
    prompt_version: str | None = Field(None, description="Version of the questions prompt it came from")


class Answer(BaseModel):
    question_id: int
    question: str
    tag_path: str
    answer: str
    reasoning: str
    reasoning_source: str = Field(
        ..., description="reasoning_content | reasoning | think_tags | thinking_blocks | none (no trace)"
    )
    model: str
    input_tokens: int
    output_tokens: int
    created_at: str
    prompt_version: str | None = Field(None, description="Version of the answer prompt it came from")


class CuratedAnswer(Answer):
    """An answer with its review state."""

    rating: int | None = Field(None, description="Human rating 1-5, null when unrated")
    confirmed: bool = Field(False, description="Confirmed by a reviewer")
    score: int | None = Field(None, description="LLM-judge score 1-10, null when not judged")
    score_rationale: str | None = None
    score_model: str | None = None
    edited_at: str | None = Field(None, description="When a reviewer last edited the answer or reasoning")


class DeletionCounts(BaseModel):
    """What a deletion removes (or would remove)."""

    tags: int = 0
    questions: int = 0
    answers: int = 0


ReviewFilter = Literal["all", "unanswered", "answered", "unrated", "unconfirmed", "score_below", "near_duplicates"]


class KindProgress(BaseModel):
    done: int = 0
    total: int = 0
    failed: int = 0
    in_flight: int = 0


class BatchOptions(BaseModel):
    """How a job uses the endpoint's batch API (half the price, no per-minute limits, results within a day)."""

    size: int | None = Field(None, ge=1, le=50_000, description="Requests per batch")
    wait_seconds: float | None = Field(None, ge=0, le=86_400, description=(
        "The longest a request waits for its batch to fill before the batch is sent"))
    all_calls: bool = Field(False, description="Tag and question calls go by batch too (by default only answers)")
    fallback_online: bool = Field(False, description="A request its batch could not answer is retried online")

    def job_params(self) -> dict[str, Any]:
        return {"batch": True, "batch_size": self.size, "batch_wait_seconds": self.wait_seconds,
                "batch_all": self.all_calls, "batch_fallback_online": self.fallback_online}


class BatchProgress(BaseModel):
    """A job's calls that go through the endpoint's batch API."""

    batches_submitting: int = Field(..., description="Batches being handed to the provider now")
    batches_in_progress: int
    batches_ended: int
    requests_waiting: int = Field(..., description="Calls waiting for their batch to be submitted")
    requests_in_flight: int = Field(..., description="Calls in batches the provider has not finished")
    requests_succeeded: int
    requests_errored: int = Field(..., description="Entries that errored (retried, or failed when refused)")
    requests_expired: int = Field(..., description="Entries whose batch expired before them (retried)")
    requests_cancelled: int
    oldest_batch_age_seconds: float | None = Field(..., description="Age of the oldest batch still open")
    cost: float | None = Field(..., description="Cost of the batched calls so far, at batch prices")
    expected_cost: float | None = Field(None, description=(
        "Cost so far plus the calls waiting or in flight at the average batched call's cost"))


class JobProgress(BaseModel):
    job_id: int
    project_id: int
    kind: Literal["distill", "push"] = Field("distill", description=(
        "distill: auto_distill's tags, questions and answers; push: push_to_hub (its state in `push`)"))
    status: JobStatus
    stage: str = Field(..., description="What the job is mostly doing now")
    tags: KindProgress
    questions: KindProgress
    answers: KindProgress
    pairs: KindProgress | None = Field(None, description=(
        "Preference pairs (a job with preference=true): judged / planned / failed"))
    turns: KindProgress = Field(default_factory=KindProgress, description=(
        "Dialogue turns after the first (auto_distill turns > 1): a failed turn ends its dialogue, the turns it "
        "leaves undone count as failed"))
    calls_done: int
    calls_failed: int
    calls_pending: int = Field(..., description="Calls of the plan not made yet")
    input_tokens: int
    output_tokens: int
    cost: float | None = Field(None, description="USD so far; null when a call's price is unknown")
    cost_known: bool = Field(True, description=(
        "false when some call of the job had no known price, or (while it runs) one of its models has none"))
    unpriced_calls: int = Field(0, description="Calls whose model had no known price (not in cost)")
    price_source: str = Field("unknown", description=(
        "Where the prices come from: 'spec', 'genai-prices', 'unknown' (or e.g. 'genai-prices+spec')"))
    price_notes: list[str] = Field(default_factory=list, description="How a price was matched, where it matters")
    elapsed_seconds: float
    eta_seconds: float | None
    calls_per_minute: float
    retries: int = Field(0, description="Attempts that failed and were tried again (rate limits included)")
    rate_limited: int = Field(0, description="Of the retries, those after a rate limit (429)")
    pacing: str | None = Field(None, description="How calls to the job's endpoints are paced or paused now")
    batches: BatchProgress | None = Field(None, description="Present when the job's calls go by batch")
    endpoints: dict[str, str] = Field(default_factory=dict, description=(
        "The endpoint (URL and key variable) each role ('question', 'answer') is pinned to for the job's life"))
    waiting_for: str | None = Field(None, description=(
        "Set when nothing of the job runs and this process is not configured for an endpoint it is pinned to: "
        "the endpoint it waits for"))
    recent_errors: list[str]
    params: dict[str, Any]
    push: PushState | None = Field(None, description="A push job's repository, stage, files and commit")


class KindEstimate(BaseModel):
    """The expected calls, tokens and cost of one kind of call in a plan."""

    calls: int
    model: str
    input_tokens: int = Field(..., description="Expected input tokens of all these calls")
    output_tokens: int = Field(..., description="Expected output tokens of all these calls")
    output_basis: str = Field(..., description="Where the output figure comes from: this database's history or a default")
    cost_online: float | None = Field(None, description="USD at online prices; null when the price is unknown")
    cost_batch: float | None = Field(None, description="USD at batch prices; null when the price is unknown")
    price_source: str


class PlanEstimate(BaseModel):
    """What a plan is expected to cost, computed without calling any model."""

    calls: int
    planned_tags: int
    planned_questions: int
    planned_answers: int
    planned_pairs: int = 0
    tags: KindEstimate = Field(..., description="Tag expansion calls (inner tags)")
    questions: KindEstimate = Field(..., description="Question extraction calls (leaf tags)")
    answers: KindEstimate = Field(..., description="Answer calls")
    rivals: KindEstimate | None = Field(None, description="Rival responses of preference pairs (preference=true)")
    pair_judges: KindEstimate | None = Field(None, description="Judge calls of preference pairs, two per pair")
    planned_turns: int = Field(0, description="Dialogue turns after the first (turns > 1)")
    followups: KindEstimate | None = Field(None, description="Dialogues: the user's follow-ups (question model)")
    turns: KindEstimate | None = Field(None, description="Dialogues: the teacher's replies, with the history")
    input_tokens: int
    output_tokens: int
    cost_online: float | None = Field(None, description="USD at online prices; null when a price is unknown")
    cost_batch: float | None = Field(None, description="USD with every call at batch prices; null when a price is unknown")
    batch: bool = Field(False, description="Whether the job would run by batch")
    cost: float | None = Field(None, description=(
        "The expected cost of the job as asked: online, or with batch its answers (all calls with batch_all_calls) "
        "at batch prices"))
    cost_at_least: float = Field(0.0, description=(
        "The part of `cost` whose prices are known: all of it when cost_known, else a lower bound"))
    cost_known: bool
    input_basis: str = Field(..., description="How the input figures were computed")
    price_notes: list[str] = Field(default_factory=list)
