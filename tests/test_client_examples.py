"""Every file in client_examples/ is exercised: the Python scripts run against the stand-in endpoint, the JSON
configs are parsed and the servers they describe are launched (stdio) or connected to (HTTP)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from treedistill.server.cli.main import DEFAULT_HTTP_PORT
from tests.conftest import ROOT, subprocess_env, treedistill_command
from tests.test_http import TOKEN, http_client, token_server  # noqa: F401 - token_server is a fixture

EXAMPLES = ROOT / "client_examples"
CORE_TOOLS = {"create_project", "auto_distill", "get_progress", "export_dataset"}
STDIO_CONFIGS = {  # file -> (servers key, placeholder in the HTTP entry's Authorization header)
    "claude_desktop/claude_desktop_config.json": ("mcpServers", None),
    "claude_desktop/claude_desktop_config.venv.json": ("mcpServers", None),
    "cursor/mcp.json": ("mcpServers", "${env:TREEDISTILL_TOKEN}"),
    "vscode/mcp.json": ("servers", "${input:treedistill-token}"),
}


def run_example(script: str, environ: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EXAMPLES / "python" / script), *args], env=environ,
                          capture_output=True, text=True, timeout=60)


UVX = ["--from", "treedistill", "treedistill"]  # uvx runs the `treedistill` script of the PyPI package


def installed_command(command: str, args: list[str]) -> list[str]:
    """The configs start the `treedistill` script: through uvx (from PyPI), by its absolute path in a venv
    (GUI clients do not see the shell's PATH), or bare (Claude Code, started from a shell). Run the same
    entry point from this checkout, offline."""
    if command == "uvx":
        assert args[:len(UVX)] == UVX, args
        command, args = args[len(UVX) - 1], args[len(UVX):]
    elif command != "treedistill":
        assert Path(command).is_absolute() and Path(command).parent.name == "bin", command
        command = Path(command).name
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[command] == "treedistill.server.cli.main:main"
    assert args == ["serve"], args
    return [*treedistill_command(), *args]


def test_stdio_script_runs_a_whole_distillation(env, db_path):
    environ = {**subprocess_env(env, db_path), "TREEDISTILL_SERVER": shlex.join([*treedistill_command(), "serve"])}
    result = run_example("distill_over_stdio.py", environ, "Poetry", "--levels", "2", "--tags", "2",
                         "--questions", "1", "--format", "openai")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "created project 1 'Poetry'"
    assert lines[1].startswith("job 1: Job 1 started.") and "(11 calls planned)" in lines[1]
    assert "completed: tags 6/6, questions 4/4, answers 4/4" in result.stdout
    exported = Path(lines[-1].removeprefix("exported 4 records to "))
    records = [json.loads(line) for line in exported.read_text().splitlines()]
    assert len(records) == 4 and all(record["messages"][-1]["role"] == "assistant" for record in records)


@pytest.mark.anyio
async def test_http_script_connects_with_the_token(token_server):  # noqa: F811
    async with http_client(token_server, TOKEN) as client:
        project = (await client.call_tool("create_project", {"name": "Watched"})).structured_content
        job = (await client.call_tool("auto_distill", {"project_id": project["id"], "levels": 1, "tags_per_level": 2,
                                                       "questions_per_tag": 1})).structured_content
    environ = {"PATH": os.environ.get("PATH", ""), "TREEDISTILL_URL": token_server, "TREEDISTILL_TOKEN": TOKEN}
    result = run_example("connect_over_http.py", environ, "--watch", str(job["job_id"]))
    assert result.returncode == 0, result.stderr
    assert "export_dataset" in result.stdout and "2 prompts: manual_distillation, auto_distillation" in result.stdout
    assert f"project {project['id']} 'Watched'" in result.stdout
    assert f"job {job['job_id']} completed: 5 calls done, 0 failed" in result.stdout

    refused = run_example("connect_over_http.py", {**environ, "TREEDISTILL_TOKEN": "wrong-token-0123456789"})
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert f"Could not talk to {token_server}" in refused.stderr and "TREEDISTILL_TOKEN" in refused.stderr


@pytest.mark.anyio
async def test_json_configs_launch_the_server_they_describe(env, db_path, token_server):  # noqa: F811
    stdio, http = [], []
    for name, (servers_key, token_placeholder) in STDIO_CONFIGS.items():
        servers = json.loads((EXAMPLES / name).read_text())[servers_key]
        for entry in servers.values():
            (http if "url" in entry else stdio).append((entry, token_placeholder))
    assert len(stdio) == 4 and len(http) == 2
    assert sorted(entry["command"] for entry, _ in stdio) == ["/Users/you/.venvs/treedistill/bin/treedistill",
                                                              "uvx", "uvx", "uvx"]
    for entry, _ in stdio:
        assert entry.get("type", "stdio") == "stdio"
        assert installed_command(entry["command"], entry["args"]) == [*treedistill_command(), "serve"]
        assert {"OPENAI_API_KEY", "OPENAI_BASE_URL", "TREEDISTILL_MODEL"} <= set(entry["env"])

    desktop = stdio[0][0]  # all stdio entries launch the same command; start it once, with Claude Desktop's env
    command = installed_command(desktop["command"], desktop["args"])
    stand_in = {name: env[name] for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY")}  # the config's endpoint, faked
    environ = {**subprocess_env(env, db_path), **desktop["env"], **stand_in}
    async with Client(StdioServerParameters(command=command[0], args=command[1:], env=environ)) as client:
        assert CORE_TOOLS <= {tool.name for tool in (await client.list_tools()).tools}
        project = (await client.call_tool("create_project", {"name": "From config"})).structured_content
    assert (project["question_model"]["model"], project["answer_model"]["model"]) == ("deepseek-chat",
                                                                                       "deepseek-reasoner")

    port = token_server.rsplit(":", 1)[1].split("/")[0]
    for entry, placeholder in http:
        assert entry["url"] == f"http://127.0.0.1:{DEFAULT_HTTP_PORT}/mcp"
        assert entry["headers"]["Authorization"] == f"Bearer {placeholder}"
        async with http_client(entry["url"].replace(str(DEFAULT_HTTP_PORT), port), TOKEN) as client:
            assert CORE_TOOLS <= {tool.name for tool in (await client.list_tools()).tools}


def test_every_file_in_client_examples_is_exercised_and_listed():
    listed = (EXAMPLES / "README.md").read_text()
    files = sorted(str(path.relative_to(EXAMPLES)) for path in EXAMPLES.rglob("*")
                   if path.is_file() and path.name != "README.md" and "__pycache__" not in path.parts)
    exercised = {*STDIO_CONFIGS, "claude_code/add_treedistill.sh", "python/distill_over_stdio.py",
                 "python/connect_over_http.py"}
    assert set(files) == exercised
    assert not [name for name in files if f"`{name}`" not in listed]


@pytest.mark.anyio
async def test_claude_code_script_registers_working_servers(env, db_path, tmp_path, token_server):  # noqa: F811
    log = tmp_path / "claude-calls.jsonl"
    stub = tmp_path / "bin" / "claude"
    stub.parent.mkdir()
    stub.write_text(f"#!{sys.executable}\nimport json, sys\n"
                    f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")
    stub.chmod(0o755)
    environ = {**env, "PATH": f"{stub.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    script = str(EXAMPLES / "claude_code" / "add_treedistill.sh")
    missing_key = {k: v for k, v in environ.items() if k != "OPENAI_API_KEY"}
    refused = subprocess.run(["sh", script], env=missing_key, capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0 and "set OPENAI_API_KEY" in refused.stderr and not log.exists()

    subprocess.run(["sh", script], env=environ, check=True, timeout=30)
    subprocess.run(["sh", script, "http"], env={**environ, "TREEDISTILL_TOKEN": TOKEN, "TREEDISTILL_URL": token_server},
                   check=True, timeout=30)
    stdio_call, http_call = [json.loads(line) for line in log.read_text().splitlines()]
    assert stdio_call[:5] == ["mcp", "add", "treedistill", "--scope", "user"]
    separator = stdio_call.index("--")
    assert stdio_call[separator + 1:] == ["treedistill", "serve"]
    passed = dict(value.split("=", 1) for flag, value in zip(stdio_call[5:separator:2], stdio_call[6:separator:2])
                  if flag == "-e")
    assert passed == {name: env[name] for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "TREEDISTILL_MODEL")}
    assert http_call == ["mcp", "add", "--scope", "user", "--transport", "http", "treedistill-http", token_server,
                         "--header", f"Authorization: Bearer {TOKEN}"]

    command = installed_command(stdio_call[separator + 1], stdio_call[separator + 2:])
    launched = StdioServerParameters(command=command[0], args=command[1:],
                                     env={**subprocess_env(env, db_path), **passed})
    async with Client(launched) as client:
        assert CORE_TOOLS <= {tool.name for tool in (await client.list_tools()).tools}
    async with http_client(http_call[7], http_call[9].removeprefix("Authorization: Bearer ")) as client:
        assert CORE_TOOLS <= {tool.name for tool in (await client.list_tools()).tools}
