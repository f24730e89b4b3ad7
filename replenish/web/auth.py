"""Who is asking: the household's signed session cookie, CSRF tokens on every form, and the operator's bearer token."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Header, HTTPException, Request

__all__ = ["check_csrf", "csrf_token", "household_id", "operator_check", "require_household"]


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(24)
    return str(token)


def check_csrf(request: Request, token: str) -> None:
    """Refuse a form whose token is not the session's (stale or forged)."""
    if not secrets.compare_digest(token, str(request.session.get("csrf", ""))):
        raise HTTPException(403, "the form is stale or forged (CSRF token mismatch); reload the page")


def household_id(request: Request) -> int | None:
    """The logged-in household, if any."""
    value = request.session.get("household_id")
    return int(value) if value is not None else None


def require_household(request: Request) -> int:
    """The logged-in household, or 401."""
    found = household_id(request)
    if found is None:
        raise HTTPException(401, "log in first")
    return found


def operator_check(admin_token: str) -> Callable[..., Awaitable[None]]:
    """A dependency that lets through only the operator's bearer token (404 when the operator API is off)."""

    async def operator(authorization: Annotated[str | None, Header()] = None) -> None:
        if not admin_token:
            raise HTTPException(404, "the operator API is off: set REPLENISH_ADMIN_TOKEN")
        given = authorization[7:].strip() if authorization and authorization.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(given.encode(), admin_token.encode()):
            raise HTTPException(401, "the operator token is required: Authorization: Bearer <token>")

    return operator
