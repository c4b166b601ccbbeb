"""The permission table: which role may do what, and which routes are public.

Every route of the HTTP API declares one permission from `PERMISSIONS` through
`hub.auth.deps.require`, or is listed in `PUBLIC_ROUTES` and declares
`hub.auth.deps.public`. A test walks the app's routes and fails for a route that
declares neither, so a new route cannot be reachable by accident.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """Roles a user or API key can hold."""

    ADMIN = "admin"
    KEEPER = "keeper"
    CUSTOMS = "customs"
    FINANCE = "finance"
    GUARD = "guard"
    VIEWER = "viewer"


PERMISSIONS: dict[str, str] = {
    "account:self": "Read one's own account, enrol two-factor sign-in, sign out.",
    "site:read": "Read the site file and the portals' last status.",
    "movement:read": "Search stored movements.",
    "deadletter:read": "Read rejected MQTT messages.",
    "manifest:read": "List manifests and read their reconciliation.",
    "manifest:write": "Create manifests.",
    "manifest:close": "Close a manifest so that its result becomes final.",
    "manifest:confirm": "Record units of a manifest line confirmed by hand.",
    "audit:read": "Query and export the audit trail.",
    "user:admin": "Create users, change roles and passwords, disable users, manage API keys.",
}

ROLE_PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.ADMIN: frozenset(PERMISSIONS),
    Role.KEEPER: frozenset(
        {
            "account:self",
            "site:read",
            "movement:read",
            "deadletter:read",
            "manifest:read",
            "manifest:write",
            "manifest:close",
            "manifest:confirm",
        }
    ),
    Role.CUSTOMS: frozenset(
        {"account:self", "site:read", "movement:read", "manifest:read", "audit:read"}
    ),
    Role.FINANCE: frozenset({"account:self", "movement:read", "manifest:read"}),
    Role.GUARD: frozenset({"account:self", "site:read", "movement:read"}),
    Role.VIEWER: frozenset(
        {"account:self", "site:read", "movement:read", "manifest:read"}
    ),
}

# Routes anyone may call, as (method, path under /api/v1). Health is public so that
# load balancers and monitors need no account; the sign-in routes check credentials
# themselves.
PUBLIC_ROUTES: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/health"),
        ("POST", "/auth/token"),
        ("POST", "/auth/session"),
        ("POST", "/auth/refresh"),
    }
)


def allows(role: Role | str, permission: str) -> bool:
    """Return whether `role` has `permission`. Unknown roles have none."""
    try:
        return permission in ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return False


def _check_table() -> None:
    unknown = {p for grants in ROLE_PERMISSIONS.values() for p in grants} - set(
        PERMISSIONS
    )
    if unknown or set(ROLE_PERMISSIONS) != set(Role):
        raise RuntimeError(f"permission table is inconsistent: {sorted(unknown)}")


_check_table()
