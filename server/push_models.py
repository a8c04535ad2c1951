"""The state of a push to the Hugging Face Hub, as get_push and get_progress show it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

PushStatus = Literal["running", "completed", "failed", "cancelled"]
PushStage = Literal["checking the token", "creating the repository", "uploading", "committing", "completed",
                    "failed", "cancelled"]


class PushState(BaseModel):
    push_id: int = Field(..., description="The push's job id: get_progress, cancel_job and resume_job take it too")
    project_id: int
    repo_id: str
    private: bool
    status: PushStatus = "running"
    stage: PushStage = "checking the token"
    files: list[str] = Field(..., description="The layout's files, as they are named in the repository")
    bytes_total: int
    attempts: int = Field(1, description="Runs of this push: more than 1 after a restart resumed it")
    repo_url: str | None = None
    commit_url: str | None = Field(None, description="The commit holding the layout (when completed)")
    error: str | None = None
    elapsed_seconds: float = 0.0
    message: str = ""
