"""One endpoint's calls spread over several SDK clients once many are in flight.

httpx's connection pool looks at every one of its connections each time a request starts or ends (httpcore's
`_assign_requests_to_connections`): with 512 calls in flight on one client that scan made a call cost 4.4 ms of
CPU, against 2.8 ms for the same calls spread over eight clients (issue 19). A pool leases the least busy of its
clients and opens another only when every one has PER_CLIENT calls in flight; a client is never closed before the
pool is, so its connections stay open for the next calls.

Every client of the process shares one TLS context (`tls_context`): left to itself, each SDK client builds its own
and loads the CA bundle into it, 30 ms of CPU of the 31 ms it took to make one.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Generic, Protocol, TypeVar

import httpx2

PER_CLIENT = 8  # calls in flight on one client before the next call opens another


class _Closable(Protocol):
    async def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)


class ClientPool(Generic[C]):
    """SDK clients of one endpoint, made by `make` as the calls in flight need them."""

    def __init__(self, make: Callable[[], C], per_client: int = PER_CLIENT) -> None:
        self._make = make
        self._per_client = per_client
        self.clients: list[C] = [make()]
        self._in_flight = [0]

    @property
    def first(self) -> C:
        """The client made first (for what is not a chat call: the batch API, the key to scrub from errors)."""
        return self.clients[0]

    @contextmanager
    def lease(self) -> Iterator[C]:
        """The least busy client, for one call (its streamed reply included)."""
        index = min(range(len(self.clients)), key=self._in_flight.__getitem__)
        if self._in_flight[index] >= self._per_client:
            self.clients.append(self._make())
            self._in_flight.append(0)
            index = len(self.clients) - 1
        self._in_flight[index] += 1
        try:
            yield self.clients[index]
        finally:
            self._in_flight[index] -= 1

    async def aclose(self) -> None:
        for client in self.clients:
            await client.close()


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS context httpx would make for a client (the CA bundle, or SSL_CERT_FILE / SSL_CERT_DIR when set),
    made once for every SDK client of the process."""
    return httpx2.create_ssl_context()


def http_client(sdk: ModuleType, timeout: float) -> httpx2.AsyncClient:
    """The HTTP client for one client of `sdk` (the openai or anthropic module): the SDK's own defaults, the
    call's timeout and the process's one TLS context."""
    return sdk.DefaultAsyncHttpxClient(timeout=timeout, verify=tls_context())
