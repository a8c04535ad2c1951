"""The dataset card (README.md) of a Hugging Face datasets layout: a YAML header that `datasets` and the Hub
read (configs, splits, features, license, language, task categories, size category), then how the data was
made, from what the project knows.

Everything in the card comes from `CardFacts`; a new fact (like the prompt versions, guidance, question styles) is one
entry in `CardFacts.generation`, filled where the facts are gathered (`card_facts`). Nothing secret enters it:
endpoints are named only when they are well-known public APIs, and `check_no_secrets` refuses a card that
holds a secret value of the operator's environment, a URL with credentials or a local path.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from treedistill import __version__
from treedistill.server.errors import InvalidInput
from treedistill.server.models import ModelSpec, Project
from treedistill.server.store.card_facts import ProjectTotals, TreeSummary

CARD_DESCRIPTION_LIMIT = 20_000  # characters of the user's description in a card
GUIDANCE_SHOWN = 500  # characters of the project's guidance shown in a card
LICENSE_ID = re.compile(r"^[a-z0-9][a-z0-9.+-]{0,63}$")  # the Hub's license ids: apache-2.0, cc-by-4.0, other, ...
PUBLIC_ENDPOINTS = {  # hosts named in a card; any other endpoint is described, never named
    "api.openai.com": "OpenAI", "api.anthropic.com": "Anthropic", "api.deepseek.com": "DeepSeek",
    "openrouter.ai": "OpenRouter", "api.together.xyz": "Together AI", "api.groq.com": "Groq",
    "api.mistral.ai": "Mistral AI", "api.fireworks.ai": "Fireworks AI",
    "generativelanguage.googleapis.com": "Google Gemini", "dashscope.aliyuncs.com": "Alibaba DashScope",
}
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
EXPORT_FLAGS = {"answered_only": "--include-unanswered", "confirmed_only": "--confirmed-only",
                "min_rating": "--min-rating", "min_score": "--min-score", "per_tag_cap": "--per-tag-cap",
                "seed": "--seed", "test_ratio": "--test-ratio"}  # export filters as `treedistill export` flags
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"))


class SplitFile(BaseModel):
    split: str
    path_in_repo: str
    records: int
    bytes: int


class CardFacts(BaseModel):
    project: Project
    license: str
    description: str | None
    format: str
    reasoning: str
    system: str | None
    filters: dict[str, Any]
    splits: list[SplitFile]
    features: list[dict[str, Any]]  # the Parquet schema in the card's YAML form (see yaml_features)
    tree: TreeSummary
    totals: ProjectTotals
    generation: dict[str, str]  # label -> value: models, judge, reasoning rule, ... (add new facts here)
    exported_at: str


def check_card_text(license_id: str | None, description: str | None) -> None:
    """Refuse a license id the Hub would not take, or a description too long for a card."""
    if license_id is not None and not LICENSE_ID.match(license_id):
        raise InvalidInput(f"license must be a Hub license id such as 'apache-2.0', 'mit', 'cc-by-4.0' or 'other' "
                           f"(lowercase, no spaces), not {license_id[:80]!r}. Nothing was written.")
    if description is not None and len(description) > CARD_DESCRIPTION_LIMIT:
        raise InvalidInput(f"The card description has {len(description):,} characters; at most "
                           f"{CARD_DESCRIPTION_LIMIT:,} fit in a dataset card. Shorten it. Nothing was written.")


def endpoint_label(spec: ModelSpec) -> str:
    """Who serves a model, as a card may say it: a public API by name, anything else only by its kind."""
    host = (urlsplit(spec.base_url).hostname or "") if spec.base_url else ""
    if host in PUBLIC_ENDPOINTS:
        return PUBLIC_ENDPOINTS[host]
    if spec.provider == "anthropic":
        return "Anthropic API" if not host else "an Anthropic-compatible endpoint"
    return "an OpenAI-compatible endpoint"


def model_line(spec: ModelSpec) -> str:
    return f"`{spec.model}` ({spec.provider} provider, {endpoint_label(spec)})"


def generation_facts(project: Project, totals: ProjectTotals) -> dict[str, str]:
    """The card's "How it was made" list: models, rules, steering and the prompt versions used (`default:` or
    `custom:` plus the template's digest, with the rows each made). New facts go here."""
    facts = {"Question model (tags and questions)": model_line(project.question_model),
             "Teacher model (answers)": model_line(project.answer_model)}
    others = [model for model in totals.answer_models if model != project.answer_model.model]
    if others:
        facts["Answers also by"] = ", ".join(f"`{model}` ({totals.answer_models[model]})" for model in others)
    if totals.judge_model:
        facts["Judge model (scores)"] = f"`{totals.judge_model}`"
    facts["Prompt language"] = project.language
    facts["Reasoning required"] = "yes" if project.require_reasoning else "no (answers without a trace are kept)"
    if project.guidance:
        facts["Guidance (in every prompt)"] = _one_line(project.guidance)
    for label, style in (("Question styles", project.question_styles), ("Answer style", project.answer_style)):
        if style is not None:
            facts[label] = f"`{style.model_dump_json(exclude_defaults=True)}`"
    if totals.prompt_versions:
        facts["Prompt versions"] = "; ".join(
            f"{kind}: " + ", ".join(f"`{version}` ({count})" for version, count in used.items())
            for kind, used in totals.prompt_versions.items())
    return facts


def _one_line(text: str, limit: int = GUIDANCE_SHOWN) -> str:
    """`text` on one line of a Markdown list, cut at `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def size_category(records: int) -> str:
    return next((label for bound, label in SIZE_CATEGORIES if records < bound), "n>10M")


def yaml_features(schema: Any) -> list[dict[str, Any]]:
    """A pyarrow schema as the `dataset_info.features` list of a card's YAML header."""
    import pyarrow as pa

    def feature(name: str, kind: Any) -> dict[str, Any]:
        if pa.types.is_list(kind) or pa.types.is_large_list(kind):
            inner = kind.value_type
            if pa.types.is_struct(inner):
                return {"name": name, "list": [feature(f.name, f.type) for f in inner]}
            return {"name": name, "list": _dtype(inner)}
        if pa.types.is_struct(kind):
            return {"name": name, "struct": [feature(f.name, f.type) for f in kind]}
        return {"name": name, "dtype": _dtype(kind)}

    return [feature(field.name, field.type) for field in schema]


def _dtype(kind: Any) -> str:
    text = str(kind)
    return {"bool": "bool", "double": "float64", "float": "float32"}.get(text, text)


def card_header(facts: CardFacts) -> dict[str, Any]:
    """The YAML header: what `datasets.load_dataset(folder)` and the Hub's viewer read."""
    total = sum(split.records for split in facts.splits)
    return {
        "license": facts.license,
        "language": [facts.project.language],
        "pretty_name": facts.project.name,
        "task_categories": ["text-generation", "question-answering"],
        "tags": ["synthetic", "distillation", "reasoning", "treedistill"],
        "size_categories": [size_category(total)],
        "configs": [{"config_name": "default",
                     "data_files": [{"split": split.split, "path": split.path_in_repo} for split in facts.splits]}],
        "dataset_info": {
            "features": facts.features,
            "splits": [{"name": split.split, "num_bytes": split.bytes, "num_examples": split.records}
                       for split in facts.splits],
            "download_size": sum(split.bytes for split in facts.splits),
            "dataset_size": sum(split.bytes for split in facts.splits),
        },
    }


def render_card(facts: CardFacts) -> str:
    """The whole README.md: YAML header, then the card's sections."""
    import yaml  # only a card needs it: not loaded by every server start (tests/test_startup.py)

    header = yaml.safe_dump(card_header(facts), sort_keys=False, allow_unicode=True, width=120)
    project, tree, totals = facts.project, facts.tree, facts.totals
    lines = [f"---\n{header}---", "", f"# {project.name}", ""]
    if facts.description:
        lines += [facts.description.strip(), ""]
    lines += [f"A dataset distilled with [treedistill](https://github.com/treedistill/treedistill) {__version__} "
              f"from the topic **{project.topic}**: a tag tree grown from the topic, questions extracted for every "
              "leaf tag, and a teacher model's answer with its reasoning for each.", ""]
    lines += ["## Splits", "", "| split | records | file |", "|---|---|---|"]
    lines += [f"| {s.split} | {s.records:,} | `{s.path_in_repo}` |" for s in facts.splits]
    lines += ["", "## Records", "", f"- Format: `{facts.format}`", f"- Reasoning: {_reasoning_text(facts)}"]
    if facts.system:
        lines.append(f"- System prompt in every record: {_quoted(facts.system)}")
    lines += ["", "## How it was made", ""]
    lines += [f"- {label}: {value}" for label, value in facts.generation.items()]
    lines += ["", "## Tag tree", "", f"{tree.levels} level(s), {tree.tags:,} tags, {tree.leaves:,} leaf tags."]
    lines += [f"- {name} ({children} sub-tags)" if children else f"- {name}" for name, children in tree.outline]
    if tree.tags > len(tree.outline) and tree.outline:
        lines.append(f"- ... ({tree.tags - len(tree.outline):,} more tags)")
    lines += ["", "## Counts", "", f"- Questions in the project: {totals.questions:,}",
              f"- Answers in the project: {totals.answers:,}",
              f"- Records in this dataset: {sum(s.records for s in facts.splits):,}"]
    held_out = sum(s.records for s in facts.splits if s.split != "train")
    if held_out:
        lines.append(f"- Held out for evaluation: {held_out:,}")
    failed = ", ".join(f"{count:,} {kind}" for kind, count in totals.failed.items()) or "none"
    lines.append(f"- Model calls that failed for good: {failed}")
    if totals.reasoning_sources:
        lines.append("- Where the reasoning came from: " + ", ".join(
            f"{source} ({count:,})" for source, count in totals.reasoning_sources.items()))
    lines += ["", "## Judge scores", ""]
    if totals.scores:
        lines += ["| score | answers |", "|---|---|"] + [f"| {s} | {n:,} |" for s, n in totals.scores.items()]
    else:
        lines.append("No answer was scored by a judge model.")
    lines += ["", "## Export filters", ""]
    lines += [f"- {name}: `{value}`" for name, value in facts.filters.items()] or ["- none (every answered question)"]
    lines += ["", "## Cost and dates", "", f"- Tokens: {totals.input_tokens:,} input, {totals.output_tokens:,} output",
              f"- Cost: {_cost_text(totals)}", f"- Project created: {project.created_at}",
              f"- Answers written: {totals.first_answer or '-'} to {totals.last_answer or '-'}",
              f"- Exported: {facts.exported_at} by treedistill {__version__}"]
    lines += ["", "## Reproduce", "", "```sh", *reproduce_commands(facts), "```", "",
              "Keys and endpoints come from the environment (`OPENAI_API_KEY`, `OPENAI_BASE_URL`, ...); none is "
              "recorded here.", "", "## License", "", f"`{facts.license}`", ""]
    return "\n".join(lines)


def reproduce_commands(facts: CardFacts) -> list[str]:
    project, job = facts.project, facts.totals.last_job or {}
    distill = ["treedistill", "distill", project.name, "--model", project.question_model.model]
    if project.answer_model.model != project.question_model.model:
        distill += ["--answer-model", project.answer_model.model]
    for flag, key in (("--levels", "levels"), ("--tags", "tags_per_level"), ("--questions", "questions_per_tag")):
        if key in job:
            distill += [flag, str(job[key])]
    if project.language != "en":
        distill += ["--language", project.language]
    export = ["treedistill", "export", project.name, "--format", facts.format, "--reasoning", facts.reasoning,
              "--layout", "hf", "--license", facts.license]
    for name, value in facts.filters.items():
        if name in EXPORT_FLAGS:
            export += [EXPORT_FLAGS[name]] + ([] if isinstance(value, bool) else [str(value)])
    return [shlex.join(distill), shlex.join(export)]


def _reasoning_text(facts: CardFacts) -> str:
    if facts.format == "raw":
        return "a separate `reasoning` column"
    return {"think": "inside `<think>...</think>` before the answer (DeepSeek-R1 / Qwen3 layout)",
            "field": "a separate field (`reasoning` in alpaca, `reasoning_content` on the assistant turn)",
            "none": "left out (answers only)"}[facts.reasoning]


def _cost_text(totals: ProjectTotals) -> str:
    if totals.cost is None:
        return "unknown (no price known for the models)"
    text = f"${totals.cost:,.4f} (USD, the whole project)"
    return text + (f"; {totals.unpriced_calls:,} call(s) had no known price" if totals.unpriced_calls else "")


def _quoted(text: str) -> str:
    text = " ".join(text.split())
    return f"\"{text[:500]}{'...' if len(text) > 500 else ''}\""


def secret_values(environ: Mapping[str, str]) -> list[str]:
    """Values of the operator's environment that must never be published: keys, tokens, passwords."""
    return [value for name, value in environ.items() if SECRET_NAME.search(name) and len(value.strip()) >= 6]


def check_no_secrets(text: str, environ: Mapping[str, str], local_paths: Iterable[str]) -> None:
    """Refuse a card that would publish a secret of the environment, a URL with credentials or a local path."""
    for value in secret_values(environ):
        if value.strip() in text:
            raise InvalidInput("The dataset card would contain the value of a secret environment variable (a key or "
                               "token); check the description and the project's texts. Nothing was written.")
    if re.search(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", text, re.IGNORECASE):
        raise InvalidInput("The dataset card would contain a URL with a user name and password; remove it from the "
                           "description. Nothing was written.")
    for path in local_paths:
        if path and len(path) > 1 and path in text:
            raise InvalidInput("The dataset card would contain a local path of this machine (the database or export "
                               "folder); remove it from the description. Nothing was written.")
