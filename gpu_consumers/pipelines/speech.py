"""Text to speech with a VITS model directory (an MMS-TTS checkpoint, for one): a WAV file.

VITS produces the whole waveform in one forward pass, so there are two steps to report:
the text tokenised, and the audio written.
"""

from __future__ import annotations

import io
import wave
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from contracts import JobType
from contracts.inputs import AudioSpeechInput
from gpu_consumers.pipelines._torch import (
    device_errors,
    is_local,
    loading_errors,
    module_bytes,
    release_memory,
)
from gpu_consumers.pipelines._vits import import_vits
from gpu_consumers.pipelines.base import Artifact, PermanentError, PipelineResult, RunContext

if TYPE_CHECKING:
    from transformers import VitsModel

__all__ = ["SpeechPipeline"]

_STEPS = 2


class SpeechPipeline:
    """Speech from text; ``voice`` picks a speaker of a multi-speaker model by its number.

    A single-speaker model has one voice, and a job's ``voice`` is then ignored.

    The model runs in full precision on every device: it is small, and the spline flows of
    its duration predictor lose too much in half precision.
    """

    job_type = JobType.AUDIO_SPEECH

    def __init__(self, *, model_dir: str) -> None:
        self._model_dir = model_dir
        self._model: VitsModel | None = None
        self._tokenizer: Any = None
        self._device: str | None = None
        self._bytes = 0

    @property
    def memory_bytes(self) -> int:
        return self._bytes

    def load(self, device: str) -> None:
        if self._model is not None:
            self.unload()
        tokenizer_class, model_class, _ = import_vits()

        local = is_local(self._model_dir)
        with loading_errors(self._model_dir):
            tokenizer = tokenizer_class.from_pretrained(self._model_dir, local_files_only=local)
            model = model_class.from_pretrained(
                self._model_dir, dtype=torch.float32, local_files_only=local
            )
            # Through nn.Module: PreTrainedModel.to's decorator hides its signature from mypy.
            # from_pretrained has already switched the model to eval mode (no dropout).
            torch.nn.Module.to(model, device)
        self._model, self._tokenizer, self._device = model, tokenizer, device
        self._bytes = module_bytes([model])

    def unload(self) -> None:
        device = self._device
        self._model, self._tokenizer, self._device, self._bytes = None, None, None, 0
        release_memory(device)

    def run(self, ctx: RunContext) -> PipelineResult:
        job = ctx.input
        if not isinstance(job, AudioSpeechInput):
            raise PermanentError(f"{self.job_type} cannot run a {type(job).__name__}")
        if self._model is None or self._device is None:
            raise RuntimeError(f"the model at {self._model_dir} is not loaded")
        model = self._model
        speaker = self._speaker(job.voice)
        tokens = self._tokenizer(job.text, return_tensors="pt")
        input_ids: torch.Tensor = tokens["input_ids"]
        if input_ids.shape[-1] == 0:
            raise PermanentError("the text has no characters this voice can speak")
        ctx.progress(1, _STEPS, "tokenised")
        ctx.check()
        with device_errors(), torch.inference_mode():
            output = model(
                input_ids=input_ids.to(self._device),
                attention_mask=tokens["attention_mask"].to(self._device),
                speaker_id=speaker,
            )
            waveform = output.waveform[0].float().cpu().numpy()
        data = _wav_bytes(waveform, model.config.sampling_rate)
        ctx.progress(2, _STEPS, None)
        audio = Artifact(
            name="speech.wav",
            data=data,
            content_type="audio/wav",
            duration_s=waveform.shape[-1] / model.config.sampling_rate,
        )
        return PipelineResult(outputs=(audio,), usage_units=len(job.text))

    def _speaker(self, voice: str | None) -> int | None:
        assert self._model is not None
        speakers = int(self._model.config.num_speakers)
        if speakers <= 1 or voice is None:
            return None
        if not voice.isdigit() or int(voice) >= speakers:
            raise PermanentError(f"voice must be a speaker number below {speakers}, not {voice!r}")
        return int(voice)


def _wav_bytes(waveform: np.ndarray, sampling_rate: int) -> bytes:
    """Mono 16-bit PCM; samples outside [-1, 1] are clipped rather than wrapped."""
    pcm = (np.clip(waveform, -1.0, 1.0) * 32767).round().astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(int(sampling_rate))
        wav.writeframes(pcm.tobytes())
    return buffer.getvalue()
