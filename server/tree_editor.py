"""Trees people bring and edit: import an outline, export the tree, add, rename and move tags.

The same duplicate rule as generated tags holds everywhere: siblings never share a name after normalisation
(`text/dedup.py`). A tag with work queued or running below it is not edited (`deletion.refuse_open_work`, the
check delete_tag makes). An import is one transaction: all of it or nothing.
"""

from __future__ import annotations

import asyncio
import sqlite3

from pydantic import BaseModel, Field

from treedistill.server.config import MAX_TAG_DEPTH
from treedistill.server.deletion import refuse_open_work
from treedistill.server.errors import InvalidInput
from treedistill.server.models import Tag
from treedistill.server.store.catalog import PATH_SEPARATOR, Store, connect
from treedistill.server.store.curation import CurationStore
from treedistill.server.store.tree import TreeStore
from treedistill.server.text.dedup import normalize
from treedistill.server.text.outline import OutlineNode, clean_name, outline_of_names, parse_outline, write_outline

REPORT_PATHS = 200  # paths listed per kind in a report; the counts are always whole


class TreeMerge(BaseModel):
    """What an import (or add_tags) added to the tree and what it skipped as already there."""

    project_id: int
    parent_tag_id: int | None = Field(..., description="Where the tags went; null: the top level")
    dry_run: bool = Field(..., description="true: nothing was written, the report says what would happen")
    added: int = Field(..., description="Tags added (with dry_run: that would be added)")
    skipped: int = Field(..., description="Tags already in the tree (same name after normalisation), kept as they are")
    added_tags: list[Tag] = Field([], description=f"The added tags (first {REPORT_PATHS}; ids are 0 with dry_run)")
    skipped_paths: list[str] = Field([], description=f"Paths of the skipped tags (first {REPORT_PATHS})")

    def add(self, tag: Tag) -> None:
        self.added += 1
        if len(self.added_tags) < REPORT_PATHS:
            self.added_tags.append(tag)

    def skip(self, path: str) -> None:
        self.skipped += 1
        if len(self.skipped_paths) < REPORT_PATHS:
            self.skipped_paths.append(path)


class TreeEditor:
    """Edits of a project's tag tree by hand; no model is called."""

    def __init__(self, store: Store, db_path: str | None = None):
        self.store = store
        self.db_path = db_path  # for imports in a worker thread (import_off_loop)
        self.trees = TreeStore(store)
        self.curation = CurationStore(store)

    async def import_off_loop(self, project_id: int, content: str, fmt: str, parent_tag_id: int | None = None,
                              dry_run: bool = False) -> TreeMerge:
        """import_tree in a worker thread on a connection of its own: an import of 20,000 tags takes seconds,
        and the event loop keeps serving every other call meanwhile."""
        def run() -> TreeMerge:
            store = Store(connect(self.db_path))
            try:
                return TreeEditor(store).import_tree(project_id, content, fmt, parent_tag_id, dry_run)
            finally:
                store.close()

        return await asyncio.to_thread(run)

    def import_tree(self, project_id: int, content: str, fmt: str, parent_tag_id: int | None = None,
                    dry_run: bool = False) -> TreeMerge:
        """Merge the outline `content` (format `fmt`: markdown, text or json) under a tag (None: the top level)."""
        parent = self._editable_parent(project_id, parent_tag_id, "Nothing was imported.")
        roots = parse_outline(content, fmt, max_depth=MAX_TAG_DEPTH - (parent.depth if parent else 0),
                              ancestors=parent.path.split(PATH_SEPARATOR) if parent else [])
        return self._merge_all(project_id, parent, roots, dry_run)

    def add_tags(self, project_id: int, parent_tag_id: int | None, names: list[str]) -> TreeMerge:
        """Add children with these names under a tag (None: the top level); names it already has are skipped."""
        parent = self._editable_parent(project_id, parent_tag_id, "Nothing was added.")
        if parent is not None and parent.depth >= MAX_TAG_DEPTH:
            raise InvalidInput(f"Tag {parent.id} is at depth {parent.depth}; tags go at most {MAX_TAG_DEPTH} levels "
                               "deep. Nothing was added.")
        roots = outline_of_names(names, ancestors=parent.path.split(PATH_SEPARATOR) if parent else [])
        return self._merge_all(project_id, parent, roots, dry_run=False)

    def export_tree(self, project_id: int, fmt: str, tag_id: int | None = None) -> tuple[str, int]:
        """The tree (or one tag with its subtree) in format `fmt`, as import_tree reads it; and its tag count."""
        self.store.get_project(project_id)
        if tag_id is not None:
            self.store.get_tag(project_id, tag_id)
        tags = self.trees.subtree(project_id, tag_id) if tag_id is not None else self.store.all_tags(project_id)
        nodes = {tag.id: OutlineNode(tag.name, tag.path) for tag in tags}
        roots = []
        for tag in tags:  # parents first
            (nodes[tag.parent_id].children if tag.parent_id in nodes else roots).append(nodes[tag.id])
        return write_outline(roots, fmt), len(tags)

    def rename_tag(self, project_id: int, tag_id: int, name: str) -> Tag:
        """Give a tag a new name (its subtree's paths follow); a name a sibling has is refused."""
        tag = self.store.get_tag(project_id, tag_id)
        name = clean_name(name, "name")
        refuse_open_work(self.curation.open_work_in_subtree(tag_id), f"tag {tag_id} or below it",
                         "Nothing was renamed.")
        self._refuse_sibling(project_id, tag.parent_id, name, tag_id, "Nothing was renamed.")
        with self.store.immediate_transaction():
            self.trees.rename(tag, name)
        return self.store.get_tag(project_id, tag_id)

    def move_tag(self, project_id: int, tag_id: int, new_parent_id: int | None) -> Tag:
        """Put a tag with its subtree under another tag (None: the top level), never inside its own subtree."""
        tag = self.store.get_tag(project_id, tag_id)
        parent = self.store.get_tag(project_id, new_parent_id) if new_parent_id is not None else None
        if parent is not None and self.trees.in_subtree(tag_id, parent.id):
            raise InvalidInput(f"Tag {parent.id} ('{parent.path}') is {'the tag itself' if parent.id == tag_id else 'below it'}"
                               f": a tag cannot move into its own subtree. Nothing was moved.")
        refuse_open_work(self.curation.open_work_in_subtree(tag_id), f"tag {tag_id} or below it",
                         "Nothing was moved.")
        depth = (parent.depth if parent else 0) + self.trees.subtree_height(tag_id)
        if depth > MAX_TAG_DEPTH:
            raise InvalidInput(f"Moved there, the subtree of tag {tag_id} would reach depth {depth}; tags go at most "
                               f"{MAX_TAG_DEPTH} levels deep. Nothing was moved.")
        if tag.parent_id != new_parent_id:
            self._refuse_sibling(project_id, new_parent_id, tag.name, tag_id, "Nothing was moved.")
            with self.store.immediate_transaction():
                self.trees.move(tag, parent)
        return self.store.get_tag(project_id, tag_id)

    def _editable_parent(self, project_id: int, parent_tag_id: int | None, outcome: str) -> Tag | None:
        """The tag new tags go under (None: the top level), refused while work is queued or running below it."""
        self.store.get_project(project_id)
        if parent_tag_id is None:
            return None
        parent = self.store.get_tag(project_id, parent_tag_id)
        refuse_open_work(self.curation.open_work_in_subtree(parent_tag_id), f"tag {parent_tag_id} or below it",
                         outcome)
        return parent

    def _refuse_sibling(self, project_id: int, parent_id: int | None, name: str, tag_id: int, outcome: str) -> None:
        same = self.trees.children_by_norm(project_id, parent_id).get(normalize(name))
        if same is not None and same.id != tag_id:
            raise InvalidInput(f"Tag {same.id} ('{same.path}') already has this name there; siblings never share "
                               f"a name. {outcome}")

    def _merge_all(self, project_id: int, parent: Tag | None, roots: list[OutlineNode], dry_run: bool) -> TreeMerge:
        report = TreeMerge(project_id=project_id, parent_tag_id=parent.id if parent else None, dry_run=dry_run,
                           added=0, skipped=0)
        try:
            with self.store.immediate_transaction():
                existing = self.trees.by_parent_and_norm(project_id, parent.id if parent else None)
                self._merge(project_id, parent, existing, roots, report, dry_run)
        except sqlite3.IntegrityError as exc:  # the parent was deleted meanwhile
            raise InvalidInput(f"The tree changed during the import ({exc}); nothing was imported. Try again.") from exc
        return report

    def _merge(self, project_id: int, parent: Tag | None, existing: dict[tuple[int | None, str], Tag],
               nodes: list[OutlineNode], report: TreeMerge, dry_run: bool) -> None:
        """Add `nodes` under `parent`; those its children already have (in `existing`, the stored tags below the
        import point by parent id and normal form) are skipped and merged into."""
        for node in nodes:
            tag = existing.get((parent.id if parent else None, node.norm))  # a new tag (id 0 in a dry run): none
            if tag is not None:
                report.skip(tag.path)
                self._merge(project_id, tag, existing, node.children, report, dry_run)
                continue
            if dry_run:
                tag = Tag(id=0, name=node.name, parent_id=parent.id if parent else None,
                          depth=parent.depth + 1 if parent else 1,
                          path=f"{parent.path}{PATH_SEPARATOR}{node.name}" if parent else node.name)
            else:
                (tag,) = self.store.insert_tags(project_id, parent, [node.name])
            report.add(tag)
            self._merge(project_id, tag, existing, node.children, report, dry_run)
