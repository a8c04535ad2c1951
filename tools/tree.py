"""Tools: generate_tags, get_tree."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from pydantic import BaseModel, Field

from treedistill.server.errors import NotFound
from treedistill.server.models import Tag
from treedistill.tools.common import GENERATES, READ_ONLY, ProjectId, TagId, engine_of, heartbeat_for, strict_tool, \
    tool_errors

MAX_PER_CALL = 100
# get_tree shows whole levels while they fit in this many tags: a 3-level x 10 tree (1,110 tags) shows its
# first two levels (110 tags), a few thousand characters; 400 tags stay well under 100k characters.
DEFAULT_MAX_TAGS = 400
MAX_TAGS = 5000


class GeneratedTags(BaseModel):
    project_id: int
    parent_tag_id: int | None
    parent_path: str | None = Field(..., description="Path of the parent tag; null for top-level tags")
    tags: list[Tag]


class TreeNode(BaseModel):
    id: int
    name: str
    path: str
    depth: int = Field(..., description="1 for a top-level tag")
    questions: int = Field(..., description="Questions of this tag itself")
    children: list[TreeNode] = []
    hidden_children: int = Field(0, description="Child tags left out by max_depth or max_tags; "
                                                "get_tree(tag_id=<this id>) shows them")


class SubtreeSummary(BaseModel):
    id: int
    name: str
    path: str
    depth: int
    children: int = Field(..., description="Direct child tags")
    tags: int = Field(..., description="Tags in this subtree, this one included")
    leaves: int = Field(..., description="Tags in this subtree without children")
    questions: int = Field(..., description="Questions in this subtree")


class Tree(BaseModel):
    project_id: int
    topic: str
    tag_id: int | None = Field(None, description="The subtree's root when tag_id was given; null: the whole project")
    tag_count: int = Field(..., description="Tags in the project (or in tag_id's subtree)")
    leaf_count: int
    question_count: int
    shown_tags: int = Field(..., description="Tags listed in roots (or in summary)")
    truncated: bool = Field(..., description="true when tags were left out; note says how to see them")
    note: str | None = None
    roots: list[TreeNode] = Field([], description="The tree, empty with summary=true")
    summary: list[SubtreeSummary] | None = Field(None, description="With summary=true: one row per top-level tag "
                                                                   "(or per child of tag_id)")


@tool_errors
async def generate_tags(
    ctx: Context,
    project_id: ProjectId,
    parent_tag_id: Annotated[TagId | None, Field(description="Tag to expand; null for top-level tags of the topic")
                             ] = None,
    count: Annotated[int, Field(ge=1, le=MAX_PER_CALL, description="How many new sub-tags to add")] = 10,
) -> GeneratedTags:
    """Generate `count` new sub-tags of a tag (or of the topic). The full tag path goes into the prompt;
    names never duplicate their siblings. If a call is interrupted, calling again returns its stored result."""
    parent, tags = await engine_of(ctx).generate_tags(project_id, parent_tag_id, count,
                                                      heartbeat_for(ctx, "generate_tags"))
    return GeneratedTags(project_id=project_id, parent_tag_id=parent_tag_id,
                         parent_path=parent.path if parent else None, tags=tags)


@tool_errors
async def get_tree(
    ctx: Context,
    project_id: ProjectId,
    tag_id: Annotated[TagId | None, Field(description="Show only this tag's subtree (default: the whole project)")
                      ] = None,
    max_depth: Annotated[int | None, Field(ge=1, le=100, description=(
        "Levels to show below the starting point (1: only the top-level tags, or only tag_id's children)"))] = None,
    summary: Annotated[bool, Field(description=(
        "Counts of tags, leaves and questions per top-level tag (or per child of tag_id) instead of the tree"))] = False,
    max_tags: Annotated[int, Field(ge=1, le=MAX_TAGS, description=(
        "Show whole levels while they fit in this many tags; deeper tags are left out and counted"))
                        ] = DEFAULT_MAX_TAGS,
) -> Tree:
    """The project's tag tree with ids, full paths and question counts per tag, level by level up to max_tags
    tags (whole levels; the result says what was left out). For a large tree, start with summary=true, then
    look into one branch with tag_id."""
    project, tags, counts = engine_of(ctx).get_tree(project_id)
    return shape_tree(project.id, project.topic, tags, counts, tag_id, max_depth, summary, max_tags)


def shape_tree(project_id: int, topic: str, tags: list[Tag], counts: dict[int, int], tag_id: int | None,
               max_depth: int | None, summary: bool, max_tags: int) -> Tree:
    """The part of the tree get_tree shows; `tags` come parents first."""
    by_id = {tag.id: tag for tag in tags}
    children: dict[int | None, list[Tag]] = {}
    for tag in tags:
        children.setdefault(tag.parent_id, []).append(tag)
    sizes: dict[int, tuple[int, int, int]] = {}  # tag id -> (tags, leaves, questions) of its subtree
    for tag in reversed(tags):
        below = [sizes[child.id] for child in children.get(tag.id, [])]
        sizes[tag.id] = (1 + sum(s[0] for s in below), sum(s[1] for s in below) or 1,
                         counts.get(tag.id, 0) + sum(s[2] for s in below))
    if tag_id is not None:
        if tag_id not in by_id:
            raise NotFound(f"No tag with id {tag_id} in project {project_id}; call get_tree(project_id) for the ids.")
        tag_count, leaf_count, question_count = sizes[tag_id]
        start, first_level = [by_id[tag_id]], children.get(tag_id, [])
    else:
        start = first_level = children.get(None, [])
        tag_count, leaf_count, question_count = len(tags), sum(1 for t in tags if t.id not in children), sum(
            counts.get(t.id, 0) for t in tags)
    tree = Tree(project_id=project_id, topic=topic, tag_id=tag_id, tag_count=tag_count, leaf_count=leaf_count,
                question_count=question_count, shown_tags=0, truncated=False)

    if summary:
        tree.summary = [SubtreeSummary(id=t.id, name=t.name, path=t.path, depth=t.depth,
                                       children=len(children.get(t.id, [])), tags=sizes[t.id][0],
                                       leaves=sizes[t.id][1], questions=sizes[t.id][2]) for t in first_level]
        tree.shown_tags = len(first_level)
        tree.truncated = tree.shown_tags + (tag_id is not None) < tag_count
        if tree.truncated:
            tree.note = "Counts only; get_tree(tag_id=<an id above>) shows a branch's tags."
        return tree

    # Whole levels below the start while they fit in max_tags (the first level is always shown, cut to max_tags).
    levels = [start[:max_tags]]
    shown = len(levels[0])
    while max_depth is None or len(levels) - (tag_id is not None) < max_depth:
        following = [child for tag in levels[-1] for child in children.get(tag.id, [])]
        if not following or shown + len(following) > max_tags:
            break
        levels.append(following)
        shown += len(following)
    nodes = {tag.id: TreeNode(id=tag.id, name=tag.name, path=tag.path, depth=tag.depth,
                              questions=counts.get(tag.id, 0)) for level in levels for tag in level}
    for level in levels[1:]:
        for tag in level:
            nodes[tag.parent_id].children.append(nodes[tag.id])
    for tag in levels[-1]:
        nodes[tag.id].hidden_children = len(children.get(tag.id, []))
    tree.roots = [nodes[tag.id] for tag in levels[0]]
    tree.shown_tags = shown
    tree.truncated = shown < tag_count
    if tree.truncated:
        depth_note = f"levels 1-{len(levels)}" if tag_id is None else f"{len(levels) - 1} level(s) below tag {tag_id}"
        tree.note = (f"Showing {shown} of {tag_count} tags ({depth_note}); hidden_children counts what is left out. "
                     "See more with get_tree(tag_id=<a tag id>) for one branch, a larger max_tags (up to "
                     f"{MAX_TAGS}), or summary=true for counts per top-level tag.")
    return tree


def tools() -> list[Tool]:
    return [strict_tool(generate_tags, "Generate sub-tags", GENERATES),
            strict_tool(get_tree, "Show the tag tree", READ_ONLY)]
