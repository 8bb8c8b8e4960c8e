"""The tiny model builder and the pipeline registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts import JobType
from gpu_consumers.pipelines import build_pipeline
from gpu_consumers.tiny_models import FAMILIES, build_tiny_models, family_dirs, main
from tests.unit.gpu_consumers.pipeline_harness import tiny_models

__all__ = ["tiny_models"]


def test_every_model_backed_job_type_has_a_directory(tiny_models: dict[str, Path]) -> None:
    assert set(tiny_models) == {job.value for job in JobType} - {JobType.SYNTHETIC.value}
    assert (tiny_models["image.generate"] / "model_index.json").is_file()
    assert (tiny_models["image.generate"] / "unet" / "config.json").is_file()
    assert (tiny_models["audio.speech"] / "vocab.json").is_file()
    assert (tiny_models["video.enhance"] / "model.safetensors").is_file()


def test_every_family_is_saved_the_way_its_library_loads_it(tiny_models: dict[str, Path]) -> None:
    families = family_dirs(tiny_models["image.generate"].parent)
    assert set(families) == set(FAMILIES)
    for name in ("stable-diffusion", "stable-diffusion-xl", "animatediff"):
        assert (families[name] / "model_index.json").is_file()
    assert (families["animatediff"] / "motion_adapter" / "config.json").is_file()
    assert (families["stable-diffusion"] / "safety_checker" / "config.json").is_file()
    swin2sr = json.loads((families["swin2sr-x2"] / "config.json").read_text())
    assert (swin2sr["model_type"], swin2sr["upscale"]) == ("swin2sr", 2)


def test_a_second_build_reuses_the_first(tiny_models: dict[str, Path]) -> None:
    weights = tiny_models["image.generate"] / "unet" / "diffusion_pytorch_model.safetensors"
    built_at = weights.stat().st_mtime_ns
    again = build_tiny_models(tiny_models["image.generate"].parent)
    assert again == tiny_models
    assert weights.stat().st_mtime_ns == built_at


def test_the_command_prints_the_directories(
    tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tiny_models["image.generate"].parent)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == {job: str(path) for job, path in tiny_models.items()}


@pytest.mark.parametrize("job_type", list(JobType))
def test_the_registry_builds_a_pipeline_per_job_type(
    job_type: JobType, tiny_models: dict[str, Path]
) -> None:
    model_dir = tiny_models.get(job_type.value)
    pipeline = build_pipeline(job_type, None if model_dir is None else str(model_dir))
    assert pipeline.job_type is job_type
    assert pipeline.memory_bytes == 0  # nothing loaded yet


def test_the_registry_refuses_a_model_backed_type_without_a_model() -> None:
    with pytest.raises(ValueError, match="model directory"):
        build_pipeline(JobType.IMAGE_GENERATE, None)


def test_the_registry_passes_options_and_refuses_unknown_ones(tiny_models: dict[str, Path]) -> None:
    build_pipeline(JobType.VIDEO_GENERATE, str(tiny_models["video.generate"]), steps=3)
    with pytest.raises(TypeError):
        build_pipeline(JobType.VIDEO_GENERATE, str(tiny_models["video.generate"]), colour="red")
