"""The caller's own account: who they are and their API keys; it also serves ``/v1/auth``."""

from api.accounts.routes import router

__all__ = ["router"]
