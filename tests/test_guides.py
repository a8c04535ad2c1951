"""MCP prompts that guide an assistant through a distillation, read through the SDK client in both eras."""

from __future__ import annotations

import re

import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

pytestmark = pytest.mark.anyio

TOOL_CALL = re.compile(r"\b([a-z]+(?:_[a-z]+)+)\(")


async def test_prompts_are_listed_with_their_arguments(client):
    prompts = {prompt.name: prompt for prompt in (await client.list_prompts()).prompts}
    assert set(prompts) == {"manual_distillation", "auto_distillation"}
    manual = prompts["manual_distillation"]
    assert manual.title == "Manual distillation, step by step"
    arguments = {argument.name: argument for argument in manual.arguments}
    assert list(arguments) == ["topic", "language", "levels", "tags_per_level", "questions_per_tag"]
    assert arguments["topic"].required and not arguments["levels"].required
    assert all(argument.description for argument in manual.arguments)


async def test_manual_guide_walks_through_every_step_with_real_tools(client):
    result = await client.get_prompt("manual_distillation", {"topic": "Sports", "levels": "3", "tags_per_level": "4",
                                                             "questions_per_tag": "6", "language": "zh"})
    assert [message.role for message in result.messages] == ["user"]
    text = result.messages[0].content.text
    assert 'create_project(name="Sports", language="zh")' in text
    assert "generate_tags(project_id, count=4)" in text and "3 level(s) deep" in text
    assert "extract_questions(project_id, tag_id=<leaf id>,\n   count=6)" in text
    steps = re.findall(r"^(\d)\. ", text, re.M)
    assert steps == [str(n) for n in range(1, 8)]
    tools = {tool.name for tool in (await client.list_tools()).tools}
    named = set(TOOL_CALL.findall(text))
    assert {"create_project", "generate_tags", "extract_questions", "answer_question", "export_dataset"} <= named
    assert named <= tools, named - tools


async def test_auto_guide_plans_the_job_and_names_real_tools(client):
    result = await client.get_prompt("auto_distillation", {"topic": "Chess", "levels": "2", "tags_per_level": "5",
                                                           "questions_per_tag": "4", "max_concurrency": "8"})
    text = result.messages[0].content.text
    assert "about 25 leaf tags and\n   100 questions" in text
    assert "max_concurrency=8" in text and "get_progress(job_id, wait_seconds=60)" in text
    tools = {tool.name for tool in (await client.list_tools()).tools}
    assert set(TOOL_CALL.findall(text)) <= tools


async def test_auto_guide_shows_the_estimate_before_it_starts_a_job(client):
    """The first auto_distill the guide calls is estimate_only (no model called), and the person sees the calls
    and the cost before the job starts; confirm_large only after the person said yes."""
    text = (await client.get_prompt("auto_distillation", {"topic": "Chess"})).messages[0].content.text
    calls = re.findall(r"auto_distill(\([^)]*\))?", text)
    assert calls[0] == "(project_id, levels=2, tags_per_level=10,\n   questions_per_tag=10, estimate_only=true)"
    estimate_at, start_at = text.index("estimate_only=true"), text.index("without estimate_only")
    assert estimate_at < text.index("Show me the calls and the cost, and wait for my go-ahead") < start_at
    assert "pass\n   confirm_large=true only when I said yes" in text


async def test_out_of_range_arguments_are_refused_as_invalid_params(client):
    with pytest.raises(MCPError) as refused:
        await client.get_prompt("manual_distillation", {"topic": "Sports", "levels": "9"})
    assert refused.value.error.code == INVALID_PARAMS
    assert refused.value.error.message == ("Invalid arguments for manual_distillation:\n"
                                           "- levels: Input should be less than or equal to 5 (got \"9\")")


async def test_an_unknown_prompt_is_invalid_params_naming_the_prompts(client):
    with pytest.raises(MCPError) as refused:
        await client.get_prompt("test_simple_prompt", {})
    assert refused.value.error.code == INVALID_PARAMS
    assert refused.value.error.message == ("Unknown prompt 'test_simple_prompt'; the prompts are: "
                                           "manual_distillation, auto_distillation")
