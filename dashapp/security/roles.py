"""Roles and the access policy every route declares.

viewer reads; operator also retries/cancels jobs, deletes cache keys and
starts profiles; admin can do everything (restore, config writes, users).
A route without a declared policy is refused (fail closed), and a test walks
the URL map so a new route cannot slip through unprotected.
"""
from __future__ import annotations

from typing import Callable, TypeVar

ROLES = ("viewer", "operator", "admin")
PUBLIC = "public"
_RANK = {name: rank for rank, name in enumerate(ROLES)}

F = TypeVar("F", bound=Callable)


def role_allows(role: str | None, required: str) -> bool:
    """True when `role` is at least `required` (public needs nothing)."""
    if required == PUBLIC:
        return True
    if role not in _RANK or required not in _RANK:
        return False
    return _RANK[role] >= _RANK[required]


def requires(role: str) -> Callable[[F], F]:
    """Declare the minimum role for a view; enforcement is in `auth`."""
    if role not in _RANK and role != PUBLIC:
        raise ValueError(f"unknown role {role!r}")

    def mark(func: F) -> F:
        func._ops_access = role  # type: ignore[attr-defined]
        return func
    return mark


def public(func: F) -> F:
    """Declare a view reachable without signing in."""
    func._ops_access = PUBLIC  # type: ignore[attr-defined]
    return func


def access_of(view) -> str | None:
    return getattr(view, "_ops_access", None)
