"""Question embeddings as work: paid once (cached by item and request, usage and cost counted like a chat call),
stored with what they embed, and the semantic check of new questions during extraction.

`embed` items (one per tag, queued when a project's embedding model is set or changed, or when a semantic search
finds questions without a vector) embed their tag's questions that have none, EMBED_BATCH texts per call, each
batch's vectors committed the moment they arrive: after kill -9, a batch whose reply had arrived is served from the
response cache and a stored batch is not asked again.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import TYPE_CHECKING, Any

from treedistill.server.models import ModelSpec, Project, Tag
from treedistill.server.pricing import call_cost
from treedistill.server.providers import build_embedder, resolve_base_url
from treedistill.server.providers.base import EmbeddingResult
from treedistill.server.store.queue import WorkItem
from treedistill.server.store.vectors import VectorStore
from treedistill.server.text.semantic_dup import similar_to

if TYPE_CHECKING:
    from treedistill.server.providers.openai_embeddings import OpenAIEmbeddingProvider
    from treedistill.server.scheduling.calls import LLMCaller
    from treedistill.server.scheduling.work import WorkContext

EMBED_BATCH = 64  # texts per embeddings call


class EmbeddingCalls:
    """Embeddings calls of one process, through the endpoint's shared rate gate; each paid at most once."""

    def __init__(self, caller: LLMCaller):
        self.caller = caller
        self._providers: dict[str, OpenAIEmbeddingProvider] = {}

    def provider(self, spec: ModelSpec) -> OpenAIEmbeddingProvider:
        """The (shared) client for an embedding spec; raises InvalidInput / MissingAPIKey like chat providers."""
        key = spec.model_dump_json()
        if key not in self._providers:
            self._providers[key] = build_embedder(spec, self.caller.environ)
        return self._providers[key]

    async def embed(self, item: WorkItem, spec: ModelSpec, texts: list[str]) -> EmbeddingResult:
        """The vectors of `texts`, from the response cache when this item already paid for them."""
        queue = self.caller.queue
        key = hashlib.sha256(
            f"{item.id}\nembeddings\n{spec.model_dump_json()}\n{json.dumps(texts, ensure_ascii=False)}".encode()
        ).hexdigest()
        cached = queue.cached_response(key)
        if cached is not None:
            return EmbeddingResult.model_validate(cached)
        provider = self.provider(spec)
        gate = self.caller.gate(spec)
        ticket = await gate.wait()
        try:  # no call starts for a stopped job, or on a lease another process took back
            queue.check_before_call(item)
        except BaseException:
            gate.release(ticket)
            raise
        started = time.perf_counter()
        try:
            result = await provider.embed(texts)
        except BaseException:
            gate.release(ticket)
            raise
        self.caller.calls_made += 1
        self.caller.seconds_in_calls += time.perf_counter() - started
        gate.observe(ticket, result.rate_limits, result.input_tokens)
        cost = call_cost(spec, result.input_tokens, 0, base_url=resolve_base_url(spec, self.caller.environ))
        store = queue.store
        with store.transaction():
            queue.cache_response(key, item.id, result.model_dump())
            store.add_project_usage(item.project_id, result.input_tokens, 0, cost, unpriced_calls=int(cost is None))
            if item.job_id is not None:
                queue.add_job_counts(item.job_id, input_tokens=result.input_tokens, cost=cost,
                                     unpriced_calls=int(cost is None))
        return result

    async def aclose(self) -> None:
        for client in self._providers.values():
            await client.aclose()
        self._providers.clear()


async def embed_missing(ctx: WorkContext, item: WorkItem, project: Project, tag_id: int | None) -> int:
    """Embed the questions of a tag (None: of the project) that have no vector of the project's model; each batch
    is stored in its own transaction the moment it arrives. Returns how many were embedded."""
    spec = project.embedding_model
    assert spec is not None
    vectors = VectorStore(ctx.store)
    done = 0
    for questions in vectors.missing(project.id, spec, tag_id).values():
        for start in range(0, len(questions), EMBED_BATCH):
            batch = questions[start:start + EMBED_BATCH]
            result = await ctx.caller.embeddings.embed(item, spec, [text for _, text in batch])
            with ctx.store.transaction():
                ctx.queue.hold(item)
                vectors.save(project.id, spec, [qid for qid, _ in batch], result.rows())
            done += len(batch)
    return done


async def drop_semantic_duplicates(ctx: WorkContext, item: WorkItem, project: Project, tag: Tag,
                                   texts: list[str]) -> tuple[list[str], Any]:
    """(the texts that are not semantic near-duplicates of a question of the tag, or of the project with
    semantic_scope 'project', nor of an earlier kept text; their vectors) for a project with an embedding model."""
    spec = project.embedding_model
    assert spec is not None
    if not texts:
        return [], None
    scope = tag.id if project.semantic_scope == "tag" else None
    await embed_missing(ctx, item, project, scope)
    _, existing = VectorStore(ctx.store).vectors(project.id, spec, scope)
    rows = (await ctx.caller.embeddings.embed(item, spec, texts)).rows()
    if len(existing) and existing.shape[1] != rows.shape[1]:
        existing = existing[:0]  # VectorStore.save refuses the new dimension when they are stored
    duplicate = similar_to(rows, existing, project.semantic_threshold)
    kept = [n for n, dup in enumerate(duplicate) if not dup]
    return [texts[n] for n in kept], rows[kept]


async def run_embed_item(ctx: WorkContext, item: WorkItem, project: Project) -> dict[str, Any]:
    """An `embed` item: its tag's questions (every question of the project when it has no tag) get vectors."""
    if project.embedding_model is None:
        return {"embedded": 0}
    return {"embedded": await embed_missing(ctx, item, project, item.tag_id)}
