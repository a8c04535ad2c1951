"""One home per rule: the job-shape bounds and defaults live in server/config.py, and when one changes there,
every surface follows: the tools' schemas, the prompts' arguments, the command line and the engine."""

from __future__ import annotations

import json
import subprocess
import sys

# Run in a fresh interpreter: the constants are patched before any surface is imported, as an edit of config.py
# would make them. It prints what each surface says about the job's shape.
SURFACES = r'''
import asyncio, inspect, json, sys
from treedistill.server import config
config.MAX_LEVELS, config.MAX_PER_LEVEL = 7, 60
config.DEFAULT_LEVELS, config.DEFAULT_TAGS_PER_LEVEL, config.DEFAULT_QUESTIONS_PER_TAG = 3, 4, 6

from mcp.client import Client
from treedistill.server.app import create_server
from treedistill.server.cli.parser import build_parser
from treedistill.server.engine import Engine


async def mcp_surfaces():
    async with Client(create_server(sys.argv[1], {"TREEDISTILL_MODEL": "m", "OPENAI_API_KEY": "k"})) as client:
        tool = next(t for t in (await client.list_tools()).tools if t.name == "auto_distill")
        text = (await client.get_prompt("auto_distillation", {"topic": "Chess"})).messages[0].content.text
    shape = {name: {k: tool.input_schema["properties"][name].get(k) for k in ("default", "maximum")}
             for name in ("levels", "tags_per_level", "questions_per_tag")}
    return shape, text


shape, prompt_text = asyncio.run(mcp_surfaces())
distill = build_parser().parse_args(["distill", "Chess"])
levels_help = next(a for a in build_parser()._subparsers._group_actions[0].choices["distill"]._actions
                   if "--levels" in a.option_strings)
engine = {inspect.signature(method).parameters[param].default
          for method in (Engine.auto_distill, Engine.estimate_distill, Engine.plan_confirmation)
          for param in ("levels", "tags_per_level", "questions_per_tag")}
rejected = []
for flag, value in (("--levels", "8"), ("--tags", "61"), ("--questions", "61")):
    try:
        build_parser().parse_args(["distill", "Chess", flag, value])
    except SystemExit:
        rejected.append(flag)
print(json.dumps({"tool": shape, "prompt_plan": "levels=3, tags_per_level=4" in prompt_text
                  and "questions_per_tag=6" in prompt_text,
                  "cli": [distill.levels, distill.tags, distill.questions], "cli_help": levels_help.help,
                  "cli_rejects": rejected, "engine": sorted(engine)}))
'''


def test_a_changed_bound_or_default_reaches_every_surface(tmp_path):
    run = subprocess.run([sys.executable, "-c", SURFACES, str(tmp_path / "t.db")], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.splitlines()[-1])
    assert seen["tool"] == {"levels": {"default": 3, "maximum": 7}, "tags_per_level": {"default": 4, "maximum": 60},
                            "questions_per_tag": {"default": 6, "maximum": 60}}
    assert seen["prompt_plan"] is True
    assert seen["cli"] == [3, 4, 6] and seen["cli_help"].startswith("depth of the tag tree (3);")
    assert seen["cli_rejects"] == ["--levels", "--tags", "--questions"]
    assert seen["engine"] == [3, 4, 6]
