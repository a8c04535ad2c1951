"""SQLite storage for editing the tag tree by hand: subtrees, renames and moves.

A tag's path and depth are stored on the tag (questions read their path from it), so a rename or a move
rewrites them for the whole subtree in one statement.
"""

from __future__ import annotations

from treedistill.server.models import Tag
from treedistill.server.store.catalog import PATH_SEPARATOR, SUBTREE, Store
from treedistill.server.text.dedup import normalize


class TreeStore:
    """The tag tree's shape; shares the Store's connection and transactions."""

    def __init__(self, store: Store):
        self.store = store
        self.db = store.db

    def subtree(self, project_id: int, tag_id: int) -> list[Tag]:
        """The tag and every tag below it, parents first (then in the order they were made)."""
        rows = self.store.rows(f"SELECT id, name, parent_id, depth, path FROM tags WHERE project_id = :project_id"
                               f" AND id IN ({SUBTREE}) ORDER BY depth, id", {"project_id": project_id,
                                                                           "tag_id": tag_id})
        return [Tag(**row) for row in rows]

    def children_by_norm(self, project_id: int, parent_id: int | None) -> dict[str, Tag]:
        """The children of a tag (None: the top-level tags) by the normal form of their names."""
        return {norm: tag for (_, norm), tag in self.by_parent_and_norm(project_id, parent_id, children_only=True
                                                                         ).items()}

    def by_parent_and_norm(self, project_id: int, parent_id: int | None, *, children_only: bool = False
                           ) -> dict[tuple[int | None, str], Tag]:
        """The tags below a tag (None: the whole tree), or only its children, by (parent id, normal form)."""
        if children_only:
            where, params = "parent_id IS :tag_id", {"tag_id": parent_id}
        elif parent_id is None:
            where, params = "1", {}
        else:
            where, params = f"id IN ({SUBTREE}) AND id != :tag_id", {"tag_id": parent_id}
        rows = self.db.execute(f"SELECT id, name, parent_id, depth, path, norm FROM tags WHERE project_id ="
                               f" :project_id AND {where}", {"project_id": project_id, **params})
        return {(parent, norm): Tag(id=tag_id, name=name, parent_id=parent, depth=depth, path=path)
                for tag_id, name, parent, depth, path, norm in rows}

    def in_subtree(self, tag_id: int, candidate_id: int) -> bool:
        """Whether `candidate_id` is `tag_id` or below it."""
        return self.db.execute(f"SELECT 1 FROM ({SUBTREE}) WHERE id = :candidate",
                               {"tag_id": tag_id, "candidate": candidate_id}).fetchone() is not None

    def subtree_height(self, tag_id: int) -> int:
        """Levels of the subtree, the tag's own included (1 for a leaf)."""
        tag_depth, deepest = self.db.execute(
            f"SELECT (SELECT depth FROM tags WHERE id = :tag_id), MAX(depth) FROM tags WHERE id IN ({SUBTREE})",
            {"tag_id": tag_id}).fetchone()
        return deepest - tag_depth + 1

    def rename(self, tag: Tag, name: str) -> None:
        """Give a tag a new name; the paths of its whole subtree follow. Call in a transaction."""
        parent_path = tag.path[:len(tag.path) - len(tag.name)]
        self.db.execute("UPDATE tags SET name = ?, norm = ? WHERE id = ?", (name, normalize(name), tag.id))
        self._repath(tag, f"{parent_path}{name}", 0)

    def move(self, tag: Tag, parent: Tag | None) -> None:
        """Put a tag (with its subtree) under `parent` (None: the top level); paths and depths follow.
        Call in a transaction."""
        self.db.execute("UPDATE tags SET parent_id = ? WHERE id = ?", (parent.id if parent else None, tag.id))
        new_path = f"{parent.path}{PATH_SEPARATOR}{tag.name}" if parent else tag.name
        self._repath(tag, new_path, (parent.depth + 1 if parent else 1) - tag.depth)

    def _repath(self, tag: Tag, new_path: str, depth_change: int) -> None:
        """Replace the tag's path prefix by `new_path` and shift depths, in the tag and everything below it."""
        self.db.execute(
            f"UPDATE tags SET path = :new_path || substr(path, :old_length + 1), depth = depth + :change"
            f" WHERE id IN ({SUBTREE})",
            {"tag_id": tag.id, "new_path": new_path, "old_length": len(tag.path), "change": depth_change})
