"""Paid LLM calls: provider clients, the per-endpoint rate gate, the response cache and token accounting."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping

from treedistill.server.errors import (
    Batched,
    JobStopped,
    RateLimited,
    RequestRejected,
    TransientProviderError,
    TruncatedOutput,
)
from treedistill.server.loop_share import take_turn
from treedistill.server.models import ModelSpec, Project
from treedistill.server.pricing import call_cost
from treedistill.server.providers import (
    BatchAPI,
    build_batch_api,
    build_provider,
    describe_endpoint,
    endpoint_id,
    resolve_base_url,
    resolve_endpoint,
    served_endpoint_ids,
)
from treedistill.server.providers.base import ChatRequest, ChatResult, EndpointCapabilities, Provider
from treedistill.server.store.batches import BatchStore
from treedistill.server.store.queue import WorkItem, WorkQueue
from treedistill.server.scheduling.rate_gate import RateGate
from treedistill.server.store.pacing import EndpointPacing

log = logging.getLogger("treedistill.calls")
DEFAULT_429_PAUSE = 2.0
MIN_REASK_BUDGET = 1024  # output tokens of the one re-ask after a reply was cut off


class LLMCaller:
    """Makes each call once: a response is cached (with its usage counted) the moment it arrives."""

    def __init__(self, queue: WorkQueue, environ: Mapping[str, str], requests_per_minute: float | None = None,
                 tokens_per_minute: float | None = None):
        self.queue = queue
        self.pacing = EndpointPacing(queue.store)
        self.environ = environ
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self.batch_store = BatchStore(queue.store, queue)
        self._providers: dict[str, Provider] = {}
        self._batch_apis: dict[str, BatchAPI] = {}
        self._job_params: dict[int, dict] = {}  # a job's parameters never change: read once per job
        self._job_models: dict[int, dict[str, ModelSpec]] = {}  # nor do the models it was pinned to
        self.served = served_endpoint_ids(environ)  # the endpoints whose jobs this process may run
        self.serves = json.dumps(self.served)  # the same, as claim_next takes it
        self._capabilities: dict[str, EndpointCapabilities] = {}
        self._gates: dict[tuple[str, str], RateGate] = {}
        self.calls_made = 0
        self.seconds_in_calls = 0.0  # summed round-trip time of the calls made, as seen from here
        from treedistill.server.scheduling.embedding import EmbeddingCalls

        self.embeddings = EmbeddingCalls(self)  # /v1/embeddings calls, through the same gates and cache

    def provider(self, spec: ModelSpec) -> Provider:
        """The (shared) client for a model spec; raises MissingAPIKey when its key is not set."""
        key = spec.model_dump_json()
        if key not in self._providers:
            self._providers[key] = build_provider(spec, self.environ, self._capabilities_of(spec))
        return self._providers[key]

    def batch_api(self, spec: ModelSpec) -> BatchAPI:
        """The (shared) batch API client for a model spec's endpoint; raises MissingAPIKey like `provider`."""
        key = spec.model_dump_json()
        if key not in self._batch_apis:
            self._batch_apis[key] = build_batch_api(spec, self.environ, self._capabilities_of(spec))
        return self._batch_apis[key]

    def by_batch(self, item: WorkItem) -> bool:
        """Whether the item's calls go through the endpoint's batch API: a job's answers when the job was started
        with batch=true (its tag and question calls too with batch_all), or an item queued to go by batch. A job's
        preference pairs go online: their models need not have a batch API."""
        if item.batch:
            return True
        params = self.job_params(item) or {}
        return bool(params.get("batch")) and (item.kind == "answer" or bool(params.get("batch_all"))
                                              and item.kind in ("tags", "questions"))

    def job_params(self, item: WorkItem) -> dict | None:
        """The parameters of the item's job (None for a manual item), read once per job."""
        if item.job_id is None:
            return None
        if item.job_id not in self._job_params:
            self._job_params[item.job_id] = self.queue.get_job(item.job_id)["params"]
        return self._job_params[item.job_id]

    def pins(self, project: Project) -> tuple[str, str, dict[str, ModelSpec]]:
        """What a new job of the project is pinned to: (the question role's endpoint id, the answer role's, the
        model spec of each role with its endpoint and key variable resolved now). Raises InvalidInput when this
        process is not configured for an endpoint."""
        (question, question_spec), (answer, answer_spec) = (self.pin(spec) for spec in (project.question_model,
                                                                                         project.answer_model))
        return question, answer, {"question": question_spec, "answer": answer_spec}

    def pin(self, spec: ModelSpec) -> tuple[str, ModelSpec]:
        """(the endpoint id, the spec with its endpoint and key variable resolved now) a job pins a role to;
        InvalidInput when this process is not configured for the spec's endpoint."""
        endpoint = resolve_endpoint(spec, self.environ)
        return endpoint_id(endpoint), spec.model_copy(update={"base_url": endpoint.url,
                                                              "api_key_env": endpoint.key_env})

    def model_for(self, item: WorkItem, project: Project, role: str) -> ModelSpec:
        """The model an item's `role` ('question' or 'answer') calls: the one its job was pinned to, else (a manual
        item, or a job from before pinning) the project's current one."""
        if item.job_id is not None:
            if item.job_id not in self._job_models:
                self._job_models[item.job_id] = self.queue.job_models(item.job_id)
            pinned = self._job_models[item.job_id].get(role)
            if pinned is not None:
                return pinned
        return project.question_model if role == "question" else project.answer_model

    def _capabilities_key(self, spec: ModelSpec) -> str:
        # Per model too: an endpoint's models differ in the JSON forms and token parameters they accept.
        return f"{self.endpoint(spec)} model={spec.model}"

    def _capabilities_of(self, spec: ModelSpec) -> EndpointCapabilities:
        """What was learned about the spec's endpoint and model, shared by every spec naming them and kept
        in the database across restarts."""
        key = self._capabilities_key(spec)
        if key not in self._capabilities:
            self._capabilities[key] = EndpointCapabilities.model_validate(self.pacing.capabilities(key))
        return self._capabilities[key]

    def endpoint(self, spec: ModelSpec) -> str:
        """The endpoint a spec talks to, as the key of its shared pacing state."""
        return f"{spec.provider} {resolve_base_url(spec, self.environ)}"

    def gate(self, spec: ModelSpec) -> RateGate:
        """One gate per endpoint, shared by every project, job and manual call that uses it, in every process."""
        endpoint = self.endpoint(spec)
        if endpoint not in self._gates:
            self._gates[endpoint] = RateGate(self.pacing, endpoint, self.requests_per_minute,
                                             self.tokens_per_minute)
        return self._gates[endpoint]

    async def call(self, item: WorkItem, spec: ModelSpec, request: ChatRequest,
                   keep: Callable[[ChatResult], bool] | None = None) -> ChatResult:
        """Return the model's reply for `request` made on behalf of `item`, paying at most once for it.

        A reply cut off at max_tokens is never returned: when neither the spec nor the request set a budget,
        it is asked again once with twice the tokens it used; otherwise (or cut again) TruncatedOutput.
        Raises JobStopped, before paying, when the item's job is no longer running. For an item whose calls go
        by batch (`by_batch`), a call not answered yet is queued for the next batch and Batched is raised.

        `keep(reply)`, when given, runs in the transaction that counts a paid reply's usage, the moment it arrives:
        it stores what the reply was for and returns True (the reply then needs no cache row: one commit and two
        writes less per call), or False to leave it to the caller. A reply served from the cache or a batch, or one
        cut off, never goes to `keep`.
        """
        await take_turn()
        key = hashlib.sha256(
            f"{item.id}\n{spec.model_dump_json()}\n{request.model_dump_json()}".encode()
        ).hexdigest()
        # On an item's first lease nothing is cached for a call that keeps its reply: replies are cached only under
        # a lease, and within one such a call never repeats a request (a re-ask differs). One read less per answer.
        cached = None if keep is not None and item.lease_gen == 1 else self.queue.cached_response(key)
        if cached is not None:
            result = ChatResult.model_validate(cached)
        elif self.by_batch(item):
            result = await self._from_batch(item, spec, request, key)
        else:
            result = await self._pay(item, spec, request, key, keep)
        if not result.truncated:
            await take_turn()  # the caller stores it next
            return result
        if request.max_tokens is None and spec.max_tokens is None:
            budget = max(2 * result.output_tokens, MIN_REASK_BUDGET)
            return await self.call(item, spec, request.model_copy(update={"max_tokens": budget}), keep)
        budget = request.max_tokens or spec.max_tokens
        raise TruncatedOutput(
            f"the reply was cut off at max_tokens ({budget} output tokens) and was not stored; raise max_tokens in "
            "the model spec (update_project) and retry"
        )

    async def _from_batch(self, item: WorkItem, spec: ModelSpec, request: ChatRequest, key: str) -> ChatResult:
        """Queue the call for a batch (raising Batched), or act on what its batch said when it brought no reply:
        a refused request fails the item; an error or expiry is retried, by the next batch or, when the job allows
        it (batch_fallback_online), online; a cancelled request simply goes in the next batch."""
        outcome = self.batch_store.take_outcome(item.id)
        if outcome is not None and outcome[0] != "cancelled":
            kind, error = outcome
            message = f"the batch {_BATCH_WORDS.get(kind, 'failed')} this request: {error}"
            if kind == "rejected":
                raise RequestRejected(message)
            if (self.job_params(item) or {}).get("batch_fallback_online"):
                log.info("work item %s: %s; asking online instead", item.id, message)
                return await self._pay(item, spec, request, key)
            raise TransientProviderError(message)
        if item.job_id is not None and self.queue.job_status(item.job_id) != "running":
            raise JobStopped(f"job {item.job_id} is no longer running")
        self.batch_store.enqueue(item, key, spec.model_dump_json(), request.model_dump_json())
        raise Batched(item.id)

    async def _pay(self, item: WorkItem, spec: ModelSpec, request: ChatRequest, key: str,
                   keep: Callable[[ChatResult], bool] | None = None) -> ChatResult:
        """Make the call; its reply is kept (by `keep`, else in the cache) and its usage counted in one transaction
        the moment it arrives."""
        provider = self.provider(spec)
        gate = self.gate(spec)
        ticket = await gate.wait()
        try:  # no call starts for a stopped job, or on a lease another process took back
            self.queue.check_before_call(item)
        except BaseException:
            gate.release(ticket)
            raise
        started = time.perf_counter()
        capabilities = self._capabilities_of(spec)
        known = capabilities.model_dump()
        try:
            result = await provider.complete(request)
        except RateLimited as exc:
            log.info("429 from %s: every call to it waits %.1f s, then comes back more widely spaced",
                     describe_endpoint(spec, self.environ),
                     exc.retry_after if exc.retry_after is not None else DEFAULT_429_PAUSE)
            gate.rate_limited(ticket, exc.retry_after, exc.rate_limits, DEFAULT_429_PAUSE)
            raise
        except BaseException:
            gate.release(ticket)  # the tokens it took are given back
            raise
        finally:  # learned during the call, whether it worked or not: remembered for every process and restart
            if capabilities.model_dump() != known:
                self.pacing.save_capabilities(self._capabilities_key(spec), capabilities.model_dump())
        await take_turn()
        self.calls_made += 1
        self.seconds_in_calls += time.perf_counter() - started
        gate.observe(ticket, result.rate_limits, result.input_tokens + result.output_tokens)
        cost = call_cost(spec, result.input_tokens, result.output_tokens,
                         base_url=resolve_base_url(spec, self.environ))
        store = self.queue.store
        failure: Exception | None = None
        with store.transaction():
            store.add_project_usage(item.project_id, result.input_tokens, result.output_tokens, cost,
                                    unpriced_calls=int(cost is None))
            if item.job_id is not None:
                self.queue.add_job_counts(item.job_id, input_tokens=result.input_tokens,
                                          output_tokens=result.output_tokens, cost=cost,
                                          unpriced_calls=int(cost is None))
            kept = False
            if keep is not None and not result.truncated:
                try:
                    with store.transaction():  # a savepoint: what `keep` wrote goes if it fails, the reply stays
                        kept = keep(result)
                except Exception as exc:  # e.g. LeaseLost: the reply is cached for whoever holds the item now
                    failure = exc
            if not kept:
                self.queue.cache_response(key, item.id, result.model_dump())
        if failure is not None:
            raise failure
        return result

    async def aclose(self) -> None:
        for client in [*self._providers.values(), *self._batch_apis.values()]:
            await client.aclose()
        self._providers.clear()
        self._batch_apis.clear()
        await self.embeddings.aclose()


_BATCH_WORDS = {"rejected": "refused", "transient": "could not answer", "expired": "expired before answering"}
