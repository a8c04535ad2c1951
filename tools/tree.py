"""Tools: generate_tags, get_tree."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, Field

from treedistill.server.models import Tag
from treedistill.tools.common import GENERATES, READ_ONLY, engine_of, heartbeat_for, tool_errors

MAX_PER_CALL = 100


class GeneratedTags(BaseModel):
    project_id: int
    parent_tag_id: int | None
    parent_path: str | None = Field(..., description="Path of the parent tag; null for top-level tags")
    tags: list[Tag]


class TreeNode(BaseModel):
    id: int
    name: str
    path: str
    depth: int
    questions: int
    children: list[TreeNode] = []


class Tree(BaseModel):
    project_id: int
    topic: str
    tag_count: int
    leaf_count: int
    question_count: int
    roots: list[TreeNode]


@tool_errors
async def generate_tags(
    ctx: Context,
    project_id: int,
    parent_tag_id: Annotated[int | None, Field(description="Tag to expand; null for top-level tags of the topic")] = None,
    count: Annotated[int, Field(ge=1, le=MAX_PER_CALL, description="How many new sub-tags to add")] = 10,
) -> GeneratedTags:
    """Generate `count` new sub-tags of a tag (or of the topic). The full tag path goes into the prompt;
    names never duplicate their siblings. If a call is interrupted, calling again returns its stored result."""
    parent, tags = await engine_of(ctx).generate_tags(project_id, parent_tag_id, count,
                                                      heartbeat_for(ctx, "generate_tags"))
    return GeneratedTags(project_id=project_id, parent_tag_id=parent_tag_id,
                         parent_path=parent.path if parent else None, tags=tags)


@tool_errors
async def get_tree(ctx: Context, project_id: int) -> Tree:
    """The project's whole tag tree with ids, full paths and question counts per tag."""
    project, tags, counts = engine_of(ctx).get_tree(project_id)
    nodes = {tag.id: TreeNode(id=tag.id, name=tag.name, path=tag.path, depth=tag.depth,
                              questions=counts.get(tag.id, 0)) for tag in tags}
    roots = []
    for tag in tags:  # parents come before children
        (nodes[tag.parent_id].children if tag.parent_id else roots).append(nodes[tag.id])
    return Tree(project_id=project.id, topic=project.topic, tag_count=len(tags),
                leaf_count=sum(1 for node in nodes.values() if not node.children),
                question_count=sum(counts.values()), roots=roots)


def register(server: MCPServer) -> None:
    server.add_tool(generate_tags, annotations=GENERATES)
    server.add_tool(get_tree, annotations=READ_ONLY)
