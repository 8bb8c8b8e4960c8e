"""Operators' routes: the system's status for admins (``GET /v1/admin/status``)."""

from api.admin.routes import router

__all__ = ["router"]
