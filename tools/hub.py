"""Tools: push_to_hub, get_push, cancel_push."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from mcp_types import ToolAnnotations
from pydantic import Field

from treedistill.server.push_models import PushState
from treedistill.tools.common import LOCAL_WRITE, MAX_ID, READ_ONLY, ProjectId, engine_of, strict_tool, tool_errors

PushId = Annotated[int, Field(ge=1, le=MAX_ID, description="Push id, from push_to_hub (the push's job id)")]
WaitSeconds = Annotated[float, Field(ge=0, le=300, description=(
    "Block up to this long until the push ends; 0 returns at once"))]
# Publishes outside this machine (open world); pushing the same layout again makes no new commit (idempotent);
# it adds a commit and never deletes a file of the repository (not destructive).
PUBLISHES = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True, openWorldHint=True)


@tool_errors
async def push_to_hub(
    ctx: Context,
    project_id: ProjectId,
    repo_id: Annotated[str, Field(min_length=3, max_length=193, description=(
        "The dataset repository, 'namespace/name' (your Hub user name or an organisation), e.g. 'alice/sports-qa'; "
        "created if it does not exist"))],
    private: Annotated[bool, Field(description="Create the repository private (an existing one keeps its "
                                               "visibility)")] = True,
    path: Annotated[str | None, Field(max_length=4096, description=(
        "The layout folder to push, written by export_dataset(layout='hf') (default: the project's layout written "
        "last)"))] = None,
    commit_message: Annotated[str | None, Field(max_length=500, description="The commit's summary")] = None,
    wait_seconds: WaitSeconds = 0,
) -> PushState:
    """Push a dataset layout (README.md card and data/*.parquet) to the Hugging Face Hub in one commit, with the
    token from HF_TOKEN in the server's environment. Runs in the background as a job: poll get_progress(push_id)
    or get_push(push_id); cancel_push (or cancel_job) stops it before its commit; resume_job runs a failed one
    again. A push interrupted by a restart resumes by itself, and never commits twice."""
    engine = engine_of(ctx)
    state = engine.push_to_hub(project_id, repo_id, private, path, commit_message)
    return await engine.wait_for_push(state.push_id, wait_seconds) if wait_seconds else state


@tool_errors
async def get_push(ctx: Context, push_id: PushId, wait_seconds: WaitSeconds = 0) -> PushState:
    """A push's status, stage, files and, once completed, its commit URL; on failure, what to fix."""
    return await engine_of(ctx).wait_for_push(push_id, wait_seconds)


@tool_errors
async def cancel_push(ctx: Context, push_id: PushId) -> PushState:
    """Stop a push before its commit: the Hub then has nothing of it (a commit already made stays)."""
    return engine_of(ctx).cancel_push(push_id)


def tools() -> list[Tool]:
    return [
        strict_tool(push_to_hub, "Push a dataset to the Hugging Face Hub (background)", PUBLISHES),
        strict_tool(get_push, "Push progress", READ_ONLY),
        # Not destructive: it only stops a push; nothing is deleted.
        strict_tool(cancel_push, "Cancel a push", LOCAL_WRITE),
    ]
