"""The stand-in LLM's batch APIs: OpenAI's Files + Batches and Anthropic's Message Batches, on the wire.

Mounted by `standin_llm.build_app`. Every entry is answered, when its batch is created, by the same
code as an online non-streamed request (`StandinState.answer_once`), so token counts, model flags and
per-prompt faults behave the same; a request the online path refuses becomes an errored entry with
that status and error body. Each entry is logged in `requests()` with `batch_id` and `custom_id`
(`batch_requests()` lists only those).

Time, not a thread, moves a batch on: its state is computed on every read from its age. With
turnaround T (`batch_turnaround`, fixed when the batch is created) an OpenAI batch is `validating`
for 0.1 T, `in_progress` until 0.9 T, `finalizing` until T, then `completed`; the entries finish one
after another between 0.1 T and 0.9 T. An Anthropic batch is `in_progress`, then `ended`.
Settings (`configure()` / POST /_control, read when a batch is created):
- `batch_turnaround`: seconds from create to ended (default 0.5).
- `batch_error_rate`: fraction of entries (chosen by hashing the seed with the custom_id) answered
  with a transient error: HTTP 500 `server_error` (OpenAI error file) / `api_error` (Anthropic).
- `batch_expire`: fraction of entries never done: the batch ends at T as `expired` (OpenAI: error
  lines with code `batch_expired`; Anthropic: `expired` results); 1.0 = nothing done.
- `batch_unsupported`: every batch and file route answers 404, like an OpenAI-compatible server
  without a batch API (llama.cpp, Ollama).
Like the real APIs, a batch with no requests or a repeated custom_id is refused with a 400 (Anthropic:
also a custom_id that is not 1-64 characters of [A-Za-z0-9_-]).
Cancel: entries finished before the cancel keep their output; the batch is `cancelling` /
`canceling` for 0.1 T, then `cancelled` (OpenAI; the rest get error lines with code
`batch_cancelled`) / `ended` (Anthropic; the rest are `canceled`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

OPENAI_ENDPOINT = "/v1/chat/completions"
_EXPIRES_AFTER = 24 * 3600
_ANTHROPIC_CUSTOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass
class Entry:
    custom_id: str
    status: int
    body: dict[str, Any]  # the reply, or the error body
    done_at: float | None  # seconds after creation when it is finished; None: never (it expires)


@dataclass
class Batch:
    id: str
    api: str
    created: float
    turnaround: float
    entries: list[Entry]
    metadata: dict[str, Any] | None = None
    input_file_id: str | None = None
    completion_window: str = "24h"
    cancelled_at: float | None = None  # seconds after creation

    def phase(self, now: float) -> str:
        """'validating', 'in_progress', 'finalizing', 'completed', 'expired', 'cancelling' or 'cancelled'."""
        age, turnaround = now - self.created, self.turnaround
        if self.cancelled_at is not None:
            return "cancelling" if age < self.cancelled_at + 0.1 * turnaround else "cancelled"
        if age >= turnaround:
            return "expired" if any(entry.done_at is None for entry in self.entries) else "completed"
        return "validating" if age < 0.1 * turnaround else "in_progress" if age < 0.9 * turnaround else "finalizing"

    def done(self, entry: Entry) -> bool:
        """Whether `entry` finished (before a cancel, if any)."""
        limit = self.cancelled_at if self.cancelled_at is not None else math.inf
        return entry.done_at is not None and entry.done_at <= limit

    def finished_by(self, entry: Entry, now: float) -> bool:
        """Whether `entry` has finished at time `now`."""
        return self.done(entry) and self.created + entry.done_at <= now  # type: ignore[operator]

    def ended_at(self) -> float:
        end = self.cancelled_at + 0.1 * self.turnaround if self.cancelled_at is not None else self.turnaround
        return self.created + end


@dataclass
class BatchStore:
    """Uploaded files and created batches of both APIs; replaced by `StandinState.reset()`."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {"meta": FileObject, "content": bytes}
    batches: dict[str, Batch] = field(default_factory=dict)
    counter: int = 0

    def next_id(self, prefix: str) -> str:
        with self.lock:
            self.counter += 1
            return f"{prefix}{self.counter:06d}"


def _chosen(seed: int, salt: str, key: str, rate: float) -> bool:
    if rate <= 0:
        return False
    digest = hashlib.sha256(f"{seed}:{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def _answer_entries(request: Request, api: str, batch_id: str,
                    items: list[tuple[str, dict[str, Any]]]) -> tuple[list[Entry], float]:
    """Answer every (custom_id, body) now and schedule when each finishes; returns (entries, turnaround)."""
    state = request.app.state.standin
    faults = state.faults
    key = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
    turnaround = float(faults.batch_turnaround)
    finishing = len(items) - math.ceil(len(items) * faults.batch_expire) if faults.batch_expire > 0 else len(items)
    entries = []
    for number, (custom_id, body) in enumerate(items):
        forced = 500 if _chosen(faults.seed, "batch_error", custom_id, faults.batch_error_rate) else None
        status, reply = state.answer_once(api, dict(body, stream=False), key,
                                          {"batch_id": batch_id, "custom_id": custom_id}, forced_status=forced)
        done_at = turnaround * (0.1 + 0.8 * (number + 1) / finishing) if number < finishing else None
        entries.append(Entry(custom_id, status, reply, done_at))
    return entries, turnaround


def _store(request: Request) -> BatchStore:
    return request.app.state.standin.batch_store


def _unsupported(request: Request, api: str) -> Response | None:
    if not request.app.state.standin.faults.batch_unsupported:
        return None
    return _error(api, 404, "Not Found", "not_found_error")


def _error(api: str, status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    if api == "openai":
        return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": None}},
                            status_code=status)
    return JSONResponse({"type": "error", "error": {"type": kind, "message": message}}, status_code=status)


def _listing(request: Request, api: str, objects: list[dict[str, Any]]) -> JSONResponse:
    """A newest-first page of `objects` (OpenAI: `after`; Anthropic: `after_id`/`before_id`), `limit` long."""
    params = request.query_params
    limit = max(1, min(int(params.get("limit", 20)), 1000))
    ids = [obj["id"] for obj in objects]
    after = params.get("after") if api == "openai" else params.get("after_id")
    before = None if api == "openai" else params.get("before_id")
    if after in ids:
        objects = objects[ids.index(after) + 1:]
    elif before in ids:
        objects = objects[:ids.index(before)][-limit:]
    page = objects[:limit]
    body: dict[str, Any] = {"data": page, "has_more": len(objects) > len(page),
                            "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None}
    if api == "openai":
        body["object"] = "list"
    return JSONResponse(body)


def _newest_first(store: BatchStore, api: str) -> list[Batch]:
    with store.lock:
        batches = [batch for batch in store.batches.values() if batch.api == api]
    return sorted(batches, key=lambda batch: (batch.created, batch.id), reverse=True)


# --- OpenAI: files and batches ------------------------------------------------------------------


async def _upload_file(request: Request) -> Response:
    if (refused := _unsupported(request, "openai")) is not None:
        return refused
    form = await request.form()
    upload, purpose = form.get("file"), form.get("purpose")
    if upload is None or isinstance(upload, str) or purpose not in ("batch", "fine-tune", "assistants"):
        return _error("openai", 400, "A 'file' part and a valid 'purpose' are required.")
    content = await upload.read()
    store = _store(request)
    file_id = store.next_id("file-")
    meta = {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
            "filename": upload.filename or "upload.jsonl", "purpose": purpose, "status": "processed"}
    with store.lock:
        store.files[file_id] = {"meta": meta, "content": content}
    return JSONResponse(meta)


async def _file_content(request: Request) -> Response:
    if (refused := _unsupported(request, "openai")) is not None:
        return refused
    store = _store(request)
    file_id = request.path_params["file_id"]
    with store.lock:
        stored = store.files.get(file_id)
    if stored is None:  # an output or error file ("file-<batch id>-output"): it exists once its batch ended
        with store.lock:
            batch = store.batches.get(file_id.removeprefix("file-").rpartition("-")[0])
        content = _openai_output_files(batch).get(file_id) if batch is not None and batch.api == "openai" else None
        if content is None:
            return _error("openai", 404, f"No such File object: {file_id}", "not_found_error")
        return Response(content, media_type="application/octet-stream")
    return Response(stored["content"], media_type="application/octet-stream")


async def _create_openai_batch(request: Request) -> Response:
    if (refused := _unsupported(request, "openai")) is not None:
        return refused
    body = await request.json()
    store = _store(request)
    with store.lock:
        stored = store.files.get(str(body.get("input_file_id")))
    if body.get("endpoint") != OPENAI_ENDPOINT:
        return _error("openai", 400, f"The stand-in batches only {OPENAI_ENDPOINT}, not {body.get('endpoint')!r}.")
    if stored is None:
        return _error("openai", 400, f"Invalid 'input_file_id': {body.get('input_file_id')!r} does not exist.")
    items = []
    for number, line in enumerate(stored["content"].decode().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            items.append((str(row["custom_id"]), dict(row["body"])))
        except (ValueError, KeyError, TypeError):
            return _error("openai", 400, f"Line {number} of the input file is not a batch request.")
        if row.get("url") != OPENAI_ENDPOINT or row.get("method") != "POST":
            return _error("openai", 400, f"Line {number}: url must be {OPENAI_ENDPOINT} with method POST.")
    if len({custom_id for custom_id, _ in items}) != len(items) or not items:
        return _error("openai", 400, "The input file needs requests, each with a unique custom_id.")
    batch_id = store.next_id("batch_")
    entries, turnaround = _answer_entries(request, "openai", batch_id, items)
    batch = Batch(batch_id, "openai", time.time(), turnaround, entries, metadata=body.get("metadata"),
                  input_file_id=str(body["input_file_id"]), completion_window=body.get("completion_window", "24h"))
    with store.lock:
        store.batches[batch_id] = batch
    return JSONResponse(_openai_batch(batch))


def _openai_output_files(batch: Batch) -> dict[str, bytes]:
    """The output and error files of an ended batch, by file id (none before it ends)."""
    phase = batch.phase(time.time())
    if phase not in ("completed", "expired", "cancelled"):
        return {}
    output, errors = [], []
    for number, entry in enumerate(batch.entries, start=1):
        line: dict[str, Any] = {"id": f"batch_req_{batch.id}_{number}", "custom_id": entry.custom_id,
                                "response": None, "error": None}
        if batch.done(entry):
            line["response"] = {"status_code": entry.status, "request_id": f"req_{batch.id}_{number}",
                                "body": entry.body}
            (output if entry.status == 200 else errors).append(line)
        else:
            code = "batch_cancelled" if phase == "cancelled" else "batch_expired"
            line["error"] = {"code": code, "message": f"This request was not run: the batch was {phase}."}
            errors.append(line)
    files = {}
    if output:
        files[f"file-{batch.id}-output"] = "".join(json.dumps(line) + "\n" for line in output).encode()
    if errors:
        files[f"file-{batch.id}-errors"] = "".join(json.dumps(line) + "\n" for line in errors).encode()
    return files


def _openai_batch(batch: Batch) -> dict[str, Any]:
    now = time.time()
    phase = batch.phase(now)
    done = [entry for entry in batch.entries if batch.finished_by(entry, now)]
    files = _openai_output_files(batch)
    created, turnaround, ended = batch.created, batch.turnaround, batch.ended_at()

    def at(offset: float, reached: bool) -> int | None:
        return int(created + offset) if reached else None

    cancelled_at = batch.cancelled_at
    return {
        "id": batch.id, "object": "batch", "endpoint": OPENAI_ENDPOINT, "errors": None,
        "input_file_id": batch.input_file_id, "completion_window": batch.completion_window, "status": phase,
        "output_file_id": f"file-{batch.id}-output" if f"file-{batch.id}-output" in files else None,
        "error_file_id": f"file-{batch.id}-errors" if f"file-{batch.id}-errors" in files else None,
        "created_at": int(created), "expires_at": int(created + _EXPIRES_AFTER),
        "in_progress_at": at(0.1 * turnaround, now - created >= 0.1 * turnaround),
        "finalizing_at": at(0.9 * turnaround, phase in ("finalizing", "completed")),
        "completed_at": int(ended) if phase == "completed" else None,
        "expired_at": int(ended) if phase == "expired" else None,
        "failed_at": None,
        "cancelling_at": int(created + cancelled_at) if cancelled_at is not None else None,
        "cancelled_at": int(ended) if phase == "cancelled" else None,
        "request_counts": {"total": len(batch.entries),
                           "completed": sum(entry.status == 200 for entry in done),
                           "failed": sum(entry.status != 200 for entry in done)},
        "metadata": batch.metadata,
    }


async def _get_openai_batch(request: Request) -> Response:
    if (refused := _unsupported(request, "openai")) is not None:
        return refused
    batch = _batch(request, "openai")
    return _error("openai", 404, "No such batch.", "not_found_error") if batch is None else \
        JSONResponse(_openai_batch(batch))


async def _list_openai_batches(request: Request) -> Response:
    if (refused := _unsupported(request, "openai")) is not None:
        return refused
    return _listing(request, "openai", [_openai_batch(batch) for batch in _newest_first(_store(request), "openai")])


async def _cancel_batch(request: Request, api: str) -> Response:
    if (refused := _unsupported(request, api)) is not None:
        return refused
    batch = _batch(request, api)
    if batch is None:
        return _error(api, 404, "No such batch.", "not_found_error")
    store, now = _store(request), time.time()
    with store.lock:
        if batch.cancelled_at is None and now - batch.created < batch.turnaround:
            batch.cancelled_at = now - batch.created
    return JSONResponse(_openai_batch(batch) if api == "openai" else _anthropic_batch(request, batch))


def _batch(request: Request, api: str) -> Batch | None:
    store = _store(request)
    with store.lock:
        batch = store.batches.get(request.path_params["batch_id"])
    return batch if batch is not None and batch.api == api else None


# --- Anthropic: Message Batches -----------------------------------------------------------------


def _rfc3339(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def _anthropic_result(batch: Batch, entry: Entry) -> dict[str, Any]:
    if batch.done(entry):
        if entry.status == 200:
            return {"type": "succeeded", "message": entry.body}
        return {"type": "errored", "error": entry.body}
    return {"type": "canceled"} if batch.cancelled_at is not None else {"type": "expired"}


def _anthropic_batch(request: Request, batch: Batch) -> dict[str, Any]:
    phase = batch.phase(time.time())
    ended = phase in ("completed", "expired", "cancelled")
    counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    if ended:
        for entry in batch.entries:
            counts[_anthropic_result(batch, entry)["type"]] += 1
    else:
        counts["processing"] = len(batch.entries)
    base = str(request.base_url).rstrip("/")
    return {
        "id": batch.id, "type": "message_batch",
        "processing_status": "ended" if ended else "canceling" if batch.cancelled_at is not None else "in_progress",
        "request_counts": counts,
        "created_at": _rfc3339(batch.created), "expires_at": _rfc3339(batch.created + _EXPIRES_AFTER),
        "ended_at": _rfc3339(batch.ended_at()) if ended else None, "archived_at": None,
        "cancel_initiated_at": _rfc3339(batch.created + batch.cancelled_at) if batch.cancelled_at is not None
        else None,
        "results_url": f"{base}/v1/messages/batches/{batch.id}/results" if ended else None,
    }


async def _create_anthropic_batch(request: Request) -> Response:
    if (refused := _unsupported(request, "anthropic")) is not None:
        return refused
    body = await request.json()
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        return _error("anthropic", 400, "requests: a non-empty list is required.")
    try:
        items = [(str(item["custom_id"]), dict(item["params"])) for item in requests]
    except (KeyError, TypeError, ValueError):
        return _error("anthropic", 400, "requests: each needs custom_id and params.")
    if len({custom_id for custom_id, _ in items}) != len(items):
        return _error("anthropic", 400, "requests: custom_id values must be unique within a batch.")
    if not all(_ANTHROPIC_CUSTOM_ID.fullmatch(custom_id) for custom_id, _ in items):
        return _error("anthropic", 400, "requests: custom_id must be 1-64 characters of [a-zA-Z0-9_-].")
    store = _store(request)
    batch_id = store.next_id("msgbatch_")
    entries, turnaround = _answer_entries(request, "anthropic", batch_id, items)
    batch = Batch(batch_id, "anthropic", time.time(), turnaround, entries)
    with store.lock:
        store.batches[batch_id] = batch
    return JSONResponse(_anthropic_batch(request, batch))


async def _get_anthropic_batch(request: Request) -> Response:
    if (refused := _unsupported(request, "anthropic")) is not None:
        return refused
    batch = _batch(request, "anthropic")
    return _error("anthropic", 404, "No such batch.", "not_found_error") if batch is None else \
        JSONResponse(_anthropic_batch(request, batch))


async def _list_anthropic_batches(request: Request) -> Response:
    if (refused := _unsupported(request, "anthropic")) is not None:
        return refused
    return _listing(request, "anthropic",
                    [_anthropic_batch(request, batch) for batch in _newest_first(_store(request), "anthropic")])


async def _anthropic_results(request: Request) -> Response:
    if (refused := _unsupported(request, "anthropic")) is not None:
        return refused
    batch = _batch(request, "anthropic")
    if batch is None:
        return _error("anthropic", 404, "No such batch.", "not_found_error")
    if batch.phase(time.time()) not in ("completed", "expired", "cancelled"):
        return _error("anthropic", 400, "Results are available once the batch has ended.")
    lines = [json.dumps({"custom_id": entry.custom_id, "result": _anthropic_result(batch, entry)}) + "\n"
             for entry in batch.entries]
    return Response("".join(lines).encode(), media_type="application/binary")


def batch_routes() -> list[Route]:
    """The batch API routes of both providers, for `standin_llm.build_app`."""

    async def cancel_openai(request: Request) -> Response:
        return await _cancel_batch(request, "openai")

    async def cancel_anthropic(request: Request) -> Response:
        return await _cancel_batch(request, "anthropic")

    return [
        Route("/v1/files", _upload_file, methods=["POST"]),
        Route("/v1/files/{file_id}/content", _file_content, methods=["GET"]),
        Route("/v1/batches", _create_openai_batch, methods=["POST"]),
        Route("/v1/batches", _list_openai_batches, methods=["GET"]),
        Route("/v1/batches/{batch_id}", _get_openai_batch, methods=["GET"]),
        Route("/v1/batches/{batch_id}/cancel", cancel_openai, methods=["POST"]),
        Route("/v1/messages/batches", _create_anthropic_batch, methods=["POST"]),
        Route("/v1/messages/batches", _list_anthropic_batches, methods=["GET"]),
        Route("/v1/messages/batches/{batch_id}", _get_anthropic_batch, methods=["GET"]),
        Route("/v1/messages/batches/{batch_id}/results", _anthropic_results, methods=["GET"]),
        Route("/v1/messages/batches/{batch_id}/cancel", cancel_anthropic, methods=["POST"]),
    ]
