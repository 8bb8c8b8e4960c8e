"""Authentication: passwords, access and refresh tokens, API keys, OIDC, the calling user.

Routes use ``CurrentUser`` (or ``CurrentPrincipal`` to know how the caller signed in); the
``/v1/auth`` router is served through ``api.accounts``.
"""

from api.auth.admin import ADMIN_ROLE, AdminUser, require_admin
from api.auth.principal import CurrentPrincipal, CurrentUser, Principal, current_user

__all__ = [
    "ADMIN_ROLE",
    "AdminUser",
    "CurrentPrincipal",
    "CurrentUser",
    "Principal",
    "current_user",
    "require_admin",
]
