"""Which diffusers class runs each model family, chosen by the model directory's own config."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from contracts import JobType
from contracts.inputs import ImageEditInput, ImageGenerateInput, VideoGenerateInput
from gpu_consumers.pipelines import (
    ContentFilteredError,
    PermanentError,
    build_pipeline,
)
from gpu_consumers.pipelines._diffusion import DiffusionBacked
from gpu_consumers.tiny_models import family_dirs
from tests.unit.gpu_consumers.pipeline_harness import Recorder, tiny_models

__all__ = ["tiny_models"]


@pytest.fixture(scope="module")
def families(tiny_models: dict[str, Path]) -> dict[str, Path]:
    return family_dirs(tiny_models["image.generate"].parent)


def _loaded(job_type: JobType, model_dir: Path, **options: object) -> DiffusionBacked:
    pipeline = build_pipeline(job_type, str(model_dir), **options)
    assert isinstance(pipeline, DiffusionBacked)
    pipeline.load("cpu")
    return pipeline


def test_an_sdxl_directory_generates_with_the_sdxl_pipeline(families: dict[str, Path]) -> None:
    pipeline = _loaded(JobType.IMAGE_GENERATE, families["stable-diffusion-xl"])
    assert pipeline.pipeline_class_name == "StableDiffusionXLPipeline"
    recorder = Recorder()
    job = ImageGenerateInput(prompt="a lamp", width=64, height=64, steps=2, seed=1)
    result = pipeline.run(recorder.context(job))
    assert Image.open(io.BytesIO(result.outputs[0].data)).size == (64, 64)
    assert recorder.progress == [(1, 2), (2, 2)]


def test_an_sdxl_directory_edits_with_the_sdxl_inpainting_pipeline(
    families: dict[str, Path], tmp_path: Path
) -> None:
    pipeline = _loaded(JobType.IMAGE_EDIT, families["stable-diffusion-xl"])
    assert pipeline.pipeline_class_name == "StableDiffusionXLInpaintPipeline"
    Image.new("RGB", (64, 64), "red").save(tmp_path / "in.png")
    job = ImageEditInput(upload_id="u", prompt="blue", steps=2, strength=1.0, seed=2)
    result = pipeline.run(Recorder().context(job, {"u": tmp_path / "in.png"}))
    assert Image.open(io.BytesIO(result.outputs[0].data)).size == (64, 64)


def test_a_directory_of_another_family_is_refused(families: dict[str, Path]) -> None:
    pipeline = build_pipeline(JobType.IMAGE_GENERATE, str(families["animatediff"]))
    with pytest.raises(PermanentError, match=r"is a AnimateDiffPipeline; image\.generate takes"):
        pipeline.load("cpu")


def test_with_the_safety_checker_on_a_flagged_image_is_a_job_error(
    families: dict[str, Path],
) -> None:
    # The tiny checker flags everything.
    pipeline = _loaded(JobType.IMAGE_GENERATE, families["stable-diffusion"], safety_checker=True)
    job = ImageGenerateInput(prompt="anything", width=64, height=64, steps=1, seed=1)
    with pytest.raises(ContentFilteredError, match="withheld") as caught:
        pipeline.run(Recorder().context(job))
    assert caught.value.code == "content_filtered"


def test_the_safety_checker_on_needs_a_model_that_ships_one(families: dict[str, Path]) -> None:
    pipeline = build_pipeline(
        JobType.IMAGE_GENERATE, str(families["stable-diffusion-xl"]), safety_checker=True
    )
    with pytest.raises(PermanentError, match="safety checker"):
        pipeline.load("cpu")


def test_an_image_base_with_a_motion_adapter_runs_animatediff(families: dict[str, Path]) -> None:
    adapter = families["animatediff"] / "motion_adapter"
    pipeline = _loaded(
        JobType.VIDEO_GENERATE, families["stable-diffusion"], motion_adapter=str(adapter), steps=1
    )
    assert pipeline.pipeline_class_name == "AnimateDiffPipeline"
    job = VideoGenerateInput(prompt="waves", duration_s=1, fps=2, width=64, height=64, seed=1)
    assert pipeline.run(Recorder().context(job)).outputs[0].content_type == "video/mp4"


def test_an_image_base_without_a_motion_adapter_is_refused(families: dict[str, Path]) -> None:
    pipeline = build_pipeline(JobType.VIDEO_GENERATE, str(families["stable-diffusion"]))
    with pytest.raises(PermanentError, match="motion adapter"):
        pipeline.load("cpu")
