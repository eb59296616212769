"""Creating tenants, issuing and revoking keys, and resolving a request's key to its tenant."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.db import utcnow
from app.errors import NotFoundProblem, UnauthorizedProblem
from app.tenants import repository
from app.tenants.tables import ApiKeyTable, TenantTable

KEY_PREFIX = "mp_"


@dataclass(frozen=True)
class IssuedKey:
    id: str
    tenant_id: str
    secret: str  # shown once; only its digest is stored


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_tenant(session: Session, name: str) -> TenantTable:
    """A new tenant with no keys yet."""
    return repository.add_tenant(session, TenantTable(name=name))


def create_key(session: Session, *, tenant_id: str, name: str = "default") -> IssuedKey:
    """Issue a random key for a tenant; the secret is returned once and never stored."""
    if repository.get_tenant(session, tenant_id=tenant_id) is None:
        raise NotFoundProblem(f"no tenant with id {tenant_id!r}")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    row = repository.add_key(
        session,
        ApiKeyTable(tenant_id=tenant_id, name=name, prefix=secret[:10], key_hash=_digest(secret)),
    )
    return IssuedKey(id=row.id, tenant_id=tenant_id, secret=secret)


def revoke_key(session: Session, key_id: str) -> None:
    """Revoke a key at once; requests with it get 401 from then on."""
    if not repository.revoke_key(session, key_id, utcnow()):
        raise NotFoundProblem(f"no active key with id {key_id!r}")


def tenant_for_key(session: Session, secret: str | None) -> str:
    """The tenant an API key belongs to, or UnauthorizedProblem."""
    if not secret:
        raise UnauthorizedProblem("send an API key as 'Authorization: Bearer <key>'")
    key = repository.active_key_by_hash(session, _digest(secret.strip()))
    if key is None:
        raise UnauthorizedProblem("the API key is unknown or revoked")
    return key.tenant_id
