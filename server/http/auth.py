"""Bearer-token auth for the streamable HTTP transport: one shared secret, compared in constant time."""

from __future__ import annotations

import hmac
from typing import Any

from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings

from treedistill.server.errors import InvalidInput

MIN_TOKEN_LENGTH = 16
# AuthSettings requires an issuer URL; it is only published when an OAuth provider or resource URL is set,
# and we set neither.
_UNUSED_ISSUER = "http://127.0.0.1"


class StaticTokenVerifier:
    """Accepts exactly one token (the server's TREEDISTILL_TOKEN / --token)."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def verify_token(self, token: str) -> AccessToken | None:
        if hmac.compare_digest(token.encode(), self._token):
            return AccessToken(token="bearer", client_id="treedistill-client", scopes=[])
        return None


def check_token(token: str) -> str:
    """Return the token if it is long enough to be a secret; raise InvalidInput otherwise."""
    if len(token) < MIN_TOKEN_LENGTH:
        raise InvalidInput(
            f"The bearer token must be at least {MIN_TOKEN_LENGTH} characters; make one with: "
            "python -c \"import secrets; print(secrets.token_urlsafe(32))\""
        )
    return token


def bearer_auth_options(token: str) -> dict[str, Any]:
    """MCPServer keyword arguments that make every HTTP request without `Authorization: Bearer <token>` a 401."""
    return {"token_verifier": StaticTokenVerifier(token),
            "auth": AuthSettings(issuer_url=_UNUSED_ISSUER, resource_server_url=None)}
