"""Prometheus metrics of the GPU workers."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

QUEUE_WAIT = Histogram(
    "genstream_worker_queue_wait_seconds",
    "From a job's dispatch to its start on a worker",
    ["workload", "tier"],
    buckets=(0.05, 0.25, 1, 5, 15, 60, 300, 900, 3600, 21600),
)
RUN_TIME = Histogram(
    "genstream_worker_run_seconds",
    "Time a pipeline took to run one job",
    ["pipeline", "outcome"],
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600),
)
BATCH_SIZE = Histogram(
    "genstream_worker_batch_size",
    "Jobs run together in one batch",
    ["pipeline"],
    buckets=(1, 2, 3, 4, 6, 8, 16, 32, 64),
)
OUTCOMES = Counter("genstream_worker_jobs_total", "Jobs handled, by how they ended", ["outcome"])
JOB_OUTCOMES = Counter(
    "genstream_worker_job_outcomes_total",
    "Jobs handled, by job type, tier and how they ended",
    ["job_type", "tier", "outcome"],
)
DEAD_LETTERS = Counter(
    "genstream_worker_dead_letters_total", "Records parked on the dead-letter topic", ["reason"]
)
CONTROL_RECORDS = Counter(
    "genstream_worker_control_records_total",
    "Records job control read from the lifecycle and command topics (it commits no offsets)",
)
GPU_MEMORY = Gauge("genstream_worker_gpu_memory_bytes", "Device memory allocated by the worker")
GPU_UTILISATION = Gauge("genstream_worker_gpu_utilisation_ratio", "Device utilisation, 0 to 1")
