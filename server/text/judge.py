"""The LLM judge's verdict: parse a reply into a 1-10 score with a short rationale."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, ValidationError

from treedistill.server.errors import OutputFormatError
from treedistill.server.text.parsing import load_complete_json

RATIONALE_LIMIT = 1000


class JudgeVerdict(BaseModel):
    score: int = Field(..., ge=1, le=10)
    rationale: str = ""


def verdict_schema() -> dict[str, Any]:
    """Strict JSON schema of the verdict, for endpoints that constrain output to a schema (as list_schema is for
    tags and questions): an integer score 1-10 and a rationale, both required, nothing else."""
    return {"title": JudgeVerdict.__name__, "type": "object",
            "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 10},
                           "rationale": {"type": "string"}},
            "required": ["score", "rationale"], "additionalProperties": False}


def parse_verdict(raw: str) -> JudgeVerdict:
    """Parse (repairing malformed but complete JSON) a judge reply; raise OutputFormatError when unusable or cut off."""
    data: Any = load_complete_json(raw)
    try:
        verdict = JudgeVerdict.model_validate(data)
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise OutputFormatError(
            f'expected a JSON object {{"score": 1-10, "rationale": "..."}}; {problem["msg"]} at {problem["loc"]}',
            raw=raw,
        ) from None
    return verdict.model_copy(update={"rationale": verdict.rationale.strip()[:RATIONALE_LIMIT]})


class JudgedAnswer(BaseModel):
    question_id: int
    score: int | None
    rationale: str | None


class ScoreReport(BaseModel):
    project_id: int
    judge_model: str
    judged: int = Field(..., description="Answers scored by this call")
    failed: int = Field(..., description="Answers the judge could not score this time (see errors)")
    errors: list[str]
    results: list[JudgedAnswer] = Field(..., description="This call's scores")
    distribution: dict[str, int] = Field(..., description="Answers per score (1-10) in the scope, all calls")
    mean_score: float | None
    unscored: int = Field(..., description="Answers in the scope still without a score; call again to continue")
    queued_by_batch: int = Field(0, description=(
        "Answers sent to the judge through the endpoint's batch API by this call: scored when their batch ends "
        "(minutes to hours); call score_answers again later to see them"))
