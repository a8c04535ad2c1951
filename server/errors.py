"""Named exceptions raised by the server core; tools/ turns them into user-facing errors."""

from __future__ import annotations


class TreedistillError(Exception):
    """Base of our named errors; `retryable` says whether trying the same work again can help."""

    retryable: bool = False

    def restated(self, message: str) -> TreedistillError:
        """A new error of this type, with these attributes, that says `message` (this one stays as it is)."""
        copy = type(self).__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy.args = (message,)
        copy.__cause__ = self
        return copy


class NotFound(TreedistillError):
    """A project, tag, question or job that does not exist.

    Raised with `kind` and `ident` (and `project_id` where the id is looked up in a project), the message is the
    bare fact and each edge adds how its user finds the right id (tools/common.py, server/cli/main.py)."""

    def __init__(self, message: str | None = None, *, kind: str | None = None, ident: object = None,
                 project_id: int | None = None) -> None:
        self.kind = kind
        self.ident = ident
        self.project_id = project_id
        if message is None:
            where = "" if project_id is None else f" in project {project_id}"
            message = f"No {kind} with id {ident}{where}."
        super().__init__(message)

    def with_next_step(self, steps: dict[str, str]) -> str:
        """The message with the edge's next step for this kind of id (`steps`: kind -> words), when it has one."""
        step = steps.get(self.kind or "")
        return f"{str(self).removesuffix('.')}; {step}." if step else str(self)


class InvalidInput(TreedistillError):
    """Arguments that cannot be acted on as given."""


class ConfirmationRequired(InvalidInput):
    """A destructive or costly action that must be confirmed explicitly."""


class CostAboveThreshold(ConfirmationRequired):
    """A plan expected to cost more than the confirmation threshold; `summary` states the estimate."""

    def __init__(self, message: str, summary: str):
        super().__init__(message)
        self.summary = summary


class MissingAPIKey(InvalidInput):
    """The environment variable that should hold a provider key is unset or empty."""

    def __init__(self, env_var: str, provider: str) -> None:
        self.env_var = env_var
        self.provider = provider
        super().__init__(
            f"No API key: set the environment variable {env_var} (the key for provider '{provider}'), "
            "or name another variable with api_key_env in the model spec."
        )


class BatchUnsupported(InvalidInput):
    """The endpoint has no batch API (it answered the batch routes with 404, 405 or 501)."""


class ProviderError(TreedistillError):
    """A model call failed."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RateLimited(ProviderError):
    """HTTP 429; `retry_after` is the server's requested wait in seconds, if it sent one."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, status: int | None = 429,
                 rate_limits: object | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after
        self.rate_limits = rate_limits  # a providers.base.RateLimitInfo when the 429 carried limit headers


class TransientProviderError(ProviderError):
    """5xx, 408, 409, overloaded, timeouts and connection failures.

    `endpoint_wide` marks failures of the endpoint itself (it cannot be reached at all): once an item
    has spent its attempts on one, the job stops instead of failing item after item.
    """

    retryable = True

    def __init__(self, message: str, *, status: int | None = None, endpoint_wide: bool = False) -> None:
        super().__init__(message, status=status)
        self.endpoint_wide = endpoint_wide


class FatalProviderError(ProviderError):
    """The endpoint refuses every call the same way (bad key, no access, unknown model): stops the job."""

    retryable = False


class RequestRejected(ProviderError):
    """The endpoint refused this one request (400, 413, 422, a content filter): fails its item only."""

    retryable = False


class BadEmbeddings(RequestRejected):
    """An embeddings reply that cannot be used: the wrong number of vectors, vectors of varying dimension, NaN or
    infinite values, a zero vector, or a dimension other than the project's. Fails its item; nothing is stored."""


class JobStopped(TreedistillError):
    """The item's job was cancelled or stopped before a paid call could start; no call was made."""


class OutputFormatError(TreedistillError):
    """The model answered, but its output is unusable (bad JSON, missing fields, placeholders)."""

    retryable = True

    def __init__(self, message: str, *, raw: str = "") -> None:
        super().__init__(message)
        self.raw = raw


class MissingReasoning(OutputFormatError):
    """The teacher answered without the reasoning the project requires, even when asked again: a fresh call
    would do the same, so the item fails at once."""

    retryable = False


class TruncatedOutput(TreedistillError):
    """A reply cut off at max_tokens even with the larger budget: never stored; raise max_tokens."""

    retryable = False


class Batched(Exception):
    """The call was queued for the endpoint's batch API: its item waits, holding no slot, until the batch ends.

    Not an error: the scheduler leaves the item 'batched', and its next attempt finds the reply in the cache.
    """


class LeaseLost(Exception):
    """This process no longer holds the item it was working on: another process took it back (this one was
    stopped or stalled past the heartbeat timeout). Not an item failure: the result is discarded, nothing of it
    written, and the item's new owner carries on (a paid reply stays in the response cache for it)."""
