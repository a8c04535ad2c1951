"""What the server pushes to its clients: the engine's log at the level a client chose (logging/setLevel), and
resources/updated for the resources a client subscribed to (resources/subscribe), in both protocol eras where
the era has them: 2026-07-28 clients listen through subscriptions/listen (the SDK's bus) and have no
connection-wide log, so logging/setLevel and resources/subscribe serve the handshake era."""

from __future__ import annotations

import asyncio
import logging
import warnings
import weakref
from typing import Any

from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.subscriptions import SubscriptionBus
from mcp.shared.subscriptions import ResourceUpdated
from mcp_types import EmptyResult, LoggingLevel, SetLevelRequestParams, SubscribeRequestParams, \
    UnsubscribeRequestParams

ENGINE_LOGGER = "treedistill"
# MCP's levels (syslog's) and the Python level each starts at.
LEVELS: dict[str, int] = {"debug": logging.DEBUG, "info": logging.INFO, "notice": logging.INFO + 5,
                          "warning": logging.WARNING, "error": logging.ERROR, "critical": logging.CRITICAL,
                          "alert": logging.CRITICAL + 5, "emergency": logging.CRITICAL + 10}


def mcp_level(levelno: int) -> LoggingLevel:
    """The MCP level of a Python log record: the highest one whose threshold the record reaches."""
    return max((name for name, threshold in LEVELS.items() if levelno >= threshold),
               key=LEVELS.__getitem__, default="debug")  # type: ignore[return-value]


def connection_of(ctx: ServerRequestContext[Any]) -> Connection:
    # A request's session lives for that request; what a client sets must outlive it, on its connection, which
    # the SDK does not expose publicly.
    return ctx.session._connection  # noqa: SLF001


class ClientChannels:
    """Per client connection: the log level it set and the resource URIs it subscribed to."""

    def __init__(self, bus: SubscriptionBus) -> None:
        self.bus = bus
        self.levels: weakref.WeakKeyDictionary[Connection, int] = weakref.WeakKeyDictionary()
        self.subscriptions: weakref.WeakKeyDictionary[Connection, set[str]] = weakref.WeakKeyDictionary()
        self._handler: _ForwardToClients | None = None

    async def set_level(self, ctx: ServerRequestContext[Any], params: SetLevelRequestParams) -> EmptyResult:
        wanted = LEVELS[params.level]
        self.levels[connection_of(ctx)] = wanted
        engine_log = logging.getLogger(ENGINE_LOGGER)
        if engine_log.getEffectiveLevel() > wanted:
            engine_log.setLevel(wanted)  # records below stay filtered by every other handler's own level
        return EmptyResult()

    async def subscribe(self, ctx: ServerRequestContext[Any], params: SubscribeRequestParams) -> EmptyResult:
        # Any URI is accepted: a project's tree may be subscribed to before the project exists.
        self.subscriptions.setdefault(connection_of(ctx), set()).add(str(params.uri))
        return EmptyResult()

    async def unsubscribe(self, ctx: ServerRequestContext[Any], params: UnsubscribeRequestParams) -> EmptyResult:
        self.subscriptions.get(connection_of(ctx), set()).discard(str(params.uri))
        return EmptyResult()

    async def resource_updated(self, uri: str) -> None:
        """Tell every subscriber of `uri`, in both eras, that it changed."""
        await self.bus.publish(ResourceUpdated(uri=uri))
        for connection, uris in list(self.subscriptions.items()):
            if uri in uris:
                await connection.send_resource_updated(uri)

    async def log(self, record: logging.LogRecord) -> None:
        """Send one engine log record to each connection whose level it reaches."""
        for connection, level in list(self.levels.items()):
            if record.levelno >= level:
                with warnings.catch_warnings():  # logging is deprecated in 2026-07-28; this is the handshake era
                    warnings.simplefilter("ignore")
                    await connection.log(mcp_level(record.levelno), record.getMessage(), record.name)

    def start(self) -> None:
        """Forward the engine's log records to clients while the server runs."""
        self._handler = _ForwardToClients(self, asyncio.get_running_loop())
        logging.getLogger(ENGINE_LOGGER).addHandler(self._handler)

    def stop(self) -> None:
        if self._handler is not None:
            logging.getLogger(ENGINE_LOGGER).removeHandler(self._handler)
            self._handler = None


class _ForwardToClients(logging.Handler):
    """A logging handler that hands records to the event loop (records come from worker threads too)."""

    def __init__(self, channels: ClientChannels, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(logging.DEBUG)
        self.channels, self.loop = channels, loop
        self.sending: set[asyncio.Task[None]] = set()

    def emit(self, record: logging.LogRecord) -> None:
        if self.channels.levels and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._send, record)

    def _send(self, record: logging.LogRecord) -> None:
        task = self.loop.create_task(self.channels.log(record))
        self.sending.add(task)  # kept until done: the loop holds tasks only weakly
        task.add_done_callback(self.sending.discard)
