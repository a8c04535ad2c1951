"""export_dataset(layout="hf"): a Hugging Face datasets folder that `datasets.load_dataset(folder)` reads with
the exact splits, rows and columns, whose card says how the data was made (teacher model, tree, counts,
scores, filters, cost, the command to reproduce) and never holds a secret or a local path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from datasets import load_dataset
from mcp import Client

from tests.conftest import FAKE_ANTHROPIC_KEY, FAKE_OPENAI_KEY
from tests.drive import distilled_project
from tests.drive import call, call_error
from treedistill.server.export.card import endpoint_label
from treedistill.server.models import ModelSpec

pytestmark = pytest.mark.anyio


@pytest.fixture
async def one_client(server):
    async with Client(server) as connected:
        yield connected


def card_of(folder: str | Path) -> tuple[dict, str]:
    """The card's YAML header and its Markdown body."""
    text = (Path(folder) / "README.md").read_text(encoding="utf-8")
    _, header, body = text.split("---\n", 2)
    return yaml.safe_load(header), body


def load_folder(folder: str | Path):
    return load_dataset(str(folder), cache_dir=str(Path(folder).parent / ".hf-cache"))


async def test_layout_loads_with_datasets_with_exact_splits_and_columns(one_client):
    pid = await distilled_project(one_client)
    await call(one_client, "score_answers", project_id=pid)
    report = await call(one_client, "export_dataset", project_id=pid, layout="hf", format="openai",
                        test_ratio=0.25, seed=1, license="apache-2.0", description="Sports questions.",
                        path="sports-hf")
    folder = Path(report["path"])
    assert report["layout"] == "hf" and report["card_path"] == str(folder / "README.md")
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "README.md", "data/test-00000-of-00001.parquet", "data/train-00000-of-00001.parquet"]
    data = load_folder(folder)
    assert sorted(data) == ["test", "train"]
    assert data["train"].num_rows == 9 and data["test"].num_rows == 3
    assert data["train"].column_names == ["messages"]
    assert data["train"][0]["messages"][-1]["role"] == "assistant"

    header, body = card_of(folder)
    assert header["license"] == "apache-2.0" and header["language"] == ["en"]
    assert header["size_categories"] == ["n<1K"] and "text-generation" in header["task_categories"]
    assert header["configs"] == [{"config_name": "default", "data_files": [
        {"split": "train", "path": "data/train-00000-of-00001.parquet"},
        {"split": "test", "path": "data/test-00000-of-00001.parquet"}]}]
    assert {(s["name"], s["num_examples"]) for s in header["dataset_info"]["splits"]} == {("test", 3), ("train", 9)}
    assert header["dataset_info"]["features"][0]["name"] == "messages"
    assert body.startswith("\n# Sports\n\nSports questions.\n")
    assert "- Teacher model (answers): `standin` (openai provider, an OpenAI-compatible endpoint)" in body
    assert "2 level(s), 6 tags, 4 leaf tags." in body
    assert "- Questions in the project: 12" in body and "- Held out for evaluation: 3" in body
    assert "| score | answers |" in body and "- seed: `1`" in body and "- test_ratio: `0.25`" in body
    assert "treedistill distill Sports --model standin --levels 2 --tags 2 --questions 3" in body


async def test_the_card_states_the_guidance_and_styles_the_data_was_made_with(one_client):
    pid = await distilled_project(one_client)
    await call(one_client, "update_project", project_id=pid, guidance="Audience: coaches.\nNo history questions.",
               question_styles={"types": {"scenario": 2, "comparison": 1}}, answer_style={"max_words": 150})
    report = await call(one_client, "export_dataset", project_id=pid, layout="hf", path="steered-hf")
    _, body = card_of(report["path"])
    assert "- Guidance (in every prompt): Audience: coaches. No history questions.\n" in body
    assert '- Question styles: `{"types":{"scenario":2.0,"comparison":1.0}}`' in body
    assert '- Answer style: `{"max_words":150}`' in body


async def test_the_card_states_the_prompt_versions_each_row_was_made_with(one_client):
    pid = await distilled_project(one_client)
    default = {p["kind"]: p["version"] for p in (await call(one_client, "get_prompts", project_id=pid))["prompts"]}
    custom = await call(one_client, "set_prompt", project_id=pid, kind="answer", template="You teach {path}. Be brief.")
    question = (await call(one_client, "list_questions", project_id=pid))["questions"][0]
    await call(one_client, "answer_question", project_id=pid, question_id=question["id"], regenerate=True)
    report = await call(one_client, "export_dataset", project_id=pid, layout="hf", path="versions-hf")
    _, body = card_of(report["path"])
    assert (f"- Prompt versions: tags: `{default['tags']}` (6); questions: `{default['questions']}` (12); "
            f"answers: `{default['answer']}` (11), `{custom['version']}` (1)\n") in body
    assert custom["version"].startswith("custom:") and default["answer"].startswith("default:")


async def test_a_crashed_layout_export_leaves_nothing_the_next_one_keeps(one_client, db_path):
    pid = await distilled_project(one_client)
    export_dir = db_path.parent / f"{db_path.stem}-exports" / str(pid)
    crashed = export_dir / ".ds.999999999-1.treedistill-tmp"  # the staging folder of a process that is gone
    (crashed / "data").mkdir(parents=True)
    (crashed / "data" / "train-00000-of-00001.parquet").write_bytes(b"PAR1 half")
    lookalike = export_dir / ".ds-notes"
    lookalike.mkdir()
    await call(one_client, "export_dataset", project_id=pid, layout="hf", path="ds")
    assert sorted(p.name for p in export_dir.iterdir()) == [".ds-notes", "ds"]


async def test_every_format_loads_from_its_layout(one_client):
    pid = await distilled_project(one_client)
    columns = {"alpaca": ["instruction", "input", "output"], "sharegpt": ["conversations"], "openai": ["messages"]}
    for fmt, expected in columns.items():
        report = await call(one_client, "export_dataset", project_id=pid, layout="hf", format=fmt)
        assert Path(report["path"]).name == f"sports-{fmt}-hf"
        data = load_folder(report["path"])
        assert list(data) == ["train"] and data["train"].num_rows == 12 and data["train"].column_names == expected
    raw = await call(one_client, "export_dataset", project_id=pid, layout="hf", format="raw", path="raw-hf")
    data = load_folder(raw["path"])["train"]
    assert data.num_rows == 12 and "reasoning" in data.column_names and "score" in data.column_names


async def test_the_card_holds_no_secret_or_local_path(one_client, env, db_path):
    pid = await distilled_project(one_client)
    report = await call(one_client, "export_dataset", project_id=pid, layout="hf", format="alpaca",
                        system="Answer as a coach.")
    text = Path(report["card_path"]).read_text(encoding="utf-8")
    for secret in (FAKE_OPENAI_KEY, FAKE_ANTHROPIC_KEY, env["OPENAI_BASE_URL"], "127.0.0.1", str(db_path.parent),
                   str(Path.home()), "api_key", "OPENAI_API_KEY=", "sk-"):
        assert secret not in text, secret
    leaked = await call_error(one_client, "export_dataset", project_id=pid, layout="hf", path="leak-hf",
                              description=f"built with key {FAKE_OPENAI_KEY}")
    assert "secret environment variable" in leaked and "Nothing was written" in leaked
    url = await call_error(one_client, "export_dataset", project_id=pid, layout="hf", path="leak-hf",
                           description="mirror at https://bob:hunter22@example.com/data")
    assert "user name and password" in url
    local = await call_error(one_client, "export_dataset", project_id=pid, layout="hf", path="leak-hf",
                             description=f"copied from {db_path.parent}/treedistill.db")
    assert "local path" in local
    assert not (Path(report["path"]).parent / "leak-hf").exists()


def test_endpoints_are_named_only_when_public():
    assert endpoint_label(ModelSpec(model="m", base_url="https://api.deepseek.com/v1")) == "DeepSeek"
    assert endpoint_label(ModelSpec(model="m", base_url="http://u:p@10.0.0.5:8000/v1")) == "an OpenAI-compatible endpoint"
    assert endpoint_label(ModelSpec(provider="anthropic", model="m")) == "Anthropic API"


async def test_bad_layout_input_is_refused_and_writes_nothing(one_client, db_path):
    pid = await distilled_project(one_client)
    export_dir = db_path.parent / f"{db_path.stem}-exports" / str(pid)
    outside = await call_error(one_client, "export_dataset", project_id=pid, layout="hf", path="../../elsewhere")
    assert "outside this project's export directory" in outside
    empty = await call_error(one_client, "export_dataset", project_id=pid, layout="hf", min_score=10)
    assert "No record matches" in empty
    huge = await call_error(one_client, "export_dataset", project_id=pid, layout="hf", description="x" * 1_000_000)
    assert "description" in huge and "20000" in huge
    bad_license = await call_error(one_client, "export_dataset", project_id=pid, layout="hf", license="My License")
    assert "license" in bad_license
    jsonl = await call_error(one_client, "export_dataset", project_id=pid, layout="hf", file_format="jsonl")
    assert "layout='hf' writes Parquet" in jsonl
    assert not export_dir.exists() or [p.name for p in export_dir.iterdir()] == []
    assert not (db_path.parent / "elsewhere").exists()


async def test_a_new_export_replaces_the_layout_but_never_a_foreign_folder(one_client, db_path):
    pid = await distilled_project(one_client)
    first = await call(one_client, "export_dataset", project_id=pid, layout="hf", test_ratio=0.25, path="ds")
    second = await call(one_client, "export_dataset", project_id=pid, layout="hf", path="ds")
    folder = Path(second["path"])
    assert first["path"] == second["path"] and not (folder / "data/test-00000-of-00001.parquet").exists()
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".")] == []
    foreign = folder.parent / "notes"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep")
    refused = await call_error(one_client, "export_dataset", project_id=pid, layout="hf", path="notes")
    assert "holds something other than a dataset layout" in refused
    assert (foreign / "mine.txt").read_text() == "keep"


def test_cli_writes_the_layout(env, db_path, tmp_path):
    from tests.drive import cli

    made = cli(env, db_path, "distill", "Chess", "--levels", "1", "--tags", "1", "--questions", "4")
    assert made.returncode == 0, made.stderr
    out = tmp_path / "chess-hf"
    done = cli(env, db_path, "export", "Chess", "--layout", "hf", "--out", str(out), "--license", "mit",
               "--test-ratio", "0.25", "--seed", "2")
    assert done.returncode == 0, done.stderr
    assert f"card: {out / 'README.md'}" in done.stdout
    data = load_folder(out)
    assert data["train"].num_rows == 3 and data["test"].num_rows == 1
    header, body = card_of(out)
    assert header["license"] == "mit"
    assert "treedistill export Chess --format alpaca --reasoning think --layout hf --license mit --seed 2 " \
           "--test-ratio 0.25" in body
