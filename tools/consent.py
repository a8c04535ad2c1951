"""Asking the person, through the client, before a tool spends money or deletes data (MCP elicitation, both
protocol eras through the SDK's `Resolve`/`Elicit`). A resolver returns `ask(message)` when the person must say
yes, or `NOT_ASKED`; the tool body reads the outcome with `verdict`. Clients without elicitation keep the
tools' own arguments (`confirm_large`, `confirm`), which only such clients' calls can use to go ahead."""

from __future__ import annotations

from typing import Any

from mcp.server.elicitation import AcceptedElicitation
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resolve import Elicit
from pydantic import BaseModel, Field

NOT_ASKED = None


class Approval(BaseModel):
    """The person's answer: accepting the form with approve=true is the only yes."""

    approve: bool = Field(True, description="Yes, go ahead")


def can_ask(ctx: Context) -> bool:
    """Whether the client can show the person a form (elicitation; a bare capability means form)."""
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def ask(message: str) -> Elicit[Approval]:
    return Elicit(message, Approval)


def verdict(outcome: Any) -> bool | None:
    """None when the person was not asked; True when they approved; False when they declined, cancelled or
    answered no."""
    if isinstance(outcome, AcceptedElicitation):
        return None if outcome.data is NOT_ASKED else bool(outcome.data.approve)
    return False
