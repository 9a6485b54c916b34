"""Text to speech: espeak-ng (offline), gTTS and OpenAI TTS behind one resource, with a cache.

`TtsResource.synthesize(text, settings, language)` cleans the text for speaking
(`spoken_text`), then returns a `Speech`: a WAV file (PCM s16le, 48 kHz, mono, whatever the
engine gave), its duration as ffprobe measures it, and word timings when the engine reports
them (espeak does; gTTS and OpenAI do not, so their tuple is empty).

Every result is cached by content under `cache_dir()/tts/<key[:2]>/<key>.wav` with a
`<key>.json` sidecar (duration, words, engine, voice): the same line in the same voice is
synthesised once, across projects and runs. Both files are written to a temporary name and
renamed, the sidecar last, so a half-written entry is never read; a missing or unreadable
sidecar is a miss.

Voices: espeak takes an espeak-ng voice ("en-us", "ko") or a language code; gTTS a language
code, optionally with the Google domain that picks the accent ("en:co.uk"); OpenAI a voice
name ("alloy", "nova"…). Speed 1.0 is each engine's normal rate: espeak 175 words a minute,
OpenAI's `speed`, and for gTTS (which has none) an ffmpeg `atempo` while normalising.

Failures raise `TtsError` naming the engine, the voice, the start of the text and what to
do; `retryable` says whether trying again later may help (network, timeouts, 5xx).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from shorts_pipeline.home import cache_dir
from shorts_pipeline.models import VoiceSettings, WordTiming
from shorts_pipeline.render.errors import MediaError
from shorts_pipeline.render.ffmpeg_run import run_ffmpeg
from shorts_pipeline.render.probe import probe_json
from shorts_pipeline.render.speech_text import spoken_text
from shorts_pipeline.resources import espeak_lib

logger = logging.getLogger(__name__)

# Bump when the audio format or the timing logic changes: old cache entries stop matching.
FORMAT_VERSION = 1
SAMPLE_RATE = 48_000
MIN_SPEECH_SECONDS = 0.15
SILENT_BELOW_DB = -50.0  # a peak quieter than this is not speech
OPENAI_DEFAULT_VOICE = "alloy"
OPENAI_DEFAULT_URL = "https://api.openai.com/v1"
EXCERPT_CHARS = 40
_ESPEAK_VOICES = {"en": "en-us", "ko": "ko"}
_MAX_VOLUME = re.compile(r"max_volume:\s*(-?inf|-?[\d.]+)\s*dB")


@dataclass(frozen=True)
class Speech:
    """A spoken line: a 48 kHz mono WAV, its measured duration and, for espeak, word timings."""

    path: Path
    duration: float
    words: tuple[WordTiming, ...]
    engine: str
    voice: str
    cached: bool


class TtsError(Exception):
    """A voice engine could not speak a text; the message says which, why and what to do."""

    def __init__(self, engine: str, voice: str, text: str, reason: str, *, retryable: bool):
        super().__init__(
            f"{_ENGINE_NAMES.get(engine, engine)} (voice {voice!r}) could not speak "
            f"{excerpt(text)!r}: {reason}"
        )
        self.engine = engine
        self.voice = voice
        self.reason = reason
        self.retryable = retryable


_ENGINE_NAMES = {"espeak": "espeak-ng", "gtts": "gTTS", "openai": "OpenAI TTS"}


def default_voice(engine: str, language: str) -> str:
    """The voice an engine uses for `language` when the creator named none."""
    lang = (language or "en").strip()
    if engine == "espeak":
        return _ESPEAK_VOICES.get(lang.lower(), lang)
    if engine == "gtts":
        return lang
    if engine == "openai":
        return OPENAI_DEFAULT_VOICE
    raise ValueError(f"unknown TTS engine {engine!r}; use espeak, gtts or openai")


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The start of `text` on one line, at most `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def cache_key(engine: str, voice: str, speed: float, model: str | None, text: str) -> str:
    """Content key of a synthesis: everything that changes the audio, and the format version."""
    material = {
        "format": FORMAT_VERSION,
        "engine": engine,
        "voice": voice,
        "speed": round(float(speed), 4),
        "model": model if engine == "openai" else None,
        "text": text,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode("utf-8")).hexdigest()


class TtsResource(dg.ConfigurableResource):
    """Speech for narration: espeak-ng (offline default), gTTS or any OpenAI-compatible TTS.

    Results are cached by content under SHORTS_HOME/cache/tts, so re-running a partition
    speaks only the lines that changed. For the openai engine the key comes from `api_key`
    (bind it with `dg.EnvVar("OPENAI_API_KEY")`) or the OPENAI_API_KEY environment
    variable; the endpoint from the project's voice settings, then `base_url`, then
    OPENAI_BASE_URL. The key is never logged.
    """

    api_key: str | None = Field(default=None, description="OpenAI API key (default env).")
    base_url: str | None = Field(
        default=None, description="OpenAI-compatible endpoint for speech (default env)."
    )
    max_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="OpenAI SDK retries (with back-off) of timeouts, 408/409/429 and 5xx.",
    )

    def synthesize(self, text: str, settings: VoiceSettings, language: str) -> Speech:
        """Speak `text` (cleaned of Markdown, URLs and emoji first); cached by content.

        Raises ValueError when nothing speakable is left (the caller skips the scene) and
        TtsError when the engine fails.
        """
        spoken = spoken_text(text)
        if not spoken:
            raise ValueError(
                f"nothing to say in {excerpt(text)!r}: no words are left once Markdown, URLs "
                "and emoji are removed; give the scene narration or leave it silent"
            )
        engine = settings.engine
        voice = settings.voice or default_voice(engine, language)
        key = cache_key(engine, voice, settings.speed, settings.model, spoken)
        hit = _read_cache(key)
        if hit is not None:
            return hit
        with tempfile.TemporaryDirectory(prefix="shorts-tts-") as work:
            raw, words = self._synthesize_raw(spoken, voice, settings, Path(work))
            return _store(key, raw, words, spoken, engine, voice, settings.speed)

    def _synthesize_raw(
        self, text: str, voice: str, settings: VoiceSettings, work: Path
    ) -> tuple[Path, tuple[WordTiming, ...]]:
        if settings.engine == "espeak":
            return _espeak(text, voice, settings.speed, work)
        if settings.engine == "gtts":
            return _gtts(text, voice, settings.timeout_seconds, work), ()
        base_url = settings.base_url or self.base_url or os.environ.get("OPENAI_BASE_URL")
        api_key = self.api_key or os.environ.get("OPENAI_API_KEY")
        endpoint = _Endpoint(base_url or None, api_key or None, self.max_retries)
        return _openai(text, voice, settings, endpoint, work), ()


# ---- engines --------------------------------------------------------------------------------


def _espeak(text: str, voice: str, speed: float, work: Path) -> tuple[Path, tuple[WordTiming, ...]]:
    rate = round(espeak_lib.NORMAL_RATE_WPM * speed)
    try:
        result = espeak_lib.synthesize_wav(text, voice, work / "espeak.wav", rate_wpm=rate)
    except espeak_lib.EspeakError as err:  # also EspeakMissingError: install hint included
        raise TtsError("espeak", voice, text, str(err), retryable=False) from err
    return result.path, result.words


def _gtts(text: str, voice: str, timeout: float, work: Path) -> Path:
    """gTTS speaks `voice` = a language code, optionally with a Google domain: "en:co.uk"."""
    from gtts import gTTS, gTTSError

    lang, _, tld = voice.partition(":")
    target = work / "gtts.mp3"
    partial = work / "gtts.mp3.part"  # offline gTTS leaves a 0-byte file: never the target
    try:
        speaker = gTTS(text, lang=lang, tld=tld or "com", slow=False, timeout=timeout)
        with partial.open("wb") as out:
            speaker.write_to_fp(out)
    except ValueError as err:
        raise TtsError(
            "gtts",
            voice,
            text,
            f"{err}; set the voice to a gTTS language code (e.g. 'en', 'ko', 'ja')",
            retryable=False,
        ) from err
    except gTTSError as err:
        raise _gtts_error(err, voice, text) from err
    if partial.stat().st_size == 0:
        raise TtsError(
            "gtts", voice, text, "Google returned no audio; try again later", retryable=True
        )
    partial.replace(target)
    return target


def _gtts_error(err: Exception, voice: str, text: str) -> TtsError:
    response = getattr(err, "rsp", None)
    status = getattr(response, "status_code", None)
    if status is None:
        return TtsError(
            "gtts",
            voice,
            text,
            "cannot reach Google Translate: gTTS needs the network. Check the connection "
            "(or proxy) and retry, or use the offline engine 'espeak'",
            retryable=True,
        )
    retryable = status in (408, 429) or status >= 500
    hint = "try again later" if retryable else "check the voice (a gTTS language code)"
    return TtsError(
        "gtts", voice, text, f"Google answered HTTP {status}; {hint}", retryable=retryable
    )


@dataclass(frozen=True)
class _Endpoint:
    base_url: str | None
    api_key: str | None = field(repr=False)  # never in a log line or a traceback's repr
    max_retries: int

    @property
    def url(self) -> str:
        return self.base_url or OPENAI_DEFAULT_URL


def _openai(
    text: str, voice: str, settings: VoiceSettings, endpoint: _Endpoint, work: Path
) -> Path:
    import openai

    api_key = endpoint.api_key
    if api_key is None:
        if endpoint.base_url is None:
            raise TtsError(
                "openai",
                voice,
                text,
                "no API key: set OPENAI_API_KEY (or the resource's api_key), or use the "
                "offline engine 'espeak'",
                retryable=False,
            )
        api_key = "unused"  # self-hosted OpenAI-compatible servers often need no key
    client = openai.OpenAI(
        api_key=api_key,
        base_url=endpoint.base_url,
        timeout=settings.timeout_seconds,
        max_retries=endpoint.max_retries,
    )
    target = work / "openai.wav"
    try:
        response = client.audio.speech.create(
            model=settings.model,
            voice=voice,
            input=text,
            response_format="wav",
            speed=settings.speed,
        )
        target.write_bytes(response.content)
    except openai.APIError as err:
        raise _openai_error(err, voice, text, endpoint, settings) from err
    finally:
        client.close()
    if target.stat().st_size == 0:
        raise TtsError(
            "openai",
            voice,
            text,
            f"{endpoint.url} answered with an empty body; try again later",
            retryable=True,
        )
    return target


def _openai_error(
    err: Exception, voice: str, text: str, endpoint: _Endpoint, settings: VoiceSettings
) -> TtsError:
    import openai

    url = endpoint.url

    def scrub(message: str) -> str:
        key = endpoint.api_key
        return (message.replace(key, "***") if key else message)[:300]

    if isinstance(err, openai.APITimeoutError):
        reason = (
            f"{url} did not answer within {settings.timeout_seconds:g} s "
            f"({_attempts(endpoint)}); try again, or raise voice.timeout_seconds"
        )
        return TtsError("openai", voice, text, reason, retryable=True)
    if isinstance(err, openai.APIConnectionError):
        reason = f"cannot reach {url} ({_attempts(endpoint)}); check the network and the base URL"
        return TtsError("openai", voice, text, reason, retryable=True)
    if isinstance(err, openai.APIStatusError):
        status = err.status_code
        if status in (401, 403):
            reason = f"{url} refused the API key (HTTP {status}); check OPENAI_API_KEY"
            return TtsError("openai", voice, text, reason, retryable=False)
        if status == 404:
            reason = (
                f"{url} has no speech model {settings.model!r} (HTTP 404); check "
                "voice.model and the base URL"
            )
            return TtsError("openai", voice, text, reason, retryable=False)
        retryable = status in (408, 409, 429) or status >= 500
        hint = "try again later" if retryable else "check voice.model and voice.voice"
        reason = f"{url} answered HTTP {status} ({scrub(err.message)}); {hint}"
        return TtsError("openai", voice, text, reason, retryable=retryable)
    return TtsError("openai", voice, text, scrub(str(err)), retryable=False)


def _attempts(endpoint: _Endpoint) -> str:
    count = endpoint.max_retries + 1
    return "1 attempt" if count == 1 else f"{count} attempts"


# ---- normalising, measuring, caching -------------------------------------------------------


def _store(
    key: str,
    raw: Path,
    words: tuple[WordTiming, ...],
    text: str,
    engine: str,
    voice: str,
    speed: float,
) -> Speech:
    """Normalise `raw` into the cache as `<key>.wav`, measure it, write the sidecar."""
    wav, sidecar = _cache_paths(key)
    wav.parent.mkdir(parents=True, exist_ok=True)
    # gTTS has no rate control: its speed is changed while normalising.
    tempo = speed if engine == "gtts" and abs(speed - 1.0) > 1e-3 else None
    with _temporary(wav) as tmp:
        duration = _normalise(raw, tmp, tempo, engine, voice, text)
        os.replace(tmp, wav)
    words = tuple(_clamp(w, duration) for w in words)
    _write_json_atomic(
        sidecar,
        {
            "format": FORMAT_VERSION,
            "engine": engine,
            "voice": voice,
            "duration": duration,
            "bytes": wav.stat().st_size,
            "text": text,
            "words": [w.model_dump() for w in words],
        },
    )
    logger.info("spoke %.2f s with %s voice %s", duration, engine, voice)
    return Speech(wav, duration, words, engine, voice, cached=False)


def _normalise(
    raw: Path, out: Path, tempo: float | None, engine: str, voice: str, text: str
) -> float:
    """One ffmpeg call: any audio → PCM s16le 48 kHz mono WAV; return its measured duration."""
    network = engine != "espeak"  # a bad answer from a server may be a passing glitch
    if not raw.is_file() or raw.stat().st_size == 0:
        raise TtsError(engine, voice, text, "the engine produced an empty file", retryable=network)
    filters = ([f"atempo={tempo:.4f}"] if tempo else []) + ["volumedetect"]
    args = ["-i", str(raw), "-map", "0:a:0", "-vn", "-af", ",".join(filters)]
    args += ["-ac", "1", "-ar", str(SAMPLE_RATE), "-c:a", "pcm_s16le", "-f", "wav", str(out)]
    try:
        log = run_ffmpeg(args, what=f"normalising {engine} speech")
        duration = float(probe_json(out).get("format", {}).get("duration") or 0.0)
    except MediaError as err:
        reason = f"the engine's audio cannot be decoded ({_last_line(str(err))})"
        raise TtsError(engine, voice, text, reason, retryable=network) from err
    if duration < MIN_SPEECH_SECONDS:
        reason = f"the audio is too short ({duration:.2f} s)"
        raise TtsError(engine, voice, text, reason, retryable=network)
    peak = _peak_db(log)
    if peak is None or peak < SILENT_BELOW_DB:
        reason = "the audio is silent" + (f" (peak {peak:.0f} dB)" if peak is not None else "")
        raise TtsError(engine, voice, text, reason, retryable=network)
    return duration


def _read_cache(key: str) -> Speech | None:
    """The cached speech for `key`, or None when absent, incomplete or unreadable."""
    wav, sidecar = _cache_paths(key)
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT_VERSION or wav.stat().st_size != meta["bytes"]:
            return None
        words = tuple(WordTiming.model_validate(w) for w in meta["words"])
        return Speech(
            path=wav,
            duration=float(meta["duration"]),
            words=words,
            engine=str(meta["engine"]),
            voice=str(meta["voice"]),
            cached=True,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # pydantic's ValidationError is a ValueError


def _cache_paths(key: str) -> tuple[Path, Path]:
    folder = cache_dir() / "tts" / key[:2]
    return folder / f"{key}.wav", folder / f"{key}.json"


@contextmanager
def _temporary(final: Path) -> Iterator[Path]:
    """A temporary path beside `final`, removed unless the caller renamed it."""
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    with _temporary(path) as tmp:
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, path)


def _clamp(word: WordTiming, duration: float) -> WordTiming:
    start = min(max(0.0, word.start), duration)
    end = min(max(start, word.end), duration)
    return WordTiming(word=word.word, start=start, end=end)


def _peak_db(ffmpeg_log: str) -> float | None:
    found = _MAX_VOLUME.findall(ffmpeg_log)
    if not found:
        return None
    return float("-inf") if found[-1].endswith("inf") else float(found[-1])


def _last_line(message: str) -> str:
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "unknown error"
