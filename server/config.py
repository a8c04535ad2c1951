"""Defaults taken from the environment: the database path and the default model spec."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import platformdirs

from treedistill.server.errors import InvalidInput
from treedistill.server.models import ModelSpec


DEFAULT_MAX_CONCURRENCY = 5
MAX_NAME_CHARS = 200  # a project's name
MAX_TOPIC_CHARS = 500  # a project's topic
MAX_CONCURRENCY_LIMIT = 512  # model calls in flight per project, at most
DEFAULT_CONFIRM_COST_ABOVE = 25.0  # USD: plans expected to cost more need confirm_large=true
LARGE_PLAN_CALLS = 20_000  # plans above this many model calls need confirm_large=true
CONFIRM_COST_ENV = "TREEDISTILL_CONFIRM_COST_ABOVE"
DEFAULT_BATCH_POLL_SECONDS = 10.0  # how often batches in flight are looked at
BATCH_POLL_ENV = "TREEDISTILL_BATCH_POLL_SECONDS"
DEFAULT_HEARTBEAT_TIMEOUT = 15.0  # seconds: a process silent this long is taken for dead; its work resumes elsewhere
MAX_FILE_NAME_BYTES = 255  # one file or directory name, as most file systems allow (NAME_MAX)
MAX_PATH_BYTES = 4096  # a whole path (PATH_MAX on Linux)
HEARTBEAT_TIMEOUT_ENV = "TREEDISTILL_HEARTBEAT_TIMEOUT"
CLAIM_BATCH = 32  # work items a lane leases in one statement, at most
LOOP_SLICE_SECONDS = 0.005  # engine work between chances for MCP requests to be served when the loop is saturated


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


def heartbeat_timeout(environ: Mapping[str, str]) -> float:
    """Seconds of silence after which a process is taken for dead: TREEDISTILL_HEARTBEAT_TIMEOUT, else 15. Every
    process on one database should use the same value."""
    return env_number(environ, HEARTBEAT_TIMEOUT_ENV, DEFAULT_HEARTBEAT_TIMEOUT, minimum=1,
                      what="a number of seconds, 1 or more")


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

# A job's shape (auto_distill, distill, the auto_distillation prompt): levels of tags grown below the root (or the
# branch), sub-tags per tag and questions per leaf; bounds and defaults, for every surface.
MAX_LEVELS = 5
MAX_PER_LEVEL = 100  # sub-tags per tag, and questions per leaf
DEFAULT_LEVELS = 2
DEFAULT_TAGS_PER_LEVEL = 10
DEFAULT_QUESTIONS_PER_TAG = 10

# Trees people bring (import_tree, add_tags, rename_tag): at most this many tags per import, this many characters
# per name and per outline, and this depth counted from the topic root (auto_distill grows at most MAX_LEVELS).
MAX_IMPORT_TAGS = 20_000
MAX_TAG_NAME_CHARS = 200
MAX_IMPORT_CHARS = 4_000_000
MAX_TAG_DEPTH = 12
MAX_HOLD_OUT_RATIO = 0.5  # the largest share of a project's questions hold_out sets aside

# dataset_report(breakdown="tags") lists every tag of its scope: at most this many (the Report view's treemap).
MAX_REPORT_TAGS = 2_000  # about 1 KB of JSON a tag; more cells than a treemap can show

MAX_TURNS = 8  # a dialogue's turns (user message + assistant reply), the first included
DEFAULT_MARGIN = 2  # judge points (of 10) by which a preference pair's winner must lead for the pair to be kept
MAX_MARGIN = 9  # scores are 1-10
