"""The app behind the review page and the progress dashboard: one hand-written HTML+JS+CSS page, shipped as
package data (server/ui/static/), served as MCP Apps `ui://` resources and, by `serve --http`, at /ui/.

The page is assembled into one self-contained document (hosts render a resource's text as is): the styles and the
scripts (SCRIPTS: the vendored Markdown renderer and sanitiser, then the app's own files) are inlined and a
Content-Security-Policy meta allows exactly those blocks (by hash) and no external origin, so it works offline and
nothing a model wrote can run."""

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
# In load order: each runs as its own inline <script>; app.js starts the app and uses what the others define.
SCRIPTS = ("vendor/markdown-it.min.js", "vendor/purify.min.js", "markdown.js", "report.js", "eval.js", "app.js")
STYLES = ("app.css", "report.css")  # inlined as one <style> block
__all__ = ["APP_MIME_TYPE", "DASHBOARD_URI", "REVIEW_URI", "app_csp", "app_html", "apps_extension", "content_security_policy",
           "link_ui"]


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("static", *name.split("/")).read_text(encoding="utf-8")


@functools.cache
def _scripts() -> tuple[str, ...]:
    scripts = tuple(_asset(name) for name in SCRIPTS)
    for name, script in zip(SCRIPTS, scripts):
        if "<script" in script.lower() or "</script" in script.lower():  # would end or nest the inline block
            raise RuntimeError(f"{name} contains a <script> or </script> tag and cannot be inlined")
    return scripts


def _digest(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


@functools.cache
def _style() -> str:
    return "\n".join(_asset(name) for name in STYLES)


def content_security_policy(scripts: tuple[str, ...], style: str) -> str:
    """No origin but the page's own for fetches (the browser's /ui/api/call), no other script or style than the
    inlined ones, no frames, forms, plugins or base URL."""
    return ("default-src 'none'; script-src " + " ".join(map(_digest, scripts)) + "; style-src " + _digest(style)
            + "; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-src 'none'; "
              "object-src 'none'")


@functools.cache
def app_csp() -> str:
    """The app's Content-Security-Policy (its meta tag; /ui/ also sends it as a header)."""
    return content_security_policy(_scripts(), _style())


@functools.cache
def app_html(view: View) -> str:
    """The whole app as one HTML document; `view` says what it shows before any data arrives."""
    page = _asset("app.html")
    for marker, value in (("{{CSP}}", app_csp()), ("{{VIEW}}", view), ("{{STYLE}}", _style()),
                          ("{{SCRIPTS}}", "\n".join(f"<script>{script}</script>" for script in _scripts()))):
        page = page.replace(marker, value, 1)
    return page


def apps_extension() -> Apps:
    """The MCP Apps extension with the two `ui://` resources (tools link to them with `link_ui`)."""
    apps = Apps()
    no_origins = ResourceCsp(connect_domains=[], resource_domains=[], frame_domains=[], base_uri_domains=[])
    apps.add_html_resource(REVIEW_URI, app_html("review"), name="review", title="treedistill: review the dataset",
                           description="Tag tree, questions with filters, answers with their reasoning; rate, "
                                       "confirm, edit, delete; the Report view (treemap of the tree, histograms)",
                           csp=no_origins, prefers_border=True)
    apps.add_html_resource(DASHBOARD_URI, app_html("dashboard"), name="dashboard",
                           title="treedistill: job progress", description="Live progress of an auto_distill job "
                           "with cancel, resume and retry", csp=no_origins, prefers_border=True)
    return apps


def link_ui(tool: Tool, resource_uri: str) -> Tool:
    """The tool with `_meta.ui.resourceUri`: hosts that render MCP Apps show its result in that app; other
    clients get the same result as before."""
    return tool.model_copy(update={"meta": {**(tool.meta or {}), "ui": {"resourceUri": resource_uri}}})
