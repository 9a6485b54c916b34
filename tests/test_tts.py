"""Text to speech with the real engines: espeak-ng through its library, gTTS with no network,
and OpenAI TTS against the local OpenAI-compatible server. Every assertion is on real audio
files (ffprobe, the WAV header) and on what the server received."""

from __future__ import annotations

import io
import itertools
import json
import threading
import wave
from pathlib import Path

import pytest

from shorts_pipeline.home import cache_dir
from shorts_pipeline.models import VoiceSettings, WordTiming
from shorts_pipeline.render.probe import probe_json
from shorts_pipeline.render.speech_text import spoken_text, spoken_words
from shorts_pipeline.resources import espeak_lib
from shorts_pipeline.resources.tts import Speech, TtsError, TtsResource, default_voice
from tests.conftest import OPENAI_TEST_KEY
from tests.helpers import free_port
from tests.openai_server import SPEECH_SECONDS_PER_CHAR, Recorded, Reply

ENGLISH = "The quick brown fox jumps over the lazy dog near the river."
KOREAN = "안녕하세요. 오늘은 파이썬 데코레이터를 배워 봅시다."


def espeak(speed: float = 1.0, voice: str | None = None) -> VoiceSettings:
    return VoiceSettings(engine="espeak", speed=speed, voice=voice)


def openai_voice(**kwargs: object) -> VoiceSettings:
    return VoiceSettings.model_validate({"engine": "openai", **kwargs})


def assert_normalised_wav(speech: Speech) -> None:
    """48 kHz mono s16le, and the duration the Speech reports is the file's."""
    info = probe_json(speech.path)
    (stream,) = info["streams"]
    assert stream["codec_name"] == "pcm_s16le"
    assert int(stream["sample_rate"]) == 48_000
    assert int(stream["channels"]) == 1
    assert speech.duration == pytest.approx(float(info["format"]["duration"]), abs=1e-3)
    with wave.open(str(speech.path)) as w:
        assert w.getnframes() / w.getframerate() == pytest.approx(speech.duration, abs=0.01)


def assert_timings_follow(words: tuple[WordTiming, ...], text: str, duration: float) -> None:
    """One timing per spoken word, in order, monotonic, all inside the audio."""
    assert [w.word for w in words] == spoken_words(spoken_text(text))
    for word in words:
        assert 0.0 <= word.start <= word.end <= duration
    for before, after in itertools.pairwise(words):
        assert before.start < after.start
        assert before.end <= after.start + 1e-6


def authorization(request: Recorded) -> str | None:
    return next((v for k, v in request.headers.items() if k.lower() == "authorization"), None)


def cache_files() -> list[Path]:
    root = cache_dir() / "tts"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# ---- espeak ----------------------------------------------------------------------------------


def test_espeak_english_sentence_is_a_48k_mono_wav_with_a_timing_per_word() -> None:
    speech = TtsResource().synthesize(ENGLISH, espeak(), "en")

    assert_normalised_wav(speech)
    assert speech.duration > 0.5
    assert (speech.engine, speech.voice, speech.cached) == ("espeak", "en-us", False)
    assert_timings_follow(speech.words, ENGLISH, speech.duration)
    # The timings spread over the whole sentence, not bunched at the start.
    assert speech.words[-1].start > speech.duration / 2
    assert speech.words[-1].end > speech.duration - 0.3


def test_espeak_korean_word_timings_line_up_with_the_hangul_words() -> None:
    speech = TtsResource().synthesize(KOREAN, espeak(), "ko")

    assert_normalised_wav(speech)
    assert speech.voice == "ko"
    assert speech.duration > 1.0
    assert_timings_follow(speech.words, KOREAN, speech.duration)
    first, second = speech.words[0], speech.words[1]
    assert first.word == "안녕하세요."
    # The sentence break is a pause: the first word ends before the second starts.
    assert second.start - first.end > 0.1


def test_espeak_faster_speed_gives_shorter_audio() -> None:
    tts = TtsResource()
    normal = tts.synthesize(ENGLISH, espeak(1.0), "en")
    fast = tts.synthesize(ENGLISH, espeak(1.5), "en")
    slow = tts.synthesize(ENGLISH, espeak(0.75), "en")

    assert fast.duration < normal.duration * 0.8
    assert slow.duration > normal.duration * 1.15
    assert_timings_follow(fast.words, ENGLISH, fast.duration)


def test_second_call_is_a_cache_hit_without_synthesis() -> None:
    tts = TtsResource()
    first = tts.synthesize(ENGLISH, espeak(), "en")
    mtime = first.path.stat().st_mtime_ns
    count = espeak_lib.synthesis_count()

    second = tts.synthesize(ENGLISH, espeak(), "en")

    assert (first.cached, second.cached) == (False, True)
    assert espeak_lib.synthesis_count() == count
    assert second.path == first.path
    assert second.path.stat().st_mtime_ns == mtime
    assert (second.duration, second.words) == (first.duration, first.words)
    key = first.path.stem
    assert first.path == cache_dir() / "tts" / key[:2] / f"{key}.wav"
    sidecar = json.loads(first.path.with_suffix(".json").read_text())
    assert sidecar["engine"] == "espeak"
    assert sidecar["voice"] == "en-us"
    assert len(sidecar["words"]) == len(first.words)
    # Another voice or speed is another entry.
    assert not tts.synthesize(ENGLISH, espeak(voice="en-gb"), "en").cached


def test_corrupt_or_missing_sidecar_is_a_miss() -> None:
    tts = TtsResource()
    first = tts.synthesize(ENGLISH, espeak(), "en")
    sidecar = first.path.with_suffix(".json")

    sidecar.write_text("{not json")
    assert not tts.synthesize(ENGLISH, espeak(), "en").cached
    assert tts.synthesize(ENGLISH, espeak(), "en").cached

    sidecar.unlink()
    again = tts.synthesize(ENGLISH, espeak(), "en")
    assert not again.cached
    assert json.loads(sidecar.read_text())["duration"] == again.duration
    assert not [p for p in cache_files() if p.name.endswith(".tmp")]


def test_markdown_emoji_and_urls_are_not_spoken() -> None:
    text = "**Step 1:** read [the docs](https://docs.python.org) at https://x.io 🚀 — it's *fast*!"
    speech = TtsResource().synthesize(text, espeak(), "en")

    spoken = [w.word for w in speech.words]
    assert spoken == ["Step", "1:", "read", "the", "docs", "at", "it's", "fast!"]
    assert not any("*" in w or "http" in w or "🚀" in w for w in spoken)
    assert_timings_follow(speech.words, text, speech.duration)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("مرحبا بالعالم، هذا اختبار للصوت.", "ar"),
        ("Hello 안녕하세요 world مرحبا 世界 done.", "en"),
        ("파이썬 3.11 버전은 2024년에 나왔습니다. Python is great.", "ko"),
    ],
)
def test_arabic_numbers_and_mixed_scripts_are_spoken(text: str, language: str) -> None:
    speech = TtsResource().synthesize(text, espeak(), language)

    assert_normalised_wav(speech)
    assert speech.duration > 0.5
    assert_timings_follow(speech.words, text, speech.duration)


@pytest.mark.parametrize("text", ["", "   ", "🚀🎉 https://example.com **", "[](https://x.io)"])
def test_text_with_nothing_to_say_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="nothing to say"):
        TtsResource().synthesize(text, espeak(), "en")
    assert cache_files() == []


def test_unknown_espeak_voice_is_a_clear_error() -> None:
    with pytest.raises(TtsError) as caught:
        TtsResource().synthesize("Hello there.", espeak(voice="zz-no-such-voice"), "en")
    message = str(caught.value)
    assert "espeak-ng" in message
    assert "zz-no-such-voice" in message
    assert "espeak-ng --voices" in message
    assert caught.value.retryable is False


def test_concurrent_espeak_syntheses_each_get_their_own_audio(tmp_path: Path) -> None:
    texts = {
        "en": "Threads share one speech engine, so every call waits its turn.",
        "ko": KOREAN,
        "de": "Guten Morgen, wie geht es dir heute?",
        "ar": "مرحبا بالعالم، هذا اختبار للصوت.",
    }
    expected = {}
    for language, text in texts.items():
        voice = default_voice("espeak", language)
        solo = espeak_lib.synthesize_wav(spoken_text(text), voice, tmp_path / f"{language}.wav")
        expected[language] = solo.duration
    results: dict[str, Speech] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(texts))

    def speak(language: str) -> None:
        try:
            barrier.wait()
            for speed in (1.0, 1.1, 1.2):
                TtsResource().synthesize(texts[language], espeak(speed), language)
            results[language] = TtsResource().synthesize(texts[language], espeak(), language)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=speak, args=(lang,)) for lang in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    for language, text in texts.items():
        speech = results[language]
        assert speech.cached
        # espeak-ng varies a few percent from call to call; mixed-up audio would be far off.
        assert speech.duration == pytest.approx(expected[language], rel=0.05)
        assert_timings_follow(speech.words, text, speech.duration)
    assert len({r.path for r in results.values()}) == len(texts)


# ---- gTTS ------------------------------------------------------------------------------------


def test_gtts_without_network_is_a_retryable_error_and_caches_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A proxy on a closed local port makes the network unreachable even where it is not.
    dead = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, dead)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    with pytest.raises(TtsError) as caught:
        TtsResource().synthesize("Hello from Google.", VoiceSettings(engine="gtts"), "en")

    message = str(caught.value)
    assert "gTTS" in message
    assert "network" in message
    assert "Hello from Google." in message
    assert caught.value.retryable is True
    assert caught.value.voice == "en"
    assert cache_files() == []


def test_gtts_unknown_language_is_not_retryable() -> None:
    with pytest.raises(TtsError) as caught:
        TtsResource().synthesize("Hello.", VoiceSettings(engine="gtts"), "xx")
    assert "Language not supported" in str(caught.value)
    assert caught.value.retryable is False


# ---- OpenAI TTS ------------------------------------------------------------------------------


def test_openai_speech_is_normalised_and_measured(openai_server) -> None:
    text = "OpenAI voices read the narration of each scene."
    speech = TtsResource().synthesize(text, openai_voice(speed=1.25), "en")

    assert_normalised_wav(speech)
    # The server's WAV is 24 kHz and as long as the text says; we measure, not assume.
    assert speech.duration == pytest.approx(len(text) * SPEECH_SECONDS_PER_CHAR, abs=0.01)
    assert (speech.engine, speech.voice, speech.words) == ("openai", "alloy", ())
    (request,) = openai_server.speech_requests()
    assert request.body == {
        "model": "gpt-4o-mini-tts",
        "voice": "alloy",
        "input": text,
        "response_format": "wav",
        "speed": 1.25,
    }
    assert authorization(request) == f"Bearer {OPENAI_TEST_KEY}"


def test_openai_cache_hit_sends_no_second_request(openai_server) -> None:
    tts = TtsResource()
    first = tts.synthesize("Cached once, spoken once.", openai_voice(voice="nova"), "en")
    second = tts.synthesize("Cached once, spoken once.", openai_voice(voice="nova"), "en")

    assert (first.cached, second.cached) == (False, True)
    assert len(openai_server.speech_requests()) == 1
    # Another model is another recording.
    tts.synthesize("Cached once, spoken once.", openai_voice(voice="nova", model="tts-1"), "en")
    assert len(openai_server.speech_requests()) == 2


def test_openai_base_url_from_settings_then_resource_then_environment(
    openai_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", dead)
    by_settings = TtsResource(base_url=dead).synthesize(
        "Settings win.", openai_voice(base_url=openai_server.base_url), "en"
    )
    by_resource = TtsResource(base_url=openai_server.base_url).synthesize(
        "The resource comes next.", openai_voice(), "en"
    )
    assert not by_settings.cached
    assert not by_resource.cached
    assert len(openai_server.speech_requests()) == 2

    with pytest.raises(TtsError) as caught:
        TtsResource(max_retries=0).synthesize("The environment is last.", openai_voice(), "en")
    assert dead in str(caught.value)
    assert caught.value.retryable is True


def test_openai_api_key_from_the_resource(openai_server, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    TtsResource(api_key="sk-resource-key").synthesize("Keyed.", openai_voice(), "en")
    (request,) = openai_server.speech_requests()
    assert authorization(request) == "Bearer sk-resource-key"


def test_openai_without_a_key_for_the_official_api_says_what_to_set() -> None:
    with pytest.raises(TtsError) as caught:
        TtsResource().synthesize("No key.", openai_voice(), "en")
    assert "OPENAI_API_KEY" in str(caught.value)
    assert caught.value.retryable is False


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (Reply(body=b"", content_type="audio/wav"), "empty"),
        (Reply(body=b"this is not audio at all", content_type="audio/wav"), "cannot be decoded"),
    ],
)
def test_openai_empty_or_undecodable_answer_is_an_error(openai_server, reply, words) -> None:
    openai_server.queue(reply)
    with pytest.raises(TtsError) as caught:
        TtsResource().synthesize("Nothing comes back.", openai_voice(), "en")
    assert words in str(caught.value)
    assert "OpenAI TTS" in str(caught.value)
    assert caught.value.retryable is True
    assert OPENAI_TEST_KEY not in str(caught.value)
    assert cache_files() == []


def test_openai_silent_or_too_short_answer_is_rejected(openai_server) -> None:
    openai_server.queue(
        Reply(body=_wav(seconds=2.0, amplitude=0), content_type="audio/wav"),
        Reply(body=_wav(seconds=0.05, amplitude=8000), content_type="audio/wav"),
    )
    tts = TtsResource()
    with pytest.raises(TtsError, match="silent"):
        tts.synthesize("Silence.", openai_voice(), "en")
    with pytest.raises(TtsError, match="too short"):
        tts.synthesize("Too short.", openai_voice(), "en")
    assert cache_files() == []


def test_openai_timeout_is_retryable_and_never_shows_the_key(openai_server) -> None:
    # Two attempts (one retry); both answer too late.
    openai_server.queue(Reply(delay=1.5), Reply(delay=1.5))
    with pytest.raises(TtsError) as caught:
        TtsResource(max_retries=1).synthesize("Too slow.", openai_voice(timeout_seconds=0.3), "en")
    message = str(caught.value)
    assert "did not answer within 0.3 s (2 attempts)" in message
    assert len(openai_server.speech_requests()) == 2
    assert caught.value.retryable is True
    assert OPENAI_TEST_KEY not in message
    assert OPENAI_TEST_KEY not in repr(caught.value.__cause__)
    assert cache_files() == []


def test_openai_server_errors_are_retried_then_reported(openai_server) -> None:
    tts = TtsResource()
    openai_server.queue(Reply(status=500))
    recovered = tts.synthesize("A passing glitch.", openai_voice(), "en")
    assert recovered.duration > 0.5
    assert len(openai_server.speech_requests()) == 2

    openai_server.queue(Reply(status=503), Reply(status=503))
    with pytest.raises(TtsError) as caught:
        TtsResource(max_retries=1).synthesize("A lasting outage.", openai_voice(), "en")
    assert "HTTP 503" in str(caught.value)
    assert caught.value.retryable is True
    assert OPENAI_TEST_KEY not in str(caught.value)

    openai_server.queue(Reply(status=401))
    with pytest.raises(TtsError) as refused:
        tts.synthesize("A refused key.", openai_voice(), "en")
    assert refused.value.retryable is False
    assert "OPENAI_API_KEY" in str(refused.value)
    assert OPENAI_TEST_KEY not in str(refused.value)


def test_default_voices() -> None:
    assert default_voice("espeak", "en") == "en-us"
    assert default_voice("espeak", "ko") == "ko"
    assert default_voice("espeak", "ar") == "ar"
    assert default_voice("gtts", "ko") == "ko"
    assert default_voice("openai", "ko") == "alloy"


def _wav(seconds: float, amplitude: int, rate: int = 24_000) -> bytes:
    frames = int(seconds * rate)
    sample = amplitude.to_bytes(2, "little", signed=True)
    negative = (-amplitude).to_bytes(2, "little", signed=True)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(sample if (i // 50) % 2 else negative for i in range(frames)))
    return buf.getvalue()


def test_no_temporary_files_are_left_behind(openai_server) -> None:
    TtsResource().synthesize(ENGLISH, espeak(), "en")
    TtsResource().synthesize(ENGLISH, openai_voice(), "en")
    names = [p.name for p in cache_files()]
    assert len(names) == 4
    assert all(not n.startswith(".") for n in names)
