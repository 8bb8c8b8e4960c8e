"""The stream processors' settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings

from genstream.kafka import KafkaSettings
from genstream.settings import settings_config


class ProcessorSettings(BaseSettings):
    model_config = settings_config()

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    processors_app_id: str = "genstream-processors"
    """Faust application id: the consumer group, and the prefix of its changelog topics."""
    processors_guarantee: Literal["exactly_once", "at_least_once"] = "at_least_once"
    processors_topic_prefix: str = ""
    """Prefix of every topic the processors read and write (isolated namespaces, tests)."""
    catalog: Path | None = None
    """``GENSTREAM_CATALOG``: the plans and prices file replacing the shipped catalog; the
    API reads the same setting, so both enforce the same plans."""
    processors_data_dir: Path = Path("var/processors")
    processors_session_timeout_s: float = Field(default=10.0, ge=6.0, le=300.0)
    """How long a silent worker keeps its partitions before the group moves them."""
    processors_depth_interval_s: float = Field(default=15.0, gt=0)
    """How often the depth of every tier topic is measured for the metrics."""
    processors_expiry_interval_s: float = Field(default=5.0, gt=0)
    """How often queued jobs past their plan's deadline are looked for and expired."""
    processors_credit_wait_s: float = Field(default=5.0, ge=0, le=60)
    """How long a request of an account that has seen no credit yet waits for its sign-up
    grant, which another topic may deliver after it, before it is rejected; 0 never waits."""
    processors_send_linger_ms: int = Field(default=1, ge=0, le=1000)
    """How long the processors' producer holds a record for others to share its request
    (under ``at_least_once``; Faust's own producer writes under ``exactly_once``)."""
    processors_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
