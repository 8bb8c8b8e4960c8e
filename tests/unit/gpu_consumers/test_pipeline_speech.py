"""Text to speech through the real transformers VITS loading and inference code."""

from __future__ import annotations

import io
import json
import wave
from pathlib import Path

import pytest

from contracts import JobType
from contracts.inputs import AudioSpeechInput
from gpu_consumers.pipelines import (
    JobStopped,
    LimitExceededError,
    PermanentError,
    Pipeline,
    build_pipeline,
)
from gpu_consumers.pipelines.speech import sentences
from tests.unit.gpu_consumers.pipeline_harness import Recorder, tiny_models

__all__ = ["tiny_models"]


@pytest.fixture(scope="module")
def speech(tiny_models: dict[str, Path]) -> Pipeline:
    pipeline = build_pipeline(JobType.AUDIO_SPEECH, str(tiny_models["audio.speech"]))
    pipeline.load("cpu")
    return pipeline


_long_sentence = "a sentence of three hundred characters or so " * 6 + "ends here."


def sampling_rate(model_dir: Path) -> int:
    rate: int = json.loads((model_dir / "config.json").read_text())["sampling_rate"]
    return rate


def test_speaks_into_a_16_bit_wav_at_the_model_rate(
    speech: Pipeline, tiny_models: dict[str, Path]
) -> None:
    recorder = Recorder()
    text = "Hello there. This is a test."
    result = speech.run(recorder.context(AudioSpeechInput(text=text)))
    (audio,) = result.outputs
    assert (audio.name, audio.content_type) == ("speech.wav", "audio/wav")
    with wave.open(io.BytesIO(audio.data)) as wav:
        assert wav.getnchannels() == 1
        assert wav.getsampwidth() == 2
        assert wav.getframerate() == sampling_rate(tiny_models["audio.speech"])
        assert wav.getnframes() > 0
        assert audio.duration_s == pytest.approx(wav.getnframes() / wav.getframerate())
    assert result.usage_units == len(text)
    assert recorder.progress == [(1, 1)]  # one chunk: both sentences fit in it
    assert speech.memory_bytes > 0


def test_a_stop_before_the_forward_pass_ends_the_run(speech: Pipeline) -> None:
    recorder = Recorder(stop_after=1)
    with pytest.raises(JobStopped):
        speech.run(recorder.context(AudioSpeechInput(text=_long_sentence + " " + _long_sentence)))
    assert recorder.progress == [(1, 2)]


def test_long_text_is_spoken_in_chunks_of_whole_sentences() -> None:
    text = "One two. Three four! " + "word " * 30 + "\nLast line"
    chunks = sentences(text, chunk_chars=40)
    assert chunks[0] == "One two. Three four!"  # short sentences packed together
    assert all(len(chunk) <= 40 for chunk in chunks)  # a long one cut at its spaces
    assert chunks[-1].endswith("word Last line")
    assert " ".join(chunks).split() == text.split()


def test_a_model_that_speaks_too_long_fails_with_output_limit(tiny_models: dict[str, Path]) -> None:
    pipeline = build_pipeline(
        JobType.AUDIO_SPEECH, str(tiny_models["audio.speech"]), max_s_per_char=0.001, slack_s=0
    )
    pipeline.load("cpu")
    recorder = Recorder()
    with pytest.raises(LimitExceededError, match="past the") as caught:
        pipeline.run(recorder.context(AudioSpeechInput(text=_long_sentence)))
    assert caught.value.code == "output_limit"
    assert recorder.progress == []  # stopped after the first chunk, before reporting it


def test_text_without_speakable_characters_fails_permanently(speech: Pipeline) -> None:
    with pytest.raises(PermanentError, match="no characters"):
        speech.run(Recorder().context(AudioSpeechInput(text="¿¡ «»")))
