"""Uploads: presigned PUTs into the object store, checked before a job uses them."""

from api.uploads.checks import upload_refused, usable_upload
from api.uploads.routes import router

__all__ = ["router", "upload_refused", "usable_upload"]
