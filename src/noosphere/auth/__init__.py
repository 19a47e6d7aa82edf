"""Principals and their credentials."""

from noosphere.auth.principal import Level, Principal, PrincipalKind
from noosphere.auth.tokens import TokenAuthority

__all__ = ["Level", "Principal", "PrincipalKind", "TokenAuthority"]
