"""Text to speech with a VITS model directory (an MMS-TTS checkpoint, for one): a WAV file.

The text is spoken in chunks of whole sentences of at most ``chunk_chars`` characters (a
longer sentence is cut at its last comma or space before the bound), each chunk one
forward pass whose samples go straight to
the WAV file in the job's folder: memory is bounded by the longest chunk, whatever the
text's length. Each chunk is one progress step. A model whose durations run away (random
weights do) is stopped once the audio passes ``max_s_per_char`` seconds per character
spoken so far, plus ``slack_s``, and the job fails with ``output_limit``.
"""

from __future__ import annotations

import re
import tempfile
import wave
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import torch

from contracts import JobType
from contracts.errors import JobErrorCode
from contracts.inputs import AudioSpeechInput
from gpu_consumers.pipelines._torch import (
    device_errors,
    is_local,
    loading_errors,
    module_bytes,
    release_memory,
)
from gpu_consumers.pipelines._vits import import_vits
from gpu_consumers.pipelines.base import (
    Artifact,
    LimitExceededError,
    PermanentError,
    PipelineResult,
    RunContext,
)

if TYPE_CHECKING:
    from transformers import VitsModel

__all__ = ["SpeechPipeline", "sentences"]

DEFAULT_CHUNK_CHARS: Final = 400
DEFAULT_MAX_S_PER_CHAR: Final = 0.4
"""Several times the slowest natural speech (about 0.1 s per character)."""
DEFAULT_SLACK_S: Final = 5.0
_SENTENCE_END: Final = re.compile(r"(?<=[.!?;:\u3002\uff01\uff1f])\s+|\n+")


def sentences(text: str, chunk_chars: int) -> list[str]:
    """``text`` in chunks of whole sentences, at most ``chunk_chars`` characters each.

    Sentences are packed together up to the bound (fewer forward passes); one longer than
    the bound is cut at its last comma or space before it.
    """
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        rest = sentence.strip()
        while len(rest) > chunk_chars:
            cut = max(rest.rfind(",", 0, chunk_chars), rest.rfind(" ", 0, chunk_chars))
            cut = cut + 1 if cut > 0 else chunk_chars
            pieces.append(rest[:cut].strip())
            rest = rest[cut:].strip()
        if rest:
            pieces.append(rest)
    chunks: list[str] = []
    for piece in filter(None, pieces):
        if chunks and len(chunks[-1]) + 1 + len(piece) <= chunk_chars:
            chunks[-1] = f"{chunks[-1]} {piece}"
        else:
            chunks.append(piece)
    return chunks


class SpeechPipeline:
    """Speech from text; ``voice`` picks a speaker of a multi-speaker model by its number.

    A single-speaker model has one voice, and a job's ``voice`` is then ignored.

    The model runs in full precision on every device: it is small, and the spline flows of
    its duration predictor lose too much in half precision.
    """

    job_type = JobType.AUDIO_SPEECH

    def __init__(
        self,
        *,
        model_dir: str,
        chunk_chars: int = DEFAULT_CHUNK_CHARS,
        max_s_per_char: float = DEFAULT_MAX_S_PER_CHAR,
        slack_s: float = DEFAULT_SLACK_S,
    ) -> None:
        if chunk_chars < 1 or max_s_per_char <= 0 or slack_s < 0:
            raise ValueError("chunk_chars and max_s_per_char must be positive")
        self._chunk_chars = chunk_chars
        self._max_s_per_char = max_s_per_char
        self._slack_s = slack_s
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
        speaker = self._speaker(job.voice)
        chunks = sentences(job.text, self._chunk_chars)
        rate = int(self._model.config.sampling_rate)
        spoken_chars = 0
        samples = 0
        with ExitStack() as stack:
            work_dir = ctx.work_dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
            path = work_dir / "speech.wav"
            with wave.open(str(path), "wb") as wav:
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(rate)
                for index, chunk in enumerate(chunks, start=1):
                    ctx.check()
                    waveform = self._speak(chunk, speaker)
                    wav.writeframes(_pcm(waveform))
                    spoken_chars += len(chunk)
                    samples += waveform.shape[-1]
                    allowed_s = spoken_chars * self._max_s_per_char + self._slack_s
                    if samples / rate > allowed_s:
                        raise LimitExceededError(
                            JobErrorCode.OUTPUT_LIMIT,
                            f"the model spoke {samples / rate:.1f} s for {spoken_chars} "
                            f"characters, past the {allowed_s:.1f} s they may take",
                        )
                    ctx.progress(index, len(chunks), None)
            if samples == 0:
                raise PermanentError("the text has no characters this voice can speak")
            data = path.read_bytes()
        audio = Artifact(
            name="speech.wav", data=data, content_type="audio/wav", duration_s=samples / rate
        )
        return PipelineResult(outputs=(audio,), usage_units=len(job.text))

    def _speak(self, chunk: str, speaker: int | None) -> np.ndarray:
        """One chunk's waveform; empty where the voice has no characters for it."""
        assert self._model is not None
        assert self._device is not None
        tokens = self._tokenizer(chunk, return_tensors="pt")
        input_ids: torch.Tensor = tokens["input_ids"]
        if input_ids.shape[-1] == 0:
            return np.zeros(0, dtype=np.float32)
        with device_errors(), torch.inference_mode():
            output = self._model(
                input_ids=input_ids.to(self._device),
                attention_mask=tokens["attention_mask"].to(self._device),
                speaker_id=speaker,
            )
            waveform: np.ndarray = output.waveform[0].float().cpu().numpy()
        return waveform

    def _speaker(self, voice: str | None) -> int | None:
        assert self._model is not None
        speakers = int(self._model.config.num_speakers)
        if speakers <= 1 or voice is None:
            return None
        if not voice.isdigit() or int(voice) >= speakers:
            raise PermanentError(f"voice must be a speaker number below {speakers}, not {voice!r}")
        return int(voice)


def _pcm(waveform: np.ndarray) -> bytes:
    """Mono 16-bit PCM; samples outside [-1, 1] are clipped rather than wrapped."""
    pcm: bytes = (np.clip(waveform, -1.0, 1.0) * 32767).round().astype("<i2").tobytes()
    return pcm
