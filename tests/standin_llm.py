"""A loopback stand-in LLM that speaks the OpenAI chat and Anthropic messages wire formats.

In-process: `with StandinLLM() as llm: ...` serves on 127.0.0.1 from a background thread.
Subprocess: `python tests/standin_llm.py --port 0 [--latency 0.2 --jitter 0.5 | --tail 1.0]` prints `PORT <n>`
and serves until killed. Replies are canned, deterministic and depend on the prompt; latency and
faults are set with `configure()` or POST /_control.

Model names carry flags, `base+flag+flag`. Where reasoning goes: one of `REASONING_FLAGS` (without
one, the model reasons in `<think>` tags only when the prompt mentions `<think>`); `think_unclosed` is a
small model's slip: the opening reply is a lead-in naming `<think>`, then reasoning, never closed and
no answer (finish_reason "stop"); after feedback it writes a closed block and the answer. How output
misbehaves: `dupes` (lists repeat existing items and a case variant), `malformed` (fenced JSON with
a trailing comma), `paraphrase` (a questions reply starts with a synonym rewording of an existing question,
tests/standin_embeddings.py, which also serves `/v1/embeddings`), `garbage` (prose instead of a list), `truncated` (every reply cut off half-way,
like `truncate_rate=1`), `long` (answers of about 400 words), `content_filter` (OpenAI
finish_reason "content_filter" with empty content; Anthropic stop_reason "refusal", no content),
`no_choices` (OpenAI reply with an empty `choices`), `scoreN` (answers end with `[score=N]`, the mark the judge
reads as its score: a rival model the judge ranks).
A student under evaluation (`student`): answers "Answer to: <question> [score=9]", or "I am not sure ...
[score=2]" when the question contains the word of a `poor:<word>` flag (case-insensitive), so the judge (which
reads the first `[score=N` of its prompt) grades it well or badly; with `empty_answer` its reply is empty.

Structured output (OpenAI): a server accepts every `response_format` unless a flag says otherwise;
`only_json_object_schema` (llama-cpp-python's server: HTTP 500 "internal_server_error" quoting its
validation error, which names `response_format` only in the message, for anything but
`{"type": "json_object", "schema": ...}`), `only_json_object` (400 with `param`
"response_format" for any schema form), `no_response_format` (400 for any response_format). How a
small model misbehaves: `objects` (when no schema constrains the reply, list items come as
single-string objects, `[{"name": ...}]`), `echo` (the opening reply of a conversation copies the
prompt's example and the parent tag; after feedback it gives real items). With a json_schema or a
schema'd json_object the reply always has the schema's shape. Anthropic: a forced tool
(`tool_choice` type "tool") gets a `tool_use` block whose input is the JSON; forcing a tool with
thinking enabled is a 400, as on the real API.
`no_stream_options` (OpenAI): 400 for `stream_options`, as older servers answer. `no_usage` (OpenAI): replies
without `usage`, neither in the body nor in a last chunk.
`reasoning_model` (OpenAI): 400 naming `max_tokens` (use max_completion_tokens) or `temperature`, as
o-series models answer; `reasoning_effort` is logged.

Streaming: `"stream": true` gets server-sent events in each API's format (OpenAI chunks with a usage
chunk when `stream_options.include_usage`; Anthropic message/content-block events). The flag
`stream_break` or the fault `break_stream_rate` drops the connection half-way through the stream.
Batch APIs (tests/standin_batches.py, whose docstring has the details): OpenAI's `/v1/files` +
`/v1/batches` and Anthropic's `/v1/messages/batches`, each entry answered like an online non-streamed
request and logged with `batch_id` and `custom_id` (`batch_requests()`). Settings: `batch_turnaround`
(seconds from create to ended, default 0.5, time-based), `batch_error_rate` (fraction of entries, by
custom_id, answered with a transient 500 / api_error), `batch_expire` (fraction of entries never done:
the batch ends expired), `batch_unsupported` (batch and file routes answer 404).
`tokens_in_body` reads a reply's usage from either kind of body. Provider-style rate limits are
middleware in front of the app: tests/standin_limits.py.

Tokens: output is counted in whitespace-separated words (reasoning shown + answer), input as
characters / 4. A request's `max_tokens` (or OpenAI's `max_completion_tokens`) is a budget of
words: a longer reply is cut to the budget, reasoning first, with finish_reason "length" (OpenAI)
or stop_reason "max_tokens" (Anthropic), and its usage counts the words it kept (never zero).

Faults per prompt, deterministic: the choice hashes the seed with the request's *task key* (the
system prompt and the first user message, so format-feedback follow-ups and retries of the same
work are chosen the same way every time):
- `reject_prompt_rate`: that fraction of prompts whose task is in `reject_kinds` (default
  ["answer"]; tasks are "tags", "questions", "judge", "answer") always get HTTP 400 with a
  content-filter message.
- `unusable_prompt_rate`: that fraction of tags/questions prompts always get garbage prose.
Faults per request, random (drawn from the seeded generator): `rate_429`, `rate_500`,
`rate_malformed`, `rate_garbage`, and `truncate_rate` (the reply is cut off half-way: mid-JSON for
JSON tasks, mid-sentence for answers, with the length finish reason and non-zero usage).
With `record_prompts`, each logged request also keeps its whole system prompt (`system`), first user
message (`user`) and every message (`messages`, role and text), so tests can compare exactly what a model was asked.
Dialogues: a prompt asking for "the user's next message" is the task `followup`; the reply is numbered after the
"User:" lines of the transcript it shows and quotes the "Expert:" line before it (`followup_repeat`: the first user
message again; `followup_empty`: nothing), and the teacher answers the latest such follow-up of its messages.
Each logged request (`requests()`) records `api_key` (the key it carried: the fake keys tests pass, so
tests can check which key went where), `task`, `task_key`, `prompt_key`, `status` and, once
answered, `outcome` ("ok", "truncated", "unusable", "content_filter", "broken"); `stats()` counts `rejected`
and `truncated` replies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import json
import random
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

try:
    from tests.standin_batches import BatchStore, batch_routes
    from tests.standin_embeddings import embedding_routes, paraphrase
except ModuleNotFoundError:  # run as a script (`python tests/standin_llm.py`) without the repository on the path
    from standin_batches import BatchStore, batch_routes  # type: ignore[no-redef]
    from standin_embeddings import embedding_routes, paraphrase  # type: ignore[no-redef]

REASONING_FLAGS = ("reasoning_content", "reasoning_field", "think", "think_open_missing", "think_unclosed", "thinking",
                   "none")
DEFAULT_COUNT = 3
_COUNT = re.compile(r"(?:exactly|恰好)\s*(\d+)", re.I)
_TAG_PATH = re.compile(r"(?:Tag path|标签路径)\s*[:：]\s*(.+)", re.I)
_PATH_SEPARATOR = re.compile(r"\s*(?:>|/|›|»)\s*")
_SCORE = re.compile(r"\[score=(\d+)")
_CJK = re.compile(r"[\u3400-\u9fff]")
_GARBAGE = "I'd rather discuss this topic in prose. There are many interesting angles, none of them listed here."
_REJECTION = "Your request was rejected as a result of our safety system (content filter)."
_LONG_ANSWER_WORDS = 400
_FILLER = (
    "Consider first the mechanism that drives it, then the conditions under which it changes.",
    "Each factor interacts with the others, so the overall effect depends on their balance.",
    "A worked example makes the point concrete and shows where the usual mistakes come from.",
    "Finally, the same reasoning extends to related cases with only small adjustments.",
)
_WORD = re.compile(r"\S+")
_OPENAI_ERROR_CODES = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}
_ANTHROPIC_ERROR_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
                          413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error"}


@dataclass
class Faults:
    """Latency and fault-injection settings; all off by default."""

    latency: float = 0.0  # mean seconds per request
    jitter: float = 0.0  # fraction of latency, uniform +/-
    tail: float = 0.0  # heavy tail instead of jitter: a log-normal sigma (1.0: p99 about 6x the mean), mean kept
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_malformed: float = 0.0
    rate_garbage: float = 0.0
    retry_after: float = 1.0  # seconds sent in the 429 `retry-after` header
    fail_next: list[int] = field(default_factory=list)  # statuses for the next requests, in order
    seed: int = 0
    reject_prompt_rate: float = 0.0  # fraction of prompts (by task key) always refused with HTTP 400
    reject_kinds: list[str] = field(default_factory=lambda: ["answer"])  # tasks reject_prompt_rate applies to
    unusable_prompt_rate: float = 0.0  # fraction of tags/questions prompts (by task key) always answered in prose
    truncate_rate: float = 0.0  # fraction of replies (drawn per request) cut off half-way
    break_stream_rate: float = 0.0  # fraction of streamed replies (drawn per request) dropped half-way
    batch_turnaround: float = 0.5  # seconds from a batch's creation to its end (tests/standin_batches.py)
    batch_error_rate: float = 0.0  # fraction of batch entries (by custom_id) answered with a transient error
    batch_expire: float = 0.0  # fraction of a batch's entries never done: the batch ends expired
    batch_unsupported: bool = False  # every batch and file route answers 404 (a server without a batch API)
    record_prompts: bool = False  # log each request's whole system prompt and first user message (`system`, `user`)


@dataclass
class Admission:
    seq: int
    status: int
    delay: float
    malformed: bool
    garbage: bool
    retry_after: float
    rejected: bool = False
    unusable: bool = False
    truncate: bool = False
    break_stream: bool = False


class StandinState:
    """Settings, request log and counters, shared by the server thread and the test thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.faults = Faults()
            self._rng = random.Random(self.faults.seed)
            self._log: list[dict[str, Any]] = []
            self._by_prompt: dict[str, int] = {}
            self._errors_injected = 0
            self._max_in_flight = 0
            self._rejected = 0
            self._truncated = 0
            self.batch_store = BatchStore()

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change some `Faults` settings; returns them all."""
        known = {f.name for f in fields(Faults)}
        unknown = set(settings) - known
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}; known: {sorted(known)}")
        with self._lock:
            for name, value in settings.items():
                setattr(self.faults, name, list(value) if name in ("fail_next", "reject_kinds") else value)
            if "seed" in settings:
                self._rng = random.Random(self.faults.seed)
            return asdict(self.faults)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": len(self._log),
                "by_prompt": dict(self._by_prompt),
                "errors_injected": self._errors_injected,
                "rejected": self._rejected,
                "truncated": self._truncated,
                "in_flight": self._in_flight,
                "max_in_flight": self._max_in_flight,
            }

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(entry) for entry in self._log]

    def batch_requests(self) -> list[dict[str, Any]]:
        """The logged requests that came in a batch (each has `batch_id` and `custom_id`)."""
        return [entry for entry in self.requests() if "batch_id" in entry]

    def billed_batch_entries(self) -> list[dict[str, Any]]:
        """The logged batch requests a provider would bill: answered (status 200) and finished before any cancel
        or expiry."""
        with self.batch_store.lock:
            billed = {(batch.id, entry.custom_id) for batch in self.batch_store.batches.values()
                      for entry in batch.entries if entry.status == 200 and batch.done(entry)}
        return [entry for entry in self.batch_requests() if (entry["batch_id"], entry["custom_id"]) in billed]

    def batch_phases(self) -> list[str]:
        """Each batch's state now ('completed', 'cancelled', 'expired', ...), oldest first."""
        now = time.time()
        with self.batch_store.lock:
            return [batch.phase(now) for batch in self.batch_store.batches.values()]

    def answer_once(self, api: str, body: dict[str, Any], key: str, log_fields: dict[str, Any],
                    forced_status: int | None = None) -> tuple[int, dict[str, Any]]:
        """(status, reply or error body) of one non-streamed request, answered at once: a batch entry."""
        prepared = _prepare(self, api, body, key, log_fields, forced_status)
        try:
            status, payload, _, _ = _produce(self, prepared)
            return status, payload
        finally:
            self.leave()

    def admit(self, entry: dict[str, Any], invalid: bool, invalid_status: int = 400) -> Admission:
        """Log a request and draw its fate: status (400 if `invalid`), delay, and output faults."""
        task, task_key = entry["task"], entry["task_key"]
        json_task = task not in ("answer", "followup")
        with self._lock:
            faults, rng = self.faults, self._rng
            status = 200
            rejected = False
            if invalid:
                status = invalid_status
            elif faults.fail_next:
                status = faults.fail_next.pop(0)
            elif task in faults.reject_kinds and _chosen(faults.seed, "reject", task_key, faults.reject_prompt_rate):
                status, rejected = 400, True
                self._rejected += 1
            elif faults.rate_429 and rng.random() < faults.rate_429:
                status = 429
            elif faults.rate_500 and rng.random() < faults.rate_500:
                status = 500
            delay = _delay(faults, rng)
            malformed = json_task and bool(faults.rate_malformed) and rng.random() < faults.rate_malformed
            garbage = json_task and bool(faults.rate_garbage) and rng.random() < faults.rate_garbage
            truncate = bool(faults.truncate_rate) and rng.random() < faults.truncate_rate
            break_stream = bool(faults.break_stream_rate) and rng.random() < faults.break_stream_rate
            unusable = task in ("tags", "questions") and _chosen(
                faults.seed, "unusable", task_key, faults.unusable_prompt_rate
            )
            entry.update(seq=len(self._log) + 1, status=status)
            self._log.append(entry)
            self._by_prompt[entry["prompt_key"]] = self._by_prompt.get(entry["prompt_key"], 0) + 1
            self._errors_injected += status != 200 and not invalid
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            return Admission(entry["seq"], status, max(delay, 0.0), malformed, garbage, faults.retry_after,
                             rejected=rejected, unusable=unusable, truncate=truncate, break_stream=break_stream)

    def record_outcome(self, entry: dict[str, Any], outcome: str, usage: tuple[int, int]) -> None:
        """Note how a request was answered ('ok', 'truncated', 'unusable' or 'content_filter') and its usage."""
        with self._lock:
            entry["outcome"] = outcome
            entry["input_tokens"], entry["output_tokens"] = usage
            self._truncated += outcome == "truncated"

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


# --- canned behaviour ---------------------------------------------------------------------------


def _delay(faults: Faults, rng: random.Random) -> float:
    """One request's latency: the mean, spread uniformly by `jitter` or, with `tail`, drawn from a log-normal
    distribution of that sigma with the same mean (most replies quicker than the mean, a few many times it)."""
    if not faults.latency:
        return 0.0
    if faults.tail:
        return faults.latency * rng.lognormvariate(-faults.tail ** 2 / 2, faults.tail)
    return faults.latency * (1 + faults.jitter * rng.uniform(-1, 1))


def _chosen(seed: int, salt: str, task_key: str, rate: float) -> bool:
    """Whether `task_key` falls in the `rate` fraction picked for `salt`: the same answer every time."""
    if rate <= 0:
        return False
    digest = hashlib.sha256(f"{seed}:{salt}:{task_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def word_count(text: str) -> int:
    """Tokens as the stand-in counts them: whitespace-separated words."""
    return len(_WORD.findall(text))


def _first_words(text: str, count: int) -> str:
    """`text` up to the end of its `count`-th word (all of it when shorter)."""
    words = list(_WORD.finditer(text))
    return text if count >= len(words) else text[: words[count - 1].end()] if count > 0 else ""


def _cut_half_way(text: str) -> str:
    """Half of `text`'s words (at least one, never all); half its characters when it is one word."""
    words = word_count(text)
    return _first_words(text, max(1, words // 2)) if words > 1 else text[: max(1, len(text) // 2)]


def _long_answer(question: str) -> str:
    words = f"Answer to: {question[:200]}".split()
    k = 0
    while len(words) < _LONG_ANSWER_WORDS:
        words += _FILLER[k % len(_FILLER)].split()
        k += 1
    return " ".join(words)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(block.get("text", "") for block in content if isinstance(block, dict))
    return ""


def detect_task(text: str) -> str:
    """'tags', 'questions', 'judge', 'followup' (playing the user of a dialogue) or 'answer', from the JSON shape
    or the message the prompt asks for."""
    if "user's next message" in text or "用户的下一条消息" in text:
        return "followup"
    if '{"tags"' in text:
        return "tags"
    if '{"questions"' in text:
        return "questions"
    if '{"score"' in text:
        return "judge"
    return "answer"


def existing_items(text: str) -> list[str]:
    """The '- ' lines after a 'do not repeat' / '不要重复' line, up to the next blank line."""
    items: list[str] = []
    collecting = False
    for line in text.splitlines():
        stripped = line.strip()
        if collecting and stripped.startswith("- "):
            items.append(stripped[2:].strip())
        elif collecting and not stripped and items:
            break
        elif "do not repeat" in line.lower() or "不要重复" in line:
            collecting = True
    return items


def _list_items(task: str, prompt: str, dupes: bool, echo: bool = False, reworded: bool = False) -> list[str]:
    count_match, path_match = _COUNT.search(prompt), _TAG_PATH.search(prompt)
    count = int(count_match.group(1)) if count_match else DEFAULT_COUNT
    path = path_match.group(1).strip() if path_match else "Topic"
    segment = ([part for part in _PATH_SEPARATOR.split(path) if part] or [path])[-1]
    chinese = bool(_CJK.search(path))
    existing = existing_items(prompt)
    taken = {item.casefold() for item in existing}
    items: list[str] = []
    k = 0
    while len(items) < count:
        k += 1
        if task == "tags":
            name = f"{segment}子主题{k}" if chinese else f"{segment} Subtopic {k}"
        else:
            name = f"问题{k}：{segment}在{path}中是如何运作的？" if chinese else (
                f"Question {k}: how does {segment} work in the context of {path}?"
            )
        if name.casefold() not in taken:
            taken.add(name.casefold())
            items.append(name)
    if dupes:
        variants = [items[-1].upper().rstrip("?？!") + ("!" if task == "questions" else "?")] if items else []
        items = existing[:2] + items + variants
    if reworded and task == "questions" and existing:  # a paraphrase of an existing question comes first
        items = [paraphrase(existing[0]), *items]
    if echo:  # a small model copying the prompt's example and the parent tag
        example = ("子主题1" if chinese else "sub-topic 1") if task == "tags" else ("问题1" if chinese else "question 1")
        items = [example, segment, *items][:max(count, 2)]
    return items


def _followup(prompt: str, flags: set[str]) -> str:
    """The user's next message in a dialogue whose transcript ("User: ..." / "Expert: ..." blocks, or 用户/专家) the
    prompt shows: numbered after the user turns so far and quoting the expert's last reply, so it depends on the
    history. `followup_repeat` repeats the first user message; `followup_empty` says nothing."""
    users = re.findall(r"^(?:User|用户): (.*)$", prompt, re.M)
    replies = re.findall(r"^(?:Expert|专家): (.*)$", prompt, re.M)
    if "followup_empty" in flags:
        return ""
    if "followup_repeat" in flags and users:
        return users[0]
    quoted = " ".join((replies[-1] if replies else "").split()[:12])
    if "用户的下一条消息" in prompt:
        return f"追问{len(users) + 1}：你说“{quoted}”，能举一个具体的例子吗？"
    return f'Follow-up {len(users) + 1}: you said "{quoted}"; can you give a concrete example?'


def _build_reply(task: str, prompt: str, question: str, flags: set[str], admission: Admission,
                 constrained: bool = False, opening: bool = True) -> str | dict[str, Any]:
    """The reply text; a dict when a forced tool carries it (`constrained`: a schema fixes the reply's shape)."""
    if task == "answer" and "student" in flags:  # a student under evaluation: its grade is planted for the judge
        if "empty_answer" in flags:
            return ""
        poor = [flag.split(":", 1)[1].casefold() for flag in flags if flag.startswith("poor:")]
        if any(word in question.casefold() for word in poor):
            return "I am not sure; it depends. [score=2]"
        return f"Answer to: {question[:200]} [score=9]"
    if task == "followup":
        return _followup(prompt, flags)
    if task == "answer":
        answer = _long_answer(question) if "long" in flags else f"Answer to: {question[:200]}"
        # `scoreN` (e.g. `weak+score3`): the answer carries the mark a judge of it reads as its score
        return answer + "".join(f" [score={flag[5:]}]" for flag in sorted(flags) if re.fullmatch(r"score\d+", flag))
    # Garbage ignores any schema (a server that does not enforce it; for Anthropic, text instead of the tool call).
    if task != "judge" and ("garbage" in flags or admission.garbage or admission.unusable):
        return _GARBAGE
    if task == "judge":
        score = _SCORE.search(prompt)
        payload: dict[str, Any] = {"score": int(score.group(1)) if score else 7, "rationale": "Canned judgement."}
    else:
        items: list[Any] = _list_items(task, prompt, "dupes" in flags, "echo" in flags and opening,
                                       "paraphrase" in flags)
        if "objects" in flags and not constrained:
            items = [{"name" if task == "tags" else "question": item} for item in items]
        payload = {task: items}
    if constrained:
        return payload
    text = json.dumps(payload, ensure_ascii=False)
    if "malformed" in flags or admission.malformed:
        text = f"Sure! Here is the JSON you asked for:\n```json\n{text[:-1]},}}\n```"
    return text


def _placement(flags: set[str], api: str, any_text: str, thinking_requested: bool) -> str:
    """Where reasoning goes: one of REASONING_FLAGS, adjusted to what each API can carry."""
    chosen = next((flag for flag in REASONING_FLAGS if flag in flags), None)
    if chosen is None and api == "anthropic" and thinking_requested:
        chosen = "thinking"
    elif chosen is None:
        chosen = "think" if "<think>" in any_text else "none"
    if api == "openai" and chosen == "thinking":
        return "think"
    if api == "anthropic" and chosen in ("reasoning_content", "reasoning_field"):
        return "thinking"
    return chosen


def _inline(placement: str, reasoning: str, answer: str, reasoning_done: bool = True) -> str:
    if placement == "think":
        return f"<think>\n{reasoning}\n</think>\n\n{answer}" if reasoning_done else f"<think>\n{reasoning}"
    if placement == "think_open_missing":
        return f"{reasoning}\n</think>\n\n{answer}" if reasoning_done else reasoning
    if placement == "think_unclosed":  # a lead-in names the tag, the block never closes, no answer follows
        return f"Sure, let's break this down step-by-step inside the <think> section:\n{reasoning}"
    return answer


@dataclass
class Reply:
    """What the model says, before each API wraps it; `cut` = stopped by the length limit."""

    placement: str
    answer: str
    shown_reasoning: str = ""  # the reasoning actually emitted ("" when placement is "none")
    reasoning_done: bool = True
    cut: bool = False
    content_filter: bool = False
    usage: tuple[int, int] = (0, 0)
    tool_input: dict[str, Any] | None = None  # Anthropic: the forced tool call's input (the JSON reply)


def _shape_reply(reply: Reply, budget: Any, cut_half_way: bool) -> Reply:
    """Apply the half-way cut and the max_tokens budget (in words, reasoning first) to `reply`."""
    if cut_half_way:
        reply.answer, reply.cut = _cut_half_way(reply.answer), True
    if isinstance(budget, int) and budget > 0:
        reasoning_words = word_count(reply.shown_reasoning)
        if reasoning_words >= budget and (reply.answer or reasoning_words > budget):
            reply.shown_reasoning, reply.answer = _first_words(reply.shown_reasoning, budget), ""
            reply.reasoning_done, reply.cut = False, True
        elif reasoning_words + word_count(reply.answer) > budget:
            reply.answer, reply.cut = _first_words(reply.answer, budget - reasoning_words), True
    return reply


# --- HTTP ---------------------------------------------------------------------------------------


def _error_body(api: str, status: int, retry_after: float, key: str, rejected: bool = False,
                refusal: tuple[str, str | None, int] | None = None) -> tuple[int, dict[str, Any], dict[str, str] | None]:
    """(status, body, headers) of an error in the API's format; `refusal` is (message, param) of a refused
    parameter (a 400)."""
    message = _REJECTION if rejected else refusal[0] if refusal else {
        401: f"Incorrect API key provided: {key[:4]}***{key[-4:]}." if len(key) > 8 else "Missing API key.",
        400: "Invalid request: check 'messages' roles and unsupported options.",
        404: "The model does not exist or you do not have access to it.",
        429: "Rate limit reached; please slow down.",
    }.get(status, f"Injected error {status}.")
    code = "content_filter" if rejected else "unsupported_parameter" if refusal and status == 400 else (
        _OPENAI_ERROR_CODES.get(status))
    headers = {"retry-after": f"{retry_after:g}"} if status == 429 else None
    if api == "openai":
        kind = ("internal_server_error" if refusal else "server_error") if status >= 500 else "invalid_request_error"
        body: dict[str, Any] = {
            "error": {"message": message, "type": kind, "param": refusal[1] if refusal else None, "code": code}
        }
    else:
        kind = _ANTHROPIC_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        body = {"type": "error", "error": {"type": kind, "message": message}}
    return status, body, headers


def _response_format_kind(body: dict[str, Any]) -> str | None:
    """'json_schema', 'json_object_schema', 'json_object' or None: the structured-output form requested."""
    form = body.get("response_format")
    if not isinstance(form, dict):
        return None
    kind = form.get("type")
    if kind == "json_object" and form.get("schema") is not None:
        return "json_object_schema"
    return kind if isinstance(kind, str) else None


def _refused_parameter(api: str, body: dict[str, Any], flags: set[str]) -> tuple[str, str | None, int] | None:
    """(message, param, status) of the error this server gives for a parameter it does not take, else None."""
    if api == "anthropic":
        forced = (body.get("tool_choice") or {}).get("type") == "tool"
        if forced and (body.get("thinking") or {}).get("type") == "enabled":
            return "Thinking may not be enabled when tool_choice forces tool use.", None, 400
        return None
    if "no_stream_options" in flags and "stream_options" in body:
        return "Unrecognized request argument supplied: stream_options", None, 400
    if "reasoning_model" in flags:
        if body.get("max_tokens") is not None:
            return ("Unsupported parameter: 'max_tokens' is not supported with this model. "
                    "Use 'max_completion_tokens' instead.", "max_tokens", 400)
        if body.get("temperature") is not None and body.get("temperature") != 1:
            return (f"Unsupported value: 'temperature' does not support {body['temperature']} with this model. "
                    "Only the default (1) value is supported.", "temperature", 400)
    kind = _response_format_kind(body)
    if kind is None:
        return None
    if "no_response_format" in flags:
        return "Unrecognized request argument supplied: response_format", "response_format", 400
    if "only_json_object" in flags and kind != "json_object":
        return f"Invalid parameter: 'response_format' of type '{kind}' is not supported.", "response_format", 400
    if "only_json_object_schema" in flags and kind != "json_object_schema":
        # llama-cpp-python's server: its request validation error, answered as a 500 with no `param`.
        return ("1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
                f"'msg': \"Input should be 'text' or 'json_object'\", 'input': '{kind}'}}", None, 500)
    return None


@dataclass
class Prepared:
    """A request read and admitted (logged, fate drawn): what `_produce` answers."""

    api: str
    body: dict[str, Any]
    key: str
    entry: dict[str, Any]
    admission: Admission
    refusal: tuple[str, str | None, int] | None
    messages: list[dict[str, str]]
    question: str
    prompt: str
    all_text: str
    task: str
    model: str
    flags: set[str]
    thinking: dict[str, Any]
    forced_tool: str | None
    response_format: str | None


def _prepare(state: StandinState, api: str, body: dict[str, Any], key: str,
             log_fields: dict[str, Any] | None = None, forced_status: int | None = None) -> Prepared:
    """Read a chat request body, log it (with `log_fields`) and draw its fate; the caller must `state.leave()`.

    `forced_status` answers it with that error status whatever else (a batch entry's injected error).
    """
    received = body.get("messages") if isinstance(body.get("messages"), list) else []
    # Like the real APIs: Anthropic takes no system role in messages and (since 2026-10-21) no sampling options.
    roles = {"user", "assistant"} if api == "anthropic" else {"system", "user", "assistant"}
    invalid = not received or any(m.get("role") not in roles for m in received)
    invalid |= api == "anthropic" and not {"temperature", "top_p", "top_k"}.isdisjoint(body)
    messages = [{"role": m.get("role", "user"), "content": _text_of(m.get("content"))} for m in received]
    if api == "anthropic" and body.get("system"):
        messages.insert(0, {"role": "system", "content": _text_of(body["system"])})
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    # Like a real model, read the task from the conversation's opening request; follow-ups (format
    # feedback) only ask to try again.
    question = next((m["content"] for m in messages if m["role"] == "user"), "").strip()
    prompt = f"{system}\n{question}"
    all_text = "\n".join(m["content"] for m in messages)
    task = detect_task(prompt)
    model = str(body.get("model", ""))
    flags = set(model.split("+")[1:])
    thinking = body.get("thinking") or {}
    forced_tool = (body.get("tool_choice") or {}).get("name") if (body.get("tool_choice") or {}).get(
        "type") == "tool" else None
    response_format = _response_format_kind(body)
    refusal = None if invalid else _refused_parameter(api, body, flags)
    entry = {
        "api": api,
        "api_key": key,
        "model": model,
        "task": task,
        "question": question[:300],
        "last_user": next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")[:600],
        "prompt_key": hashlib.sha256(json.dumps(messages, ensure_ascii=False).encode()).hexdigest(),
        "task_key": hashlib.sha256(prompt.encode()).hexdigest(),
        "json_mode": response_format is not None or forced_tool is not None,
        "response_format": response_format,
        "schema": (body.get("response_format") or {}).get("json_schema", {}).get("schema") if
        response_format == "json_schema" else (body.get("response_format") or {}).get("schema"),
        "tool": forced_tool,
        "max_tokens": body.get("max_tokens") if body.get("max_tokens") is not None else body.get(
            "max_completion_tokens"),
        "token_parameter": "max_tokens" if "max_tokens" in body else (
            "max_completion_tokens" if "max_completion_tokens" in body else None),
        "temperature": body.get("temperature"),
        "reasoning_effort": body.get("reasoning_effort"),
        "thinking_budget": thinking.get("budget_tokens"),
        "stream": bool(body.get("stream")),
        "input_tokens_estimate": len(all_text) // 4 + 1,
        **(log_fields or {}),
    }
    if state.faults.record_prompts:
        entry.update(system=system, user=question, messages=messages)
    if forced_status is not None:
        admission = state.admit(entry, invalid=True, invalid_status=forced_status)
    else:
        admission = state.admit(entry, invalid=invalid or bool(refusal),
                                invalid_status=refusal[2] if refusal else 400)
    return Prepared(api, body, key, entry, admission, refusal, messages, question, prompt, all_text, task, model,
                    flags, thinking, forced_tool, response_format)


def _produce(state: StandinState, p: Prepared) -> tuple[int, dict[str, Any], dict[str, str] | None, bool]:
    """(status, body, headers, broken) of an admitted request: the non-streamed reply, or its error body."""
    admission, entry, api = p.admission, p.entry, p.api
    if admission.status != 200:
        return _error_body(api, admission.status, admission.retry_after, p.key, admission.rejected,
                           refusal=p.refusal) + (False,)
    # In a dialogue the teacher answers the latest follow-up (one this stand-in wrote playing the user).
    focus = next((m["content"] for m in reversed(p.messages) if m["role"] == "user"
                  and m["content"].startswith(("Follow-up", "追问"))), p.question)
    reasoning = f"Reasoning about: {focus[:100]}"
    placement = _placement(p.flags, api, p.all_text, p.thinking.get("type") == "enabled")
    constrained = p.forced_tool is not None or p.response_format in ("json_schema", "json_object_schema")
    opening = not any(m["role"] == "assistant" for m in p.messages)
    if placement == "think_unclosed" and not opening:
        placement = "think"  # after the feedback, the block is closed and the answer follows it
    built = _build_reply(p.task, p.prompt, focus if p.task == "answer" else p.question, p.flags, admission,
                         constrained=constrained, opening=opening)
    tool_input = built if isinstance(built, dict) and p.forced_tool else None
    answer = "" if tool_input is not None else built if isinstance(built, str) else json.dumps(
        built, ensure_ascii=False)
    reply = Reply(placement, answer, shown_reasoning=reasoning if placement != "none" else "",
                  content_filter="content_filter" in p.flags, tool_input=tool_input)
    if not reply.content_filter:
        reply = _shape_reply(reply, entry["max_tokens"], "truncated" in p.flags or admission.truncate)
    output_tokens = 0 if reply.content_filter else word_count(reply.shown_reasoning) + word_count(reply.answer) + (
        word_count(json.dumps(tool_input)) if tool_input is not None else 0)
    reply.usage = (entry["input_tokens_estimate"], output_tokens)
    broken = bool(entry["stream"]) and ("stream_break" in p.flags or admission.break_stream)
    outcome = "broken" if broken else "content_filter" if reply.content_filter else (
        "truncated" if reply.cut else "unusable" if admission.unusable else "ok")
    state.record_outcome(entry, outcome, reply.usage)
    build = _openai_body if api == "openai" else _anthropic_body
    return 200, build(admission.seq, p.model, p.flags, reply), None, broken


async def _complete(request: Request, api: str) -> Response:
    state: StandinState = request.app.state.standin
    body = await request.json()
    key = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
    # the client's port: one per connection, so a test can see whether a client reuses its connections
    prepared = _prepare(state, api, body, key, {"client_port": request.client.port if request.client else None})
    try:
        if prepared.admission.delay:
            await asyncio.sleep(prepared.admission.delay)
        status, payload, headers, broken = _produce(state, prepared)
        if status != 200 or not prepared.entry["stream"]:
            return JSONResponse(payload, status_code=status, headers=headers)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        events = _openai_events(payload, include_usage) if api == "openai" else _anthropic_events(payload)
        return StreamingResponse(_sse(events, broken), media_type="text/event-stream")
    finally:
        state.leave()


def _openai_body(seq: int, model: str, flags: set[str], reply: Reply) -> dict[str, Any]:
    placement, reasoning, usage = reply.placement, reply.shown_reasoning, reply.usage
    message: dict[str, Any] = {
        "role": "assistant", "content": _inline(placement, reasoning, reply.answer, reply.reasoning_done)
    }
    if placement == "reasoning_content":
        message["reasoning_content"] = reasoning
    elif placement == "reasoning_field":
        message["reasoning"] = reasoning
    finish = "length" if reply.cut else "stop"
    if reply.content_filter:
        message, finish = {"role": "assistant", "content": ""}, "content_filter"
    choices = [] if "no_choices" in flags else [
        {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
    ]
    body = {
        "id": f"chatcmpl-{seq}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
    }
    if "no_usage" in flags:
        del body["usage"]
    return body


def _anthropic_body(seq: int, model: str, flags: set[str], reply: Reply) -> dict[str, Any]:
    placement, reasoning, usage = reply.placement, reply.shown_reasoning, reply.usage
    blocks: list[dict[str, Any]] = []
    if placement == "thinking":
        blocks.append({"type": "thinking", "thinking": reasoning, "signature": "x"})
        text = reply.answer
    else:
        text = _inline(placement, reasoning, reply.answer, reply.reasoning_done)
    if reply.tool_input is not None:
        blocks.append({"type": "tool_use", "id": f"toolu_{seq}", "name": "submit_reply", "input": reply.tool_input})
    elif text:
        blocks.append({"type": "text", "text": text})
    stop = "max_tokens" if reply.cut else "tool_use" if reply.tool_input is not None else "end_turn"
    if reply.content_filter:
        blocks, stop = [], "refusal"
    return {
        "id": f"msg_{seq}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
    }


def _pieces(text: str, size: int = 24) -> list[str]:
    """`text` in chunks of `size` characters, as a server streams it."""
    return [text[i:i + size] for i in range(0, len(text), size)]


def _openai_events(completion: dict[str, Any], include_usage: bool) -> list[tuple[str | None, Any]]:
    """The chat.completion.chunk events of `completion`, then `[DONE]`."""
    head = {key: completion[key] for key in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    events: list[tuple[str | None, Any]] = []
    for choice in completion["choices"]:
        message = choice["message"]
        events.append((None, head | {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                 "finish_reason": None}]}))
        for name in ("reasoning_content", "reasoning", "content"):
            for piece in _pieces(message.get(name) or ""):
                events.append((None, head | {"choices": [{"index": 0, "delta": {name: piece},
                                                         "finish_reason": None}]}))
        events.append((None, head | {"choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]}))
    if "usage" in completion and (include_usage or not completion["choices"]):
        events.append((None, head | {"choices": [], "usage": completion["usage"]}))
    events.append((None, "[DONE]"))
    return events


def _anthropic_events(message: dict[str, Any]) -> list[tuple[str | None, Any]]:
    """The message_start ... message_stop events of `message`."""
    start = dict(message, content=[], stop_reason=None, usage={"input_tokens": message["usage"]["input_tokens"],
                                                              "output_tokens": 1})
    events: list[tuple[str | None, Any]] = [("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(message["content"]):
        if block["type"] == "thinking":
            opening, deltas = {"type": "thinking", "thinking": "", "signature": ""}, [
                {"type": "thinking_delta", "thinking": piece} for piece in _pieces(block["thinking"])
            ] + [{"type": "signature_delta", "signature": block["signature"]}]
        elif block["type"] == "tool_use":
            opening = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": piece}
                      for piece in _pieces(json.dumps(block["input"], ensure_ascii=False))]
        else:
            opening, deltas = {"type": "text", "text": ""}, [
                {"type": "text_delta", "text": piece} for piece in _pieces(block["text"])]
        events.append(("content_block_start", {"type": "content_block_start", "index": index,
                                               "content_block": opening}))
        events += [("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
                   for delta in deltas]
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                                     "usage": {"output_tokens": message["usage"]["output_tokens"]}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def tokens_in_body(body: bytes) -> int:
    """Input + output tokens a reply body reports: a JSON reply's `usage`, or a streamed reply's events
    (OpenAI's usage chunk; Anthropic's message_start input and message_delta output). 0 when it has none."""
    text = body.decode("utf-8", "replace")
    if not text.lstrip().startswith(("data:", "event:")):
        events = [text]
    else:
        events = [line[5:] for line in text.splitlines() if line.startswith("data:") and '"usage"' in line]
    found: dict[str, int] = {}
    for raw in events:
        try:
            event = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        usage = event.get("usage") or (event.get("message") or {}).get("usage") or {}
        for key, value in usage.items():
            if key.endswith("_tokens") and key != "total_tokens" and isinstance(value, int):
                found[key] = value  # later events carry the final counts (Anthropic's output_tokens)
    return sum(found.values())


class StreamBroken(Exception):
    """Raised inside a streamed response to drop the connection half-way, like a network failure."""


async def _sse(events: list[tuple[str | None, Any]], broken: bool) -> AsyncIterator[bytes]:
    for number, (name, data) in enumerate(events):
        if broken and number == len(events) // 2:
            raise StreamBroken("dropping the connection mid-stream (injected fault)")
        text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
        yield ((f"event: {name}\n" if name else "") + f"data: {text}\n\n").encode()


async def _control(request: Request) -> JSONResponse:
    try:
        return JSONResponse(request.app.state.standin.configure(**await request.json()))
    except (ValueError, TypeError) as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)


async def _reset(request: Request) -> JSONResponse:
    request.app.state.standin.reset()
    return JSONResponse({"ok": True})


async def _stats(request: Request) -> JSONResponse:
    return JSONResponse(request.app.state.standin.stats())


async def _requests(request: Request) -> JSONResponse:
    return JSONResponse(request.app.state.standin.requests())


def build_app(state: StandinState, ready: threading.Event | None = None) -> Starlette:
    """The ASGI app serving `state`; sets `ready` once the server has started up."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
        if ready is not None:
            ready.set()
        yield

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", functools.partial(_complete, api="openai"), methods=["POST"]),
            Route("/v1/messages", functools.partial(_complete, api="anthropic"), methods=["POST"]),
            Route("/_control", _control, methods=["POST"]),
            Route("/_reset", _reset, methods=["POST"]),
            Route("/_stats", _stats, methods=["GET"]),
            Route("/_requests", _requests, methods=["GET"]),
            *batch_routes(),
            *embedding_routes(),
        ],
        lifespan=lifespan,
    )
    app.state.standin = state
    return app


def _listening_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this; without it every keep-alive reply waits ~40 ms for a delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)
    return sock


def _server(app: Starlette) -> uvicorn.Server:
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=1, backlog=2048)
    return uvicorn.Server(config)


class StandinLLM(StandinState):
    """The stand-in served from a background thread on an OS-assigned 127.0.0.1 port; `wrap` may put ASGI
    middleware in front of it (tests/standin_limits.py: provider-style rate limits)."""

    def __init__(self, wrap: Callable[[Any], Any] | None = None) -> None:
        super().__init__()
        self._wrap = wrap
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    def start(self) -> StandinLLM:
        ready = threading.Event()
        self._socket = _listening_socket(0)
        app = build_app(self, ready)
        self._server = _server(self._wrap(app) if self._wrap else app)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="standin-llm", daemon=True
        )
        self._thread.start()
        if not ready.wait(10):
            self.stop()
            raise RuntimeError("stand-in LLM did not start")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> StandinLLM:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._socket is not None, "stand-in not started"
        return self._socket.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 = any free port")
    parser.add_argument("--latency", type=float, default=0.0, help="mean seconds per request")
    parser.add_argument("--jitter", type=float, default=0.0, help="fraction of latency, uniform +/-")
    parser.add_argument("--tail", type=float, default=0.0,
                        help="heavy-tailed latency instead: log-normal sigma (e.g. 1.0), the mean kept at --latency")
    parser.add_argument("--seed", type=int, default=0)
    limited = parser.add_argument_group("provider-style rate limits in front (tests/standin_limits.py)")
    limited.add_argument("--rpm", type=float, help="requests per minute")
    limited.add_argument("--tpm", type=float, help="tokens per minute")
    limited.add_argument("--burst-seconds", type=float, default=60.0, help="seconds of the rate the buckets hold")
    limited.add_argument("--rejected-not-counted", action="store_true", help="a 429 spends nothing of the budget")
    limited.add_argument("--no-limit-headers", action="store_true", help="a gateway: 429 + retry-after, no headers")
    args = parser.parse_args(argv)
    state = StandinState()
    state.configure(latency=args.latency, jitter=args.jitter, tail=args.tail, seed=args.seed)
    app: Any = build_app(state)
    if args.rpm or args.tpm:
        try:
            from tests.standin_limits import ProviderLimits, RateLimitMiddleware
        except ModuleNotFoundError:  # run as a script without the repository on the path
            from standin_limits import ProviderLimits, RateLimitMiddleware  # type: ignore[no-redef]
        app = RateLimitMiddleware(app, ProviderLimits(
            args.rpm, args.tpm, burst_seconds=args.burst_seconds, rejected_count=not args.rejected_not_counted,
            send_headers=not args.no_limit_headers))
    sock = _listening_socket(args.port)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        _server(app).run(sockets=[sock])


if __name__ == "__main__":
    main()
