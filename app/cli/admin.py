"""`modelpress admin ...`: tenants and API keys, straight on the database."""

from __future__ import annotations

import argparse
import json
import sys

from app.db import session_scope
from app.errors import ProblemError
from app.tenants import service


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    admin = sub.add_parser("admin", help="manage tenants and API keys (needs database access)")
    actions = admin.add_subparsers(dest="action", required=True, metavar="ACTION")
    tenant = actions.add_parser("create-tenant", help="create a tenant; prints its id")
    tenant.add_argument("name")
    key = actions.add_parser("create-key", help="issue an API key; the key is shown only once")
    key.add_argument("tenant_id")
    key.add_argument("--name", default="default", help="a label to tell keys apart")
    revoke = actions.add_parser("revoke-key", help="revoke an API key by its id")
    revoke.add_argument("key_id")


def run(args: argparse.Namespace) -> int:
    """Carry out one admin action; prints JSON on stdout, 0 on success, 2 on error."""
    result: dict[str, object]
    try:
        with session_scope() as session:
            if args.action == "create-tenant":
                tenant = service.create_tenant(session, args.name)
                result = {"id": tenant.id, "name": tenant.name}
            elif args.action == "create-key":
                issued = service.create_key(session, tenant_id=args.tenant_id, name=args.name)
                result = {"id": issued.id, "tenant_id": issued.tenant_id, "key": issued.secret}
            else:
                service.revoke_key(session, args.key_id)
                result = {"id": args.key_id, "revoked": True}
    except ProblemError as exc:
        print(f"error [{exc.code}]: {exc.detail}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0
