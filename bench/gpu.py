"""The GPU check: every model family at full size, with random weights, on a CUDA device.

    python -m bench.gpu [--out bench/results/gpu.json] [--families sd15,sdxl,...]

For each family the full-size configuration (Stable Diffusion 1.5, SDXL, AnimateDiff on
SD 1.5, Swin2SR x2, VITS at MMS-TTS size) is built with random weights in fp16 on the
device, saved with ``save_pretrained`` and loaded back through the worker's own pipelines
(``from_pretrained``, fp16, attention and VAE slicing): the figures are the worker's.
Reported per family: load seconds, weights on the device, one job's seconds and its peak
device memory above the loaded weights. Then the model cache under a budget too small for
all of them at once (swaps and reload seconds), and dynamic batching of ``image.generate``
on SD 1.5 at batch 1, 2, 4 and 8 (images per second and the speedup against batch 1; the
goal is at least 3x at batch 8). Random weights make noise, at the speed real ones run.

Without a CUDA device it says so and exits 0; it is not part of ``make test``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel

from contracts import JobType
from contracts.inputs import (
    AudioSpeechInput,
    ImageEditInput,
    ImageGenerateInput,
    VideoEnhanceInput,
    VideoGenerateInput,
)

FAMILIES: Final = ("sd15", "sdxl", "animatediff", "swin2sr", "vits")
BATCHES: Final = (1, 2, 4, 8)
_MB: Final = 1024 * 1024


def _cuda() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def _diffusers() -> Any:
    # Its top level is imported lazily, which leaves mypy no types to check against.
    import diffusers

    return diffusers


# -- full-size random models -------------------------------------------------------------------
def _clip_text(hidden: int, layers: int, heads: int, *, projection: int | None = None) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=49408,
        hidden_size=hidden,
        intermediate_size=hidden * 4,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=77,
        projection_dim=projection or hidden,
        hidden_act="gelu" if hidden > 768 else "quick_gelu",
    )
    if projection is not None:
        return CLIPTextModelWithProjection(config)
    return CLIPTextModel(config)


def _sd_vae() -> Any:
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL

    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        sample_size=512,
    )


def _scheduler() -> Any:
    from diffusers.schedulers.scheduling_ddim import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False
    )


def _tokenizer(work: Path) -> Any:
    from gpu_consumers.tiny_models import build_clip_tokenizer

    files = work / "tokenizer-files"
    files.mkdir(exist_ok=True)
    return build_clip_tokenizer(files)


def _save_sd15(target: Path, work: Path) -> Any:
    diffusers = _diffusers()
    pipe = diffusers.StableDiffusionPipeline(
        vae=_sd_vae(),
        text_encoder=_clip_text(768, 12, 12),
        tokenizer=_tokenizer(work),
        unet=diffusers.UNet2DConditionModel(cross_attention_dim=768, sample_size=64),
        scheduler=_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(str(target))
    return pipe


def _save_sdxl(target: Path, work: Path) -> None:
    diffusers = _diffusers()
    unet = diffusers.UNet2DConditionModel(
        sample_size=128,
        block_out_channels=(320, 640, 1280),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2, 10),
        attention_head_dim=(5, 10, 20),
        cross_attention_dim=2048,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2816,
    )
    tokenizer = _tokenizer(work)
    diffusers.StableDiffusionXLPipeline(
        vae=_sd_vae(),
        text_encoder=_clip_text(768, 12, 12),
        text_encoder_2=_clip_text(1280, 32, 20, projection=1280),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=_scheduler(),
        add_watermarker=False,
    ).save_pretrained(str(target))


def _save_animatediff(target: Path, base: Any) -> None:
    diffusers = _diffusers()
    diffusers.AnimateDiffPipeline(
        vae=base.vae,
        text_encoder=base.text_encoder,
        tokenizer=base.tokenizer,
        unet=base.unet,
        motion_adapter=diffusers.MotionAdapter(),
        scheduler=base.scheduler,
    ).save_pretrained(str(target))


def _save_swin2sr(target: Path) -> None:
    from transformers import Swin2SRConfig, Swin2SRForImageSuperResolution

    # caidas/swin2SR-classical-sr-x2-64's configuration.
    Swin2SRForImageSuperResolution(Swin2SRConfig(upscale=2)).save_pretrained(str(target))  # type: ignore[no-untyped-call]


def _save_vits(target: Path, tiny_vits: Path) -> None:
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    tokenizer = VitsTokenizer.from_pretrained(str(tiny_vits))
    tokenizer.save_pretrained(str(target))
    # The defaults are MMS-TTS's sizes; the vocabulary is the tiny tokenizer's.
    VitsModel(VitsConfig(vocab_size=len(tokenizer.get_vocab()))).save_pretrained(str(target))


def _write_video(path: Path, *, width: int, height: int, frames: int) -> None:
    import numpy as np
    from av.video.frame import VideoFrame

    from gpu_consumers.media import Mp4Output

    with Mp4Output(path, width=width, height=height, rate=24) as mp4:
        for index in range(frames):
            rgb = np.full((height, width, 3), index * 10 % 256, dtype=np.uint8)
            frame = VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            mp4.write_frame(frame)


# -- measuring -----------------------------------------------------------------------------------
def _context(job: BaseModel, files: dict[str, Path], work: Path) -> Any:
    from gpu_consumers.pipelines import RunContext

    return RunContext(job_id="gpu-check", input=job, input_files=files, work_dir=work)


def _job(torch: Any, run: Callable[[], object], weights: int) -> dict[str, float]:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    run()
    torch.cuda.synchronize()
    return {
        "job_s": round(time.perf_counter() - started, 3),
        "job_peak_vram_mb": round((torch.cuda.max_memory_allocated() - weights) / _MB, 1),
    }


def _family(
    torch: Any,
    job_type: JobType,
    model_dir: Path,
    job: BaseModel,
    files: dict[str, Path],
    work: Path,
) -> dict[str, Any]:
    from gpu_consumers.pipelines import build_pipeline

    pipeline = build_pipeline(job_type, str(model_dir))
    started = time.perf_counter()
    pipeline.load("cuda")
    torch.cuda.synchronize()
    loaded_s = time.perf_counter() - started
    weights = torch.cuda.memory_allocated()
    result: dict[str, Any] = {
        "job_type": job_type.value,
        "load_s": round(loaded_s, 2),
        "weights_mb": round(pipeline.memory_bytes / _MB, 1),
        "dtype": "fp16",
    }
    pipeline.run(_context(job, files, work))  # warm-up: kernels chosen, caches filled
    result.update(_job(torch, lambda: pipeline.run(_context(job, files, work)), weights))
    pipeline.unload()
    return result


def _batching(torch: Any, model_dir: Path, steps: int, side: int) -> dict[str, Any]:
    from gpu_consumers.pipelines import build_pipeline

    pipeline = build_pipeline(JobType.IMAGE_GENERATE, str(model_dir))
    pipeline.load("cuda")
    run_batch: Any = getattr(pipeline, "run_batch")  # noqa: B009 - image.generate has it
    throughput: dict[str, float] = {}
    for size in BATCHES:
        jobs = [
            ImageGenerateInput(prompt=f"room {n}", width=side, height=side, steps=steps, seed=n)
            for n in range(size)
        ]
        run_batch([_context(job, {}, Path(tempfile.gettempdir())) for job in jobs])  # warm-up
        torch.cuda.synchronize()
        started = time.perf_counter()
        run_batch([_context(job, {}, Path(tempfile.gettempdir())) for job in jobs])
        torch.cuda.synchronize()
        throughput[str(size)] = round(size / (time.perf_counter() - started), 3)
    pipeline.unload()
    return {
        "images_per_s": throughput,
        "speedup_vs_batch_1": {k: round(v / throughput["1"], 2) for k, v in throughput.items()},
        "goal_speedup_at_8": 3.0,
        "size": side,
        "steps": steps,
    }


def _swapping(torch: Any, dirs: dict[JobType, Path]) -> dict[str, Any]:
    from gpu_consumers.model_cache import ModelCache
    from gpu_consumers.pipelines import build_pipeline

    order = [JobType.IMAGE_GENERATE, JobType.AUDIO_SPEECH, JobType.VIDEO_ENHANCE]
    order = [job_type for job_type in order if job_type in dirs]
    if not order:
        return {}
    largest = ModelCache(2**62, "cuda", lambda key: build_pipeline(key[0], key[1]))
    sizes = {
        job_type: largest.get((job_type, str(dirs[job_type]))).memory_bytes for job_type in order
    }
    largest.clear()
    # Room for the largest model only: every change of job type swaps.
    cache = ModelCache(max(sizes.values()), "cuda", lambda key: build_pipeline(key[0], key[1]))
    swaps: list[float] = []
    for job_type in [*order, *order]:
        started = time.perf_counter()
        cache.get((job_type, str(dirs[job_type])))
        torch.cuda.synchronize()
        swaps.append(time.perf_counter() - started)
    stats = cache.stats()
    cache.clear()
    return {
        "budget_mb": round(max(sizes.values()) / _MB, 1),
        "evictions": stats.evictions,
        "loads": stats.misses,
        "mean_swap_in_s": round(sum(swaps) / len(swaps), 2),
        "vram_after_clear_mb": round(torch.cuda.memory_allocated() / _MB, 1),
    }


def run(families: list[str], steps: int, out: Path | None) -> dict[str, Any]:
    torch = _cuda()
    if torch is None:
        print("no CUDA device here: the GPU check has nothing to measure")
        return {"cuda": False}
    from PIL import Image

    from gpu_consumers.tiny_models import build_tiny_models

    report: dict[str, Any] = {"cuda": True, "device": torch.cuda.get_device_name(0), "families": {}}
    torch.set_default_dtype(torch.float16)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        work = Path(scratch)
        tiny = build_tiny_models(work / "tiny")
        image = work / "in.png"
        Image.new("RGB", (512, 512), (120, 140, 160)).save(image)
        video = work / "in.mp4"
        _write_video(video, width=320, height=240, frames=24)
        dirs: dict[JobType, Path] = {}
        with torch.device("cuda"):
            base = _save_sd15(work / "sd15", work)
            dirs[JobType.IMAGE_GENERATE] = work / "sd15"
            if "sdxl" in families:
                _save_sdxl(work / "sdxl", work)
            if "animatediff" in families:
                _save_animatediff(work / "animatediff", base)
            if "swin2sr" in families:
                _save_swin2sr(work / "swin2sr")
                dirs[JobType.VIDEO_ENHANCE] = work / "swin2sr"
            if "vits" in families:
                _save_vits(work / "vits", tiny[JobType.AUDIO_SPEECH.value])
                dirs[JobType.AUDIO_SPEECH] = work / "vits"
        del base
        torch.set_default_dtype(torch.float32)
        torch.cuda.empty_cache()
        cases: dict[str, tuple[JobType, Path, BaseModel, dict[str, Path]]] = {
            "sd15": (
                JobType.IMAGE_GENERATE,
                work / "sd15",
                ImageGenerateInput(prompt="a room", width=512, height=512, steps=steps, seed=1),
                {},
            ),
            "sd15-inpaint": (
                JobType.IMAGE_EDIT,
                work / "sd15",
                ImageEditInput(upload_id="u", prompt="a sofa", steps=steps, strength=0.8),
                {"u": image},
            ),
            "sdxl": (
                JobType.IMAGE_GENERATE,
                work / "sdxl",
                ImageGenerateInput(prompt="a room", width=1024, height=1024, steps=steps, seed=1),
                {},
            ),
            "animatediff": (
                JobType.VIDEO_GENERATE,
                work / "animatediff",
                VideoGenerateInput(prompt="waves", duration_s=2, fps=8, width=512, height=512),
                {},
            ),
            "swin2sr": (
                JobType.VIDEO_ENHANCE,
                work / "swin2sr",
                VideoEnhanceInput(upload_id="v", scale=2),
                {"v": video},
            ),
            "vits": (
                JobType.AUDIO_SPEECH,
                work / "vits",
                AudioSpeechInput(text="hello there. " * 20),
                {},
            ),
        }
        for name, (job_type, model_dir, job, files) in cases.items():
            if name.split("-")[0] in families and model_dir.exists():
                report["families"][name] = _family(torch, job_type, model_dir, job, files, work)
        report["model_swapping"] = _swapping(torch, dirs)
        report["dynamic_batching"] = _batching(torch, work / "sd15", steps, 512)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gpu",
        description="Full-size random-weight models of every family on a CUDA device: "
        "fp16 load, per-job VRAM, model swapping, dynamic batching. Exits 0 without CUDA.",
    )
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated")
    parser.add_argument("--steps", type=int, default=20, help="denoising steps per image job")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    families = [name for name in args.families.split(",") if name]
    unknown = set(families) - set(FAMILIES)
    if unknown:
        parser.error(f"unknown families: {', '.join(sorted(unknown))}")
    report = run(families, args.steps, args.out)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
