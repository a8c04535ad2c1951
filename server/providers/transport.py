"""The HTTP transport under every SDK client: the SDKs' own aiohttp transport, and one TLS context per process.

The SDKs post through httpx2; on its default transport (httpcore) the SDK's post cost 1.19-1.29 ms of CPU per call,
on the aiohttp transport the SDKs ship (`openai[aiohttp]`, `anthropic[aiohttp]`) 0.72-0.76 ms
(`benchmarks/sdk_cost_bench.py`). httpcore also looked at every connection of its pool each time a request
started or ended, so 512 calls in flight on one client cost 4.4 ms each and the calls had to be spread over
several clients; aiohttp's connector does not (C=512: 2.99 ms per call on one client, 2.96 on eight).

Every client of the process shares one TLS context (`tls_context`): left to itself, each SDK client builds its own
and loads the CA bundle into it, 30 ms of CPU of the 31 ms it took to make one.
"""

from __future__ import annotations

import functools
import ssl
from types import ModuleType

import httpx2


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS context httpx would make for a client (the CA bundle, or SSL_CERT_FILE / SSL_CERT_DIR when set),
    made once for every SDK client of the process."""
    return httpx2.create_ssl_context()


def http_client(sdk: ModuleType, timeout: float) -> httpx2.AsyncClient:
    """The HTTP client for one client of `sdk` (the openai or anthropic module): the SDK's own defaults on its
    aiohttp transport, the call's timeout (seconds without a byte) and the process's one TLS context. Proxies
    from the environment are httpx2's, as on its own transport."""
    return sdk.DefaultAioHttpClient(timeout=timeout, verify=tls_context())
