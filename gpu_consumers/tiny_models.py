"""Tiny random-weight models, built offline, so the real loading and inference code runs anywhere.

Each model is saved with ``save_pretrained`` into the same directory layout a real one has,
and the pipelines load it with ``from_pretrained``: only the sizes differ. The weights are
random (fixed seeds), so outputs are noise of the right shape, size and format.

Families: Stable Diffusion 1.x (with a safety checker that flags every image, so that a
deployment with the checker on can be tested), SDXL, AnimateDiff (a motion adapter on the
Stable Diffusion base, saved as a whole ``AnimateDiffPipeline``), VITS and Swin2SR.

    python -m gpu_consumers.tiny_models OUT_DIR
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import torch

from contracts import JobType

if TYPE_CHECKING:
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import (
        StableDiffusionPipeline,
    )
    from transformers import CLIPTextModel, CLIPTokenizer

__all__ = ["FAMILIES", "build_clip_tokenizer", "build_tiny_models", "family_dirs", "main"]

FAMILIES: Final = ("stable-diffusion", "stable-diffusion-xl", "animatediff", "vits", "swin2sr-x2")
"""The directories ``build_tiny_models`` writes, one per model family."""

_MARKER: Final = ".complete"
_FORMAT: Final = "2"
"""Written into the completion marker; a directory built by another layout is rebuilt."""

_SEED: Final = 1234
_CLIP_MAX_LENGTH: Final = 32
_CLIP_SPECIALS: Final = ("<|startoftext|>", "<|endoftext|>")
_CLIP_MERGES: Final = (
    ("t", "h"),
    ("th", "e</w>"),
    ("a", "n"),
    ("an", "d</w>"),
    ("i", "n"),
    ("in", "g</w>"),
    ("o", "n</w>"),
    ("e", "r</w>"),
)
"""A few merges, so that the tokenizer really runs byte-pair merging and not only splitting."""

_VITS_CHARACTERS: Final = " 'abcdefghijklmnopqrstuvwxyz0123456789"


def build_tiny_models(out_dir: Path) -> dict[str, Path]:
    """Builds every tiny model under ``out_dir`` (once) and returns the directory per job type."""
    out_dir.mkdir(parents=True, exist_ok=True)
    diffusion, sdxl, animatediff, speech, upscaler = (out_dir / name for name in FAMILIES)
    marker = out_dir / _MARKER
    if not (marker.exists() and marker.read_text(encoding="utf-8") == _FORMAT):
        for stale in out_dir.iterdir():
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
        base = _build_stable_diffusion(diffusion)
        _build_sdxl(sdxl)
        _build_animatediff(animatediff, base)
        _build_vits(speech)
        _build_swin2sr(upscaler)
        # Written last: a build that was interrupted is redone instead of half used.
        marker.write_text(_FORMAT, encoding="utf-8")
    return {
        JobType.IMAGE_GENERATE.value: diffusion,
        JobType.IMAGE_EDIT.value: diffusion,
        JobType.VIDEO_GENERATE.value: animatediff,
        JobType.VIDEO_ENHANCE.value: upscaler,
        JobType.AUDIO_SPEECH.value: speech,
    }


def family_dirs(out_dir: Path) -> dict[str, Path]:
    """Every family's directory under ``out_dir`` (built by ``build_tiny_models``)."""
    build_tiny_models(out_dir)
    return {name: out_dir / name for name in FAMILIES}


def _clip_vocabulary() -> tuple[dict[str, int], list[str]]:
    # Printable ASCII maps to itself in CLIP's byte-to-character table, so these symbols are
    # valid byte-level BPE tokens; anything else becomes the unknown token.
    symbols = [chr(code) for code in range(ord("!"), ord("~") + 1)]
    tokens = symbols + [symbol + "</w>" for symbol in symbols]
    tokens += ["".join(pair) for pair in _CLIP_MERGES]
    tokens += list(_CLIP_SPECIALS)
    vocabulary = {token: index for index, token in enumerate(dict.fromkeys(tokens))}
    merges = ["#version: 0.2", *(" ".join(pair) for pair in _CLIP_MERGES)]
    return vocabulary, merges


def build_clip_tokenizer(files_dir: Path) -> CLIPTokenizer:
    from transformers import CLIPTokenizer

    vocabulary, merges = _clip_vocabulary()
    (files_dir / "vocab.json").write_text(json.dumps(vocabulary), encoding="utf-8")
    (files_dir / "merges.txt").write_text("\n".join(merges) + "\n", encoding="utf-8")
    tokenizer: CLIPTokenizer = CLIPTokenizer.from_pretrained(
        str(files_dir), model_max_length=_CLIP_MAX_LENGTH, local_files_only=True
    )
    return tokenizer


def _clip_text_encoder(*, projection: bool = False) -> CLIPTextModel:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    vocabulary, _ = _clip_vocabulary()
    config = CLIPTextConfig(
        vocab_size=len(vocabulary),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=_CLIP_MAX_LENGTH,
        projection_dim=16,
        bos_token_id=vocabulary[_CLIP_SPECIALS[0]],
        eos_token_id=vocabulary[_CLIP_SPECIALS[1]],
        pad_token_id=vocabulary[_CLIP_SPECIALS[1]],
    )
    if projection:
        encoder: CLIPTextModel = CLIPTextModelWithProjection(config)  # type: ignore[assignment]
        return encoder
    return CLIPTextModel(config)


def _vae() -> object:
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL

    # Four blocks, like the real autoencoder, so latents are 1/8 of the image size.
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=64,
    )


def _scheduler() -> object:
    from diffusers.schedulers.scheduling_ddim import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def _safety_checker() -> tuple[object, object]:
    """A checker whose concept weights make it flag every image, and its image processor."""
    from diffusers.pipelines.stable_diffusion.safety_checker import (
        StableDiffusionSafetyChecker,
    )
    from transformers import CLIPConfig, CLIPImageProcessor

    config = CLIPConfig(
        text_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "vocab_size": 64,
            "max_position_embeddings": 8,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 1,
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    checker = StableDiffusionSafetyChecker(config)
    with torch.no_grad():
        # A cosine is at least -1, so every concept's score is positive: always flagged.
        checker.concept_embeds_weights.fill_(-2.0)
    processor = CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    return checker, processor


def _tiny_unet(**layout: Any) -> UNet2DConditionModel:
    """A two-level UNet on latents of 4 channels; ``layout`` gives its blocks and attention."""
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel

    unet: UNet2DConditionModel = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        **layout,
    )
    return unet


def _build_stable_diffusion(target: Path) -> StableDiffusionPipeline:
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import (
        StableDiffusionPipeline,
    )

    with tempfile.TemporaryDirectory() as files:
        tokenizer = build_clip_tokenizer(Path(files))
    torch.manual_seed(_SEED)
    unet = _tiny_unet(
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=4,
    )
    vae = _vae()
    text_encoder = _clip_text_encoder()
    checker, processor = _safety_checker()
    pipeline = StableDiffusionPipeline(
        vae=vae,  # type: ignore[arg-type]
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=_scheduler(),  # type: ignore[arg-type]
        safety_checker=checker,  # type: ignore[arg-type]
        feature_extractor=processor,  # type: ignore[arg-type]
    )
    pipeline.save_pretrained(str(target))
    return pipeline


def _build_sdxl(target: Path) -> None:
    from diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl import (
        StableDiffusionXLPipeline,
    )

    with tempfile.TemporaryDirectory() as files:
        tokenizer = build_clip_tokenizer(Path(files))
    torch.manual_seed(_SEED)
    time_embed = 8
    unet = _tiny_unet(
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        # Both text encoders' hidden states side by side, as in SDXL.
        cross_attention_dim=32,
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_embed,
        # Six size and crop numbers, each embedded, and the pooled second text embedding.
        projection_class_embeddings_input_dim=6 * time_embed + 16,
    )
    pipeline = StableDiffusionXLPipeline(
        vae=_vae(),  # type: ignore[arg-type]
        text_encoder=_clip_text_encoder(),
        text_encoder_2=_clip_text_encoder(projection=True),  # type: ignore[arg-type]
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=_scheduler(),  # type: ignore[arg-type]
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )
    pipeline.save_pretrained(str(target))


def _build_animatediff(target: Path, base: StableDiffusionPipeline) -> None:
    from diffusers.models.unets.unet_motion_model import MotionAdapter
    from diffusers.pipelines.animatediff.pipeline_animatediff import AnimateDiffPipeline

    torch.manual_seed(_SEED)
    adapter = MotionAdapter(
        block_out_channels=(8, 16),
        motion_layers_per_block=1,
        motion_num_attention_heads=2,
        motion_norm_num_groups=4,
        motion_max_seq_length=32,
        use_motion_mid_block=False,
    )
    pipeline = AnimateDiffPipeline(
        vae=base.vae,
        text_encoder=base.text_encoder,
        tokenizer=base.tokenizer,
        unet=base.unet,
        motion_adapter=adapter,
        scheduler=base.scheduler,
    )
    pipeline.save_pretrained(str(target))


def _build_vits(target: Path) -> None:
    from gpu_consumers.pipelines._vits import import_vits

    tokenizer_class, model_class, config_class = import_vits()
    # Id 0 is the blank the tokenizer puts between characters.
    vocabulary = {"_": 0, **{char: index + 1 for index, char in enumerate(_VITS_CHARACTERS)}}
    vocabulary["<unk>"] = len(vocabulary)
    target.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as files:
        vocab_file = Path(files) / "vocab.json"
        vocab_file.write_text(json.dumps(vocabulary), encoding="utf-8")
        tokenizer = tokenizer_class(
            vocab_file=str(vocab_file),
            pad_token="_",  # noqa: S106 - vocabulary symbols, not secrets
            unk_token="<unk>",  # noqa: S106
            add_blank=True,
            normalize=True,
            phonemize=False,
        )
    tokenizer.save_pretrained(str(target))
    torch.manual_seed(_SEED)
    config = config_class(
        vocab_size=len(vocabulary),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        ffn_dim=32,
        flow_size=16,
        spectrogram_bins=17,
        upsample_initial_channel=16,
        upsample_rates=(8, 8),
        upsample_kernel_sizes=(16, 16),
        resblock_kernel_sizes=(3,),
        resblock_dilation_sizes=((1, 3),),
        duration_predictor_filter_channels=16,
        duration_predictor_num_flows=2,
        prior_encoder_num_flows=2,
        prior_encoder_num_wavenet_layers=2,
        posterior_encoder_num_wavenet_layers=2,
        depth_separable_num_layers=2,
        sampling_rate=16000,
        pad_token_id=0,
    )
    model_class(config).save_pretrained(str(target))


def _build_swin2sr(target: Path) -> None:
    from transformers import Swin2SRConfig, Swin2SRForImageSuperResolution

    torch.manual_seed(_SEED)
    config = Swin2SRConfig(
        image_size=16,
        embed_dim=8,
        depths=[1],
        num_heads=[2],
        window_size=4,
        mlp_ratio=2.0,
        upscale=2,
        upsampler="pixelshuffledirect",
    )
    Swin2SRForImageSuperResolution(config).save_pretrained(str(target))  # type: ignore[no-untyped-call]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gpu_consumers.tiny_models",
        description="Build tiny random-weight models for every model-backed job type.",
    )
    parser.add_argument("out_dir", type=Path, help="where the model directories go")
    args = parser.parse_args(argv)
    directories = build_tiny_models(args.out_dir)
    json.dump({job: str(path) for job, path in directories.items()}, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
