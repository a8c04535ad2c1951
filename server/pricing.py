"""Prices per model and the cost of a call: the model spec's own prices, else the genai-prices library.

Looked up once per (spec, endpoint) and cached. genai-prices (a 1.6 MB price table) is never imported on the way
to answering `initialize`: the engine loads it in a thread of its own a moment after it has started (`preload_in_background`),
so that neither a job's planning nor the event loop waits for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from treedistill.server.models import TERMINAL_STATUSES, JobProgress, ModelSpec, Project, ProjectSummary
from treedistill.server.providers.endpoints import DEFAULT_BASE_URL, resolve_base_url

PriceSource = Literal["spec", "genai-prices", "unknown"]
Report = TypeVar("Report", JobProgress, ProjectSummary)
PRICE_PRELOAD_DELAY = 1.0  # seconds after the engine starts: the price table loads once `initialize` is answered
BATCH_DISCOUNT = 0.5  # OpenAI's Batch API and Anthropic's Message Batches: half the online price
_OFFICIAL_HOSTS = {"api.openai.com": "openai", "api.anthropic.com": "anthropic"}


@dataclass(frozen=True)
class Price:
    """USD per million tokens, online and by batch; None where unknown."""

    input_per_mtok: float | None
    output_per_mtok: float | None
    batch_input_per_mtok: float | None
    batch_output_per_mtok: float | None
    source: PriceSource
    note: str | None = None  # how the price was found, when that is worth knowing (a name-only match...)

    @property
    def known(self) -> bool:
        return self.source != "unknown"

    def cost(self, input_tokens: int, output_tokens: int, *, batch: bool = False) -> float | None:
        """USD for this usage (at batch prices when `batch`), or None when the price is unknown."""
        if not self.known:
            return None
        rates = (self.batch_input_per_mtok, self.batch_output_per_mtok) if batch else (
            self.input_per_mtok, self.output_per_mtok)
        return (input_tokens * (rates[0] or 0) + output_tokens * (rates[1] or 0)) / 1_000_000


UNKNOWN = Price(None, None, None, None, "unknown")


def price_of(spec: ModelSpec, base_url: str | None = None) -> Price:
    """The spec's prices (its own win), else genai-prices' for its provider and model name, else UNKNOWN.

    `base_url` is the endpoint the spec resolves to (default: the spec's own or its provider's default); an
    OpenAI-compatible endpoint genai-prices does not know (a local server) is priced by model name alone,
    with a note saying so.
    """
    return _cached_price(spec.provider, spec.model, (base_url or spec.base_url or DEFAULT_BASE_URL[spec.provider]),
                         spec.input_price_per_mtok, spec.output_price_per_mtok)


def call_cost(spec: ModelSpec, input_tokens: int, output_tokens: int, *, batch: bool = False,
              base_url: str | None = None) -> float | None:
    """USD for one call's usage (at batch prices when `batch`), or None when the model's price is unknown."""
    return price_of(spec, base_url).cost(input_tokens, output_tokens, batch=batch)


@dataclass(frozen=True)
class PriceStatus:
    """Whether every model that a job or project pays for has a known price, and where the prices come from."""

    cost_known: bool
    price_source: str  # "spec", "genai-prices", "unknown", or e.g. "spec+genai-prices" when the models differ
    notes: tuple[str, ...] = ()


def price_status(specs: Iterable[ModelSpec], environ: Mapping[str, str]) -> PriceStatus:
    """The combined price status of the models used (each resolved to its endpoint with `environ`)."""
    prices = [price_of(spec, resolve_base_url(spec, environ)) for spec in specs]
    sources = sorted({price.source for price in prices})
    notes = tuple(dict.fromkeys(price.note for price in prices if price.note))
    if "unknown" in sources:
        return PriceStatus(False, "unknown", notes)
    return PriceStatus(True, "+".join(sources) or "unknown", notes)


def with_job_prices(progress: JobProgress, project: Project, environ: Mapping[str, str]) -> JobProgress:
    """The job's report with cost_known and price_source. Its cost is null once a call had no known price, and
    while it runs with a model whose price is unknown (its calls to come would not be counted)."""
    specs = [project.question_model, *([project.answer_model] if progress.params.get("answer", True) else [])]
    status = price_status(specs, environ)
    return _with_status(progress, status, status.cost_known or progress.status in TERMINAL_STATUSES)


def with_project_prices(summary: ProjectSummary, environ: Mapping[str, str]) -> ProjectSummary:
    """The project's summary with cost_known (every call made had a price) and its models' price_source."""
    return _with_status(summary, price_status([summary.question_model, summary.answer_model], environ), True)


def _with_status(report: Report, status: PriceStatus, models_priced: bool) -> Report:
    # A stored cost covers the priced calls only: with one unpriced it is no total, so none is shown.
    known = report.unpriced_calls == 0 and models_priced
    return report.model_copy(update={"cost": (report.cost or 0.0) if known else None, "cost_known": known,
                                     "price_source": status.price_source, "price_notes": list(status.notes)})


@lru_cache(maxsize=256)
def _cached_price(provider: str, model: str, base_url: str, input_price: float | None,
                  output_price: float | None) -> Price:
    if input_price is not None or output_price is not None:
        # Typed prices say nothing of batches: half, as OpenAI, Anthropic and the compatible batch APIs charge.
        return Price(input_price or 0.0, output_price or 0.0, (input_price or 0.0) * BATCH_DISCOUNT,
                     (output_price or 0.0) * BATCH_DISCOUNT, "spec")
    return _library_price(provider, model, base_url, _official_provider(base_url))


def _official_provider(base_url: str) -> str | None:
    return _OFFICIAL_HOSTS.get((urlsplit(base_url).hostname or "").lower())


def preload_in_background(then: Callable[[], None]) -> threading.Thread:
    """Load the price table in a daemon thread (the first lookup would otherwise pay for it on the event loop), then
    call `then` in that thread."""
    def load() -> None:
        _snapshot()
        then()

    thread = threading.Thread(target=load, name="price-table", daemon=True)
    thread.start()
    return thread


def _snapshot():  # noqa: ANN202 (genai_prices' own type, imported lazily)
    from genai_prices.data_snapshot import get_snapshot  # lazy: a large table, kept off the server's start-up

    return get_snapshot()


def _library_price(provider: str, model: str, base_url: str, official: str | None) -> Price:
    from datetime import UTC, datetime

    snapshot = _snapshot()
    note = None
    if provider == "anthropic" or official:
        where = {"provider_id": official or "anthropic"}
        if not official:
            note = f"{model}: Anthropic's price, for an endpoint that is not api.anthropic.com ({base_url})"
    else:
        try:
            snapshot.find_provider(None, None, base_url)
            where = {"provider_api_url": base_url}
        except LookupError:  # a local or unknown OpenAI-compatible server: try the model name anyway
            where = {}
            note = f"{model}: priced by model name only; {base_url} is not a provider genai-prices knows"
    try:
        found_provider, info = snapshot.find_provider_model(model, None, where.get("provider_id"),
                                                            where.get("provider_api_url"))
    except LookupError:
        return UNKNOWN
    now = datetime.now(tz=UTC)
    online = info.get_prices(now)
    stated_batch = any(variant.when.get("processing") == "batch" for variant in info.price_variants or ())
    batch = info.get_prices(now, {"processing": "batch"}) if stated_batch else None
    rates = [_per_mtok(online.input_mtok), _per_mtok(online.output_mtok)]
    if None in rates:
        return UNKNOWN
    factor = BATCH_DISCOUNT if found_provider.id in ("openai", "anthropic") else 1.0
    stated = [_per_mtok(batch.input_mtok), _per_mtok(batch.output_mtok)] if batch is not None else [None, None]
    batch_rates = [rate * factor if batch_rate is None else batch_rate for rate, batch_rate in zip(rates, stated)]
    if note is not None:
        note = f"{note} (matched {found_provider.id}/{info.id})"
    return Price(rates[0], rates[1], batch_rates[0], batch_rates[1], "genai-prices", note)


def _per_mtok(value: object) -> float | None:
    """A genai-prices price as a float; a tiered price counts at its base tier (prompts here stay far below the
    first threshold, 128k-200k tokens)."""
    if value is None:
        return None
    return float(getattr(value, "base", value))
