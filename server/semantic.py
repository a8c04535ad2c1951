"""Semantic near-duplicates for the engine: embedding a project's questions and grouping them by cosine.

Embedding runs as `embed` work items (server/scheduling/embedding.py): paid once, cached, counted. The grouping
runs in a worker thread on a read-only connection, off the event loop (numpy releases the GIL in its products).
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Any, Literal

from treedistill.server.engine_part import EnginePart
from treedistill.server.errors import InvalidInput, ProviderError
from treedistill.server.models import ModelSpec, Project
from treedistill.server.store.curation import CurationStore
from treedistill.server.store.vectors import VectorStore
from treedistill.server.text.near_dup import DuplicateReport, group_near_duplicates, report_groups
from treedistill.server.text.semantic_dup import MIN_THRESHOLD, group_similar

Method = Literal["lexical", "semantic", "both"]
METHODS = ("lexical", "semantic", "both")
SCOPES = ("tag", "project")


def checked_semantic_settings(embedding_model: ModelSpec | None, threshold: float | None,
                              scope: str | None) -> None:
    """Refuse an embedding model that is not OpenAI-compatible, a threshold outside [MIN_THRESHOLD, 1], an
    unknown scope."""
    if embedding_model is not None and embedding_model.provider != "openai":
        raise InvalidInput("embedding_model needs an OpenAI-compatible /v1/embeddings endpoint (provider 'openai'); "
                           f"{embedding_model.provider!r} has none.")
    if threshold is not None and not MIN_THRESHOLD <= threshold <= 1:
        raise InvalidInput(f"semantic_threshold must be between {MIN_THRESHOLD} and 1 (cosine similarity), "
                           f"not {threshold:g}.")
    if scope is not None and scope not in SCOPES:
        raise InvalidInput(f"semantic_scope must be one of {', '.join(SCOPES)}, not {scope!r}.")


class SemanticDuplicates(EnginePart):
    """Keeps a project's question vectors current and finds near-duplicate groups by meaning."""


    def model_changed(self, project: Project) -> list[int]:
        """After a project's embedding model was set, changed or removed: forget its old vectors and queue the
        embedding of every question with the new model (in the background). Returns the queued item ids."""
        with self.store.transaction():
            VectorStore(self.store).reset(project.id)
        return self.queue_embedding(project)

    def queue_embedding(self, project: Project, tag_ids: list[int] | None = None) -> list[int]:
        """Queue one `embed` item per tag (default: each tag with questions that have no vector); an open one is
        reused."""
        if project.embedding_model is None:
            return []
        if tag_ids is None:
            tag_ids = VectorStore(self.store).tags_missing(project.id, project.embedding_model)
        item_ids = []
        with self.store.transaction():
            for tag_id in tag_ids:
                open_item = self.queue.find_reusable_manual(project.id, "embed", tag_id, None, None)
                item_ids.append(open_item.id if open_item is not None and open_item.status != "done" else
                                self.queue.add_item(project.id, "embed", tag_id=tag_id))
        if item_ids:
            self.scheduler.notify(project.id)
        return item_ids

    async def find_duplicates(self, project_id: int, tag_id: int | None, method: Method, threshold: float,
                              semantic_threshold: float | None, limit: int) -> DuplicateReport:
        """Groups of near-duplicate questions of the project (or a subtree) by meaning (`semantic`), or by
        meaning or words (`both`); questions without a vector are embedded first."""
        project = self.store.get_project(project_id)
        if tag_id is not None:
            self.store.get_tag(project_id, tag_id)
        if method not in ("semantic", "both"):
            raise InvalidInput(f"method must be one of {', '.join(METHODS)}, not {method!r}.")
        spec = project.embedding_model
        if spec is None:
            raise InvalidInput(f"Project {project_id} has no embedding_model: set one with update_project("
                               "embedding_model={...}) for method 'semantic' or 'both', or use method 'lexical'.")
        cosine = project.semantic_threshold if semantic_threshold is None else semantic_threshold
        checked_semantic_settings(None, cosine, None)
        self.caller.embeddings.provider(spec)  # a missing key or a refused endpoint: before anything is queued
        await self._embed_all(project)

        def search() -> DuplicateReport:
            reader = CurationStore.open_reader(self.db_path)
            try:
                by_id = {row["id"]: row for row in reader.question_rows(project_id, tag_id)}
                ids, vectors = VectorStore(reader.store).vectors(project_id, spec, tag_id, subtree=True)
                found = [([ids[n] for n in members], score) for members, score in group_similar(vectors, cosine)]
                if method == "both":
                    found = merge_groups(found, group_near_duplicates(
                        ((qid, row["text"]) for qid, row in by_id.items()), threshold))
                found = [(sorted(members), score) for members, score in found if
                         all(qid in by_id for qid in members)]
                return report_groups(project_id, by_id, sorted(found, key=lambda group: group[0][0]),
                                     threshold if method == "both" else cosine, limit, method, cosine)
            finally:
                reader.close()

        return await asyncio.to_thread(search)

    async def _embed_all(self, project: Project) -> None:
        """Embed the project's questions that have no vector yet and wait; a failed item raises its error. Which
        tags need it is read in a worker thread (a scan of every question)."""

        def tags_missing() -> list[int]:
            reader = CurationStore.open_reader(self.db_path)
            try:
                return VectorStore(reader.store).tags_missing(project.id, project.embedding_model)
            finally:
                reader.close()

        missing = await asyncio.to_thread(tags_missing)
        item_ids = self.queue_embedding(project, missing) if missing else []
        for item in await self.wait_for(item_ids):
            if item.status != "done":
                failure = self.scheduler.failure_of(item.id)
                raise failure if failure is not None else ProviderError(
                    f"Embedding the questions failed: {item.error}")


def merge_groups(*groupings: list[tuple[list[Hashable], float]]) -> list[tuple[list[Any], float]]:
    """Groups that share a member joined into one (the highest similarity kept)."""
    parent: dict[Hashable, Hashable] = {}
    best: dict[Hashable, float] = {}

    def root(node: Hashable) -> Hashable:
        while parent.setdefault(node, node) != node:
            node = parent[node]
        return node

    for grouping in groupings:
        for members, score in grouping:
            top = root(members[0])
            best[top] = max(best.get(top, 0.0), score)
            for member in members[1:]:
                other = root(member)
                if other != top:
                    parent[other] = top
                    best[top] = max(best[top], best.pop(other, 0.0))
    groups: dict[Hashable, list[Hashable]] = {}
    for node in parent:
        groups.setdefault(root(node), []).append(node)
    return [(members, best[top]) for top, members in groups.items() if len(members) > 1]
