"""The `treedistill` command line: argument parsing, dispatch, and turning errors into one line and an exit code."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import sqlite3
import sys
from collections.abc import Mapping
from typing import Any

from treedistill.server.cli.progress import progress_view
from treedistill.server.config import database_path
from treedistill.server.errors import ConfirmationRequired, InvalidInput, NotFound, TreedistillError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_HTTP_PORT = 8765


def main(argv: list[str] | None = None) -> None:
    """Run one command and exit with its code: 0 ok, 1 failed, 2 usage or configuration error, 130 Ctrl-C."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        sys.exit(EXIT_USAGE)
    try:
        code = args.run(args, os.environ, argv)
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except ConfirmationRequired as exc:
        code = _fail(f"{exc} On the command line: --confirm-large.", EXIT_USAGE)
    except (InvalidInput, NotFound) as exc:
        code = _fail(str(exc), EXIT_USAGE)
    except TreedistillError as exc:
        code = _fail(str(exc), EXIT_FAILED)
    except sqlite3.Error as exc:
        code = _fail(f"database {database_path(args.db, os.environ)}: {exc}", EXIT_USAGE)
    except OSError as exc:
        code = _fail(str(exc), EXIT_USAGE)
    except Exception as exc:  # the edge of the program: one line, unless --debug asks for the traceback
        if args.debug:
            raise
        code = _fail(f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
                     EXIT_FAILED)
    sys.exit(code)


def _fail(message: str, code: int) -> int:
    print(f"treedistill: error: {message}", file=sys.stderr)
    return code


# -- commands ------------------------------------------------------------------------------------


def serve(args: argparse.Namespace, environ: Mapping[str, str], argv: list[str]) -> int:
    _log_to_stderr(logging.INFO if args.verbose else logging.WARNING)
    if not args.http:
        from treedistill.server.app import create_server

        create_server(args.db, environ, **_engine_options(args)).run("stdio")
        return EXIT_OK
    from treedistill.server.http.auth import check_token
    from treedistill.server.http.server import is_loopback, serve_http

    token = args.token or environ.get("TREEDISTILL_TOKEN") or None
    if token is None and not is_loopback(args.host):
        raise InvalidInput(f"Serving on {args.host} exposes the server beyond this machine: set TREEDISTILL_TOKEN "
                           "(or pass --token) to require a bearer token, or bind 127.0.0.1.")
    if token is not None:
        check_token(token)
    from treedistill.server.app import create_server

    server = create_server(args.db, environ, bearer_token=token, **_engine_options(args))

    def announce(url: str) -> None:
        auth = "bearer token required" if token else "no token: loopback only"
        print(f"treedistill: MCP over streamable HTTP at {url} ({auth}); Ctrl-C stops.", file=sys.stderr, flush=True)

    asyncio.run(serve_http(server, args.host, args.port, extra_hosts=args.allow_host, announce=announce))
    return EXIT_OK


def distill(args: argparse.Namespace, environ: Mapping[str, str], argv: list[str]) -> int:
    from treedistill.server.cli.distill import DistillRequest, run_distill
    from treedistill.server.engine import Engine

    _log_to_stderr(logging.ERROR)
    request = DistillRequest(topic=args.topic, levels=args.levels, tags_per_level=args.tags,
                             questions_per_tag=args.questions, answer=not args.no_answer,
                             concurrency=args.concurrency, language=args.language,
                             confirm_large=args.confirm_large, resume_command=shlex.join(["treedistill", *argv]))
    view = progress_view(args.plain)

    async def run() -> str:
        engine = await Engine(database_path(args.db, environ), environ, **_engine_options(args)).start()
        try:
            return await run_distill(engine, request, view)
        finally:
            await engine.close()

    outcome = asyncio.run(run())
    return {"completed": EXIT_OK, "interrupted": EXIT_INTERRUPTED}.get(outcome, EXIT_FAILED)


def progress(args: argparse.Namespace, environ: Mapping[str, str], argv: list[str]) -> int:
    from treedistill.server.cli.reports import show_progress, watch_progress

    path = database_path(args.db, environ)
    if not args.watch:
        show_progress(path, args.job_id, args.json)
        return EXIT_OK
    if args.job_id is None:
        raise InvalidInput("--watch needs a JOB_ID (treedistill progress lists the jobs).")
    final = watch_progress(path, args.job_id, progress_view(args.plain))
    return EXIT_OK if final.status == "completed" else EXIT_FAILED


def projects(args: argparse.Namespace, environ: Mapping[str, str], argv: list[str]) -> int:
    from treedistill.server.cli.reports import show_projects

    show_projects(database_path(args.db, environ), args.json)
    return EXIT_OK


def export(args: argparse.Namespace, environ: Mapping[str, str], argv: list[str]) -> int:
    from treedistill.server.cli.export import export_project, report_lines
    from treedistill.server.export.writer import ExportOptions

    options = ExportOptions(format=args.format, reasoning=args.reasoning, file_format=args.file_format,
                            system=args.system, answered_only=not args.include_unanswered,
                            confirmed_only=args.confirmed_only, min_rating=args.min_rating,
                            min_score=args.min_score, per_tag_cap=args.per_tag_cap, seed=args.seed,
                            test_ratio=args.test_ratio, dataset_info=args.dataset_info, preview=0)
    report = asyncio.run(export_project(database_path(args.db, environ), args.project, options, args.out))
    print(report.model_dump_json(indent=2) if args.json else "\n".join(report_lines(report)))
    return EXIT_OK


def doctor(args: argparse.Namespace, environ: Mapping[str, str], argv: list[str]) -> int:
    from treedistill.server.cli.doctor import run_doctor

    def report(ok: bool, message: str) -> None:
        print(f"{'ok  ' if ok else 'FAIL'}  {message}", flush=True)

    healthy = asyncio.run(run_doctor(environ, database_path(args.db, environ), report))
    print("All checks passed." if healthy else "Some checks failed: fix the lines marked FAIL.")
    return EXIT_OK if healthy else EXIT_FAILED


# -- parsing -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=argparse.SUPPRESS,
                        help="SQLite database path (default: $TREEDISTILL_DB or the user data dir)")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks for unexpected errors")
    engine = argparse.ArgumentParser(add_help=False)
    engine.add_argument("--rpm", type=_positive(float), help="cap on model requests per minute, per endpoint")
    engine.add_argument("--tpm", type=_positive(float), help="cap on model tokens (in + out) per minute, per endpoint")
    engine.add_argument("--max-attempts", type=_positive(int), help="attempts per model call before it fails (6)")
    engine.add_argument("--retry-delay", type=_positive(float, zero=True),
                        help="base delay in seconds between retries, doubled each time (1.0)")

    parser = argparse.ArgumentParser(
        prog="treedistill", parents=[common],
        description="Distill fine-tuning datasets from a teacher model through a tag tree.")
    parser.set_defaults(db=None, debug=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    cmd = commands.add_parser("serve", parents=[common, engine], help="run the MCP server (stdio, or --http)")
    cmd.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    cmd.add_argument("--host", default="127.0.0.1", help="address to bind with --http (default 127.0.0.1)")
    cmd.add_argument("--port", type=int, default=DEFAULT_HTTP_PORT,
                     help=f"port for --http (default {DEFAULT_HTTP_PORT}; 0 picks a free one)")
    cmd.add_argument("--token", help="bearer token clients must send (default $TREEDISTILL_TOKEN); "
                                     "required when --host is not a loopback address")
    cmd.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                     help="extra Host header value to accept, e.g. a reverse proxy's name (repeatable)")
    cmd.add_argument("--verbose", action="store_true", help="log requests and engine events to stderr")
    cmd.set_defaults(run=serve)

    cmd = commands.add_parser("distill", parents=[common, engine],
                              help="run a whole distillation in this terminal; rerun the same command to resume")
    cmd.add_argument("topic", help="top-level topic; also the project name (an existing project is reused)")
    cmd.add_argument("--levels", type=_bounded(1, 5), default=2, help="depth of the tag tree (2)")
    cmd.add_argument("--tags", type=_bounded(1, 100), default=10, help="sub-tags per tag (10)")
    cmd.add_argument("--questions", type=_bounded(1, 100), default=10, help="questions per leaf tag (10)")
    cmd.add_argument("--concurrency", type=_bounded(1, 512), help="model calls in flight, for a new project (5)")
    cmd.add_argument("--no-answer", action="store_true", help="stop after the questions")
    cmd.add_argument("--language", choices=("en", "zh"), default="en", help="language of prompts and data (en)")
    cmd.add_argument("--confirm-large", action="store_true", help="allow plans above 20,000 model calls")
    cmd.add_argument("--plain", action="store_true", help="plain progress lines even on a terminal")
    cmd.set_defaults(run=distill)

    cmd = commands.add_parser("progress", parents=[common], help="show a job's progress, or the latest jobs")
    cmd.add_argument("job_id", nargs="?", type=int, metavar="JOB_ID", help="the job to show (default: latest jobs)")
    cmd.add_argument("--watch", action="store_true", help="follow the job until it ends")
    cmd.add_argument("--plain", action="store_true", help="plain lines even on a terminal (with --watch)")
    cmd.add_argument("--json", action="store_true", help="print JSON")
    cmd.set_defaults(run=progress)

    cmd = commands.add_parser("projects", parents=[common], help="list projects with their counts")
    cmd.add_argument("--json", action="store_true", help="print JSON")
    cmd.set_defaults(run=projects)

    cmd = commands.add_parser("export", parents=[common], help="write a project's answers as a fine-tuning file")
    cmd.add_argument("project", help="project id or name")
    cmd.add_argument("--format", choices=("alpaca", "sharegpt", "openai", "raw"), default="alpaca",
                     help="record layout (alpaca)")
    cmd.add_argument("--reasoning", choices=("think", "field", "none"), default="think",
                     help="think: <think>…</think> before the answer; field: a separate field; none (think)")
    cmd.add_argument("--out", help="output file (default: exports/<project id>/<name>-<format>.jsonl beside the db)")
    cmd.add_argument("--file-format", choices=("jsonl", "json"), help="default: from --out's suffix, else jsonl")
    cmd.add_argument("--system", help="system prompt put in every record")
    cmd.add_argument("--test-ratio", type=_fraction, default=0.0, help="fraction for a test split (0)")
    cmd.add_argument("--seed", type=int, help="shuffle seed")
    cmd.add_argument("--per-tag-cap", type=_positive(int), help="at most this many records per tag")
    cmd.add_argument("--min-rating", type=_bounded(1, 5), help="only answers rated at least this")
    cmd.add_argument("--min-score", type=_bounded(1, 10), help="only answers the judge scored at least this")
    cmd.add_argument("--confirmed-only", action="store_true", help="only confirmed answers")
    cmd.add_argument("--include-unanswered", action="store_true", help="also questions without an answer")
    cmd.add_argument("--dataset-info", action="store_true", help="also write LLaMA-Factory's dataset_info.json")
    cmd.add_argument("--json", action="store_true", help="print the report as JSON")
    cmd.set_defaults(run=export)

    cmd = commands.add_parser("doctor", parents=[common],
                              help="check the configured endpoint, model and key with one tiny call")
    cmd.set_defaults(run=doctor)
    return parser


def _engine_options(args: argparse.Namespace) -> dict[str, Any]:
    chosen = {"requests_per_minute": args.rpm, "tokens_per_minute": args.tpm, "max_attempts": args.max_attempts,
              "retry_base_delay": args.retry_delay}
    return {name: value for name, value in chosen.items() if value is not None}


def _positive(kind: type, *, zero: bool = False):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < 0 or (value == 0 and not zero):
            raise argparse.ArgumentTypeError(f"must be {'zero or more' if zero else 'more than zero'}: {text}")
        return value

    return parse


def _bounded(low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}: {text}")
        return value

    return parse


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 0.5:
        raise argparse.ArgumentTypeError(f"must be between 0 and 0.5: {text}")
    return value


def _log_to_stderr(level: int) -> None:
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")


if __name__ == "__main__":
    main()
