"""Question embeddings: one model and one dimension per project, stored unit-length as float16 bytes.

A vector row carries the model key it came from (`model_key`); a project records its dimension with its first
vector. Reads return only vectors of the project's current model, so vectors of two models never mix.
"""

from __future__ import annotations

from typing import Any

from treedistill.server.errors import BadEmbeddings
from treedistill.server.models import ModelSpec
from treedistill.server.store.catalog import SUBTREE, Store

VECTOR_DTYPE = "<f2"  # float16: half the bytes of float32, and cosine stays within about 1e-3


def model_key(spec: ModelSpec) -> str:
    """What identifies an embedding model's vectors: its name and its endpoint (never a key)."""
    return f"{spec.model}@{spec.base_url or ''}"


class VectorStore:
    """The question_vectors table; shares the Store's connection and transactions."""

    def __init__(self, store: Store):
        self.store = store
        self.db = store.db

    def save(self, project_id: int, spec: ModelSpec, question_ids: list[int], rows: Any) -> None:
        """Store unit vectors (a (n, dim) array) for questions; the first fixes the project's dimension, another
        dimension raises BadEmbeddings. Call inside the transaction that stores what they belong to."""
        import numpy as np

        dim = int(rows.shape[1])
        known = self.db.execute("SELECT embedding_dim FROM projects WHERE id = ?", (project_id,)).fetchone()[0]
        if known is None:
            self.db.execute("UPDATE projects SET embedding_dim = ? WHERE id = ?", (dim, project_id))
        elif known != dim:
            raise BadEmbeddings(f"the embedding model returned {dim}-dimensional vectors, but this project's vectors "
                                f"have {known} dimensions; vectors of two dimensions are never mixed. If the model "
                                "changed, set it again with update_project(embedding_model=...) to re-embed.")
        key = model_key(spec)
        blobs = np.asarray(rows, dtype=VECTOR_DTYPE)
        self.db.conn.executemany(
            "INSERT OR REPLACE INTO question_vectors (question_id, project_id, model, vector) VALUES (?, ?, ?, ?)",
            ((qid, project_id, key, blobs[n].tobytes()) for n, qid in enumerate(question_ids)))

    def reset(self, project_id: int) -> None:
        """Forget the project's vectors and dimension (its embedding model changed)."""
        self.db.execute("DELETE FROM question_vectors WHERE project_id = ?", (project_id,))
        self.db.execute("UPDATE projects SET embedding_dim = NULL WHERE id = ?", (project_id,))

    def vectors(self, project_id: int, spec: ModelSpec, tag_id: int | None = None,
                subtree: bool = False) -> tuple[list[int], Any]:
        """(question ids, (n, dim) float32 array) of the questions of one tag (`subtree`: and below it), or of the
        whole project when tag_id is None, that have a vector of the model."""
        import numpy as np

        where, params = "v.project_id = :p AND v.model = :m", {"p": project_id, "m": model_key(spec)}
        if tag_id is not None:
            where += f" AND q.tag_id IN ({SUBTREE})" if subtree else " AND q.tag_id = :tag_id"
            params["tag_id"] = tag_id
        dim = self.db.execute("SELECT embedding_dim FROM projects WHERE id = ?", (project_id,)).fetchone()[0]
        count = self.db.execute(f"SELECT COUNT(*) FROM question_vectors v JOIN questions q ON q.id = v.question_id"
                                f" WHERE {where}", params).fetchone()[0]
        if not dim or not count:
            return [], np.zeros((0, dim or 0), dtype=np.float32)
        ids: list[int] = []
        matrix = np.empty((count, dim), dtype=np.float32)  # filled row by row: no second copy of the blobs
        for qid, blob in self.db.execute(f"SELECT v.question_id, v.vector FROM question_vectors v JOIN questions q"
                                         f" ON q.id = v.question_id WHERE {where} ORDER BY v.question_id", params):
            matrix[len(ids)] = np.frombuffer(blob, dtype=VECTOR_DTYPE)
            ids.append(qid)
        return ids, matrix[:len(ids)]

    def missing(self, project_id: int, spec: ModelSpec, tag_id: int | None = None) -> dict[int, list[tuple[int, str]]]:
        """Questions (of a tag, or of the project) without a vector of the model: {tag id: [(id, text), ...]}."""
        where, params = "q.project_id = :p", {"p": project_id, "m": model_key(spec)}
        if tag_id is not None:
            where, params["tag_id"] = where + " AND q.tag_id = :tag_id", tag_id
        found: dict[int, list[tuple[int, str]]] = {}
        for qid, tag, text in self.db.execute(
                f"SELECT q.id, q.tag_id, q.text FROM questions q LEFT JOIN question_vectors v ON v.question_id = q.id"
                f" AND v.model = :m WHERE {where} AND v.question_id IS NULL ORDER BY q.id", params):
            found.setdefault(tag, []).append((qid, text))
        return found

    def tags_missing(self, project_id: int, spec: ModelSpec) -> list[int]:
        """The tags with a question that has no vector of the model."""
        return [row[0] for row in self.db.execute(
            "SELECT DISTINCT q.tag_id FROM questions q LEFT JOIN question_vectors v ON v.question_id = q.id AND"
            " v.model = ? WHERE q.project_id = ? AND v.question_id IS NULL", (model_key(spec), project_id))]

    def count(self, project_id: int, spec: ModelSpec) -> int:
        """How many of the project's questions have a vector of the model."""
        return self.db.execute("SELECT COUNT(*) FROM question_vectors WHERE project_id = ? AND model = ?",
                               (project_id, model_key(spec))).fetchone()[0]
