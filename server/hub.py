"""Pushing a datasets layout to the Hugging Face Hub, through `huggingface_hub`, in one commit.

The token is read from HF_TOKEN in the operator's environment (the engine's `environ`) when a push starts and
passed to `HfApi` only; it is never a tool argument, never stored, logged or returned. HF_ENDPOINT, when set
there, is the Hub to push to.

A push is a job (kind 'push') with its state in SQLite (server/store/pushes.py; get_progress and get_push read
it), run in a thread of the process that owns it: check the token (whoami), create the dataset repository if
needed, upload the files the Hub wants as LFS, then one commit with every file of the layout. A cancel is seen
between those steps and always before the commit, so the Hub either has the whole commit or nothing of it.
A push whose process died is taken over by a server running on the database or the next one started (or by
resume_job): it looks for its own commit on the Hub first, so a commit made just before the crash is never made
twice. Every stage is entered only by the push's current owner, so a process taken for dead stops at its next step.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from treedistill.server.errors import InvalidInput, TreedistillError
from treedistill.server.export.hf_layout import layout_files
from treedistill.server.push_models import PushStage
from treedistill.server.store.pushes import CANCELLED, COMMITTING, PushStore

log = logging.getLogger(__name__)
HF_TOKEN_ENV = "HF_TOKEN"
HF_ENDPOINT_ENV = "HF_ENDPOINT"
HF_DISABLE_XET_ENV = "HF_HUB_DISABLE_XET"
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
PUSH_KEY_LINE = "treedistill push "  # the commit description: this, then the push's key (found again on resume)


class PushCancelled(TreedistillError):
    """The push was cancelled before its commit; nothing was committed."""


class HubRefused(TreedistillError):
    """The Hub refused the push; the message says what to fix."""


class PushTakenOver(Exception):
    """Another process took the push over (this one had been taken for dead): this run stops and records nothing."""


def check_repo_id(repo_id: str) -> None:
    if not REPO_ID.match(repo_id):
        raise InvalidInput(f"repo_id must be 'namespace/name' (your user name or an organisation, a slash, then the "
                           f"dataset's name, e.g. 'alice/sports-qa'), not {repo_id[:120]!r}. Nothing was uploaded.")


def hub_token(environ: Mapping[str, str]) -> str:
    """HF_TOKEN from the operator's environment; InvalidInput when it is not set."""
    token = environ.get(HF_TOKEN_ENV, "").strip()
    if not token:
        raise InvalidInput(f"{HF_TOKEN_ENV} is not set in the server's environment. Create a token with write access "
                           "at https://huggingface.co/settings/tokens and start treedistill with HF_TOKEN set (it is "
                           "read from the environment only, never from a tool argument). Nothing was uploaded.")
    return token


def layout_to_push(folder: Path) -> list[str]:
    files = layout_files(folder)
    if not files:
        raise InvalidInput(f"{folder.name!r} is not a dataset layout (a README.md card and data/*.parquet). Write "
                           "one with export_dataset(layout='hf') (CLI: treedistill export PROJECT --layout hf) "
                           "first. Nothing was uploaded.")
    return files


def run_push(job_id: int, pushes: PushStore, folder: Path, environ: Mapping[str, str]) -> str:
    """Run push `job_id` as its row describes, recording each stage; blocking, for the push's own thread.
    Returns what happened, in words.

    A resumed push (attempts > 1) first looks for its commit on the Hub (the commit's description carries the
    push's key): when the process that ran it had made the commit before it stopped, it is not made again.
    Raises PushCancelled, HubRefused (with what to fix) or InvalidInput.
    """
    import httpx2
    from huggingface_hub import CommitOperationAdd, HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()  # a server's log, not a terminal: the push's stage is in get_progress

    # Its telemetry would fetch a registry from huggingface.co while building request headers, even when the
    # operator points HF_ENDPOINT at another Hub: a push talks to the configured Hub only.
    constants.HF_HUB_DISABLE_TELEMETRY = True
    # The library reads HF_HUB_DISABLE_XET at import; the operator's setting here (the engine's environment) decides
    # whether LFS files go through Xet storage (hf_xet) or the classic LFS batch API.
    constants.HF_HUB_DISABLE_XET = environ.get(HF_DISABLE_XET_ENV, "").strip().lower() in ("1", "true", "yes", "on")

    row = pushes.row(job_id)
    files, marker = json.loads(row["files"]), f"{PUSH_KEY_LINE}{row['push_key']}"
    token = hub_token(environ)
    api = HfApi(endpoint=environ.get(HF_ENDPOINT_ENV) or None, token=token)

    def step(stage: PushStage) -> None:
        if not pushes.enter(job_id, stage, row["owner"]):
            if pushes.row(job_id)["owner"] != row["owner"]:
                raise PushTakenOver(f"push {job_id} was taken over by another process")
            raise PushCancelled(CANCELLED)

    try:
        step("checking the token")
        api.whoami()
        step("creating the repository")
        repo_url = str(api.create_repo(row["repo_id"], repo_type="dataset", private=bool(row["private"]),
                                       exist_ok=True))
        pushes.record(job_id, repo_url=repo_url)
        if row["attempts"] > 1 and (made := _commit_with(api, row["repo_id"], marker)) is not None:
            pushes.record(job_id, commit_url=f"{repo_url.rstrip('/')}/commit/{made}")
            return (f"Pushed {len(files)} files in one commit: the commit had been made before the process that "
                    f"ran this push stopped (found on the Hub); it was not made again.")
        step("uploading")
        operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(folder / name)) for name in files]
        api.preupload_lfs_files(row["repo_id"], operations, repo_type="dataset")
        step(COMMITTING)
        commit = api.create_commit(row["repo_id"], operations, commit_message=row["commit_message"],
                                   commit_description=marker, repo_type="dataset")
        pushes.record(job_id, commit_url=commit.commit_url)
        return f"Pushed {len(files)} files in one commit."
    except HfHubHTTPError as exc:
        raise HubRefused(what_to_fix(exc.response.status_code if exc.response is not None else None,
                                     row["repo_id"])) from None
    except httpx2.TransportError as exc:
        raise HubRefused(f"Could not reach the Hub ({type(exc).__name__}); check the network or HF_ENDPOINT and push "
                         "again. Nothing of this push was committed.") from None
    except ValueError as exc:  # the card's YAML refused by the Hub's validate-yaml
        raise HubRefused(f"The Hub refused the dataset card: {exc}. Fix the card (export_dataset(layout='hf') "
                         "writes it) and push again.") from None
    except FileNotFoundError as exc:
        raise InvalidInput(f"A file of the layout is gone ({Path(exc.filename or '').name}): write the layout again "
                           "(export_dataset(layout='hf')) and push again. Nothing of this push was committed.") from None


def _commit_with(api: Any, repo_id: str, marker: str) -> str | None:
    """The id of the repository's commit whose description is `marker` (a push's own commit), if any."""
    return next((commit.commit_id for commit in api.list_repo_commits(repo_id, repo_type="dataset")
                 if marker in (commit.message or "")), None)


def what_to_fix(status: int | None, repo_id: str) -> str:
    """The Hub's refusal in words that say what to fix (never the token itself)."""
    namespace = repo_id.split("/", 1)[0]
    if status == 401:
        return (f"The Hub rejected the token (401): {HF_TOKEN_ENV} is wrong, expired or revoked. Create a token with "
                "write access at https://huggingface.co/settings/tokens, set it as HF_TOKEN in the server's "
                "environment and push again.")
    if status == 403:
        return (f"The token may not write to {namespace!r} (403): use your own user name or an organisation where "
                "you have write access as the namespace, or a token with write permission for it.")
    if status in (409, 412):
        return (f"The Hub refused the commit to {repo_id!r} ({status}): the repository changed while this push ran "
                "(a conflicting commit). Push again; nothing of this push was committed.")
    if status == 404:
        return (f"The Hub knows no namespace or repository {repo_id!r} for this token (404): check the namespace "
                "and that the token may create repositories there.")
    return f"The Hub refused the push ({status or 'no answer'}); try again later. Nothing of this push was committed."


class PushRunner:
    """Runs pushes of one process in background threads, each with its own database connection; the pushes' state
    is in SQLite (server/store/pushes.py), so any process can read and cancel them and a restart resumes them."""

    def __init__(self, db_path: str | Path, environ: Mapping[str, str]):
        self.db_path = db_path
        self.environ = environ
        self._threads: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()

    def start(self, job_id: int, folder: Path) -> None:
        with self._lock:
            if job_id in self._threads and self._threads[job_id].is_alive():
                return
            thread = threading.Thread(target=self._run, args=(job_id, folder), name=f"treedistill-push-{job_id}",
                                      daemon=True)
            self._threads[job_id] = thread
        thread.start()

    def _run(self, job_id: int, folder: Path) -> None:
        pushes = PushStore.open(self.db_path)
        try:
            try:
                status, message, error = "completed", run_push(job_id, pushes, folder, self.environ), None
            except PushTakenOver as exc:
                log.warning("%s; this run stops", exc)
                return
            except PushCancelled as exc:
                status, message, error = "cancelled", str(exc), None
            except TreedistillError as exc:
                status, message, error = "failed", str(exc), str(exc)
            except Exception:  # noqa: BLE001 - a bug must still end the push, or it says running forever
                log.exception("push %s failed unexpectedly", job_id)
                status, message = "failed", "The push failed unexpectedly (see the server's log)."
                error = message
            pushes.finish(job_id, status, message, error)
            log.info("push %s ended %s", job_id, status)
        finally:
            pushes.close()

    def join(self, job_id: int, timeout: float) -> None:
        thread = self._threads.get(job_id)
        if thread is not None:
            thread.join(timeout)
