"""Server-Sent Events of jobs: lifecycle from the read model, progress from Kafka."""

from api.events.hub import EventHub
from api.events.routes import router

__all__ = ["EventHub", "router"]
