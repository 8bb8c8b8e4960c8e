"""Payment provider webhooks: signature checks, event meanings, and the route applying them."""

from api.payments.events import PayloadError, ProviderEvent, effect_of, parse_event
from api.payments.routes import router
from api.payments.signature import SignatureError, sign, verify_signature

__all__ = [
    "PayloadError",
    "ProviderEvent",
    "SignatureError",
    "effect_of",
    "parse_event",
    "router",
    "sign",
    "verify_signature",
]
