"""`treedistill review`: serves the app on this machine (or finds a server already on the port), prints the page's
address (ids only, in the fragment) and opens a browser only when there is a display."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import threading
import webbrowser

import httpx2
import pytest

from tests.conftest import subprocess_env, treedistill_command
from treedistill.server.cli import review
from treedistill.server.cli.review import browser_available, page_address

_ADDRESS = re.compile(r"treedistill review: (http://127\.0\.0\.1:(\d+)/ui/\S*)")


def test_review_serves_the_app_and_a_second_call_reuses_the_running_server(env, db_path):
    process = subprocess.Popen([*treedistill_command(), "review", "--port", "0", "--no-browser", "--project", "3"],
                               env=subprocess_env(env, db_path), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        match = _ADDRESS.search(process.stdout.readline())
        assert match, process.stderr.read() if process.poll() is not None else "no address printed"
        address, port = match.group(1), match.group(2)
        assert address.endswith("/ui/#review/3")
        page = httpx2.get(address.split("#")[0], timeout=10)
        assert page.status_code == 200 and 'data-view="browser"' in page.text
        again = subprocess.run([*treedistill_command(), "review", "--port", port, "--no-browser"],
                               env=subprocess_env(env, db_path), capture_output=True, text=True, timeout=60)
        assert again.returncode == 0 and again.stdout.strip() == f"treedistill review: http://127.0.0.1:{port}/ui/"
        assert f"a treedistill server already serves port {port}; using it" in again.stderr
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_no_browser_is_opened_without_a_display():
    if sys.platform.startswith("linux"):
        assert browser_available({}) is False
    assert page_address("http://127.0.0.1:8765/ui/", None) == "http://127.0.0.1:8765/ui/"
    assert page_address("http://127.0.0.1:8765/ui/", 7) == "http://127.0.0.1:8765/ui/#review/7"


def test_building_the_parser_loads_no_http_stack():
    """Every command builds the parser, which imports the review command: that must not load mcp or uvicorn."""
    probe = ("import sys, treedistill.server.cli.parser as p; p.build_parser(); "
             "print(sorted(m for m in ('uvicorn', 'mcp', 'starlette') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the display check is Linux's")
def test_review_asks_its_environ_argument_for_a_display(monkeypatch, capsys):
    opened: list[str] = []
    done = threading.Event()
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(review, "running_app", lambda port, ui_path: True)
    monkeypatch.setattr(webbrowser, "get", lambda: object())
    monkeypatch.setattr(webbrowser, "open", lambda address: (opened.append(address), done.set()))
    args = argparse.Namespace(port=8799, project=2, no_browser=False, db=None)
    assert review.run_review(args, {"DISPLAY": ":0"}, {}, 8765) == 0
    assert done.wait(10) and opened == ["http://127.0.0.1:8799/ui/#review/2"]
    assert "already serves port 8799" in capsys.readouterr().err
