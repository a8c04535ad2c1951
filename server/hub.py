"""Pushing a datasets layout to the Hugging Face Hub, through `huggingface_hub`, in one commit.

The token is read from HF_TOKEN in the operator's environment (the engine's `environ`) when a push starts and
passed to `HfApi` only; it is never a tool argument, never stored, logged or returned. HF_ENDPOINT, when set
there, is the Hub to push to.

A push is a background task of this process with its state in memory (`PushState`, read with `get_push`):
check the token (whoami), create the dataset repository if needed, upload the files the Hub wants as LFS,
then one commit with every file of the layout. A cancel is seen between those steps and always before the
commit, so the Hub either has the whole commit or nothing of it. Pushing again resumes: the repository
already exists, files the Hub already holds are not sent again, and an unchanged layout makes no new commit.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from treedistill.server.errors import InvalidInput, NotFound, TreedistillError
from treedistill.server.export.hf_layout import layout_files

log = logging.getLogger(__name__)
HF_TOKEN_ENV = "HF_TOKEN"
HF_ENDPOINT_ENV = "HF_ENDPOINT"
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
PushStatus = Literal["running", "completed", "failed", "cancelled"]
PushStage = Literal["checking the token", "creating the repository", "uploading", "committing", "completed",
                    "failed", "cancelled"]


class PushCancelled(TreedistillError):
    """The push was cancelled before its commit; nothing was committed."""


class HubRefused(TreedistillError):
    """The Hub refused the push; the message says what to fix."""


class PushState(BaseModel):
    push_id: int
    project_id: int
    repo_id: str
    private: bool
    status: PushStatus = "running"
    stage: PushStage = "checking the token"
    files: list[str] = Field(..., description="The layout's files, as they are named in the repository")
    bytes_total: int
    repo_url: str | None = None
    commit_url: str | None = Field(None, description="The commit holding the layout (when completed)")
    error: str | None = None
    elapsed_seconds: float = 0.0
    message: str = ""


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


def run_push(state: PushState, folder: Path, environ: Mapping[str, str], cancelled: threading.Event,
             commit_message: str) -> None:
    """Push `folder` as `state` describes, updating it as the push goes; blocking, for a worker thread.

    Raises PushCancelled, HubRefused (with what to fix) or InvalidInput; the state is left for the caller to close.
    """
    import httpx2
    from huggingface_hub import CommitOperationAdd, HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    # Its telemetry would fetch a registry from huggingface.co while building request headers, even when the
    # operator points HF_ENDPOINT at another Hub: a push talks to the configured Hub only.
    constants.HF_HUB_DISABLE_TELEMETRY = True

    token = hub_token(environ)
    api = HfApi(endpoint=environ.get(HF_ENDPOINT_ENV) or None, token=token)

    def step(stage: PushStage) -> None:
        if cancelled.is_set():
            raise PushCancelled("The push was cancelled before its commit; nothing was committed.")
        state.stage = stage

    try:
        step("checking the token")
        api.whoami()
        step("creating the repository")
        state.repo_url = str(api.create_repo(state.repo_id, repo_type="dataset", private=state.private,
                                             exist_ok=True))
        step("uploading")
        operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(folder / name))
                      for name in state.files]
        api.preupload_lfs_files(state.repo_id, operations, repo_type="dataset")
        step("committing")
        commit = api.create_commit(state.repo_id, operations, commit_message=commit_message, repo_type="dataset")
        state.commit_url = commit.commit_url
    except HfHubHTTPError as exc:
        raise HubRefused(what_to_fix(exc.response.status_code if exc.response is not None else None,
                                     state.repo_id)) from None
    except httpx2.TransportError as exc:
        raise HubRefused(f"Could not reach the Hub ({type(exc).__name__}); check the network or HF_ENDPOINT and push "
                         "again. Nothing of this push was committed.") from None
    except ValueError as exc:  # the card's YAML refused by the Hub's validate-yaml
        raise HubRefused(f"The Hub refused the dataset card: {exc}. Fix the card (export_dataset(layout='hf') "
                         "writes it) and push again.") from None


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


class PushRegistry:
    """The pushes of this process: started as background threads, read and cancelled by id."""

    def __init__(self) -> None:
        self._pushes: dict[int, tuple[PushState, threading.Event, threading.Thread]] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def start(self, state_of: Callable[[int], PushState], folder: Path, environ: Mapping[str, str],
              commit_message: str) -> PushState:
        with self._lock:
            state = state_of(len(self._pushes) + 1)
            cancelled = threading.Event()
            thread = threading.Thread(target=self._run, args=(state, folder, environ, cancelled, commit_message),
                                      name=f"treedistill-push-{state.push_id}", daemon=True)
            self._pushes[state.push_id] = (state, cancelled, thread)
        thread.start()
        return state

    def _run(self, state: PushState, folder: Path, environ: Mapping[str, str], cancelled: threading.Event,
             commit_message: str) -> None:
        started = time.monotonic()
        try:
            run_push(state, folder, environ, cancelled, commit_message)
            status, stage, message = "completed", "completed", f"Pushed {len(state.files)} files in one commit."
        except PushCancelled as exc:
            status, stage, message = "cancelled", "cancelled", str(exc)
        except TreedistillError as exc:
            status, stage, message = "failed", "failed", str(exc)
            state.error = str(exc)
        except Exception:  # noqa: BLE001 - a bug must still end the push's state, or get_push says running forever
            log.exception("push %s failed unexpectedly", state.push_id)
            status, stage, message = "failed", "failed", "The push failed unexpectedly (see the server's log)."
            state.error = message
        with self._changed:
            state.status, state.stage, state.message = status, stage, message
            state.elapsed_seconds = round(time.monotonic() - started, 3)
            self._changed.notify_all()

    def get(self, push_id: int) -> PushState:
        with self._lock:
            if push_id not in self._pushes:
                raise NotFound(f"No push {push_id} in this server process (pushes are kept in memory until the "
                                   "server stops); push_to_hub again to push.")
            return self._pushes[push_id][0].model_copy()

    def live(self, project_id: int, repo_id: str) -> PushState | None:
        """A push of the project to the repository still running, if any (a second one joins it)."""
        with self._lock:
            return next((state.model_copy() for state, _, _ in self._pushes.values()
                         if state.project_id == project_id and state.repo_id == repo_id
                         and state.status == "running"), None)

    def cancel(self, push_id: int) -> None:
        self.get(push_id)
        self._pushes[push_id][1].set()

    def wait(self, push_id: int, timeout: float) -> PushState:
        """The push's state once it has ended, or after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            state = self._pushes[push_id][0]
            while state.status == "running" and (left := deadline - time.monotonic()) > 0:
                self._changed.wait(left)
        return self.get(push_id)
