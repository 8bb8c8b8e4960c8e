"""The GPU workers' settings (``GENSTREAM_WORKER_*``, plus the shared Kafka and S3 ones)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from contracts import JobType, Tier, Workload, worker_group
from genstream.kafka import KafkaSettings
from genstream.settings import settings_config
from genstream.storage import S3Settings
from gpu_consumers.scheduling import parse_shares

DEFAULT_TIMEOUTS_S: dict[JobType, float] = {
    JobType.IMAGE_GENERATE: 600,
    JobType.IMAGE_EDIT: 600,
    JobType.VIDEO_GENERATE: 3600,
    JobType.VIDEO_ENHANCE: 3600,
    JobType.AUDIO_SPEECH: 300,
    JobType.SYNTHETIC: 900,
}


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class WorkerSettings(BaseSettings):
    model_config = settings_config()

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    worker_workload: Workload = Workload.SYNTHETIC
    """The workload this process serves: its three tier topics and its consumer group."""
    worker_id: str = Field(default_factory=_default_worker_id, min_length=1, max_length=128)
    worker_group_id: str | None = None
    """Overrides the workload's group (``genstream-workers-<workload>``)."""
    worker_topic_prefix: str = ""
    """Prefix of every topic the worker reads and writes (isolated namespaces, tests)."""
    worker_shares: str = "70,20,10"
    """Guaranteed shares of starts for pro, creator and free when all three have work."""
    worker_models: dict[JobType, str] = Field(default_factory=dict)
    """Model directory (or hub id) per job type, e.g. ``{"image.generate": "/models/sd15"}``."""
    worker_device: Literal["auto", "cuda", "mps", "cpu"] = "auto"
    worker_model_budget_mb: int = Field(default=20_000, ge=1)
    """Device memory the loaded models may take; least recently used ones are unloaded."""
    worker_max_attempts: int = Field(default=3, ge=1, le=20)
    worker_retry_base_ms: int = Field(default=2_000, ge=0)
    worker_retry_max_ms: int = Field(default=300_000, ge=0)
    worker_timeouts_s: dict[JobType, float] = Field(default_factory=lambda: DEFAULT_TIMEOUTS_S)
    """Execution time limit per job type; a job past it stops at its next step and fails."""
    worker_progress_interval_ms: int = Field(default=250, ge=0)
    worker_prefetch: int = Field(default=4, ge=1, le=1000)
    """Jobs read ahead per partition, so the scheduler sees every tier's waiting work."""
    worker_max_batch: int = Field(default=4, ge=1, le=64)
    """Compatible image jobs (same model, size and steps) run together, up to this many."""
    worker_batch_wait_ms: int = Field(default=50, ge=0, le=10_000)
    worker_end_write_timeout_s: float = Field(default=30.0, gt=0.0, le=600.0)
    """How long a job's end (and a retry or parked copy) may wait for the brokers'
    acknowledgement before the worker gives up and reads the dispatch again."""
    worker_session_timeout_s: float = Field(default=15.0, ge=6.0, le=300.0)
    """How long a silent worker keeps its partitions before the group moves them."""
    worker_control_lookback_s: int = Field(default=8 * 3600, ge=60)
    """How far back a starting worker reads cancellations and finished jobs; at least the
    longest queue deadline of any plan."""
    worker_work_dir: Path = Path("var/worker")
    worker_run_retry_relay: bool = True
    """Also move retried jobs back to their tier topic once their delay has passed."""
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    worker_max_input_pixels: int = Field(default=50_000_000, ge=4096)
    """Largest image or video frame (width x height) the worker decodes, whatever was checked."""
    worker_max_input_duration_s: float = Field(default=600.0, gt=0)
    """Longest uploaded video the worker decodes, whatever was checked."""
    worker_isolation: Literal["process", "inline"] = "process"
    """``process``: pipelines run in a child process the worker watches and can kill (the
    memory ceiling and a timeout that holds inside one long forward pass); ``inline``: in
    the worker itself, for tools and debugging."""
    worker_job_memory_mb: int | None = Field(default=12_288, ge=64)
    """Resident memory of the pipeline process (its loaded models included) past which the
    running job is killed and fails with ``memory_limit``; unset: no ceiling."""
    worker_job_address_space_mb: int | None = Field(default=None, ge=256)
    """A hard ``RLIMIT_AS`` on the pipeline process; leave unset with CUDA, which maps far
    more address space than it uses."""
    worker_stop_grace_s: float = Field(default=5.0, gt=0, le=600)
    """How long a cancelled or timed-out job may take to reach its next step before its
    pipeline process is killed."""
    worker_safety_checker: bool = False
    """Run the Stable Diffusion safety checker on image jobs; a flagged result fails the job
    with ``content_filtered``. The model directory must include one."""
    worker_video_steps: int = Field(default=20, ge=1, le=150)
    """Denoising steps of each ``video.generate`` segment (distilled motion adapters, such
    as AnimateDiff-Lightning's, need 4 or fewer)."""
    worker_motion_adapter: str | None = None
    """AnimateDiff motion adapter (directory or hub id) for a ``video.generate`` model that
    is a plain Stable Diffusion base; unused when the model directory is a whole
    text-to-video pipeline."""
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    s3: S3Settings = Field(default_factory=S3Settings)

    @field_validator("worker_shares")
    @classmethod
    def _valid_shares(cls, value: str) -> str:
        parse_shares(value)
        return value

    @property
    def shares(self) -> dict[Tier, float]:
        return parse_shares(self.worker_shares)

    @property
    def group_id(self) -> str:
        return (
            self.worker_group_id
            or f"{self.worker_topic_prefix}{worker_group(self.worker_workload)}"
        )

    def timeout_s(self, job_type: JobType) -> float:
        return self.worker_timeouts_s.get(job_type, DEFAULT_TIMEOUTS_S[job_type])
