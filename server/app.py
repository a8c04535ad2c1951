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
from mcp.server.mcpserver import MCPServer
from mcp_types import Completion, CompletionArgument, CompletionContext, PromptReference, Resource, \
    ResourceTemplateReference

from treedistill import __version__
from treedistill.server.config import database_path
from treedistill.server.engine import Engine
from treedistill.server.http.auth import bearer_auth_options
from treedistill.server.ui import apps_extension
from treedistill.tools import answers, completions, curation, export, guides, jobs, projects, prompts, questions, \
    resources, review, tree

INSTRUCTIONS = """treedistill builds distilled fine-tuning datasets.
Manual flow: create_project -> generate_tags (top level, then children of chosen tags) -> extract_questions on
leaf tags -> answer_question. Automatic flow: create_project -> auto_distill -> poll get_progress(job_id)
until the status is completed (or completed_with_failures, then retry_failed). Browse with get_tree and
list_questions, or review_dataset (an interactive review page in clients that render MCP Apps). Curate with
score_answers, find_duplicates, rate_item and confirm_item, then export_dataset
(files go to the project's export directory). Steer what is made with a project's guidance, question_styles
and answer_style (create_project, update_project) and its own prompt templates (get_prompts, set_prompt,
reset_prompt). Ids come from earlier results; API keys live in the server's
environment only."""

TITLE = "treedistill: distill fine-tuning datasets from a teacher model"
TOOL_MODULES = (projects, prompts, tree, questions, answers, jobs, curation, export, review)


class TreedistillServer(MCPServer[Engine]):
    """MCPServer whose resources/list also names each project's tag tree (a concrete entry per project, read
    through the tag_tree template). `engine` is set by the lifespan while the server runs; `closed` is set once
    the lifespan has closed the engine (every result committed, this process's leases given back)."""

    engine: Engine | None = None
    closed: threading.Event

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.closed = threading.Event()

    async def list_resources(self) -> list[Resource]:
        listed = await super().list_resources()
        return listed + (resources.project_resources(self.engine) if self.engine else [])


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
        try:
            yield engine
        finally:
            running.engine = None
            with anyio.CancelScope(shield=True):  # a cancelled server (Ctrl-C) still closes its engine cleanly
                await engine.close()
            running.closed.set()

    auth = bearer_auth_options(bearer_token) if bearer_token else {}
    server = TreedistillServer(
        "treedistill", title=TITLE, version=__version__, instructions=INSTRUCTIONS, lifespan=lifespan,
        log_level="WARNING", tools=[tool for module in TOOL_MODULES for tool in module.tools()],
        extensions=[apps_extension()], **auth)
    for noisy in ("httpx", "httpx2", "openai", "anthropic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    guides.register(server)
    resources.register(server)

    @server.completion()
    async def complete(ref: PromptReference | ResourceTemplateReference, argument: CompletionArgument,
                       context: CompletionContext | None) -> Completion:
        return completions.complete(server.engine, ref, argument, context)

    return server
