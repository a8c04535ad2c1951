"""Exports of dialogues: every format record by record (roles alternate, the last turn is the assistant's, reasoning
where asked), LLaMA-Factory's dataset_info.json, and the files loaded with `datasets.load_dataset`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import load_dataset
from mcp import Client

from tests.test_manual_tools import call

pytestmark = pytest.mark.anyio


@pytest.fixture
async def one_client(server):
    async with Client(server) as connected:
        yield connected


@pytest.fixture
async def dialogues(one_client) -> tuple[int, dict[str, list[tuple[str, str, str]]]]:
    """A project with three 3-turn dialogues and one single answer; (id, each question's (user, answer, reasoning)
    turns)."""
    project = await call(one_client, "create_project", name="Tides")
    started = await call(one_client, "auto_distill", project_id=project["id"], levels=1, tags_per_level=1,
                         questions_per_tag=3, turns=3)
    assert (await call(one_client, "get_progress", job_id=started["job_id"], wait_seconds=60))["status"] == "completed"
    tag_id = (await call(one_client, "list_questions", project_id=project["id"]))["questions"][0]["tag_id"]
    single = (await call(one_client, "extract_questions", project_id=project["id"], tag_id=tag_id,
                         count=1))["questions"][0]
    await call(one_client, "answer_question", project_id=project["id"], question_id=single["id"])
    turns = {}
    for question in (await call(one_client, "list_questions", project_id=project["id"]))["questions"]:
        dialogue = await call(one_client, "get_dialogue", project_id=project["id"], question_id=question["id"])
        turns[question["text"]] = [(t["user"], t["assistant"], t["reasoning"]) for t in dialogue["turns"]]
    assert sorted(len(t) for t in turns.values()) == [1, 3, 3, 3]
    return project["id"], turns


def lines(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def think(reasoning: str, answer: str) -> str:
    return f"<think>\n{reasoning}\n</think>\n\n{answer}"


@pytest.mark.parametrize("reasoning_turns", ["all", "last"])
async def test_chat_formats_alternate_turns_with_reasoning_where_asked(one_client, dialogues, reasoning_turns):
    pid, turns = dialogues
    for fmt, key, role, content, user, assistant in (("openai", "messages", "role", "content", "user", "assistant"),
                                                     ("sharegpt", "conversations", "from", "value", "human", "gpt")):
        report = await call(one_client, "export_dataset", project_id=pid, format=fmt, path=f"{fmt}.jsonl",
                            reasoning_turns=reasoning_turns)
        records = lines(report["path"])
        assert report["record_count"] == len(records) == 4
        for record in records:
            messages = record[key]
            expected = turns[messages[0][content]]
            assert [m[role] for m in messages] == [user, assistant] * len(expected)  # alternating, assistant last
            for number, (asked, answer, reasoning) in enumerate(expected):
                shown = reasoning_turns == "all" or number == len(expected) - 1
                assert messages[2 * number][content] == asked
                assert messages[2 * number + 1][content] == (think(reasoning, answer) if shown else answer)
        field = await call(one_client, "export_dataset", project_id=pid, format=fmt, path=f"{fmt}-field.jsonl",
                           reasoning="field", reasoning_turns=reasoning_turns)
        for record in lines(field["path"]):
            expected = turns[record[key][0][content]]
            replies = record[key][1::2]
            assert [m[content] for m in replies] == [answer for _, answer, _ in expected]
            assert [m.get("reasoning_content") for m in replies] == [
                reasoning if reasoning_turns == "all" or number == len(expected) - 1 else None
                for number, (_, _, reasoning) in enumerate(expected)]


async def test_alpaca_history_and_raw_turns(one_client, dialogues):
    pid, turns = dialogues
    report = await call(one_client, "export_dataset", project_id=pid, format="alpaca", path="alpaca.jsonl",
                        reasoning_turns="last")
    records = lines(report["path"])
    assert len(records) == 4
    for record in records:
        first = record["history"][0][0] if record["history"] else record["instruction"]
        expected = turns[first]
        *earlier, (last_user, last_answer, last_reasoning) = expected
        assert record["instruction"] == last_user and record["input"] == ""
        assert record["output"] == think(last_reasoning, last_answer)
        assert record["history"] == [[asked, answer] for asked, answer, _ in earlier]  # earlier thinking dropped
    raw = lines((await call(one_client, "export_dataset", project_id=pid, format="raw", path="raw.jsonl"))["path"])
    for record in raw:
        expected = turns[record["question"]]
        assert [(t["number"], t["user"], t["answer"], t["reasoning"]) for t in record["turns"]] == [
            (number, *turn) for number, turn in enumerate(expected[1:], start=2)]


async def test_dataset_info_names_columns_every_record_has_and_datasets_loads_them(one_client, dialogues, tmp_path):
    pid, _ = dialogues
    columns = {"alpaca": ["instruction", "input", "output", "history"], "sharegpt": ["conversations"],
               "openai": ["messages"]}
    for fmt in columns:
        report = await call(one_client, "export_dataset", project_id=pid, format=fmt, path=f"{fmt}.jsonl",
                            dataset_info=True)
        info = json.loads(Path(report["dataset_info_path"]).read_text())[fmt]
        records = lines(report["path"])
        named = list(info["columns"].values())
        assert all(set(named) <= set(record) for record in records)
        if fmt == "alpaca":
            assert info["columns"] == {"prompt": "instruction", "query": "input", "response": "output",
                                       "history": "history"}
        data = load_dataset("json", data_files=report["path"], split="train", cache_dir=str(tmp_path / fmt))
        assert data.num_rows == 4 and data.column_names == columns[fmt]
        if fmt == "alpaca":
            assert sorted(len(history) for history in data["history"]) == [0, 2, 2, 2]
        else:
            assert sorted(len(messages) for messages in data[columns[fmt][0]]) == [2, 6, 6, 6]


async def test_dialogues_export_to_parquet_in_every_format(one_client, dialogues, tmp_path):
    pid, _ = dialogues
    for fmt, column in (("alpaca", "history"), ("sharegpt", "conversations"), ("openai", "messages"),
                        ("raw", "turns")):
        report = await call(one_client, "export_dataset", project_id=pid, format=fmt, path=f"{fmt}.parquet")
        data = load_dataset("parquet", data_files=report["path"], split="train", cache_dir=str(tmp_path / fmt))
        assert data.num_rows == 4
        lengths = sorted(len(value) for value in data[column])
        assert lengths == {"alpaca": [0, 2, 2, 2], "raw": [0, 2, 2, 2]}.get(fmt, [2, 6, 6, 6])
