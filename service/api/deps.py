"""Typed dependencies for the routes, and bearer-token authentication.

Two roles: a viewer token may send GET (and HEAD) requests, an admin token
anything. The dependencies are ``async`` although they do not wait for
anything: FastAPI runs a plain ``def`` dependency in its thread pool, and
under load those hops cost more than the work. The role a request needs follows from its method, so a new route is
protected without anyone remembering to say so. Tokens are compared as SHA-256
digests with :func:`hmac.compare_digest`, against every configured token, so the
time taken says nothing about which token nearly matched.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from classifiers.interface import Classifier
from service.api.context import ApiContext
from service.api.live_thresholds import LiveThresholds
from service.playbook.engine import Playbook
from service.settings import ApiSettings, Settings
from service.store import Store

Role = Literal["viewer", "admin"]
READ_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the role, and an actor name for the audit log."""

    role: Role
    actor: str


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def token_fingerprint(token: str) -> str:
    """A short, non-secret name of a token: ``printf %s TOKEN | sha256sum | cut -c1-12``."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


class TokenBook:
    def __init__(self, settings: ApiSettings) -> None:
        self._entries: list[tuple[bytes, Principal]] = []
        for role, tokens in (("admin", settings.admin_tokens), ("viewer", settings.viewer_tokens)):
            for token in tokens:
                secret = token.get_secret_value()
                self._entries.append((_digest(secret), Principal(role, f"{role}:{token_fingerprint(secret)}")))  # type: ignore[arg-type]

    def __bool__(self) -> bool:
        return bool(self._entries)

    def lookup(self, token: str) -> Principal | None:
        presented = _digest(token)
        found: Principal | None = None
        for digest, principal in self._entries:
            # No early exit: every token is compared whatever matched.
            if hmac.compare_digest(presented, digest):
                found = principal
        return found


async def get_context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[ApiContext, Depends(get_context)]

_bearer = HTTPBearer(
    auto_error=False, description="An admin or viewer token from the settings (api.admin_tokens, api.viewer_tokens)."
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


async def authenticate(ctx: ContextDep, credentials: Credentials) -> Principal:
    if credentials is None:
        raise _unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    principal = ctx.tokens.lookup(credentials.credentials)
    if principal is None:
        raise _unauthorized("invalid token")
    return principal


async def authorize(request: Request, principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    """Any valid token for reading, an admin token for everything else."""
    if request.method not in READ_METHODS and principal.role != "admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this needs an admin token; a viewer token may only read")
    return principal


PrincipalDep = Annotated[Principal, Depends(authorize)]


async def get_settings(ctx: ContextDep) -> Settings:
    return ctx.settings


async def get_store(ctx: ContextDep) -> Store:
    return ctx.store


async def get_classifier(ctx: ContextDep) -> Classifier:
    return ctx.model.require()


async def get_thresholds(ctx: ContextDep) -> LiveThresholds:
    return ctx.thresholds


async def get_playbook(ctx: ContextDep) -> Playbook:
    return ctx.playbook


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
ClassifierDep = Annotated[Classifier, Depends(get_classifier)]
ThresholdsDep = Annotated[LiveThresholds, Depends(get_thresholds)]
PlaybookDep = Annotated[Playbook, Depends(get_playbook)]


def optional_auth(setting: str):  # type: ignore[no-untyped-def]
    """For /healthz, /readyz, /metrics: open unless ``api.<setting>`` asks for a token (any role)."""

    async def check(ctx: ContextDep, credentials: Credentials) -> None:
        if getattr(ctx.settings.api, setting):
            await authenticate(ctx, credentials)

    return Depends(check)
