"""The MCP server: its lifespan owns the one Engine of the process; tools come from tools/."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, CallToolResult, Completion, CompletionArgument, CompletionContext, \
    GetPromptResult, InputRequiredResult, PromptReference, Resource, ResourceTemplateReference, \
    SetLevelRequestParams, SubscribeRequestParams, UnsubscribeRequestParams
from pydantic import ValidationError

from treedistill import __version__
from treedistill.server.config import database_path
from treedistill.server.engine import Engine
from treedistill.server.http.auth import bearer_auth_options
from treedistill.server.stdio import serve_stdio
from treedistill.server.ui import apps_extension
from treedistill.tools import answers, completions, curation, dialogues, evaluation, export, guides, hub, jobs, \
    preference, projects, prompts, quality, questions, resources, review, tree, tree_edit
from treedistill.tools.common import readable_validation_error
from treedistill.tools.notifications import ClientChannels

INSTRUCTIONS = """treedistill builds distilled fine-tuning datasets.
Manual flow: create_project -> generate_tags (top level, then children of chosen tags) -> extract_questions on
leaf tags -> answer_question. Automatic flow: create_project -> auto_distill -> poll get_progress(job_id)
until the status is completed (or completed_with_failures, then retry_failed). Bring a tree (a syllabus, a
table of contents) with import_tree, then auto_distill(grow=false) distills its leaves; edit the tree with
add_tags, rename_tag, move_tag; auto_distill(tag_id=...) works on one branch. Browse with get_tree and
list_questions, or review_dataset (an interactive review page in clients that render MCP Apps). Curate with
score_answers, find_duplicates, rate_item and confirm_item; make_preference_pairs (or auto_distill(preference=true))
for DPO data; then export_dataset
(files go to the project's export directory); publish with export_dataset(layout="hf") then push_to_hub
(poll get_push). Steer what is made with a project's guidance, question_styles and answer_style
(create_project, update_project) and its own prompt templates (get_prompts, set_prompt, reset_prompt).
Close the loop after a fine-tune: hold_out, evaluate_model (a student on the held-out questions, graded against
the teacher), get_evaluation (per tag, weakest tags, compare_to another run), then
auto_distill(focus_run=RUN, extra_questions=N) grows where the student is weak.
Ids come from earlier results; API keys live in the server's
environment only."""

TITLE = "treedistill: distill fine-tuning datasets from a teacher model"
TOOL_MODULES = (projects, prompts, tree, tree_edit, questions, answers, dialogues, jobs, curation, preference, export,
                hub, review, quality, evaluation)


class TreedistillServer(MCPServer[Engine]):
    """MCPServer whose resources/list also names each project's tag tree (a concrete entry per project, read
    through the tag_tree template), which serves logging/setLevel and resources/subscribe (`channels`), tells
    subscribers when a tool changed a project, answers an unknown prompt or bad prompt arguments with
    invalid params (-32602), and words argument errors for the calling model. `engine` is set by the lifespan
    while the server runs; `closed` is set once the lifespan has closed the engine (every result committed,
    this process's leases given back)."""

    engine: Engine | None = None
    closed: threading.Event

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.closed = threading.Event()
        self.channels = ClientChannels(self._subscriptions)
        # MCPServer has no public registration for these handshake-era methods; its low-level server does.
        for method, params, handler in (("logging/setLevel", SetLevelRequestParams, self.channels.set_level),
                                        ("resources/subscribe", SubscribeRequestParams, self.channels.subscribe),
                                        ("resources/unsubscribe", UnsubscribeRequestParams,
                                         self.channels.unsubscribe)):
            self._lowlevel_server.add_request_handler(method, params, handler)

    async def run_stdio_async(self) -> None:
        """stdio where every malformed request gets a JSON-RPC error reply (see treedistill.server.stdio)."""
        await serve_stdio(self)

    async def list_resources(self) -> list[Resource]:
        listed = await super().list_resources()
        return listed + (resources.project_resources(self.engine) if self.engine else [])

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Context | None = None
                        ) -> CallToolResult | InputRequiredResult:
        try:
            result = await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):
                raise ToolError(readable_validation_error(name, exc.__cause__)) from exc.__cause__
            raise
        tool = self._tool_manager.get_tool(name)
        changes = tool is not None and tool.annotations is not None and not tool.annotations.read_only_hint
        if changes and isinstance(result, CallToolResult) and not result.is_error:
            for uri in resources.changed_by(arguments):
                await self.channels.resource_updated(uri)
        return result

    async def get_prompt(self, name: str, arguments: dict[str, Any] | None = None, context: Context | None = None
                         ) -> GetPromptResult | InputRequiredResult:
        if self._prompt_manager.get_prompt(name) is None:
            known = ", ".join(prompt.name for prompt in self._prompt_manager.list_prompts())
            raise MCPError(code=INVALID_PARAMS, message=f"Unknown prompt {name!r}; the prompts are: {known}")
        try:
            return await super().get_prompt(name, arguments, context)
        except ValueError as exc:  # the only failure of our prompts: arguments out of their bounds
            cause: BaseException | None = exc
            while cause is not None and not isinstance(cause, ValidationError):
                cause = cause.__cause__
            message = readable_validation_error(name, cause) if cause is not None else str(exc)
            raise MCPError(code=INVALID_PARAMS, message=message) from exc


def create_server(db_path: str | Path | None = None, environ: Mapping[str, str] | None = None,
                  bearer_token: str | None = None, **engine_options: object) -> TreedistillServer:
    """Build the MCP server. The database defaults to --db / TREEDISTILL_DB / the user data dir.

    With `bearer_token`, HTTP requests must carry `Authorization: Bearer <token>` (stdio is unaffected).
    """
    env = dict(os.environ if environ is None else environ)
    path = database_path(str(db_path) if db_path else None, env)

    @asynccontextmanager
    async def lifespan(running: TreedistillServer) -> AsyncIterator[Engine]:
        engine = await Engine(path, env, **engine_options).start()
        running.engine = engine
        running.channels.start()
        try:
            yield engine
        finally:
            running.channels.stop()
            running.engine = None
            with anyio.CancelScope(shield=True):  # a cancelled server (Ctrl-C) still closes its engine cleanly
                await engine.close()
            running.closed.set()

    auth = bearer_auth_options(bearer_token) if bearer_token else {}
    server = TreedistillServer(
        "treedistill", title=TITLE, version=__version__, instructions=INSTRUCTIONS, lifespan=lifespan,
        log_level="WARNING", tools=[tool for module in TOOL_MODULES for tool in module.tools()],
        extensions=[apps_extension()], **auth)
    for noisy in ("httpx", "httpx2", "openai", "anthropic", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    guides.register(server)
    resources.register(server)

    @server.completion()
    async def complete(ref: PromptReference | ResourceTemplateReference, argument: CompletionArgument,
                       context: CompletionContext | None) -> Completion:
        return completions.complete(server.engine, ref, argument, context)

    return server
