"""Tools: import_tree, export_tree, add_tags, rename_tag, move_tag (trees people bring and edit; no model call)."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from pydantic import BaseModel, Field

from treedistill.server.config import MAX_IMPORT_CHARS, MAX_IMPORT_TAGS, MAX_TAG_DEPTH, MAX_TAG_NAME_CHARS
from treedistill.server.models import Tag
from treedistill.server.tree_editor import TreeMerge
from treedistill.tools.common import LOCAL_WRITE, READ_ONLY, ProjectId, TagId, engine_of, strict_tool, tool_errors

MAX_NAMES = 1000
Format = Annotated[Literal["markdown", "text", "json"], Field(description=(
    "markdown: headings (#, ##: deeper is a child) and/or nested bullet lists; text: an indented outline, or a "
    "numbered table of contents ('1.2.3 Title': the number gives the level and is dropped); json: nested objects "
    '({"Mechanics": {"Kinematics": {}}}) or lists of {"name": ..., "children": [...]}'))]


class ExportedTree(BaseModel):
    project_id: int
    tag_id: int | None = Field(..., description="The exported tag (with its subtree); null: the whole tree")
    format: str
    tags: int = Field(..., description="Tags in the outline")
    content: str = Field(..., description="The outline; import_tree reads it back to the same tree")


@tool_errors
async def import_tree(
    ctx: Context,
    project_id: ProjectId,
    content: Annotated[str, Field(min_length=1, max_length=MAX_IMPORT_CHARS, description=(
        f"The outline: a syllabus, a book's table of contents, a taxonomy (at most {MAX_IMPORT_TAGS:,} tags, names "
        f"up to {MAX_TAG_NAME_CHARS} characters, {MAX_TAG_DEPTH} levels from the topic)"))],
    format: Format,
    parent_tag_id: Annotated[TagId | None, Field(description="Import under this tag (default: the top level)")
                             ] = None,
    dry_run: Annotated[bool, Field(description="Only report what would be added and skipped; write nothing")
                       ] = False,
) -> TreeMerge:
    """Merge an outline into the tag tree under a tag (or at the top level): tags it already has (same name
    after normalisation) are skipped and merged into, so importing the same outline twice adds nothing. All or
    nothing: a bad line (inconsistent indentation, an empty or overlong name, a name repeating its ancestor)
    is reported by its line and nothing is written. Then auto_distill(grow=false) distills the tree as it is."""
    return await engine_of(ctx).import_tree(project_id, content, format, parent_tag_id, dry_run)


@tool_errors
async def export_tree(
    ctx: Context,
    project_id: ProjectId,
    format: Format,
    tag_id: Annotated[TagId | None, Field(description="Export only this tag with its subtree (default: all)")
                      ] = None,
) -> ExportedTree:
    """The tag tree as an outline (markdown bullets, an indented text outline or json) that import_tree reads
    back to the same tree, e.g. to edit it elsewhere or seed another project."""
    content, count = engine_of(ctx).export_tree(project_id, format, tag_id)
    return ExportedTree(project_id=project_id, tag_id=tag_id, format=format, tags=count, content=content)


@tool_errors
async def add_tags(
    ctx: Context,
    project_id: ProjectId,
    names: Annotated[list[str], Field(min_length=1, max_length=MAX_NAMES, description=(
        f"Names of the new tags (up to {MAX_TAG_NAME_CHARS} characters each)"))],
    parent_tag_id: Annotated[TagId | None, Field(description="The tag to add children to; null: the top level")
                             ] = None,
) -> TreeMerge:
    """Add tags by hand under a tag (or at the top level); a name a sibling already has (after normalisation)
    is skipped, not repeated."""
    return engine_of(ctx).add_tags(project_id, parent_tag_id, names)


@tool_errors
async def rename_tag(
    ctx: Context,
    project_id: ProjectId,
    tag_id: TagId,
    name: Annotated[str, Field(min_length=1, max_length=MAX_TAG_NAME_CHARS, description="The new name")],
) -> Tag:
    """Rename a tag; the paths of its whole subtree (and of their questions) follow. Refused when a sibling has
    the name, or while model calls are queued or running on the tag or below it."""
    return engine_of(ctx).rename_tag(project_id, tag_id, name)


@tool_errors
async def move_tag(
    ctx: Context,
    project_id: ProjectId,
    tag_id: Annotated[TagId, Field(description="The tag to move, with its subtree")],
    new_parent_tag_id: Annotated[TagId | None, Field(description="Its new parent; null (default): the top level")
                                 ] = None,
) -> Tag:
    """Move a tag with its subtree under another tag (never into its own subtree); paths and depths follow.
    Refused when a sibling there has its name, or while model calls are queued or running on the tag or below."""
    return engine_of(ctx).move_tag(project_id, tag_id, new_parent_tag_id)


def tools() -> list[Tool]:
    return [
        # Idempotent: the same outline or names again add nothing; no model is called.
        strict_tool(import_tree, "Import a tag tree", LOCAL_WRITE),
        strict_tool(export_tree, "Export the tag tree", READ_ONLY),
        strict_tool(add_tags, "Add tags by hand", LOCAL_WRITE),
        strict_tool(rename_tag, "Rename a tag", LOCAL_WRITE),
        strict_tool(move_tag, "Move a tag", LOCAL_WRITE),
    ]
