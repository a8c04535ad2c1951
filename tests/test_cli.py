"""The `treedistill` command line as a subprocess: distill with progress, resume, exit codes, reports, doctor."""

from __future__ import annotations

import io
import json
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from rich.console import Console

from treedistill.server.cli.doctor import run_doctor
from treedistill.server.cli.live_progress import LiveProgress
from treedistill.server.models import JobProgress, KindProgress
from tests.conftest import FAKE_OPENAI_KEY, ROOT, subprocess_env, treedistill_command
from tests.drive import cli, one_error_line, start_cli, wait_until

CHESS = ["distill", "Chess", "--levels", "2", "--tags", "4", "--questions", "1", "--concurrency", "2"]
CHESS_CALLS = 1 + 4 + 16 + 16  # root and 4 inner expansions, 16 leaf question calls, 16 answers


def stored(db_path: Path) -> dict[str, int]:
    """Rows per table, read from the database the CLI writes (0 before it exists)."""
    counts = {}
    with sqlite3.connect(db_path) as db:
        for table in ("tags", "questions", "answers"):
            try:
                counts[table] = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            except sqlite3.OperationalError:  # not migrated yet
                counts[table] = 0
    return counts


def test_distill_resumes_after_ctrl_c_and_after_a_crash(env, db_path, llm):
    llm.configure(latency=0.15)
    # Ctrl-C: the job is cancelled cleanly, calls in flight finish and are kept.
    process = start_cli(env, db_path, *CHESS)
    wait_until(lambda: stored(db_path)["answers"] >= 2)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "Started job 1: up to 20 tags, 16 questions, 16 answers (37 model calls; expected cost unknown)." in out
    assert f"Resume with: treedistill {' '.join(CHESS)}" in err
    assert "\x1b[" not in out  # plain lines, no terminal codes, when stdout is not a terminal
    cancelled = [line for line in out.splitlines() if line.startswith("job 1 cancelled")]
    assert cancelled and "in flight" not in cancelled[-1]
    after_ctrl_c = stored(db_path)
    assert 2 <= after_ctrl_c["answers"] < 16

    # A crash (kill -9) while the resumed job runs.
    process = start_cli(env, db_path, *CHESS)
    wait_until(lambda: stored(db_path)["answers"] >= after_ctrl_c["answers"] + 2)
    process.kill()
    out, _ = process.communicate(timeout=30)
    assert out.splitlines()[0].startswith("Resuming job 1 (it was cancelled;")
    assert stored(db_path)["answers"] < 16

    # The same command finishes the job: exact counts, nothing paid twice but the calls cut by the crash.
    finished = cli(env, db_path, *CHESS)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.splitlines()[0].startswith("Resuming job 1 (it was interrupted;")
    assert "job 1 completed · tags 20/20 · questions 16/16 · answers 16/16" in finished.stdout
    assert "Export with: treedistill export Chess --format alpaca" in finished.stdout
    assert stored(db_path) == {"tags": 20, "questions": 16, "answers": 16}
    stats = llm.stats()
    assert CHESS_CALLS <= stats["requests"] <= CHESS_CALLS + 2  # at most the 2 calls in flight at the kill
    assert sum(count - 1 for count in stats["by_prompt"].values()) == stats["requests"] - CHESS_CALLS

    again = cli(env, db_path, *CHESS)
    assert again.returncode == 0
    assert "Nothing to do: project 'Chess' already has this shape." in again.stdout
    assert llm.stats()["requests"] == stats["requests"]


def test_failures_exit_1_then_the_same_command_retries_them(env, db_path, llm, tmp_path):
    llm.configure(fail_next=[500])  # the first call, the top-level tag expansion, fails
    command = ["distill", "Go", "--levels", "1", "--tags", "3", "--questions", "1",
               "--max-attempts", "1", "--retry-delay", "0"]
    failed = cli(env, db_path, *command)
    assert failed.returncode == 1
    assert "job 1 failed · tags 0/3 (3 failed)" in failed.stdout
    assert "gave up after 1 attempts: TransientProviderError" in failed.stdout and "HTTP 500" in failed.stdout
    assert "run the same command to retry" in failed.stderr

    retried = cli(env, db_path, *command)
    assert retried.returncode == 0, retried.stderr
    assert "Resuming job 1 (it was failed" in retried.stdout
    assert "job 1 completed · tags 3/3 · questions 3/3 · answers 3/3" in retried.stdout

    projects = json.loads(cli(env, db_path, "projects", "--json").stdout)
    assert [(p["name"], p["tags"], p["questions"], p["answers"]) for p in projects] == [("Go", 3, 3, 3)]
    table = cli(env, db_path, "projects").stdout.splitlines()
    assert table[0].split()[:6] == ["id", "name", "lang", "tags", "questions", "answers"]
    assert table[1].split()[:6] == ["1", "Go", "en", "3", "3", "3"]
    listing = cli(env, db_path, "progress")
    assert listing.returncode == 0 and listing.stdout.startswith("job 1 completed · tags 3/3")
    assert json.loads(cli(env, db_path, "progress", "1", "--json").stdout)["answers"]["done"] == 3
    watched = cli(env, db_path, "progress", "1", "--watch", "--plain")
    assert watched.returncode == 0 and "job 1 completed" in watched.stdout

    out = tmp_path / "go.jsonl"
    exported = cli(env, db_path, "export", "Go", "--format", "sharegpt", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert f"all         3 records  {out}" in exported.stdout
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 3 and all(r["conversations"][0]["from"] == "human" for r in records)


def test_errors_are_one_line_with_exit_codes(env, db_path):
    assert "No database at" in one_error_line(cli(env, db_path, "progress").stderr)
    no_model = {name: value for name, value in env.items() if name != "TREEDISTILL_MODEL"}
    result = cli(no_model, db_path, "distill", "Chess")
    assert result.returncode == 2
    assert "No model configured" in one_error_line(result.stderr)
    unknown_job = cli(env, db_path, "progress", "42")
    assert unknown_job.returncode == 2 and "No job with id 42" in one_error_line(unknown_job.stderr)
    unknown_project = cli(env, db_path, "export", "Nope")
    assert unknown_project.returncode == 2 and "No project named 'Nope'" in one_error_line(unknown_project.stderr)
    for usage in (["distill", "Chess", "--levels", "9"], ["serve", "--rpm", "0"], []):
        result = cli(env, db_path, *usage)
        assert result.returncode == 2 and "usage: treedistill" in result.stderr and "Traceback" not in result.stderr


def test_doctor_passes_and_names_a_rejected_key(env, db_path, llm):
    healthy = cli(env, db_path, "doctor")
    assert healthy.returncode == 0, healthy.stdout
    assert "ok    question model: openai model 'standin' at http://127.0.0.1:" in healthy.stdout
    assert "(key from OPENAI_API_KEY): answered in" in healthy.stdout
    assert healthy.stdout.strip().endswith("All checks passed.")
    llm.configure(fail_next=[401])
    rejected = cli(env, db_path, "doctor")
    assert rejected.returncode == 1
    assert "FAIL  question model: openai model 'standin'" in rejected.stdout
    assert "HTTP 401" in rejected.stdout and "Check that OPENAI_API_KEY holds a valid key" in rejected.stdout
    for output in (healthy.stdout, healthy.stderr, rejected.stdout, rejected.stderr):
        assert FAKE_OPENAI_KEY not in output and FAKE_OPENAI_KEY[-6:] not in output


async def doctor_lines(environ: dict[str, str], db_path: Path) -> tuple[bool, list[str]]:
    lines: list[str] = []
    healthy = await run_doctor(environ, db_path,
                               lambda ok, message: lines.append(f"{'ok' if ok else 'FAIL'} {message}"))
    return healthy, lines


@pytest.mark.anyio
async def test_doctor_says_exactly_what_is_wrong(env, db_path, llm):
    llm.configure(fail_next=[404])
    healthy, lines = await doctor_lines(env, db_path)
    assert not healthy and "HTTP 404" in lines[-1] and "Check the model name and base_url" in lines[-1]

    healthy, lines = await doctor_lines({**env, "OPENAI_BASE_URL": llm.url}, db_path)  # no /v1
    assert not healthy and "HTTP 404" in lines[-1] and "usually end in /v1" in lines[-1]

    closed = {**env, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    healthy, lines = await doctor_lines(closed, db_path)
    assert not healthy and "could not connect" in lines[-1]
    assert "Check the URL (base_url or OPENAI_BASE_URL)" in lines[-1]

    remote_without_key = {"OPENAI_BASE_URL": "https://api.example.invalid/v1", "TREEDISTILL_MODEL": "m"}
    healthy, lines = await doctor_lines(remote_without_key, db_path)
    assert not healthy and "the environment variable OPENAI_API_KEY is not set" in lines[-1]

    healthy, lines = await doctor_lines({"OPENAI_API_KEY": FAKE_OPENAI_KEY}, db_path)
    assert not healthy and "No model configured" in lines[-1]

    healthy, lines = await doctor_lines({**env, "TREEDISTILL_ANSWER_MODEL": "standin+think"}, db_path)
    assert healthy
    assert [line.split(":")[0] for line in lines] == ["ok database", "ok question model", "ok answer model"]
    assert all(FAKE_OPENAI_KEY not in line for line in lines)


def test_live_progress_bars_show_each_stage():
    console = Console(file=io.StringIO(), force_terminal=True, width=140)
    progress = JobProgress(
        job_id=7, project_id=1, status="running", stage="answering",
        tags=KindProgress(done=12, total=12), questions=KindProgress(done=30, total=36, failed=1),
        answers=KindProgress(done=20, total=36, in_flight=4), calls_done=60, calls_failed=1, calls_pending=20,
        input_tokens=12345, output_tokens=6789, elapsed_seconds=30, eta_seconds=12, calls_per_minute=120,
        recent_errors=[], params={})
    with LiveProgress(console) as view:
        view.update(progress, now=True)
    shown = console.file.getvalue()
    for text in ("tags", "12/12", "questions", "30/36", "1 failed", "answers", "20/36", "4 in flight",
                 "job 7 answering", "120 calls/min", "tokens 12,345 in / 6,789 out", "ETA 12s"):
        assert text in shown, text


def test_every_command_and_option_has_help():
    from treedistill.server.cli.main import build_parser

    parser = build_parser()
    commands = next(action for action in parser._actions if action.dest == "command")
    documented = {choice.dest: choice.help for choice in commands._choices_actions}
    assert set(documented) == {"serve", "distill", "progress", "projects", "export", "push", "doctor", "review", "tree",
                               "report", "eval"}
    assert all(documented.values())
    for name, subparser in commands.choices.items():
        undocumented = [a.dest for a in subparser._actions if not a.help and a.dest != "help"]
        assert not undocumented, (name, undocumented)


# -- the command line's own behaviour (issue 9) ----------------------------------------------------

ENVIRONMENT_VARIABLES = ("OPENAI_BASE_URL", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL",
                         "TREEDISTILL_MODEL", "TREEDISTILL_ANSWER_MODEL", "TREEDISTILL_PROVIDER", "TREEDISTILL_DB",
                         "TREEDISTILL_TOKEN", "TREEDISTILL_ENDPOINTS", "TREEDISTILL_ALLOW_ANY_EXPORT_PATH")


def run_main(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """The CLI in this process: (exit code, stdout, stderr)."""
    from treedistill.server.cli.main import main

    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out, err = capsys.readouterr()
    return exited.value.code, out, err


def subcommands() -> dict:
    from treedistill.server.cli.main import build_parser

    return next(action for action in build_parser()._actions if action.dest == "command").choices


def test_global_options_work_before_or_after_the_command(tmp_path, capsys, monkeypatch):
    from treedistill.server.cli.main import build_parser

    parse = build_parser().parse_args
    assert (parse(["--db", "a.db", "projects"]).db, parse(["projects", "--db", "a.db"]).db) == ("a.db", "a.db")
    assert parse(["--db", "a.db", "projects", "--db", "b.db"]).db == "b.db"  # the later one wins
    assert parse(["projects"]).db is None and parse(["projects"]).debug is False
    assert parse(["--debug", "export", "P"]).debug and parse(["export", "P", "--debug"]).debug
    for command in subcommands():
        assert "--db" in subcommands()[command].format_help(), command

    monkeypatch.setenv("TREEDISTILL_DB", str(tmp_path / "from-env.db"))
    for argv in (["--db", str(tmp_path / "given.db"), "projects"], ["projects", "--db", str(tmp_path / "given.db")]):
        code, _, err = run_main(capsys, *argv)
        assert code == 2 and f"No database at {tmp_path / 'given.db'} yet" in err, argv


def test_version_prints_the_package_version(capsys):
    from importlib.metadata import version

    code, out, _ = run_main(capsys, "--version")
    assert code == 0 and out.strip() == f"treedistill {version('treedistill')}"


def test_abbreviated_options_are_errors(capsys):
    code, _, err = run_main(capsys, "distill", "Chess", "--level", "2")
    assert code == 2 and "unrecognized arguments: --level 2" in err
    code, _, err = run_main(capsys, "--deb", "projects")
    assert code == 2 and "--deb" in err
    assert all(not parser.allow_abbrev for parser in subcommands().values())


def test_every_command_has_a_description_and_lists_the_environment():
    for name, parser in subcommands().items():
        text = parser.format_help()
        assert parser.description and " ".join(parser.description.split()) in " ".join(text.split()), name
        missing = [variable for variable in ENVIRONMENT_VARIABLES if variable not in text]
        assert not missing, (name, missing)
    from treedistill.server.cli.main import build_parser
    from treedistill.server.cli.parser import ENVIRONMENT

    assert all(variable in build_parser().format_help() for variable in ENVIRONMENT_VARIABLES)
    source = "".join(path.read_text() for folder in ("server", "tools") for path in (ROOT / folder).rglob("*.py"))
    read = set(re.findall(r"\"(TREEDISTILL_[A-Z_]+)\"", source))
    assert "TREEDISTILL_MODEL" in read and not read - set(ENVIRONMENT.split())


def test_model_options_name_the_question_and_teacher_models(env, db_path, llm):
    no_model = {name: value for name, value in env.items() if name != "TREEDISTILL_MODEL"}
    refused = cli(no_model, db_path, "distill", "Chess")
    assert refused.returncode == 2
    message = one_error_line(refused.stderr)
    assert "--model" in message and "question_model" not in message and "answer_model" not in message

    command = ["distill", "Chess", "--levels", "1", "--tags", "1", "--questions", "1"]
    made = cli(no_model, db_path, *command, "--model", "standin", "--answer-model", "standin+think")
    assert made.returncode == 0, made.stderr
    assert "models standin / standin+think" in made.stdout
    (project,) = json.loads(cli(no_model, db_path, "projects", "--json").stdout)
    assert (project["question_model"]["model"], project["answer_model"]["model"]) == ("standin", "standin+think")
    assert {request["model"] for request in llm.requests()} == {"standin", "standin+think"}

    changed = cli(no_model, db_path, *command, "--model", "standin+think")
    assert changed.returncode == 0, changed.stderr
    assert "models are now standin+think (questions) / standin+think (answers)" in changed.stdout
    (project,) = json.loads(cli(no_model, db_path, "projects", "--json").stdout)
    assert (project["question_model"]["model"], project["answer_model"]["model"]) == ("standin+think",
                                                                                       "standin+think")


def test_a_reader_that_goes_away_ends_the_command_quietly(env, db_path):
    from treedistill.server.store.catalog import open_database

    open_database(db_path).conn.close()
    for args in (["projects"], ["progress", "--json"], ["--help"]):
        process = start_cli(env, db_path, *args)
        process.stdout.close()  # like `| head -0`: nobody reads what the command prints
        err = process.stderr.read()
        assert process.wait(timeout=30) in (0, 141), (args, err)
        assert err == "", (args, err)


def test_serve_at_a_terminal_shows_a_banner_and_stops_on_ctrl_c(env, db_path):
    import os
    import pty
    import select

    terminal, stdin = pty.openpty()
    process = subprocess.Popen([*treedistill_command(), "serve", "--answer-model", "standin+think"],
                               env=subprocess_env(env, db_path), stdin=stdin, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([process.stderr], [], [], 60)
        assert ready, "no banner on stderr"
        banner = process.stderr.readline()
        assert banner.startswith(f"treedistill serve: database {db_path} · openai model 'standin' at "
                                 f"{env['OPENAI_BASE_URL']} · teacher openai model 'standin+think'")
        assert "Ctrl-C stops" in banner and FAKE_OPENAI_KEY not in banner and FAKE_OPENAI_KEY[-6:] not in banner
        time.sleep(0.5)  # let the server reach its stdin loop, where the SDK's reader thread blocks
        process.send_signal(signal.SIGINT)
        started = time.monotonic()
        assert process.wait(timeout=15) in (0, 130)
        assert time.monotonic() - started < 10
        rest = process.stderr.read()
        assert "Traceback" not in rest and "error" not in rest.lower(), rest
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
        os.close(terminal)
        os.close(stdin)


def test_export_flags_are_named_as_flags_and_an_empty_export_says_why(env, db_path, tmp_path):
    made = cli(env, db_path, "distill", "Chess", "--levels", "1", "--tags", "1", "--questions", "2", "--no-answer")
    assert made.returncode == 0, made.stderr

    raw = cli(env, db_path, "export", "Chess", "--format", "raw", "--dataset-info")
    assert raw.returncode == 2
    assert "--dataset-info" in one_error_line(raw.stderr) and "dataset_info=" not in raw.stderr
    (tmp_path / "dataset_info.json").write_text("[1, 2]")
    broken = cli(env, db_path, "export", "Chess", "--dataset-info", "--out", str(tmp_path / "chess.jsonl"))
    assert broken.returncode == 2
    assert "drop --dataset-info" in one_error_line(broken.stderr) and "dataset_info=" not in broken.stderr

    empty = cli(env, db_path, "export", "Chess", "--out", str(tmp_path / "empty.jsonl"))
    assert empty.returncode == 0 and "Wrote 0 records" in empty.stdout
    assert empty.stderr.strip() == ("treedistill: warning: 0 records written: none of the 2 questions of project "
                                    "'Chess' has an answer yet. Run `treedistill distill Chess` to answer them, or "
                                    "pass --include-unanswered to export the questions alone.")
    questions = cli(env, db_path, "export", "Chess", "--include-unanswered", "--out", str(tmp_path / "q.jsonl"))
    assert questions.returncode == 0 and "Wrote 2 records" in questions.stdout and questions.stderr == ""

    assert cli(env, db_path, "distill", "Chess", "--levels", "1", "--tags", "1", "--questions", "2").returncode == 0
    strict = cli(env, db_path, "export", "Chess", "--min-score", "9", "--confirmed-only",
                 "--out", str(tmp_path / "strict.jsonl"))
    assert strict.returncode == 0
    assert "none of the 2 answers of project 'Chess' passes --min-score, --confirmed-only" in strict.stderr


def test_errors_never_name_a_missing_tag_as_none(env, db_path, llm):
    llm.configure(fail_next=[500])  # the root tag expansion fails
    failed = cli(env, db_path, "distill", "Go", "--levels", "1", "--tags", "2", "--questions", "1",
                 "--max-attempts", "1", "--retry-delay", "0")
    assert failed.returncode == 1 and "error: tags" in failed.stdout
    assert "#None" not in failed.stdout + failed.stderr
    shown = cli(env, db_path, "progress", "1")
    assert "error: tags" in shown.stdout and "#None" not in shown.stdout


def test_errors_name_commands_and_flags_not_mcp_tools(env, db_path):
    from treedistill.server.store.catalog import open_database

    open_database(db_path).conn.close()
    shown = []
    for args, expected in ((["export", "42"], "No project id or name '42'; `treedistill projects` lists them."),
                           (["progress", "42"], "No job with id 42; `treedistill progress` lists the latest jobs."),
                           (["progress", "42", "--watch"], "No job with id 42;"),
                           (["distill", "Big", "--levels", "3", "--tags", "30", "--questions", "30"],
                            "more than 20,000 model calls: rerun with --confirm-large")):
        result = cli(env, db_path, *args)
        assert result.returncode == 2 and expected in one_error_line(result.stderr), (args, result.stderr)
        shown.append(result.stdout + result.stderr)
    mcp_names = re.compile(r"\b(list_projects|list_jobs|auto_distill|job_id|question_model|confirm_large)\b")
    assert not [text for text in shown if mcp_names.search(text)]


def test_plain_answers_keep_a_teacher_without_reasoning(env, db_path, llm):
    command = ["distill", "Plain", "--levels", "1", "--tags", "1", "--questions", "2", "--answer-model", "standin+none"]
    strict = cli(env, db_path, *command)
    assert strict.returncode == 1 and "require_reasoning=false" in strict.stdout + strict.stderr
    plain = cli(env, db_path, *command, "--plain-answers")
    assert plain.returncode == 0, plain.stderr
    assert "answers no longer need a reasoning trace" in plain.stdout
    with sqlite3.connect(db_path) as conn:
        sources = [row[0] for row in conn.execute("SELECT reasoning_source FROM answers")]
    assert sources == ["none", "none"]


# -- rough edges (issue 20) --------------------------------------------------------------------------


def test_progress_json_counts_the_calls_in_flight(env, db_path):
    """`progress --json` reads what is running in any process (it said in_flight 0 while get_progress said 5)."""
    from treedistill.server.models import ModelSpec
    from treedistill.server.store.catalog import Store, open_database
    from treedistill.server.store.queue import WorkQueue

    db = open_database(db_path)
    store = Store(db)
    spec = ModelSpec(provider="openai", model="standin")
    project = store.insert_project("Chess", "Chess", "en", spec, spec, max_concurrency=5)
    queue = WorkQueue(store)
    job = queue.create_job(project.id, {"levels": 1})
    queue.set_job_status(job, "running")
    tags = store.insert_tags(project.id, None, ["Openings", "Endgames", "Tactics"])
    for tag in tags:
        queue.add_item(project.id, "tags", job_id=job, tag_id=tag.id, target=2)
    question = store.insert_questions(project.id, tags[0], ["What is a gambit?"])[0]
    queue.add_item(project.id, "answer", job_id=job, question_id=question.id)
    claimed = [queue.claim_next(project.id, "another-process") for _ in range(4)]
    assert all(claimed)
    db.conn.close()

    done = cli(env, db_path, "progress", "--json", str(job))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["tags"]["in_flight"], report["questions"]["in_flight"], report["answers"]["in_flight"]) == (3, 0, 1)


def test_project_names_are_whole_or_end_in_an_ellipsis():
    from treedistill.server.cli.reports import project_lines
    from treedistill.server.models import ModelSpec, ProjectSummary

    spec = ModelSpec(provider="openai", model="m")
    long_name = "Traditional Chinese Medicine: herbs, formulas and diagnosis"
    projects = [ProjectSummary(id=id_, name=name, topic=name, language="en", question_model=spec, answer_model=spec,
                               max_concurrency=5, created_at="2026-12-01", tags=1, questions=2, answers=3,
                               input_tokens=10, output_tokens=20)
                for id_, name in ((1, long_name), (2, "Chess"))]

    wide = project_lines(projects, width=200)
    assert long_name in wide[1] and all(len(line) <= 200 for line in wide)
    assert len({line.index(" en ") for line in wide[1:]}) == 1  # the columns after the name stay aligned

    narrow = project_lines(projects, width=120)
    assert all(len(line) <= 120 for line in narrow)
    shown = narrow[1][6:narrow[1].index(" en ")]
    assert shown.endswith("…") and long_name.startswith(shown[:-1]) and len(shown) < len(long_name)
    assert narrow[2][6:].startswith("Chess ")

    piped = project_lines(projects)  # no terminal: nothing is cut
    assert long_name in piped[1]


def test_a_mistyped_command_or_choice_gets_a_suggestion(capsys):
    code, _, err = run_main(capsys, "distil", "Chess")
    assert code == 2 and err.strip().endswith(
        "invalid choice: 'distil' (choose from 'serve', 'distill', 'progress', 'projects', 'export', 'push', 'doctor', "
        "'tree', 'review', 'report', 'eval'); did you mean 'distill'?")
    code, _, err = run_main(capsys, "export", "1", "--format", "alpacca")
    assert code == 2 and err.strip().endswith("did you mean 'alpaca'?")
    code, _, err = run_main(capsys, "zzz")
    assert code == 2 and "did you mean" not in err


def test_every_command_help_shows_examples_that_parse():
    import shlex

    from treedistill.server.cli.main import build_parser
    from treedistill.server.cli.parser import EXAMPLES

    assert set(EXAMPLES) == set(subcommands())
    top = build_parser().format_help()
    for name, parser in subcommands().items():
        text = parser.format_help()
        assert "examples:" in text, name
        for example in EXAMPLES[name]:
            assert f"  {example}\n" in text and f"  {example}\n" in top, example
            argv = shlex.split(example)
            assert argv[:2] == ["treedistill", name]
            assert build_parser().parse_args(argv[1:]).command == name, example


@pytest.mark.anyio
async def test_the_final_summary_comes_after_the_last_bars(env, db_path, llm):
    """With live bars the summary ("Job 1 completed ...") used to print above the final bars."""
    from treedistill.server.cli.distill import DistillRequest, run_distill
    from treedistill.server.engine import Engine

    console = Console(file=io.StringIO(), force_terminal=True, width=140)
    engine = await Engine(db_path, env, retry_base_delay=0.01).start()
    try:
        request = DistillRequest(topic="Chess", levels=1, tags_per_level=2, questions_per_tag=1, answer=True,
                                 concurrency=2, language="en", confirm_large=False, resume_command="treedistill")
        assert await run_distill(engine, request, LiveProgress(console)) == "completed"
    finally:
        await engine.close()
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", console.file.getvalue())  # in the order it was written
    summary = shown.index("Job 1 completed")
    assert summary > shown.rindex("━")  # the last frame of the bars is drawn before it


def test_the_confirmation_bounds_are_written_once_and_every_surface_follows():
    """LARGE_PLAN_CALLS and DEFAULT_CONFIRM_COST_ABOVE live in config: help texts and the tool's description read
    them (no '20,000' or '$25' typed beside them)."""
    from treedistill.server.cli.main import build_parser
    from treedistill.server.config import DEFAULT_CONFIRM_COST_ABOVE, LARGE_PLAN_CALLS
    from treedistill.tools.jobs import tools

    distill = subcommands()["distill"].format_help()
    assert f"above {LARGE_PLAN_CALLS:,} model" in distill
    assert f"else {DEFAULT_CONFIRM_COST_ABOVE:g})" in " ".join(distill.split())
    assert f"(--confirm-cost-above; {DEFAULT_CONFIRM_COST_ABOVE:g})" in build_parser().format_help()
    described = tools()[0].parameters["properties"]["confirm_large"]["description"]
    assert f"above {LARGE_PLAN_CALLS:,} model calls" in described and f"(${DEFAULT_CONFIRM_COST_ABOVE:,.0f} " in described
    typed = [path.relative_to(ROOT) for folder in ("server", "tools") for path in (ROOT / folder).rglob("*.py")
             if path.name != "config.py" and re.search(r"20,000 model|\$25\b|else 25\b", path.read_text())]
    assert typed == []


def test_distill_guidance_comes_from_text_or_a_file_and_reaches_every_prompt(env, db_path, llm, tmp_path):
    llm.configure(record_prompts=True)
    guidance = tmp_path / "guidance.md"
    guidance.write_text("# Scope\nOnly classical mechanics, SI units.\n", encoding="utf-8")
    command = ["distill", "Physics", "--levels", "1", "--tags", "1", "--plain"]
    made = cli(env, db_path, *command, "--questions", "1", "--guidance", f"@{guidance}")
    assert made.returncode == 0, made.stderr
    (project,) = json.loads(cli(env, db_path, "projects", "--json").stdout)
    assert project["guidance"] == "# Scope\nOnly classical mechanics, SI units."
    prompts = [f"{entry['system']}\n{entry['user']}" for entry in llm.requests()]
    assert len(prompts) == 3 and all("Only classical mechanics, SI units." in prompt for prompt in prompts)

    llm.reset()
    llm.configure(record_prompts=True)
    changed = cli(env, db_path, *command, "--questions", "2", "--guidance", "Only optics.")
    assert changed.returncode == 0, changed.stderr
    assert "guidance updated" in changed.stdout
    assert [entry["task"] for entry in llm.requests()] == ["questions", "answer"]
    assert all("Only optics." in f"{entry['system']}\n{entry['user']}" for entry in llm.requests())

    missing = cli(env, db_path, *command, "--guidance", f"@{tmp_path / 'nowhere.md'}")
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    guidance.write_text("x" * 20_001, encoding="utf-8")
    too_long = cli(env, db_path, *command, "--questions", "3", "--guidance", f"@{guidance}")
    assert too_long.returncode == 2 and "20,000" in too_long.stderr
    (project,) = json.loads(cli(env, db_path, "projects", "--json").stdout)
    assert project["guidance"] == "Only optics." and project["questions"] == 2


def test_distill_sets_the_projects_question_and_answer_styles(env, db_path, llm, tmp_path):
    llm.configure(record_prompts=True)
    styles = tmp_path / "styles.json"
    styles.write_text('{"types": {"multiple-choice": 1, "numeric": 1}}', encoding="utf-8")
    command = ["distill", "Physics", "--levels", "1", "--tags", "1", "--plain"]
    made = cli(env, db_path, *command, "--questions", "4", "--question-styles", f"@{styles}",
               "--answer-style", '{"max_words": 120}')
    assert made.returncode == 0, made.stderr
    with sqlite3.connect(db_path) as conn:
        types = sorted(row[0] for row in conn.execute("SELECT question_type FROM questions"))
    assert types == ["multiple-choice", "multiple-choice", "numeric", "numeric"]
    assert all("- at most 120 words" in entry["system"] for entry in llm.requests() if entry["task"] == "answer")

    removed = cli(env, db_path, *command, "--questions", "5", "--question-styles", "{}", "--answer-style", "{}")
    assert removed.returncode == 0, removed.stderr
    assert "question styles and answer style updated" in removed.stdout
    (project,) = json.loads(cli(env, db_path, "projects", "--json").stdout)
    assert (project["question_styles"], project["answer_style"]) == (None, None)
    bad = cli(env, db_path, *command, "--question-styles", '{"types": {"x": -1}}')
    assert bad.returncode == 2 and "types.x" in bad.stderr

