"""push_to_hub and `treedistill push` against a loopback stand-in of the Hub (tests/standin_hub.py), with the
real `huggingface_hub` client: one commit holding exactly the layout's files, the token sent only to the Hub
and never returned, logged or stored, what to fix on 401 / 403 / 409, a cancelled push that commits nothing,
and bad input refused before anything is uploaded."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
from mcp import Client

from tests.standin_hub import StandinHub
from tests.drive import cli
from tests.drive import distilled_project
from tests.drive import call, call_error
from treedistill.server.app import create_server

pytestmark = pytest.mark.anyio

HF_TOKEN = "hf_FAKE-SECRET-write-token-93b1c7"


@pytest.fixture
def hub() -> Iterator[StandinHub]:
    with StandinHub(token=HF_TOKEN) as standin:
        yield standin


@pytest.fixture
def hub_env(env: dict[str, str], hub: StandinHub) -> dict[str, str]:
    return {**env, "HF_TOKEN": HF_TOKEN, "HF_ENDPOINT": hub.url}


async def connected(db_path: Path, environ: dict[str, str]) -> AsyncIterator[Client]:
    async with Client(create_server(db_path, environ, retry_base_delay=0.05, heartbeat_seconds=0.2)) as client:
        yield client


@pytest.fixture
async def hub_client(db_path, hub_env) -> AsyncIterator[Client]:
    async for client in connected(db_path, hub_env):
        yield client


async def layout(client: Client) -> tuple[int, Path]:
    pid = await distilled_project(client)
    report = await call(client, "export_dataset", project_id=pid, layout="hf", format="openai", test_ratio=0.25,
                        license="mit", path="sports-hf")
    return pid, Path(report["path"])


def local_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


async def test_a_push_creates_the_repo_and_one_commit_with_exactly_the_layout(hub_client, hub, llm, db_path, caplog):
    caplog.set_level(logging.DEBUG)
    pid, folder = await layout(hub_client)
    started = await call(hub_client, "push_to_hub", project_id=pid, repo_id="alice/sports-qa")
    assert started["status"] == "running" and started["files"] == [
        "README.md", "data/test-00000-of-00001.parquet", "data/train-00000-of-00001.parquet"]
    done = await call(hub_client, "get_push", push_id=started["push_id"], wait_seconds=30)
    assert done["status"] == "completed", done
    (commit,) = hub.commits("alice/sports-qa")
    assert commit["files"] == local_files(folder) and commit["other_lines"] == []
    assert done["commit_url"] == f"{hub.url}/datasets/alice/sports-qa/commit/{commit['oid']}"
    assert hub.repos["alice/sports-qa"]["private"] is True and hub.repos["alice/sports-qa"]["type"] == "dataset"
    assert [r["route"] for r in hub.requests] == ["whoami", "create", "preupload", "validate-yaml", "commit"]
    # The token went to the Hub with every request, and nowhere else.
    assert {r["authorization"] for r in hub.requests} == {f"Bearer {HF_TOKEN}"}
    assert all(HF_TOKEN not in str(request) for request in llm.requests())
    assert HF_TOKEN not in str(done) and HF_TOKEN not in caplog.text
    assert "connect_tcp.started" in caplog.text and "huggingface.co" not in caplog.text  # the configured Hub only
    assert all(HF_TOKEN.encode() not in data for data in local_files(folder).values())
    assert all(HF_TOKEN.encode() not in p.read_bytes() for p in db_path.parent.glob(f"{db_path.name}*"))

    again = await call(hub_client, "push_to_hub", project_id=pid, repo_id="alice/sports-qa", private=False,
                       wait_seconds=30)
    assert again["status"] == "completed" and len(hub.commits("alice/sports-qa")) == 2
    assert hub.repos["alice/sports-qa"]["private"] is True  # an existing repository keeps its visibility


async def test_hub_refusals_say_what_to_fix(db_path, env, hub):
    async for client in connected(db_path, {**env, "HF_TOKEN": "hf_wrong-token", "HF_ENDPOINT": hub.url}):
        pid, _ = await layout(client)
        push = await call(client, "push_to_hub", project_id=pid, repo_id="alice/sports-qa", wait_seconds=30)
        assert push["status"] == "failed" and "rejected the token (401)" in push["error"]
        assert "HF_TOKEN" in push["error"] and "hf_wrong-token" not in str(push)
    assert hub.repos == {}

    async for client in connected(db_path, {**env, "HF_TOKEN": HF_TOKEN, "HF_ENDPOINT": hub.url}):
        forbidden = await call(client, "push_to_hub", project_id=pid, repo_id="bob/sports-qa", wait_seconds=30)
        assert forbidden["status"] == "failed" and "may not write to 'bob' (403)" in forbidden["error"]
        hub.fail["commit"] = 409
        conflict = await call(client, "push_to_hub", project_id=pid, repo_id="alice/sports-qa", wait_seconds=30)
        assert conflict["status"] == "failed" and "conflicting commit" in conflict["error"]
        assert "nothing of this push was committed" in conflict["error"]
        hub.fail["commit"] = 412
        stale = await call(client, "push_to_hub", project_id=pid, repo_id="alice/sports-qa", wait_seconds=30)
        assert "(412)" in stale["error"] and "conflicting commit" in stale["error"]
        hub.fail["validate-yaml"] = 400
        card = await call(client, "push_to_hub", project_id=pid, repo_id="alice/sports-qa", wait_seconds=30)
        assert card["status"] == "failed" and "The Hub refused the dataset card" in card["error"]
    assert hub.commits("alice/sports-qa") == []


async def test_a_cancelled_push_commits_nothing(hub_client, hub):
    pid, _ = await layout(hub_client)
    hub.hold_preupload()
    started = await call(hub_client, "push_to_hub", project_id=pid, repo_id="alice/sports-qa")
    assert await anyio.to_thread.run_sync(hub.preupload_waiting.wait, 10)
    cancelling = await call(hub_client, "cancel_push", push_id=started["push_id"])
    assert cancelling["status"] == "cancelled" and cancelling["stage"] == "uploading"  # stops at its next step
    hub.release()
    for _ in range(100):
        ended = await call(hub_client, "get_progress", job_id=started["push_id"])
        if ended["stage"] == "cancelled":
            break
        await anyio.sleep(0.1)
    assert ended["status"] == "cancelled" and "nothing was committed" in ended["push"]["message"]
    assert hub.commits("alice/sports-qa") == [] and "commit" not in [r["route"] for r in hub.requests]
    resumed = await call(hub_client, "push_to_hub", project_id=pid, repo_id="alice/sports-qa", wait_seconds=30)
    assert resumed["status"] == "completed" and len(hub.commits("alice/sports-qa")) == 1


async def test_bad_push_input_is_refused_before_anything_is_uploaded(db_path, env, hub, hub_client):
    empty = await call(hub_client, "create_project", name="Empty")
    no_layout = await call_error(hub_client, "push_to_hub", project_id=empty["id"], repo_id="alice/x")
    assert "no dataset layout to push yet" in no_layout
    pid, _ = await layout(hub_client)
    for repo_id in ("sports-qa", "alice/sports/qa", "alice/", "/xyz", "alice/sp orts"):
        error = await call_error(hub_client, "push_to_hub", project_id=pid, repo_id=repo_id)
        assert "repo_id must be 'namespace/name'" in error, repo_id
    outside = await call_error(hub_client, "push_to_hub", project_id=pid, repo_id="alice/x", path="../../..")
    assert "outside this project's export directory" in outside
    for argument, value in (("token", HF_TOKEN), ("hf_token", HF_TOKEN), ("endpoint", hub.url)):
        refused = await call_error(hub_client, "push_to_hub", project_id=pid, repo_id="alice/x", **{argument: value})
        assert f"unknown argument '{argument}'" in refused
    assert hub.requests == []
    async for client in connected(db_path, {**env, "HF_ENDPOINT": hub.url}):
        no_token = await call_error(client, "push_to_hub", project_id=pid, repo_id="alice/x")
        assert "HF_TOKEN is not set in the server's environment" in no_token
    assert hub.requests == []


def test_cli_push(env, db_path, tmp_path, hub):
    environ = {**env, "HF_TOKEN": HF_TOKEN, "HF_ENDPOINT": hub.url}
    assert cli(environ, db_path, "distill", "Chess", "--levels", "1", "--tags", "1", "--questions", "3").returncode == 0
    none = cli(environ, db_path, "push", "Chess", "alice/chess")
    assert none.returncode == 2 and "no dataset layout to push yet" in none.stderr
    assert cli(environ, db_path, "export", "Chess", "--layout", "hf", "--out", str(tmp_path / "chess-hf")).returncode == 0
    pushed = cli(environ, db_path, "push", "Chess", "alice/chess", "--path", str(tmp_path / "chess-hf"), "--public")
    assert pushed.returncode == 0, pushed.stderr
    assert "Pushed 2 files to alice/chess in one commit" in pushed.stdout and HF_TOKEN not in pushed.stdout + pushed.stderr
    assert hub.repos["alice/chess"]["private"] is False
    assert set(hub.commits("alice/chess")[0]["files"]) == {"README.md", "data/train-00000-of-00001.parquet"}
    unset = cli(env, db_path, "push", "Chess", "alice/chess", "--path", str(tmp_path / "chess-hf"))
    assert unset.returncode == 2 and "HF_TOKEN is not set" in unset.stderr


async def test_parquet_files_go_by_the_lfs_batch_api_and_the_commit_points_at_them(db_path, env):
    with StandinHub(token=HF_TOKEN, lfs=True) as hub:
        environ = {**env, "HF_TOKEN": HF_TOKEN, "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1"}
        async for client in connected(db_path, environ):
            pid, folder = await layout(client)
            done = await call(client, "push_to_hub", project_id=pid, repo_id="alice/sports-qa", wait_seconds=30)
            assert done["status"] == "completed", done
            routes = [r["route"] for r in hub.requests]
            assert routes[:4] == ["whoami", "create", "preupload", "lfs-batch"]
            assert sorted(routes[4:8]) == ["lfs-upload", "lfs-upload", "lfs-verify", "lfs-verify"]  # two in parallel
            assert routes[8:] == ["validate-yaml", "commit"]
            (commit,) = hub.commits("alice/sports-qa")
            assert commit["lfs"] == ["data/test-00000-of-00001.parquet", "data/train-00000-of-00001.parquet"]
            assert commit["files"] == local_files(folder) and commit["other_lines"] == []
            # The storage URL gets the bytes, never the token; every Hub route gets the token.
            assert {r["authorization"] for r in hub.requests if r["route"] == "lfs-upload"} == {None}
            assert {r["authorization"] for r in hub.requests if r["route"] != "lfs-upload"} == {f"Bearer {HF_TOKEN}"}

            again = await call(client, "push_to_hub", project_id=pid, repo_id="alice/sports-qa", wait_seconds=30)
            assert again["status"] == "completed" and len(hub.commits("alice/sports-qa")) == 2
            assert [r["route"] for r in hub.requests].count("lfs-upload") == 2  # stored objects are not sent again
