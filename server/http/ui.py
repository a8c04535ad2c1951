"""The review app and dashboard in a browser: `serve --http` serves the app at /ui/ and a JSON endpoint,
POST /ui/api/call, that runs the same MCP tools the app calls through an MCP Apps host, on the server's one engine.

Same protection as the MCP endpoint: DNS-rebinding checks (Host and Origin allow-lists, JSON bodies only, so a
cross-site form cannot post), and, when the server has a bearer token, the same `Authorization: Bearer` check
(the SDK's authentication middleware has already verified the header for every route). The page is static and
holds no data, so it loads without the token; the app asks for the token and keeps it in sessionStorage, never
in a URL."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from mcp_types import CallToolResult, TextContent
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from treedistill.server.ui import app_csp, app_html

log = logging.getLogger("treedistill.http.ui")
UI_PATH = "/ui/"
MAX_BODY_BYTES = 1_000_000  # an edited answer is at most 200,000 characters (update_answer's bound)
# The tools the app calls, each with the arguments the app sends; nothing else is reachable through /ui/api/call
# (export_dataset writes files, the model-config tools and arguments such as score_answers' judge_model or batch
# change what the server calls and pays for: those stay MCP-only).
UI_TOOLS: dict[str, frozenset[str]] = {name: frozenset(arguments) for name, arguments in {
    "list_projects": (),
    "list_jobs": ("project_id",),
    "get_tree": ("project_id", "tag_id", "max_tags"),
    "review_dataset": ("project_id", "tag_id", "filter", "score_below", "limit", "offset", "question_type",
                       "difficulty", "audience"),
    "get_prompts": ("project_id",),
    "dataset_report": ("project_id", "tag_id", "near_duplicates", "breakdown"),
    "get_answer": ("project_id", "question_id"),
    "list_preference_pairs": ("project_id", "filter", "limit", "offset"),
    "get_dialogue": ("project_id", "question_id"),
    "rate_item": ("project_id", "question_id", "rating"),
    "confirm_item": ("project_id", "question_ids", "confirmed"),
    "update_answer": ("project_id", "question_id", "answer", "reasoning"),
    "delete_question": ("project_id", "question_ids"),
    "delete_tag": ("project_id", "tag_id", "confirm"),
    "answer_question": ("project_id", "question_id", "regenerate"),
    "score_answers": ("project_id", "question_ids", "rescore"),
    "get_progress": ("job_id",),
    "list_evaluations": ("project_id",),
    "get_evaluation": ("run_id", "compare_to"),
    "cancel_job": ("job_id",),
    "resume_job": ("job_id",),
    "retry_failed": ("job_id",),
}.items()}
_PAGE_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                 "X-Frame-Options": "DENY"}


class BrowserCallContext(Context):
    """The tool context of a call from the browser: the server's engine as the lifespan context, and no MCP
    session to send progress notifications to (the app polls instead)."""

    @property
    def request_context(self) -> Any:
        return SimpleNamespace(lifespan_context=self.mcp_server.engine)

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        return None

    @property
    def client_capabilities(self) -> None:
        return None  # no MCP client to ask the person through: the page confirms in the page


def _error(message: str) -> dict[str, Any]:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True).model_dump(
        mode="json", by_alias=True, exclude_none=True)


async def _bounded_body(request: Request) -> bytes | None:
    """The request body, or None once it passes MAX_BODY_BYTES (read in chunks: a body without Content-Length is
    never read whole before it is measured)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def ui_routes(server: MCPServer, security: TransportSecuritySettings) -> list[Route]:
    """Routes for the app page and its JSON endpoint; add them to the streamable HTTP app."""
    checks = TransportSecurityMiddleware(security)
    token_required = server.settings.auth is not None

    async def page(request: Request) -> Response:
        refused = await checks.validate_request(request)
        if refused is not None:
            return refused
        return HTMLResponse(app_html("browser"), headers={
            **_PAGE_HEADERS, "Content-Security-Policy": app_csp() + "; frame-ancestors 'none'"})

    async def call(request: Request) -> Response:
        refused = await checks.validate_request(request, is_post=True)
        if refused is not None:
            return refused
        if token_required and not isinstance(request.scope.get("user"), AuthenticatedUser):
            return JSONResponse({"error": "invalid_token", "error_description": "Authentication required"},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return JSONResponse({"error": "request too large"}, status_code=413)
        body = await _bounded_body(request)
        if body is None:
            return JSONResponse({"error": "request too large"}, status_code=413)
        try:
            request_json = json.loads(body)
            name, arguments = request_json["name"], request_json.get("arguments")
        except (ValueError, KeyError, TypeError, AttributeError):
            return JSONResponse({"error": 'expected {"name": TOOL, "arguments": {...}}'}, status_code=400)
        if not isinstance(name, str) or name not in UI_TOOLS:
            return JSONResponse(_error(f"{name!r} cannot be called from the browser app"), status_code=403)
        arguments = {} if arguments is None else arguments
        if not isinstance(arguments, dict):
            return JSONResponse({"error": f"arguments must be a JSON object of argument names and values, not "
                                          f"{type(arguments).__name__}"}, status_code=400)
        refused_arguments = sorted(set(arguments) - UI_TOOLS[name])
        if refused_arguments:
            return JSONResponse({"error": f"{name} takes no {', '.join(refused_arguments)} from the browser app"},
                                status_code=400)
        try:
            result = await server.call_tool(name, arguments, BrowserCallContext(mcp_server=server))
        except UnexpectedToolError:
            log.exception("browser call of %s failed", name)
            return JSONResponse(_error(f"Error executing tool {name}"))
        except ToolError as exc:
            return JSONResponse(_error(str(exc)))
        return JSONResponse(result.model_dump(mode="json", by_alias=True, exclude_none=True),
                            headers={"Cache-Control": "no-store"})

    async def to_page(request: Request) -> Response:
        return RedirectResponse(UI_PATH)

    return [Route("/ui", to_page, methods=["GET"]), Route(UI_PATH, page, methods=["GET"]),
            Route(UI_PATH + "api/call", call, methods=["POST"])]
