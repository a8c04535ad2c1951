"""The `treedistill` command line: dispatch, and turning errors into one line and an exit code."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import sqlite3
import sys
from collections.abc import Callable, Mapping
from typing import Any

from treedistill.server.cli.parser import DEFAULT_HTTP_PORT, build_parser
from treedistill.server.config import database_path
from treedistill.server.errors import (ConfirmationRequired, CostAboveThreshold, InvalidInput, NotFound,
                                       TreedistillError)

__all__ = ["DEFAULT_HTTP_PORT", "build_parser", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_BROKEN_PIPE = 141  # what a shell reports for a process killed by SIGPIPE, as `yes | head -1` does
Command = Callable[[argparse.Namespace, Mapping[str, str], list[str]], int]


def main(argv: list[str] | None = None) -> None:
    """Run one command and exit with its code: 0 ok, 1 failed, 2 usage or configuration error, 130 Ctrl-C,
    141 when the reader of stdout went away (`treedistill progress --json | head -1`)."""
    try:
        try:
            code = _run(sys.argv[1:] if argv is None else argv)
        finally:
            sys.stdout.flush()  # a reader that went away shows here at the latest, not at interpreter exit
    except BrokenPipeError:
        code = _discard_stdout()
    sys.exit(code)


def _run(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS[args.command](args, os.environ, argv)
    except BrokenPipeError:
        raise
    except BaseException as exc:  # the edge of the program: one line, unless --debug asks for the traceback
        if args.debug and not isinstance(exc, (KeyboardInterrupt, TreedistillError)):
            raise
        return _report(_innermost(exc), args)


def _innermost(exc: BaseException) -> BaseException:
    """The first real error inside exception groups (the MCP server's task groups wrap what went wrong)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


NEXT_STEP = {  # how a person at the terminal finds the right id, added to a NotFound raised with the id alone
    "project": "`treedistill projects` lists them",
    "job": "`treedistill progress` lists the latest jobs",
    "tag": "`treedistill tree export` shows the tree",
}


def _report(exc: BaseException, args: argparse.Namespace) -> int:
    """Say what went wrong in one line and return the exit code."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, CostAboveThreshold):
        return _fail(f"{exc.summary}: rerun with --confirm-large to start it (or raise --confirm-cost-above), or ask "
                     "for less; --estimate shows the estimate per kind of call.", EXIT_USAGE)
    if isinstance(exc, ConfirmationRequired):
        from treedistill.server.config import LARGE_PLAN_CALLS

        # The engine's message names the MCP argument (confirm_large=true); say it the command line's way.
        return _fail(f"This plan makes more than {LARGE_PLAN_CALLS:,} model calls: rerun with --confirm-large to "
                     "start it, or ask for less (--levels, --tags, --questions).", EXIT_USAGE)
    if isinstance(exc, NotFound):
        return _fail(exc.with_next_step(NEXT_STEP), EXIT_USAGE)
    if isinstance(exc, InvalidInput):
        return _fail(str(exc), EXIT_USAGE)
    if isinstance(exc, TreedistillError):
        return _fail(str(exc), EXIT_FAILED)
    if isinstance(exc, sqlite3.Error):
        return _fail(f"database {database_path(args.db, os.environ)}: {exc}", EXIT_USAGE)
    if isinstance(exc, OSError):
        return _fail(str(exc), EXIT_USAGE)
    if isinstance(exc, SystemExit):
        raise exc
    return _fail(f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", EXIT_FAILED)


def _fail(message: str, code: int) -> int:
    print(f"treedistill: error: {message}", file=sys.stderr)
    return code


def _discard_stdout() -> int:
    """Point stdout at /dev/null so that nothing more (not even the final flush) hits the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is no file (an embedding program's); nothing left to protect
        pass
    return EXIT_BROKEN_PIPE


# -- commands ------------------------------------------------------------------------------------


def serve(args: argparse.Namespace, environ: Mapping[str, str], argv: list[str]) -> int:
    _configure_logging(logging.INFO if args.verbose else logging.WARNING, args.log_file)
    environ = with_models(args, environ)
    path = database_path(args.db, environ)
    if not args.http:
        from treedistill.server.app import create_server
        from treedistill.server.cli.serve import run_stdio

        server = create_server(path, environ, **_engine_options(args))
        if sys.stdin.isatty():  # a person started it by hand: say what it serves and how to stop it
            from treedistill.server.cli.doctor import setup_summary

            print(f"treedistill serve: {setup_summary(path, environ)}; MCP over stdio, waiting for a client "
                  "(Ctrl-C stops).", file=sys.stderr, flush=True)
        run_stdio(server)
        return EXIT_OK
    from treedistill.server.cli.doctor import setup_summary
    from treedistill.server.http.auth import check_token
    from treedistill.server.http.server import is_loopback, serve_http, ui_url

    if args.token:
        print("treedistill: warning: --token shows the token to every user of this machine (ps, /proc); set "
              "TREEDISTILL_TOKEN in the server's environment instead.", file=sys.stderr, flush=True)
    token = args.token or environ.get("TREEDISTILL_TOKEN") or None
    if token is None and not is_loopback(args.host):
        raise InvalidInput(f"Serving on {args.host} exposes the server beyond this machine: set TREEDISTILL_TOKEN "
                           "(or pass --token) to require a bearer token, or bind 127.0.0.1.")
    if token is not None:
        check_token(token)
    from treedistill.server.app import create_server

    server = create_server(path, environ, bearer_token=token, **_engine_options(args))

    def announce(url: str) -> None:
        auth = "bearer token required" if token else "no token: loopback only"
        print(f"treedistill: MCP over streamable HTTP at {url} ({auth}); review app at {ui_url(url)}; "
              f"{setup_summary(path, environ)}; Ctrl-C stops.", file=sys.stderr, flush=True)

    asyncio.run(serve_http(server, args.host, args.port, extra_hosts=args.allow_host, announce=announce))
    return EXIT_OK


def distill(args: argparse.Namespace, environ: Mapping[str, str], argv: list[str]) -> int:
    from treedistill.server.cli.distill import DistillRequest, run_distill
    from treedistill.server.cli.progress import progress_view
    from treedistill.server.engine import Engine

    _configure_logging(logging.ERROR, args.log_file)  # the progress bars own the terminal
    environ = with_models(args, environ)
    tree_outline = None
    if args.tree:
        from treedistill.server.cli.tree import checked_outline

        tree_outline = checked_outline(args.tree)
    request = DistillRequest(topic=args.topic, levels=0 if args.tree else args.levels, tags_per_level=args.tags,
                             questions_per_tag=args.questions, answer=not args.no_answer,
                             concurrency=args.concurrency, language=args.language,
                             confirm_large=args.confirm_large, resume_command=shlex.join(["treedistill", *argv]),
                             model=args.model, answer_model=args.answer_model,
                             require_reasoning=not args.plain_answers, batch=args.batch,
                             batch_size=args.batch_size, batch_wait=args.batch_wait, tree=tree_outline,
                             guidance=args.guidance, question_styles=args.question_styles,
                             answer_style=args.answer_style, embedding_model=args.embedding_model,
                             preference=args.preference, rejected_model=args.rejected_model, margin=args.margin,
                             turns=args.turns)
    if args.estimate:
        from treedistill.server.cli.distill import estimate_lines, planned_project
        from treedistill.server.engine import estimate_top_up

        path = database_path(args.db, environ)
        estimate = estimate_top_up(path, planned_project(path, request, environ), request.params, environ,
                                   request.tree)
        print("\n".join(estimate_lines(estimate)))
        return EXIT_OK
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
    from treedistill.server.cli.progress import progress_view
    from treedistill.server.cli.reports import show_progress, watch_progress

    path = database_path(args.db, environ)
    if not args.watch:
        show_progress(path, args.job_id, args.json, environ)
        return EXIT_OK
    if args.job_id is None:
        raise InvalidInput("--watch needs a JOB_ID (treedistill progress lists the jobs).")
    final = watch_progress(path, args.job_id, progress_view(args.plain), environ)
    return EXIT_OK if final.status == "completed" else EXIT_FAILED


def projects(args: argparse.Namespace, environ: Mapping[str, str], argv: list[str]) -> int:
    from treedistill.server.cli.reports import show_projects

    show_projects(database_path(args.db, environ), args.json, environ)
    return EXIT_OK


def export(args: argparse.Namespace, environ: Mapping[str, str], argv: list[str]) -> int:
    from treedistill.server.cli.export import empty_export_warning, export_project, report_lines
    from treedistill.server.export.writer import ExportOptions

    options = ExportOptions(format=args.format, reasoning=args.reasoning, dpo_style=args.dpo_style,
                            reasoning_turns=args.reasoning_turns,
                            file_format=args.file_format,
                            system=args.system, answered_only=not args.include_unanswered,
                            confirmed_only=args.confirmed_only, min_rating=args.min_rating,
                            min_score=args.min_score, per_tag_cap=args.per_tag_cap, seed=args.seed,
                            test_ratio=args.test_ratio, dataset_info=args.dataset_info, preview=0, split=args.split,
                            layout=args.layout, license=args.license, description=args.description)
    report, project = asyncio.run(export_project(database_path(args.db, environ), args.project, options, args.out,
                                                 environ))
    print(report.model_dump_json(indent=2) if args.json else "\n".join(report_lines(report)))
    if report.record_count == 0:
        print(f"treedistill: warning: {empty_export_warning(project, options)}", file=sys.stderr)
    return EXIT_OK


def doctor(args: argparse.Namespace, environ: Mapping[str, str], argv: list[str]) -> int:
    from treedistill.server.cli.doctor import run_doctor

    def report(ok: bool, message: str) -> None:
        print(f"{'ok  ' if ok else 'FAIL'}  {message}", flush=True)

    environ = with_models(args, environ)
    healthy = asyncio.run(run_doctor(environ, database_path(args.db, environ), report))
    print("All checks passed." if healthy else "Some checks failed: fix the lines marked FAIL.")
    return EXIT_OK if healthy else EXIT_FAILED


def review(args: argparse.Namespace, environ: Mapping[str, str], argv: list[str]) -> int:
    from treedistill.server.cli.review import run_review

    _configure_logging(logging.WARNING, args.log_file)
    return run_review(args, environ, _engine_options(args), DEFAULT_HTTP_PORT)


def tree(args: argparse.Namespace, environ: Mapping[str, str], argv: list[str]) -> int:
    from treedistill.server.cli.tree import run_tree

    for line in run_tree(args, database_path(args.db, environ), environ):
        print(line)
    return EXIT_OK


def report(args: argparse.Namespace, environ: Mapping[str, str], argv: list[str]) -> int:
    from treedistill.server.cli.report import run_report

    return run_report(args, environ)


def evaluation(args: argparse.Namespace, environ: Mapping[str, str], argv: list[str]) -> int:
    from treedistill.server.cli.evaluation import run_eval

    return run_eval(args, environ)


def push(args: argparse.Namespace, environ: Mapping[str, str], argv: list[str]) -> int:
    from treedistill.server.cli.push import run_push

    state = run_push(database_path(args.db, environ), args.project, args.repo_id, not args.public, args.path,
                     args.message, environ, lambda line: print(line, flush=True))
    if state.status == "completed":
        print(f"Pushed {len(state.files)} files to {state.repo_id} in one commit: {state.commit_url}")
        return EXIT_OK
    if state.status == "cancelled":
        print(f"treedistill: {state.message}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return _fail(state.error or state.message, EXIT_FAILED)


COMMANDS: dict[str, Command] = {"serve": serve, "distill": distill, "progress": progress, "projects": projects,
                                "export": export, "push": push, "doctor": doctor, "review": review, "tree": tree,
                                "report": report, "eval": evaluation}


def with_models(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment with --model / --answer-model in place of TREEDISTILL_MODEL / TREEDISTILL_ANSWER_MODEL."""
    chosen = {"TREEDISTILL_MODEL": getattr(args, "model", None),
              "TREEDISTILL_ANSWER_MODEL": getattr(args, "answer_model", None)}
    return {**environ, **{name: value for name, value in chosen.items() if value}}


def _engine_options(args: argparse.Namespace) -> dict[str, Any]:
    chosen = {"requests_per_minute": args.rpm, "tokens_per_minute": args.tpm, "max_attempts": args.max_attempts,
              "retry_base_delay": args.retry_delay, "confirm_cost_above": args.confirm_cost_above}
    role = args.command + (" --http" if getattr(args, "http", False) else "")  # shown in the workers list
    return {"role": role, **{name: value for name, value in chosen.items() if value is not None}}


def _configure_logging(stderr_level: int, log_file: str | None = None) -> None:
    """Log to stderr at `stderr_level` (stdout belongs to MCP or to the command's output), and to `log_file`
    at INFO when given."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    handlers[0].setLevel(stderr_level)
    if log_file:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
        handlers[1].setLevel(logging.INFO)
    logging.basicConfig(level=min(handler.level for handler in handlers), handlers=handlers,
                        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")


if __name__ == "__main__":
    main()
