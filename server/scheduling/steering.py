"""What steers a work item's prompts: the project's settings and its own templates, with its job's on top."""

from __future__ import annotations

from typing import Any

from treedistill.server.models import Project, QuestionStyles
from treedistill.server.store.catalog import Store
from treedistill.server.store.prompts import PromptStore
from treedistill.server.text.prompts import Steering


def steering(store: Store, project: Project, params: dict[str, Any] | None = None) -> Steering:
    """What the project (and the job of `params`) asks of every prompt: the project's guidance with the job's on
    top, the answer style, and the project's own templates."""
    guidance = [text.strip() for text in (project.guidance, (params or {}).get("guidance") or "") if text.strip()]
    return Steering(guidance="\n\n".join(guidance), answer_style=project.answer_style,
                    templates=PromptStore(store).templates(project.id))


def question_styles(project: Project, params: dict[str, Any] | None) -> QuestionStyles | None:
    """The job's question-style mix when it has one, else the project's."""
    job_styles = (params or {}).get("question_styles")
    return QuestionStyles.model_validate(job_styles) if job_styles else project.question_styles

