"""Defaults taken from the environment: the database path and the default model spec."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import platformdirs

from treedistill.server.errors import InvalidInput
from treedistill.server.models import ModelSpec


DEFAULT_MAX_CONCURRENCY = 5
MAX_CONCURRENCY_LIMIT = 512  # model calls in flight per project, at most
DEFAULT_CONFIRM_COST_ABOVE = 25.0  # USD: plans expected to cost more need confirm_large=true
LARGE_PLAN_CALLS = 20_000  # plans above this many model calls need confirm_large=true
CONFIRM_COST_ENV = "TREEDISTILL_CONFIRM_COST_ABOVE"
DEFAULT_BATCH_POLL_SECONDS = 10.0  # how often batches in flight are looked at
BATCH_POLL_ENV = "TREEDISTILL_BATCH_POLL_SECONDS"


def env_number(environ: Mapping[str, str], name: str, default: float, *, minimum: float, what: str) -> float:
    """A number from the environment variable `name` (`default` when unset or blank); InvalidInput, naming the
    variable, when it is not a number of at least `minimum` (`what` says what the number is)."""
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= minimum:
        raise InvalidInput(f"{name} must be {what}, not {text!r}.")
    return value


def confirm_cost_above(explicit: float | None, environ: Mapping[str, str]) -> float:
    """The cost (USD) above which a plan needs confirmation: --confirm-cost-above, else the environment, else
    DEFAULT_CONFIRM_COST_ABOVE."""
    if explicit is not None:
        return explicit
    return env_number(environ, CONFIRM_COST_ENV, DEFAULT_CONFIRM_COST_ABOVE, minimum=0,
                      what="a number of US dollars, zero or more")


def batch_poll_seconds(environ: Mapping[str, str]) -> float:
    """Seconds between looks at the batches in flight: TREEDISTILL_BATCH_POLL_SECONDS, else 10."""
    return env_number(environ, BATCH_POLL_ENV, DEFAULT_BATCH_POLL_SECONDS, minimum=0.01,
                      what="a number of seconds, 0.01 or more")


def database_path(explicit: str | None, environ: Mapping[str, str]) -> Path:
    """--db, else TREEDISTILL_DB, else treedistill.db in the user's data directory."""
    if explicit:
        return Path(explicit).expanduser()
    if environ.get("TREEDISTILL_DB"):
        return Path(environ["TREEDISTILL_DB"]).expanduser()
    return Path(platformdirs.user_data_dir("treedistill", appauthor=False)) / "treedistill.db"


def default_model_spec(environ: Mapping[str, str], *, teacher: bool = False) -> ModelSpec:
    """The model spec the environment describes (TREEDISTILL_ANSWER_MODEL overrides the model for the teacher).

    The provider is TREEDISTILL_PROVIDER if set, else 'anthropic' when only Anthropic settings exist,
    else 'openai'.
    """
    model = (teacher and environ.get("TREEDISTILL_ANSWER_MODEL")) or environ.get("TREEDISTILL_MODEL")
    if not model:
        raise InvalidInput(
            "No model configured: pass question_model/answer_model (e.g. {\"provider\": \"openai\", \"model\": "
            "\"gpt-4o-mini\"}) or set TREEDISTILL_MODEL in the server's environment."
        )
    provider = environ.get("TREEDISTILL_PROVIDER")
    if not provider:
        has_openai = environ.get("OPENAI_API_KEY") or environ.get("OPENAI_BASE_URL")
        provider = "anthropic" if environ.get("ANTHROPIC_API_KEY") and not has_openai else "openai"
    if provider not in ("openai", "anthropic"):
        raise InvalidInput(f"TREEDISTILL_PROVIDER must be 'openai' or 'anthropic', not {provider!r}.")
    return ModelSpec(provider=provider, model=model)
