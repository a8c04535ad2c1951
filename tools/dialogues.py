"""Tools: continue_dialogue, get_dialogue."""

from __future__ import annotations

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool

from treedistill.server.dialogue_models import Dialogue
from treedistill.tools.common import (GENERATES, READ_ONLY, ProjectId, QuestionId, engine_of, heartbeat_for,
                                      strict_tool, tool_errors)


@tool_errors
async def continue_dialogue(ctx: Context, project_id: ProjectId, question_id: QuestionId) -> Dialogue:
    """Add one turn to an answered question's dialogue: the question model, playing the user (the question's
    audience when it has one), writes a follow-up that depends on the conversation so far, and the teacher
    answers it with the whole history as chat messages. Returns the dialogue, turn by turn, each reply with its
    reasoning. auto_distill(turns=N) does this for every question in the background."""
    return await engine_of(ctx).continue_dialogue(project_id, question_id, heartbeat_for(ctx, "continue_dialogue"))


@tool_errors
async def get_dialogue(ctx: Context, project_id: ProjectId, question_id: QuestionId) -> Dialogue:
    """A question's dialogue turn by turn (turn 1 is the question and its answer), and why it ended early when a
    turn failed."""
    return engine_of(ctx).get_dialogue(project_id, question_id)


def tools() -> list[Tool]:
    # Not destructive: a turn is only added, never replaced; not idempotent: each call adds one.
    return [strict_tool(continue_dialogue, "Continue a question's dialogue by one turn", GENERATES),
            strict_tool(get_dialogue, "Read a question's dialogue", READ_ONLY)]
