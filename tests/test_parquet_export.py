"""Parquet export and real consumers: every export kind loads with `datasets.load_dataset` with the exact rows
and columns, LLaMA-Factory's dataset_info.json names Parquet files, and a suffix that contradicts Parquet or a
selection with no record is refused with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from datasets import load_dataset
from mcp import Client

from tests.drive import cli
from tests.drive import distilled_project
from tests.drive import call, call_error
from treedistill.server.export import parquet

pytestmark = pytest.mark.anyio

COLUMNS = {"alpaca": ["instruction", "input", "output", "system"], "sharegpt": ["conversations"],
           "openai": ["messages"]}


@pytest.fixture
async def one_client(server):
    async with Client(server) as connected:
        yield connected


def loaded(path: str | Path, kind: str):
    """The file (or files) read the way trainers do; a fresh cache per file keeps runs independent."""
    return load_dataset(kind, data_files=str(path), split="train", cache_dir=str(Path(path).parent / ".hf-cache"))


async def test_every_export_kind_loads_with_datasets(one_client, tmp_path):
    pid = await distilled_project(one_client)
    for fmt, columns in COLUMNS.items():
        for file_format, kind in (("jsonl", "json"), ("json", "json"), ("parquet", "parquet")):
            report = await call(one_client, "export_dataset", project_id=pid, format=fmt, system="Be brief.",
                                path=f"{fmt}.{file_format}")
            assert report["file_format"] == file_format and report["record_count"] == 12
            data = loaded(report["path"], kind)
            assert data.num_rows == 12 and data.column_names == columns
    raw = await call(one_client, "export_dataset", project_id=pid, format="raw", file_format="parquet",
                     path="raw.parquet")
    data = loaded(raw["path"], "parquet")
    assert data.num_rows == 12
    assert {"question_id", "tag_path", "question", "answer", "reasoning", "answer_model", "rating", "score",
            "confirmed", "question_model"} <= set(data.column_names)
    assert data.features["rating"].dtype == "int64" and data.features["confirmed"].dtype == "bool"


async def test_parquet_records_equal_the_jsonl_records(one_client):
    pid = await distilled_project(one_client)
    for fmt in ("alpaca", "sharegpt", "openai"):
        text = await call(one_client, "export_dataset", project_id=pid, format=fmt, reasoning="field",
                          path=f"{fmt}.jsonl")
        table = await call(one_client, "export_dataset", project_id=pid, format=fmt, reasoning="field",
                           path=f"{fmt}.parquet")
        expected = [json.loads(line) for line in Path(text["path"]).read_text().splitlines()]
        rows = pq.read_table(table["path"]).to_pylist()
        # Parquet's struct columns give every chat turn the same keys; a missing one reads as null.
        assert [_without_nulls(row) for row in rows] == expected


def _without_nulls(value):
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


async def test_parquet_streams_in_row_groups_and_splits(one_client, monkeypatch):
    monkeypatch.setattr(parquet, "PARQUET_CHUNK", 5)
    pid = await distilled_project(one_client)
    report = await call(one_client, "export_dataset", project_id=pid, file_format="parquet", test_ratio=0.25,
                        seed=3, dataset_info=True, path="sports")
    files = {file["split"]: file for file in report["files"]}
    assert files["train"]["records"] == 9 and files["test"]["records"] == 3
    train = pq.ParquetFile(files["train"]["path"])
    assert train.metadata.num_row_groups == 2 and train.metadata.num_rows == 9
    assert Path(files["train"]["path"]).name == "sports_train.parquet"
    info = json.loads(Path(report["dataset_info_path"]).read_text())
    assert info["sports_train"]["file_name"] == "sports_train.parquet"
    assert info["sports_test"]["file_name"] == "sports_test.parquet"
    assert info["sports_train"]["formatting"] == "alpaca"
    data = load_dataset("parquet", data_files={"train": files["train"]["path"], "test": files["test"]["path"]},
                        cache_dir=str(Path(report["path"]).parent / ".hf-cache"))
    assert data["train"].num_rows == 9 and data["test"].num_rows == 3


async def test_parquet_refusals_write_nothing(one_client, db_path):
    pid = await distilled_project(one_client)
    export_dir = db_path.parent / f"{db_path.stem}-exports" / str(pid)
    before = sorted(p.name for p in export_dir.iterdir()) if export_dir.exists() else []
    error = await call_error(one_client, "export_dataset", project_id=pid, path="x.jsonl", file_format="parquet")
    assert "'x.jsonl'" in error and "'.parquet'" in error and "Nothing was written" in error
    error = await call_error(one_client, "export_dataset", project_id=pid, path="x.parquet", file_format="jsonl")
    assert "'x.parquet'" in error and "'.jsonl'" in error
    error = await call_error(one_client, "export_dataset", project_id=pid, path="x.parquet", min_score=10)
    assert "No record matches" in error and "Nothing was written" in error
    error = await call_error(one_client, "export_dataset", project_id=pid, path="y.parquet", test_ratio=0.01)
    assert "0 test and 12 train" in error
    after = sorted(p.name for p in export_dir.iterdir()) if export_dir.exists() else []
    assert after == before


def test_cli_out_parquet_writes_parquet(env, db_path, tmp_path):
    made = cli(env, db_path, "distill", "Chess", "--levels", "1", "--tags", "1", "--questions", "3")
    assert made.returncode == 0, made.stderr
    out = tmp_path / "chess.parquet"
    done = cli(env, db_path, "export", "Chess", "--out", str(out), "--format", "openai")
    assert done.returncode == 0, done.stderr
    assert "parquet" in done.stdout and out.read_bytes()[:4] == b"PAR1"
    assert pq.read_table(out).column_names == ["messages"] and pq.read_table(out).num_rows == 3
    wrong = cli(env, db_path, "export", "Chess", "--out", str(tmp_path / "chess2.parquet"), "--file-format", "jsonl")
    assert wrong.returncode == 2 and "'chess2.parquet'" in wrong.stderr
    assert not (tmp_path / "chess2.parquet").exists()
