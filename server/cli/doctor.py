"""`treedistill doctor`: check the configured models with one tiny call each and say exactly what is wrong."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

from treedistill.server.config import default_model_spec
from treedistill.server.endpoint_check import PING, endpoint_of, ping
from treedistill.server.errors import (
    MissingAPIKey,
    OutputFormatError,
    ProviderError,
    RateLimited,
    TreedistillError,
)
from treedistill.server.http.auth import MIN_TOKEN_LENGTH
from treedistill.server.models import ModelSpec
Report = Callable[[bool, str], None]
NO_MODEL = "No model configured: set TREEDISTILL_MODEL or pass --model NAME (e.g. --model gpt-4o-mini)."


def setup_summary(db_path: Path, environ: Mapping[str, str]) -> str:
    """'database X · openai model 'm' at URL' (plus the teacher when it differs), for banners; never a key."""
    if not environ.get("TREEDISTILL_MODEL"):
        return f"database {db_path} · no model configured (--model or TREEDISTILL_MODEL)"
    try:
        question = default_model_spec(environ)
        teacher = default_model_spec(environ, teacher=True)
    except TreedistillError as exc:
        return f"database {db_path} · {exc}"
    models = endpoint_of(question, environ).where
    if teacher != question:
        models += f" · teacher {endpoint_of(teacher, environ).where}"
    return f"database {db_path} · {models}"


async def run_doctor(environ: Mapping[str, str], db_path: Path, report: Report) -> bool:
    """Report each check as (ok, message); returns whether everything works. Never reports a key's value."""
    healthy = _check_database(db_path, report)
    if not environ.get("TREEDISTILL_MODEL"):
        report(False, NO_MODEL)
        return False
    try:
        specs = {"question model": default_model_spec(environ)}
        teacher = default_model_spec(environ, teacher=True)
        if teacher != specs["question model"]:
            specs["answer model"] = teacher
    except TreedistillError as exc:
        report(False, str(exc))
        return False
    for role, spec in specs.items():
        healthy = await _check_model(role, spec, environ, report) and healthy
    token = environ.get("TREEDISTILL_TOKEN")
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        report(False, f"TREEDISTILL_TOKEN is shorter than {MIN_TOKEN_LENGTH} characters; "
                      "`serve --http` will refuse it.")
        healthy = False
    return healthy


def _check_database(db_path: Path, report: Report) -> bool:
    if db_path.exists():
        report(True, f"database: {db_path}")
        return True
    parent = next((p for p in db_path.parents if p.exists()), None)
    if parent is None or not parent.is_dir():
        report(False, f"database: cannot create {db_path}: no existing parent directory")
        return False
    report(True, f"database: {db_path} (created on first use)")
    return True


async def _check_model(role: str, spec: ModelSpec, environ: Mapping[str, str], report: Report) -> bool:
    endpoint = endpoint_of(spec, environ)
    where, key_env = endpoint.where, endpoint.key_env
    key_note = f"key from {key_env}" if endpoint.key_set else f"{key_env} not set; local server, no key sent"
    started = time.monotonic()
    try:
        input_tokens, output_tokens = await ping(spec, environ)
    except MissingAPIKey:
        report(False, f"{role}: {where}: the environment variable {key_env} is not set (it must hold the API key "
                      f"for this endpoint).")
        return False
    except RateLimited as exc:
        report(True, f"{role}: {where} ({key_note}): reachable and the key works, but rate limited right now: {exc}")
        return True
    except OutputFormatError:
        report(True, f"{role}: {where} ({key_note}): answered (cut off at {PING.max_tokens} tokens, which is fine)")
        return True
    except ProviderError as exc:
        report(False, f"{role}: {exc}{_hint(exc, spec, endpoint.url_path)}")
        return False
    seconds = time.monotonic() - started
    report(True, f"{role}: {where} ({key_note}): answered in {seconds:.2f} s "
                 f"({input_tokens} + {output_tokens} tokens)")
    return True


def _hint(exc: ProviderError, spec: ModelSpec, path: str) -> str:
    """What to change, where the provider's own message does not already say."""
    url_variable = "OPENAI_BASE_URL" if spec.provider == "openai" else "ANTHROPIC_BASE_URL"
    if exc.status is None:
        return f". Check the URL (base_url or {url_variable}) and that the server is running and reachable."
    if exc.status == 404 and spec.provider == "openai" and not path.endswith("/v1"):
        return " OpenAI-compatible base URLs usually end in /v1."
    if exc.status >= 500:
        return " The endpoint itself failed; try again later or ask its operator."
    return ""
