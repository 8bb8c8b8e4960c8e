"""Server-Sent Events of jobs: lifecycle from the read model, progress from Kafka."""

from api.events.hub import EventHub
from api.events.lifecycle import download_links
from api.events.pool import stream_engine
from api.events.routes import router

__all__ = ["EventHub", "download_links", "router", "stream_engine"]
