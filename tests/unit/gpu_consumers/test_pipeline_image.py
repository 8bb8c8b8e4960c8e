"""Image generation and editing through the real diffusers loading and inference code."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from contracts import JobType
from contracts.inputs import ImageEditInput, ImageGenerateInput
from gpu_consumers import blurhash
from gpu_consumers.pipelines import JobStopped, PermanentError, Pipeline, build_pipeline
from gpu_consumers.pipelines.image import ImageEditPipeline
from tests.unit.gpu_consumers.pipeline_harness import Recorder, count_calls, tiny_models

__all__ = ["tiny_models"]


@pytest.fixture(scope="module")
def generate(tiny_models: dict[str, Path]) -> Pipeline:
    pipeline = build_pipeline(JobType.IMAGE_GENERATE, str(tiny_models["image.generate"]))
    pipeline.load("cpu")
    return pipeline


@pytest.fixture(scope="module")
def edit(tiny_models: dict[str, Path]) -> Pipeline:
    pipeline = build_pipeline(JobType.IMAGE_EDIT, str(tiny_models["image.edit"]))
    pipeline.load("cpu")
    return pipeline


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_generates_a_png_of_the_asked_size(generate: Pipeline) -> None:
    recorder = Recorder()
    job = ImageGenerateInput(prompt="a red cat", width=64, height=96, steps=4, seed=7)
    result = generate.run(recorder.context(job))
    (image,) = result.outputs
    assert (image.name, image.content_type) == ("image.png", "image/png")
    assert decode(image.data).format == "PNG"
    assert decode(image.data).size == (64, 96) == (image.width, image.height)
    assert image.blurhash is not None
    assert blurhash.is_valid(image.blurhash)
    assert result.usage_units == 1
    assert recorder.progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
    recorder.assert_complete()
    assert generate.memory_bytes > 0


def test_a_latent_preview_a_quarter_of_the_way_in(generate: Pipeline) -> None:
    recorder = Recorder()
    generate.run(recorder.context(ImageGenerateInput(prompt="a dog", width=64, height=64, steps=8)))
    (preview,) = recorder.previews
    assert preview.step == 2
    assert preview.content_type == "image/jpeg"
    assert decode(preview.data).format == "JPEG"
    assert preview.blurhash is not None
    assert blurhash.is_valid(preview.blurhash)


def test_a_seed_makes_the_image_repeatable(generate: Pipeline) -> None:
    job = ImageGenerateInput(prompt="a boat", width=64, height=64, steps=2, seed=42, guidance=1.0)
    first = generate.run(Recorder().context(job)).outputs[0].data
    assert generate.run(Recorder().context(job)).outputs[0].data == first
    other = job.model_copy(update={"seed": 43})
    assert generate.run(Recorder().context(other)).outputs[0].data != first


def test_a_stop_ends_generation_within_one_step(generate: Pipeline) -> None:
    recorder = Recorder(stop_after=2)
    job = ImageGenerateInput(prompt="a tree", width=64, height=64, steps=20, guidance=1.0)
    with count_calls("UNet2DConditionModel") as unet_calls, pytest.raises(JobStopped):
        generate.run(recorder.context(job))
    assert recorder.progress == [(1, 20), (2, 20)]
    # The stop was asked after step 2 was reported; step 3 was already under way.
    assert unet_calls() == 3


def test_edits_an_upload(edit: Pipeline, tmp_path: Path) -> None:
    upload = tmp_path / "room.jpg"
    Image.new("RGB", (80, 72), (120, 90, 60)).save(upload)
    recorder = Recorder()
    job = ImageEditInput(upload_id="up1", prompt="a sofa", steps=8, seed=3)
    result = edit.run(recorder.context(job, {"up1": upload}))
    (image,) = result.outputs
    assert decode(image.data).size == (80, 72)
    assert image.blurhash is not None
    assert blurhash.is_valid(image.blurhash)
    # strength 0.75 of 8 steps
    assert recorder.progress == [(step, 6) for step in range(1, 7)]
    (preview,) = recorder.previews
    assert preview.step == 1
    assert result.usage_units == 1


def _edit_with_mask(edit: Pipeline, tmp_path: Path, fill: int, prompt: str) -> bytes:
    upload, mask = tmp_path / "photo.png", tmp_path / f"mask-{fill}.png"
    Image.new("RGB", (64, 64), (10, 200, 30)).save(upload)
    Image.new("L", (64, 64), fill).save(mask)
    job = ImageEditInput(
        upload_id="p", mask_upload_id="m", prompt=prompt, steps=2, strength=1.0, seed=3
    )
    return decode(
        edit.run(Recorder().context(job, {"p": upload, "m": mask})).outputs[0].data
    ).tobytes()


def test_an_edit_runs_the_inpainting_pipeline_on_the_mask(edit: Pipeline, tmp_path: Path) -> None:
    assert isinstance(edit, ImageEditPipeline)
    assert edit.pipeline_class_name == "StableDiffusionInpaintPipeline"
    # Inpainting denoises only under the mask: with nothing masked the prompt has no say,
    # with everything masked another prompt makes another image.
    kept = [_edit_with_mask(edit, tmp_path, 0, prompt) for prompt in ("a hat", "the sea")]
    assert kept[0] == kept[1]
    repainted = [_edit_with_mask(edit, tmp_path, 255, prompt) for prompt in ("a hat", "the sea")]
    assert repainted[0] != repainted[1]


def test_a_stop_ends_the_edit_within_one_step(edit: Pipeline, tmp_path: Path) -> None:
    upload = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), "white").save(upload)
    recorder = Recorder(stop_after=1)
    with pytest.raises(JobStopped):
        edit.run(
            recorder.context(ImageEditInput(upload_id="u", prompt="x", steps=20), {"u": upload})
        )
    assert len(recorder.progress) == 1


def test_an_unreadable_upload_fails_permanently(edit: Pipeline, tmp_path: Path) -> None:
    upload = tmp_path / "broken.png"
    upload.write_bytes(b"not an image at all")
    job = ImageEditInput(upload_id="u", prompt="x", steps=2)
    with pytest.raises(PermanentError, match="not a readable image"):
        edit.run(Recorder().context(job, {"u": upload}))
    with pytest.raises(PermanentError, match="not provided"):
        edit.run(Recorder().context(job, {}))


def test_a_large_upload_is_scaled_down_to_multiples_of_eight(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    pipeline = build_pipeline(JobType.IMAGE_EDIT, str(tiny_models["image.edit"]), max_side=96)
    pipeline.load("cpu")
    upload = tmp_path / "wide.png"
    Image.new("RGB", (300, 130), "blue").save(upload)
    job = ImageEditInput(upload_id="u", prompt="x", steps=2, strength=0.5)
    result = pipeline.run(Recorder().context(job, {"u": upload}))
    assert decode(result.outputs[0].data).size == (96, 64)
    pipeline.unload()
    assert pipeline.memory_bytes == 0


def test_a_missing_model_directory_fails_permanently(tmp_path: Path) -> None:
    pipeline = build_pipeline(JobType.IMAGE_GENERATE, str(tmp_path / "nothing-here"))
    with pytest.raises(PermanentError, match="cannot load"):
        pipeline.load("cpu")


def test_a_batch_gives_each_job_its_own_image_progress_and_preview(generate: Pipeline) -> None:
    run_batch = generate.run_batch
    recorders = [Recorder() for _ in range(3)]
    jobs = [
        ImageGenerateInput(prompt=prompt, width=64, height=64, steps=4, seed=seed)
        for prompt, seed in (("a cat", 1), ("a dog", 2), ("a cat", 1))
    ]
    results = run_batch([r.context(job) for r, job in zip(recorders, jobs, strict=True)])
    assert len(results) == 3
    images = [decode(result.outputs[0].data) for result in results]
    assert all(image.size == (64, 64) for image in images)
    # The same prompt and seed give the same image, whatever else shares the batch.
    assert images[0].tobytes() == images[2].tobytes()
    assert images[0].tobytes() != images[1].tobytes()
    for recorder in recorders:
        assert recorder.progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
        assert len(recorder.previews) == 1


def test_a_batch_refuses_jobs_of_different_sizes(generate: Pipeline) -> None:
    run_batch = generate.run_batch
    jobs = [
        ImageGenerateInput(prompt="a", width=64, height=64, steps=2),
        ImageGenerateInput(prompt="b", width=64, height=96, steps=2),
    ]
    with pytest.raises(PermanentError, match="one size"):
        run_batch([Recorder().context(job) for job in jobs])
