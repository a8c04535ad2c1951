"""MCP completions: suggestions for the guides' (prompts') arguments and the resource templates' project_id."""

from __future__ import annotations

from mcp_types import Completion, CompletionArgument, CompletionContext, PromptReference, ResourceTemplateReference

from treedistill.server.engine import Engine

MAX_VALUES = 100  # the protocol's limit per response
PROMPT_CHOICES = {
    "language": ["en", "zh"],
    "levels": ["1", "2", "3", "4", "5"],
    "tags_per_level": ["5", "10", "20", "30"],
    "questions_per_tag": ["5", "10", "20", "50"],
    "max_concurrency": ["1", "5", "10", "20", "50"],
}


def _completion(values: list[str]) -> Completion:
    return Completion(values=values[:MAX_VALUES], total=len(values), has_more=len(values) > MAX_VALUES)


def complete(engine: Engine | None, ref: PromptReference | ResourceTemplateReference, argument: CompletionArgument,
             context: CompletionContext | None) -> Completion:
    """Values for `argument`, filtered by what the user has typed so far (`argument.value`)."""
    typed = argument.value.strip()
    if isinstance(ref, ResourceTemplateReference):
        if argument.name != "project_id" or engine is None:
            return _completion([])
        needle = typed.casefold()
        # By id (what the URI needs) or by name/topic: typing "chem" offers the ids of chemistry projects.
        return _completion([str(p.id) for p in engine.list_projects()
                            if str(p.id).startswith(typed) or needle in f"{p.name}\n{p.topic}".casefold()])
    if argument.name == "topic":
        names = [] if engine is None else [name for p in engine.list_projects() for name in (p.name, p.topic)]
        return _completion([name for name in dict.fromkeys(names) if name.casefold().startswith(typed.casefold())])
    return _completion([value for value in PROMPT_CHOICES.get(argument.name, []) if value.startswith(typed)])
