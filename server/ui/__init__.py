"""The app behind the review page and the progress dashboard: one hand-written HTML+JS+CSS page, shipped as
package data (server/ui/static/), served as MCP Apps `ui://` resources and, by `serve --http`, at /ui/.

The page is assembled into one self-contained document (hosts render a resource's text as is): the style and the
script are inlined and a Content-Security-Policy meta allows exactly those two blocks (by hash) and no external
origin, so it works offline and nothing a model wrote can run."""

from __future__ import annotations

import base64
import functools
import hashlib
from importlib import resources
from typing import Literal

from mcp.server.apps import APP_MIME_TYPE, Apps, ResourceCsp
from mcp.server.mcpserver.tools import Tool

REVIEW_URI = "ui://treedistill/review"
DASHBOARD_URI = "ui://treedistill/dashboard"
View = Literal["review", "dashboard", "browser"]
__all__ = ["APP_MIME_TYPE", "DASHBOARD_URI", "REVIEW_URI", "app_csp", "app_html", "apps_extension", "content_security_policy",
           "link_ui"]


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def _digest(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def content_security_policy(script: str, style: str) -> str:
    """No origin but the page's own for fetches (the browser's /ui/api/call), no other script or style than the
    inlined ones, no frames, forms, plugins or base URL."""
    return ("default-src 'none'; script-src " + _digest(script) + "; style-src " + _digest(style)
            + "; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-src 'none'; "
              "object-src 'none'")


def _script() -> str:
    """The app's one inline script: the evaluation picture (eval.js, which app.js calls) and then app.js."""
    return _asset("eval.js") + "\n" + _asset("app.js")


@functools.cache
def app_csp() -> str:
    """The app's Content-Security-Policy (its meta tag; /ui/ also sends it as a header)."""
    return content_security_policy(_script(), _asset("app.css"))


@functools.cache
def app_html(view: View) -> str:
    """The whole app as one HTML document; `view` says what it shows before any data arrives."""
    page = _asset("app.html")
    for marker, value in (("{{CSP}}", app_csp()), ("{{VIEW}}", view), ("{{STYLE}}", _asset("app.css")),
                          ("{{SCRIPT}}", _script())):
        page = page.replace(marker, value, 1)
    return page


def apps_extension() -> Apps:
    """The MCP Apps extension with the two `ui://` resources (tools link to them with `link_ui`)."""
    apps = Apps()
    no_origins = ResourceCsp(connect_domains=[], resource_domains=[], frame_domains=[], base_uri_domains=[])
    apps.add_html_resource(REVIEW_URI, app_html("review"), name="review", title="treedistill: review the dataset",
                           description="Tag tree, questions with filters, answers with their reasoning; rate, "
                                       "confirm, edit, delete", csp=no_origins, prefers_border=True)
    apps.add_html_resource(DASHBOARD_URI, app_html("dashboard"), name="dashboard",
                           title="treedistill: job progress", description="Live progress of an auto_distill job "
                           "with cancel, resume and retry", csp=no_origins, prefers_border=True)
    return apps


def link_ui(tool: Tool, resource_uri: str) -> Tool:
    """The tool with `_meta.ui.resourceUri`: hosts that render MCP Apps show its result in that app; other
    clients get the same result as before."""
    return tool.model_copy(update={"meta": {**(tool.meta or {}), "ui": {"resourceUri": resource_uri}}})
