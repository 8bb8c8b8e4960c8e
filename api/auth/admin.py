"""Operators: users whose role is ``admin`` (granted with ``genstream admin grant <email>``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from api.auth.principal import CurrentUser
from api.problems import Problem
from genstream.db.models import User

ADMIN_ROLE = "admin"


async def require_admin(user: CurrentUser) -> User:
    """The calling user if they are an admin; 403 for any other signed-in user (401 without
    credentials, from ``CurrentUser``)."""
    if user.role != ADMIN_ROLE:
        raise Problem(403, "this needs an operator's (admin) account")
    return user


AdminUser = Annotated[User, Depends(require_admin)]
