"""Where a worker's pipelines run, as its settings choose."""

from __future__ import annotations

from contracts import JobType, Workload
from contracts.inputs import SyntheticInput
from gpu_consumers.hosting import pipeline_options, worker_pipelines
from gpu_consumers.isolation import HostedPipeline
from gpu_consumers.pipelines import RunContext
from gpu_consumers.pipelines.synthetic import SyntheticPipeline
from gpu_consumers.settings import WorkerSettings


def _settings(**values: object) -> WorkerSettings:
    return WorkerSettings.model_validate(
        {"worker_workload": Workload.SYNTHETIC, "worker_device": "cpu", **values}
    )


def test_inline_pipelines_run_in_the_worker() -> None:
    pipelines = worker_pipelines(_settings(worker_isolation="inline"))
    try:
        assert isinstance(pipelines.provider(JobType.SYNTHETIC), SyntheticPipeline)
        assert pipelines.device == "cpu"
    finally:
        pipelines.close()


def test_process_pipelines_run_in_a_started_child() -> None:
    pipelines = worker_pipelines(_settings(worker_job_memory_mb=512))
    try:
        pipeline = pipelines.provider(JobType.SYNTHETIC)
        assert isinstance(pipeline, HostedPipeline)
        assert pipelines.device == "cpu"
        job = SyntheticInput(steps=2, step_ms=0, output_bytes=3)
        assert pipeline.run(RunContext(job_id="j", input=job)).outputs[0].data == b"\x00\x01\x02"
    finally:
        pipelines.close()


def test_the_deployment_choices_reach_the_pipelines() -> None:
    options = pipeline_options(
        _settings(
            worker_safety_checker=True, worker_motion_adapter="/m/adapter", worker_video_steps=4
        )
    )
    assert options[JobType.IMAGE_GENERATE] == {"safety_checker": True}
    assert options[JobType.IMAGE_EDIT] == {"safety_checker": True}
    assert options[JobType.VIDEO_GENERATE] == {"steps": 4, "motion_adapter": "/m/adapter"}
