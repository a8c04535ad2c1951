"""`treedistill review`: the review app in a browser. Starts `serve --http` on this machine (or finds one already
serving on the port), prints the page's address and opens a browser when there is one."""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import urllib.request
import webbrowser
from collections.abc import Mapping
from typing import Any

from treedistill.server.config import database_path

LOOPBACK = "127.0.0.1"
APP_MARKER = b'data-view="browser"'


def add_review_command(command: Any) -> argparse.ArgumentParser:
    """The `review` command's options (`command` is the parser factory of server/cli/parser.py)."""
    cmd = command("review", "open the review app and job dashboard in a browser",
                  "Serve the review app and the job dashboard at http://127.0.0.1:PORT/ui/ (MCP over streamable "
                  "HTTP at /mcp too), print the address and open a browser when one is available. With "
                  "TREEDISTILL_TOKEN set the page asks for that token once (kept in the tab, never in a URL). "
                  "When a treedistill server already serves on the port, only prints and opens its address.")
    cmd.add_argument("--project", type=int, metavar="ID", help="open this project's review page")
    cmd.add_argument("--port", type=int, default=None, help="port (default 8765; 0 picks a free one)")
    cmd.add_argument("--no-browser", action="store_true", help="only print the address")
    return cmd


def page_address(base_ui_url: str, project: int | None) -> str:
    """The address to open: ids only in the fragment (never a token, never sent to the server)."""
    return base_ui_url + (f"#review/{project}" if project else "")


def browser_available(environ: Mapping[str, str]) -> bool:
    """A graphical browser can be opened: a display on Linux and BSD (a console browser would take over the
    terminal this server runs in), any registered browser elsewhere."""
    if sys.platform.startswith(("linux", "freebsd", "openbsd")) and not (
            environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        webbrowser.get()
    except webbrowser.Error:
        return False
    return True


def running_app(port: int, ui_path: str) -> bool:
    """Whether a treedistill server already serves the app at `ui_path` on this port of this machine."""
    try:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{port}{ui_path}", timeout=2) as response:
            return response.status == 200 and APP_MARKER in response.read(200_000)
    except (OSError, ValueError):
        return False


def run_review(args: argparse.Namespace, environ: Mapping[str, str], engine_options: dict[str, Any],
               default_port: int) -> int:
    """Serve (or reuse) the app and show its address; returns when the server stops (Ctrl-C)."""
    from treedistill.server.app import create_server
    from treedistill.server.http.auth import check_token
    # Imported here, not at module level: the parser imports this module, and every other command would
    # pay for loading the HTTP stack (mcp, uvicorn).
    from treedistill.server.http.server import serve_http, ui_url
    from treedistill.server.http.ui import UI_PATH

    port = default_port if args.port is None else args.port

    def show(base: str) -> None:
        address = page_address(base, args.project)
        print(f"treedistill review: {address}", flush=True)
        if not args.no_browser and browser_available(environ):
            threading.Thread(target=webbrowser.open, args=(address,), daemon=True).start()

    if port and running_app(port, UI_PATH):
        print(f"treedistill: a treedistill server already serves port {port}; using it (its own database, not "
              "--db or TREEDISTILL_DB). Stop it or pick another --port to serve this database.",
              file=sys.stderr, flush=True)
        show(f"http://{LOOPBACK}:{port}{UI_PATH}")
        return 0
    token = environ.get("TREEDISTILL_TOKEN") or None
    if token is not None:
        check_token(token)
    path = database_path(args.db, environ)
    server = create_server(path, environ, bearer_token=token, **engine_options)

    def announce(url: str) -> None:
        print(f"treedistill: MCP over streamable HTTP at {url}; Ctrl-C stops.", file=sys.stderr, flush=True)
        show(ui_url(url))

    asyncio.run(serve_http(server, LOOPBACK, port, announce=announce))
    return 0
