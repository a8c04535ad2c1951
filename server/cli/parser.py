"""The `treedistill` argument parser: commands, options, their help, and the environment they read."""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from pydantic import BaseModel, ValidationError

from treedistill import __version__
from treedistill.server.config import (CONFIRM_COST_ENV, DEFAULT_CONFIRM_COST_ABOVE, DEFAULT_LEVELS, DEFAULT_MARGIN,
                                       DEFAULT_MAX_CONCURRENCY, DEFAULT_QUESTIONS_PER_TAG, DEFAULT_TAGS_PER_LEVEL,
                                       LARGE_PLAN_CALLS, MAX_CONCURRENCY_LIMIT, MAX_LEVELS, MAX_MARGIN, MAX_PER_LEVEL,
                                       MAX_TURNS)
from treedistill.server.models import AnswerStyle, QuestionStyles

DEFAULT_HTTP_PORT = 8765

DESCRIPTION = ("Distill fine-tuning datasets from a teacher model through a tag tree: grow tags, extract "
               "questions per leaf tag, have the teacher answer them, export the result.")

ENVIRONMENT = f"""\
environment:
  OPENAI_BASE_URL           OpenAI-compatible endpoint (OpenAI, DeepSeek, vLLM, Ollama, ...)
  OPENAI_API_KEY            its key (optional for a server on this machine)
  ANTHROPIC_API_KEY         Anthropic key (used when only Anthropic is configured,
  ANTHROPIC_BASE_URL          or with TREEDISTILL_PROVIDER=anthropic) and endpoint
  TREEDISTILL_MODEL         question model name, and the teacher's unless set below (--model)
  TREEDISTILL_ANSWER_MODEL  teacher model name (--answer-model)
  TREEDISTILL_PROVIDER      openai or anthropic, overriding the guess from the keys
  TREEDISTILL_ENDPOINTS     more endpoints model specs may use: URL=KEY_VARIABLE or URL, comma-separated
  TREEDISTILL_DB            database path (--db; default: treedistill.db in the user data dir)
  TREEDISTILL_TOKEN         bearer token for serve --http (--token shows it in the process list)
  TREEDISTILL_CONFIRM_COST_ABOVE
                            USD above which a plan needs confirming (--confirm-cost-above; {DEFAULT_CONFIRM_COST_ABOVE:g})
  TREEDISTILL_BATCH_POLL_SECONDS
                            seconds between looks at the batches in flight (10)
  TREEDISTILL_HEARTBEAT_TIMEOUT
                            seconds of silence before a process sharing the db is taken for dead (15)
  TREEDISTILL_ALLOW_ANY_EXPORT_PATH
                            1 lets MCP clients export outside the project's export directory
  HF_TOKEN                  Hugging Face token with write access, for push / push_to_hub
  HF_ENDPOINT               another Hub to push to (default https://huggingface.co)
Keys are read from the environment only; none is ever stored, logged or printed."""


# Each command's examples, shown in its --help (and all of them in `treedistill --help`); each one parses.
EXAMPLES: dict[str, list[str]] = {
    "distill": ['treedistill distill "Traditional Chinese Medicine" --levels 2 --tags 10 --questions 10',
                'treedistill distill "Chess" --estimate',
                'treedistill distill "Chess" --batch --confirm-large',
                'treedistill distill "Physics" --tree syllabus.md --guidance "High-school level, SI units"',
                'treedistill distill "Chess" --embedding-model text-embedding-3-small',
                'treedistill distill "Chess" --preference --rejected-model qwen2.5-0.5b-instruct --margin 3',
                'treedistill distill "Tides" --levels 1 --turns 3'],
    "progress": ["treedistill progress", "treedistill progress 3 --watch", "treedistill progress 3 --json"],
    "projects": ["treedistill projects", "treedistill projects --json"],
    "export": ['treedistill export "Chess" --format sharegpt --reasoning field',
               "treedistill export 1 --min-score 7 --test-ratio 0.1 --out chess.jsonl",
               'treedistill export "Chess" --format dpo --dpo-style trl --reasoning none',
               'treedistill export "Tides" --format openai --reasoning-turns last'],
    "serve": ["treedistill serve", "treedistill serve --http --port 8765 --token SECRET"],
    "doctor": ["treedistill doctor", "treedistill doctor --model gpt-4o-mini"],
    "review": ["treedistill review", "treedistill review --project 1 --no-browser"],
    "tree": ["treedistill tree import syllabus.md --project Physics --dry-run",
             "treedistill tree export --project Physics --format markdown --out syllabus.md"],
    "report": ["treedistill report Physics", "treedistill report 1 --tag 4 --near-duplicates --json"],
    "push": ["treedistill push Physics alice/physics-qa", "treedistill push 1 alice/physics-qa --public"],
    "eval": ["treedistill eval 2", "treedistill eval 3 --compare 2 --pass-mark 8 --json"],
}


def examples_text(*commands: str) -> str:
    lines = [f"  {example}" for command in commands for example in EXAMPLES.get(command, [])]
    return "examples:\n" + "\n".join(lines) + "\n\n" if lines else ""


class CommandLineParser(argparse.ArgumentParser):
    """argparse with a suggestion when a command or a choice is mistyped: `distil` -> did you mean 'distill'?"""

    def error(self, message: str) -> NoReturn:
        wrong = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if wrong:
            choices = re.findall(r"'([^']*)'", wrong.group(2))
            close = difflib.get_close_matches(wrong.group(1), choices, n=1)
            if close:
                message += f"; did you mean '{close[0]}'?"
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line. Global options (--db, --debug) work before or after the command."""
    parser = _parser(prog="treedistill")
    _global_options(parser, subcommand=False)
    parser.add_argument("--version", action="version", version=f"treedistill {__version__}",
                        help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, summary: str, description: str | None = None) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=description or _sentence(summary),
                                  **_parser_settings(name))
        _global_options(sub, subcommand=True)
        return sub

    cmd = command("serve", "run the MCP server (stdio, or --http)",
                  "Run the MCP server for a client (Claude Desktop, Claude Code, Cursor, VS Code, ...): over stdio "
                  "by default, or over streamable HTTP with --http. Logs go to stderr.")
    _engine_options(cmd)
    _model_options(cmd)
    cmd.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    cmd.add_argument("--host", default="127.0.0.1", help="address to bind with --http (default 127.0.0.1)")
    cmd.add_argument("--port", type=int, default=DEFAULT_HTTP_PORT,
                     help=f"port for --http (default {DEFAULT_HTTP_PORT}; 0 picks a free one)")
    cmd.add_argument("--token", help="bearer token clients must send (default $TREEDISTILL_TOKEN); "
                                     "required when --host is not a loopback address")
    cmd.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                     help="extra Host header value to accept, e.g. a reverse proxy's name (repeatable)")
    cmd.add_argument("--verbose", action="store_true", help="log requests and engine events to stderr")

    cmd = command("distill", "run a whole distillation in this terminal; rerun the same command to resume",
                  "Grow the tag tree, extract questions for every leaf tag and answer them, in this terminal. "
                  "The project is named after the topic and reused when it exists. Ctrl-C stops cleanly; the "
                  "same command resumes without paying twice for finished work.")
    _engine_options(cmd)
    _model_options(cmd)
    cmd.add_argument("topic", help="top-level topic; also the project name (an existing project is reused)")
    cmd.add_argument("--levels", type=_bounded(0, MAX_LEVELS), default=DEFAULT_LEVELS,
                     help=f"depth of the tag tree ({DEFAULT_LEVELS}); 0 grows nothing: questions for the tree's leaves "
                          "as they are")
    cmd.add_argument("--tree", metavar="FILE",
                     help="import this outline (markdown, text or json; see `tree import`) into the project, then "
                          "distill that tree as it is (like --levels 0)")
    cmd.add_argument("--tags", type=_bounded(1, MAX_PER_LEVEL), default=DEFAULT_TAGS_PER_LEVEL,
                     help=f"sub-tags per tag ({DEFAULT_TAGS_PER_LEVEL})")
    cmd.add_argument("--questions", type=_bounded(1, MAX_PER_LEVEL), default=DEFAULT_QUESTIONS_PER_TAG,
                     help=f"questions per leaf tag ({DEFAULT_QUESTIONS_PER_TAG})")
    cmd.add_argument("--concurrency", type=_bounded(1, MAX_CONCURRENCY_LIMIT),
                     help=f"model calls in flight, for a new project ({DEFAULT_MAX_CONCURRENCY})")
    cmd.add_argument("--no-answer", action="store_true", help="stop after the questions")
    cmd.add_argument("--turns", type=_bounded(1, MAX_TURNS), default=1,
                     help="turns per dialogue (1): N continues every answer with N-1 follow-ups written by the "
                          "question model playing the user, each answered by the teacher with the whole history")
    cmd.add_argument("--plain-answers", action="store_true",
                     help="keep answers without a reasoning trace (for a teacher that writes none)")
    cmd.add_argument("--language", choices=("en", "zh"), default="en", help="language of prompts and data (en)")
    cmd.add_argument("--embedding-model", metavar="NAME",
                     help="embedding model at the OpenAI-compatible endpoint: new questions that are paraphrases of "
                          "a tag's questions are dropped and more asked for (default: lexical checks only)")
    cmd.add_argument("--confirm-large", action="store_true",
                     help=f"allow plans above {LARGE_PLAN_CALLS:,} model calls or above the cost threshold "
                          "(--confirm-cost-above)")
    cmd.add_argument("--estimate", action="store_true",
                     help="only print the plan's calls, expected tokens and cost (online and batch) per kind of "
                          "call; calls no model and writes nothing")
    cmd.add_argument("--batch", action="store_true",
                     help="send the answer calls through the endpoint's batch API (half the price; results take "
                          "minutes to hours); the estimate prices them so")
    cmd.add_argument("--batch-size", type=_bounded(1, 50_000), help="with --batch: requests per batch (1000)")
    cmd.add_argument("--batch-wait", type=_bounded(0, 86_400, float), metavar="SECONDS",
                     help="with --batch: the longest a request waits for its batch to fill (120)")
    cmd.add_argument("--guidance", type=_text_or_file, metavar="TEXT|@FILE",
                     help="the project's guidance, put in every tag, question, answer and judge prompt (scope, "
                          "audience, what to avoid, tone); @FILE reads it from a UTF-8 file")
    cmd.add_argument("--question-styles", type=_setting(QuestionStyles), metavar="JSON|@FILE",
                     help='the project\'s question-style mix, e.g. \'{"types": {"multiple-choice": 3, "numeric": 1}, '
                          '"difficulties": {"exam level": 1}}\' ({} returns to the default)')
    cmd.add_argument("--answer-style", type=_setting(AnswerStyle), metavar="JSON|@FILE",
                     help='the project\'s answer style, e.g. \'{"max_words": 200, "formats": ["worked_example"]}\' '
                          "({} removes it)")
    cmd.add_argument("--preference", action="store_true",
                     help="also make a preference pair for every answer: a rival response judged against the "
                          "teacher's (export with --format dpo)")
    cmd.add_argument("--rejected-model", metavar="NAME",
                     help="with --preference: the rival's model on the question model's endpoint (default: the "
                          "question model)")
    cmd.add_argument("--margin", type=_bounded(1, MAX_MARGIN), default=DEFAULT_MARGIN,
                     help="with --preference: points (of 10) by which one response must lead for the pair to be "
                          f"kept ({DEFAULT_MARGIN})")
    cmd.add_argument("--plain", action="store_true", help="plain progress lines even on a terminal")

    cmd = command("progress", "show a job's progress, or the latest jobs",
                  "Show one job in detail, or the latest jobs one line each. Reads the database only: safe while "
                  "a server or a distill runs on it.")
    cmd.add_argument("job_id", nargs="?", type=int, metavar="JOB_ID", help="the job to show (default: latest jobs)")
    cmd.add_argument("--watch", action="store_true", help="follow the job until it ends")
    cmd.add_argument("--plain", action="store_true", help="plain lines even on a terminal (with --watch)")
    cmd.add_argument("--json", action="store_true", help="print JSON")

    cmd = command("projects", "list projects with their counts",
                  "List the projects with their tag, question, answer and token counts. Reads the database only.")
    cmd.add_argument("--json", action="store_true", help="print JSON")

    cmd = command("export", "write a project's answers as a fine-tuning file",
                  "Write a project's questions and answers as a fine-tuning file (alpaca, sharegpt, openai or "
                  "raw), or its preference pairs (dpo). Reads the database only.")
    cmd.add_argument("project", help="project id or name")
    cmd.add_argument("--format", choices=("alpaca", "sharegpt", "openai", "raw", "dpo"), default="alpaca",
                     help="record layout (alpaca); dpo: the kept preference pairs as chosen/rejected")
    cmd.add_argument("--dpo-style", choices=("llamafactory", "trl"), default="llamafactory",
                     help="with --format dpo: LLaMA-Factory's ranking layout or TRL's prompt/chosen/rejected "
                          "(llamafactory)")
    cmd.add_argument("--reasoning", choices=("think", "field", "none"), default="think",
                     help="think: <think>…</think> before the answer; field: a separate field; none (think)")
    cmd.add_argument("--reasoning-turns", choices=("all", "last"), default="all",
                     help="dialogues: reasoning in every assistant turn, or only the last (all)")
    cmd.add_argument("--out", help="output file (default: <db name>-exports/<project id>/<name>-<format>.jsonl beside the db)")
    cmd.add_argument("--file-format", choices=("jsonl", "json", "parquet"),
                     help="default: from --out's suffix (.json, .parquet), else jsonl")
    cmd.add_argument("--system", help="system prompt put in every record")
    cmd.add_argument("--test-ratio", type=_fraction, default=0.0, help="fraction for a test split (0)")
    cmd.add_argument("--split", choices=("train", "eval"), default="train",
                     help="train: all but held-out and decontaminated questions; eval: the held-out ones (train)")
    cmd.add_argument("--seed", type=int, help="shuffle seed")
    cmd.add_argument("--per-tag-cap", type=_positive(int), help="at most this many records per tag")
    cmd.add_argument("--min-rating", type=_bounded(1, 5), help="only answers rated at least this")
    cmd.add_argument("--min-score", type=_bounded(1, 10), help="only answers the judge scored at least this")
    cmd.add_argument("--confirmed-only", action="store_true", help="only confirmed answers")
    cmd.add_argument("--include-unanswered", action="store_true", help="also questions without an answer")
    cmd.add_argument("--dataset-info", action="store_true",
                     help="also write LLaMA-Factory's dataset_info.json (not with --format raw)")
    cmd.add_argument("--layout", choices=("file", "hf"), default="file",
                     help="hf: a Hugging Face datasets folder (--out names it): data/*.parquet and a README.md "
                          "dataset card (file)")
    cmd.add_argument("--license", help="with --layout hf: the card's license, a Hub id such as apache-2.0 (other)")
    cmd.add_argument("--description", help="with --layout hf: your description at the top of the card")
    cmd.add_argument("--json", action="store_true", help="print the report as JSON")

    cmd = command("push", "push a project's dataset layout to the Hugging Face Hub in one commit",
                  "Push a dataset layout written by `treedistill export PROJECT --layout hf` (its README.md card and "
                  "data/*.parquet) to a Hugging Face Hub dataset repository, created if needed (private unless "
                  "--public), in one commit. The token is read from HF_TOKEN only; HF_ENDPOINT picks another Hub. "
                  "Ctrl-C cancels before the commit: the Hub then has nothing of the push.")
    cmd.add_argument("project", help="project id or name")
    cmd.add_argument("repo_id", metavar="REPO_ID", help="the dataset repository, namespace/name (e.g. alice/sports-qa)")
    cmd.add_argument("--path", metavar="DIR", help="the layout folder (default: the project's layout written last)")
    cmd.add_argument("--public", action="store_true", help="create the repository public (default: private)")
    cmd.add_argument("--message", help="the commit's summary")

    cmd = command("doctor", "check the configured endpoint, model and key with one tiny call",
                  "Check the database path and make one tiny call per configured model; each line says ok or "
                  "what to fix. Never prints a key.")
    _model_options(cmd)

    from treedistill.server.cli.review import add_review_command
    from treedistill.server.cli.report import add_report_command
    from treedistill.server.cli.tree import add_tree_command

    add_tree_command(command, lambda sub: _global_options(sub, subcommand=True))

    _engine_options(add_review_command(command))
    add_report_command(command)
    from treedistill.server.cli.evaluation import add_eval_command

    add_eval_command(command)
    return parser


def _parser_settings(*commands: str) -> dict:
    # allow_abbrev=False: `--level 2` must be an error, not a silent `--levels 2`.
    return {"allow_abbrev": False, "epilog": examples_text(*commands) + ENVIRONMENT,
            "formatter_class": argparse.RawDescriptionHelpFormatter}


def _parser(**kwargs) -> argparse.ArgumentParser:
    return CommandLineParser(description=DESCRIPTION, **_parser_settings(*EXAMPLES), **kwargs)


def _sentence(summary: str) -> str:
    return summary[0].upper() + summary[1:] + "."


def _global_options(parser: argparse.ArgumentParser, *, subcommand: bool) -> None:
    """--db and --debug, on the top parser and on every command.

    Each parser gets its own actions (argparse `parents=` would share them, and a default set on one would
    leak into all). On commands the default is SUPPRESS, so a value given before the command survives
    unless the command repeats the option.
    """
    unset = {"default": argparse.SUPPRESS} if subcommand else {}
    parser.add_argument("--db", metavar="PATH", **({"default": None} | unset),
                        help="SQLite database path (default: $TREEDISTILL_DB or the user data dir)")
    parser.add_argument("--debug", action="store_true", **({"default": False} | unset),
                        help="show tracebacks for unexpected errors")


def _engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rpm", type=_positive(float), help="cap on model requests per minute, per endpoint")
    parser.add_argument("--tpm", type=_positive(float), help="cap on model tokens (in + out) per minute, per endpoint")
    parser.add_argument("--max-attempts", type=_positive(int), help="attempts per model call before it fails (6)")
    parser.add_argument("--retry-delay", type=_positive(float, zero=True),
                        help="base delay in seconds between retries, doubled each time (1.0)")
    parser.add_argument("--confirm-cost-above", type=_positive(float, zero=True), metavar="USD",
                        help="plans expected to cost more need --confirm-large / confirm_large=true "
                             f"(default ${CONFIRM_COST_ENV}, else {DEFAULT_CONFIRM_COST_ABOVE:g})")
    parser.add_argument("--log-file", metavar="PATH", help="also append the engine's log to this file: job start and "
                        "end, every retry and its reason, 429 pauses, failed items, the processes sharing the db")


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="NAME",
                        help="question model name (default $TREEDISTILL_MODEL); also the teacher's unless "
                             "--answer-model or $TREEDISTILL_ANSWER_MODEL names another")
    parser.add_argument("--answer-model", metavar="NAME",
                        help="teacher model name (default $TREEDISTILL_ANSWER_MODEL, else the question model)")


def _positive(kind: type, *, zero: bool = False) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < 0 or (value == 0 and not zero):
            raise argparse.ArgumentTypeError(f"must be {'zero or more' if zero else 'more than zero'}: {text}")
        return value

    return parse


def _bounded(low: float, high: float, number: type = int) -> Callable[[str], float]:
    """An argument type: a number (whole by default) between `low` and `high`."""
    def parse(text: str) -> float:
        try:
            value = number(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {'whole ' if number is int else ''}number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}: {text}")
        return value

    return parse


def _text_or_file(text: str) -> str:
    """An argument type: the text itself, or with a leading '@' the contents of that file."""
    if not text.startswith("@"):
        return text
    try:
        return Path(text[1:]).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise argparse.ArgumentTypeError(f"cannot read {text[1:]!r}: {exc}") from None


def _setting(model: type[BaseModel]) -> Callable[[str], BaseModel]:
    """An argument type: a JSON object (or @FILE holding one) valid for `model`."""
    def parse(text: str) -> BaseModel:
        try:
            return model.model_validate_json(_text_or_file(text))
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(part) for part in problem["loc"]) or "the value"
            raise argparse.ArgumentTypeError(f"{where}: {problem['msg']}") from None

    return parse


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 0.5:
        raise argparse.ArgumentTypeError(f"must be between 0 and 0.5: {text}")
    return value
