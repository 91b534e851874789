"""API keys: who may change state (and, when configured, score and send feedback).

Keys come from `DRIFTLINE_API_KEYS` (comma separated). A request carries one as
`Authorization: Bearer <key>` or as `X-API-Key: <key>`. Without one it gets 401 with a
`WWW-Authenticate` header; with a key that is not configured, 403. A presented key is compared
with every configured key in constant time (`hmac.compare_digest`, no early exit), and no key,
right or wrong, is ever logged or echoed.

With no keys configured the API is open: `guard` then returns no dependency, so the routes and
the OpenAPI document declare no security (the gateway refuses to start so on a non-loopback host
unless `DRIFTLINE_GATEWAY_ALLOW_OPEN` says it may, `GatewaySettings.open_exposure`).
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Security, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from driftline.settings import GatewaySettings

BEARER = HTTPBearer(
    auto_error=False, scheme_name="bearer", description="`Authorization: Bearer <API key>`"
)
API_KEY = APIKeyHeader(
    name="X-API-Key", auto_error=False, scheme_name="apiKey", description="`X-API-Key: <API key>`"
)
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="driftline"'}
"""Sent with every 401: how to authenticate (a bearer token, or the same key as X-API-Key)."""


def matches(presented: str, keys: tuple[str, ...]) -> bool:
    """Whether `presented` is one of `keys`, in time independent of where they differ.

    >>> matches("k" * 16, ("a" * 16, "k" * 16)), matches("k" * 15, ("k" * 16,))
    (True, False)
    """
    given = presented.encode()
    found = False
    for key in keys:  # every key is compared: the time does not tell which one matched
        found |= hmac.compare_digest(given, key.encode())
    return found


def check(keys: tuple[str, ...], bearer: str | None, api_key: str | None) -> None:
    """Raise 401 when no key is presented, 403 when a presented key is not configured."""
    presented = [k for k in (bearer, api_key) if k]
    if not presented:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "an API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>`",
            headers=CHALLENGE,
        )
    if not all(matches(key, keys) for key in presented):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the API key is not valid")


def guard(gateway: GatewaySettings) -> list[Any]:
    """The dependencies a protected route takes: none while no key is configured."""
    keys = gateway.keys
    if not keys:
        return []

    async def require_key(
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
        api_key: Annotated[str | None, Security(API_KEY)],
    ) -> None:
        check(keys, bearer.credentials if bearer is not None else None, api_key)

    return [Depends(require_key)]


async def authorized(keys: tuple[str, ...], connection: HTTPConnection) -> bool:
    """Whether the request carries what `guard`'s dependency accepts (read the same way)."""
    bearer, api_key = await BEARER(connection), await API_KEY(connection)
    try:
        check(keys, bearer.credentials if bearer is not None else None, api_key)
    except HTTPException:
        return False
    return True
