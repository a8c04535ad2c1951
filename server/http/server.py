"""Serving the MCP server over streamable HTTP: binding, DNS-rebinding allow-lists, and uvicorn."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette

from treedistill.server.http.ui import UI_PATH, ui_routes

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
MCP_PATH = "/mcp"


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_names(host: str, extra: Iterable[str] = ()) -> list[str]:
    """Names clients may use in the Host header: loopback, the bound host (or this machine's names when
    binding every interface), and any the user allows explicitly (e.g. a reverse proxy's name)."""
    names = list(LOOPBACK_NAMES)
    if host in WILDCARD_HOSTS:
        hostname = socket.gethostname()
        names += [hostname, socket.getfqdn()]
        try:
            names += socket.gethostbyname_ex(hostname)[2]
        except OSError:
            pass
    else:
        names.append(host)
    names += extra
    return list(dict.fromkeys(name for name in names if name))


def transport_security(host: str, extra_hosts: Iterable[str] = ()) -> TransportSecuritySettings:
    """DNS-rebinding protection on, whatever the bind address: only known Host and Origin values pass."""
    hosts, origins = [], []
    for name in host_names(host, extra_hosts):
        shown = f"[{name}]" if ":" in name else name
        hosts += [shown, f"{shown}:*"]
        origins += [f"http://{shown}", f"http://{shown}:*", f"https://{shown}", f"https://{shown}:*"]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts,
                                     allowed_origins=origins)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0 picks a free one)."""
    family, kind, proto, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (choose another --port)") from exc
    sock.listen(2048)
    return sock


def endpoint_url(sock: socket.socket) -> str:
    address, port = sock.getsockname()[:2]
    shown = f"[{address}]" if ":" in address else address
    return f"http://{shown}:{port}{MCP_PATH}"


def ui_url(mcp_url: str) -> str:
    """The browser app's address on the server whose MCP endpoint is `mcp_url`."""
    return mcp_url.removesuffix(MCP_PATH) + UI_PATH


async def serve_http(server: MCPServer, host: str, port: int, *, extra_hosts: Iterable[str] = (),
                     announce: Callable[[str], None]) -> None:
    """Serve until interrupted. All sessions share the server's one lifespan, hence one Engine."""
    security = transport_security(host, extra_hosts)
    app = server.streamable_http_app(streamable_http_path=MCP_PATH, transport_security=security, host=host)
    app.router.routes.extend(ui_routes(server, security))  # the review app and dashboard at /ui/
    sock = bind(host, port)
    starting = app.router.lifespan_context

    @asynccontextmanager
    async def started(app_: Starlette) -> AsyncIterator[None]:
        async with starting(app_):  # the engine is open and its interrupted work resumed: ready for clients
            announce(endpoint_url(sock))
            yield

    app.router.lifespan_context = started
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    await uvicorn.Server(config).serve(sockets=[sock])
