"""export_dataset through the MCP client: every format and reasoning mode parsed back, filters, the balanced
cap, shuffling and splits, LLaMA-Factory's dataset_info.json, and the export-path confinement."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from mcp import Client

from treedistill.server.app import create_server
from tests.drive import call, call_error
from tests.drive import distilled_project, read_records

pytestmark = pytest.mark.anyio

SYSTEM = "You are a sports expert."


async def export(client: Client, project_id: int, **options) -> tuple[dict, list[dict]]:
    report = await call(client, "export_dataset", project_id=project_id, **options)
    records = read_records(report["path"])
    assert len(records) == report["files"][0]["records"]
    return report, records


def reply_of(record: dict, fmt: str) -> dict:
    """The assistant turn of a chat record."""
    return record["conversations"][-1] if fmt == "sharegpt" else record["messages"][-1]


async def test_every_format_and_reasoning_mode_parses_back(client, llm):
    pid = await distilled_project(client)
    for fmt in ("alpaca", "sharegpt", "openai"):
        for mode in ("think", "field", "none"):
            report, records = await export(client, pid, format=fmt, reasoning=mode, system=SYSTEM,
                                           path=f"{fmt}-{mode}.jsonl")
            assert report["record_count"] == len(records) == 12
            assert report["preview"] == records[:3]
            for record in records:
                if fmt == "alpaca":
                    assert list(record)[:4] == ["instruction", "input", "output", "system"]
                    question, output, system = record["instruction"], record["output"], record["system"]
                    assert record["input"] == ""
                    reasoning = record.get("reasoning")
                else:
                    turns = record["conversations"] if fmt == "sharegpt" else record["messages"]
                    role, content = ("from", "value") if fmt == "sharegpt" else ("role", "content")
                    roles = ["system", "human", "gpt"] if fmt == "sharegpt" else ["system", "user", "assistant"]
                    assert [turn[role] for turn in turns] == roles and len(record) == 1
                    system, question, output = (turn[content] for turn in turns)
                    reasoning = turns[-1].get("reasoning_content")
                assert system == SYSTEM and question.startswith("Question ")
                answer = f"Answer to: {question}"
                if mode == "think":
                    assert output.startswith("<think>\nReasoning about: ") and output.endswith(f"</think>\n\n{answer}")
                    assert reasoning is None
                elif mode == "field":
                    assert output == answer and reasoning.startswith("Reasoning about: ")
                else:
                    assert output == answer and reasoning is None

    report, records = await export(client, pid, format="raw", path="raw.json")
    assert report["file_format"] == "json" and len(records) == 12
    raw = records[0]
    assert {"question_id", "tag_id", "tag_path", "question", "answer", "reasoning", "reasoning_source",
            "answer_model", "question_model", "input_tokens", "output_tokens", "rating", "confirmed", "score",
            "score_rationale", "edited_at", "answered_at", "project"} <= set(raw)
    assert raw["tag_path"].count(" > ") == 1 and raw["answer_model"] == "standin" and raw["input_tokens"] > 0
    assert raw["confirmed"] is False and raw["rating"] is None and raw["project"] == "Sports"

    report, records = await export(client, pid, format="openai", reasoning="none", file_format="json")
    assert report["path"].endswith("sports-openai.json") and "system" not in {m["role"] for m in records[0]["messages"]}


async def test_filters_count_what_they_should(client, llm):
    pid = await distilled_project(client)
    tree = await call(client, "get_tree", project_id=pid)
    first_top = tree["roots"][0]
    leaf = first_top["children"][0]["id"]
    await call(client, "extract_questions", project_id=pid, tag_id=leaf, count=2)  # 2 unanswered questions
    page = await call(client, "list_questions", project_id=pid, limit=500)
    answered = [q["id"] for q in page["questions"] if q["answered"]]

    async def count(**options) -> int:
        return (await call(client, "export_dataset", project_id=pid, path="count.jsonl", **options))["record_count"]

    assert await count() == 12
    _, records = await export(client, pid, answered_only=False, format="raw", path="all.jsonl")
    assert len(records) == 14 and sum(r["answer"] is None for r in records) == 2
    assert await count(tag_id=first_top["id"]) == 6
    assert await count(tag_id=leaf) == 3

    await call(client, "confirm_item", project_id=pid, question_ids=answered[:5])
    await call(client, "confirm_item", project_id=pid, question_ids=answered[:1], confirmed=False)
    assert await count(confirmed_only=True) == 4
    for qid, rating in zip(answered[:4], (5, 4, 3, 2)):
        await call(client, "rate_item", project_id=pid, question_id=qid, rating=rating)
    assert await count(min_rating=4) == 2
    assert await count(min_rating=4, confirmed_only=True) == 1


async def test_balanced_cap_shuffle_and_split(client, llm):
    pid = await distilled_project(client)
    page = await call(client, "list_questions", project_id=pid, limit=500)
    best = page["questions"][2]["id"]
    await call(client, "rate_item", project_id=pid, question_id=best, rating=5)

    _, capped = await export(client, pid, format="raw", per_tag_cap=2)
    per_tag = Counter(r["tag_id"] for r in capped)
    assert len(per_tag) == 4 and set(per_tag.values()) == {2}
    assert best in {r["question_id"] for r in capped}  # rated answers are kept first

    _, by_id = await export(client, pid, format="raw")
    _, shuffled = await export(client, pid, format="raw", seed=7)
    _, again = await export(client, pid, format="raw", seed=7, path="again.jsonl")
    _, other = await export(client, pid, format="raw", seed=8, path="other.jsonl")
    ids = lambda records: [r["question_id"] for r in records]  # noqa: E731
    assert ids(by_id) == sorted(ids(by_id))
    assert ids(shuffled) == ids(again) and ids(shuffled) != ids(by_id) and ids(shuffled) != ids(other)
    assert sorted(ids(shuffled)) == sorted(ids(other)) == ids(by_id)

    report = await call(client, "export_dataset", project_id=pid, format="alpaca", path="split.jsonl",
                        test_ratio=0.25, seed=3)
    files = {f["split"]: f for f in report["files"]}
    assert Path(files["train"]["path"]).name == "split_train.jsonl" == Path(report["path"]).name
    assert Path(files["test"]["path"]).name == "split_test.jsonl"
    train, test = read_records(files["train"]["path"]), read_records(files["test"]["path"])
    assert (len(train), len(test), report["record_count"]) == (9, 3, 12)
    assert not {r["instruction"] for r in train} & {r["instruction"] for r in test}
    report = await call(client, "export_dataset", project_id=pid, format="raw", path="capsplit.jsonl",
                        test_ratio=0.5, per_tag_cap=1)
    assert report["seed"] == 0 and [f["records"] for f in report["files"]] == [2, 2]


async def test_dataset_info_for_llama_factory(client, llm):
    pid = await distilled_project(client)
    for fmt, name in (("alpaca", "a.jsonl"), ("sharegpt", "s.json"), ("openai", "o.jsonl")):
        report = await call(client, "export_dataset", project_id=pid, format=fmt, path=name, dataset_info=True)
    await call(client, "export_dataset", project_id=pid, format="alpaca", path="t.jsonl", test_ratio=0.5,
               system=SYSTEM, dataset_info=True)
    info_path = Path(report["dataset_info_path"])
    info = json.loads(info_path.read_text())
    assert set(info) == {"a", "s", "o", "t_train", "t_test"}
    for entry in info.values():
        assert (info_path.parent / entry["file_name"]).is_file()
    assert info["a"] == {"file_name": "a.jsonl", "formatting": "alpaca",
                         "columns": {"prompt": "instruction", "query": "input", "response": "output"}}
    assert info["t_train"]["columns"]["system"] == "system"
    assert info["s"]["formatting"] == "sharegpt" and info["s"]["columns"] == {"messages": "conversations"}
    assert info["s"]["tags"]["user_tag"] == "human" and info["s"]["tags"]["assistant_tag"] == "gpt"
    assert info["o"]["columns"] == {"messages": "messages"} and info["o"]["tags"]["role_tag"] == "role"

    message = await call_error(client, "export_dataset", project_id=pid, format="raw", dataset_info=True)
    assert "raw" in message and "dataset_info=false" in message


async def test_paths_are_confined_to_the_project_export_directory(client, llm, db_path, tmp_path):
    pid = await distilled_project(client)
    export_dir = db_path.parent / f"{db_path.stem}-exports" / str(pid)
    report = await call(client, "export_dataset", project_id=pid, path="nested/dir/data.jsonl")
    assert Path(report["path"]) == export_dir.resolve() / "nested" / "dir" / "data.jsonl"
    before = sorted(p for p in tmp_path.rglob("*") if p.is_file())

    outside = tmp_path / "outside"
    outside.mkdir()
    (export_dir / "link").symlink_to(outside, target_is_directory=True)
    for path in ("../escape.jsonl", "nested/../../../escape.jsonl", str(tmp_path / "abs.jsonl"), "link/x.jsonl",
                 "/etc/passwd"):
        message = await call_error(client, "export_dataset", project_id=pid, path=path)
        assert "outside this project's export directory" in message and "TREEDISTILL_ALLOW_ANY_EXPORT_PATH" in message
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == before  # nothing written

    message = await call_error(client, "export_dataset", project_id=pid, path="nested")
    assert "is a directory" in message
    assert "No tag with id 999" in await call_error(client, "export_dataset", project_id=pid, tag_id=999)
    assert "No project with id 999" in await call_error(client, "export_dataset", project_id=999)
    assert await call_error(client, "export_dataset", project_id=pid, format="csv")
    assert await call_error(client, "export_dataset", project_id=pid, min_rating=9)
    assert await call_error(client, "export_dataset", project_id=pid, test_ratio=0.9)
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == before


@pytest.mark.parametrize("how", ["option", "environment"])
async def test_the_server_can_allow_any_export_path(how, db_path, env, tmp_path):
    options = {"allow_any_export_path": True} if how == "option" else {}
    environ = {**env, "TREEDISTILL_ALLOW_ANY_EXPORT_PATH": "1"} if how == "environment" else env
    server = create_server(db_path, environ, retry_base_delay=0.02, heartbeat_seconds=0.2, **options)
    async with Client(server) as client:
        pid = await distilled_project(client)
        target = tmp_path / "elsewhere" / "train.jsonl"
        report = await call(client, "export_dataset", project_id=pid, path=str(target))
        assert report["path"] == str(target) and len(read_records(target)) == 12
        relative = await call(client, "export_dataset", project_id=pid, path="rel.jsonl")
        assert Path(relative["path"]).parent == (db_path.parent / f"{db_path.stem}-exports" / str(pid)).resolve()


async def test_dataset_info_symlink_is_never_followed(client, llm, db_path, tmp_path):
    pid = await distilled_project(client)
    export_dir = db_path.parent / f"{db_path.stem}-exports" / str(pid)
    await call(client, "export_dataset", project_id=pid, path="first.jsonl")
    secret = tmp_path / "outside" / "secret.json"
    secret.parent.mkdir()
    secret.write_text('{"private": {"file_name": "/etc/shadow"}}\n')
    link = export_dir / "dataset_info.json"
    link.symlink_to(secret)

    message = await call_error(client, "export_dataset", project_id=pid, path="data.jsonl", dataset_info=True)
    assert "symbolic link" in message and "dataset_info=false" in message
    assert secret.read_text() == '{"private": {"file_name": "/etc/shadow"}}\n'  # neither read into nor written
    assert link.is_symlink() and not (export_dir / "data.jsonl").exists()

    link.unlink()
    dangling = export_dir / "dataset_info.json"
    dangling.symlink_to(tmp_path / "outside" / "created-by-export.json")
    assert "symbolic link" in await call_error(client, "export_dataset", project_id=pid, dataset_info=True)
    assert not (tmp_path / "outside" / "created-by-export.json").exists()


async def test_a_failed_export_writes_nothing_and_leaves_no_temporary_files(client, llm, db_path):
    pid = await distilled_project(client)
    export_dir = db_path.parent / f"{db_path.stem}-exports" / str(pid)
    await call(client, "export_dataset", project_id=pid, path="old.jsonl")
    # A split export whose train file cannot be written (a directory is in the way) fails as a whole.
    (export_dir / "data_train.jsonl").mkdir()
    message = await call_error(client, "export_dataset", project_id=pid, path="data.jsonl", test_ratio=0.25)
    assert "data_train.jsonl" in message and "directory" in message
    assert sorted(p.name for p in export_dir.iterdir()) == ["data_train.jsonl", "old.jsonl"]


async def test_temporary_files_of_crashed_exports_are_removed_by_the_next(client, llm, db_path):
    pid = await distilled_project(client)
    export_dir = db_path.parent / f"{db_path.stem}-exports" / str(pid)
    await call(client, "export_dataset", project_id=pid, path="old.jsonl")
    # Temporary files of an export that crashed (its process is gone) go at the start of the next export;
    # files that only look alike stay.
    crashed = export_dir / ".data.jsonl.999999999-1.treedistill-tmp"
    crashed.write_text('{"half": ')
    kept = export_dir / ".notes.tmp"
    kept.write_text("mine")
    await call(client, "export_dataset", project_id=pid, path="new.jsonl")
    assert not crashed.exists() and kept.exists()
    assert sorted(p.name for p in export_dir.iterdir()) == [".notes.tmp", "new.jsonl", "old.jsonl"]


async def test_reasoning_field_with_dataset_info_is_refused_with_the_reason(client, llm, db_path):
    pid = await distilled_project(client)
    message = await call_error(client, "export_dataset", project_id=pid, reasoning="field", dataset_info=True)
    assert "no column for a separate reasoning field" in message and "reasoning='think'" in message
    assert not (db_path.parent / f"{db_path.stem}-exports" / str(pid)).exists()
    report = await call(client, "export_dataset", project_id=pid, reasoning="think", dataset_info=True)
    assert report["dataset_info_path"] and read_records(report["path"])[0]["output"].startswith("<think>\n")
