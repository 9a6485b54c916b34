"""libespeak-ng through ctypes: speech as a WAV file plus the time each word starts.

The `espeak-ng` command line writes audio but no timings; the library, in synchronous mode,
hands back the samples together with WORD events that carry the word's position in the
input text (1-based, in characters of the UTF-8 text, not bytes) and its time in the audio
(ms). `synthesize_wav` turns those events into one `WordTiming` per word of the input, in
order, so subtitles can show exactly what is heard.

espeak does not report every word: it merges unstressed words ("of the"), reads a number
as several words and may skip a word after one. Events are therefore mapped onto the
input's words (first event inside a word wins, out-of-order events are dropped) and words
without an event get a share of the time between their neighbours, by length.

The library keeps global state and is not thread-safe: every call takes a module-level lock
and the library is initialised once per process.
"""

from __future__ import annotations

import array
import ctypes
import ctypes.util
import os
import re
import tempfile
import threading
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shorts_pipeline.models import WordTiming

NORMAL_RATE_WPM = 175  # espeakRATE_NORMAL: speed 1.0
MIN_RATE_WPM = 80
MAX_RATE_WPM = 450

INSTALL_HINT = (
    "install espeak-ng (Debian/Ubuntu: `sudo apt-get install espeak-ng`, "
    "macOS: `brew install espeak-ng`)"
)

# speak_lib.h (API revision 12)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # without it a missing data folder calls exit(1)
_POS_CHARACTER = 1
_CHARS_UTF8 = 1  # espeakSSML (0x10) stays off: "<" in a script is text, not markup
_PARAM_RATE = 1
_EE_OK = 0
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_SENTENCE = 2
_EVENT_END = 5
_BUFFER_MS = 200

# Silence detection on 16-bit samples: quieter than about -40 dBFS counts as silence.
_SILENCE_LEVEL = 330
_SILENCE_WINDOW_S = 0.01
# A gap this long before the next word is a pause: the word ends where its sound ends.
_PAUSE_SECONDS = 0.15

_LIBRARY_NAMES = (
    "libespeak-ng.so.1",
    "/usr/lib/x86_64-linux-gnu/libespeak-ng.so.1",
    "/usr/lib/aarch64-linux-gnu/libespeak-ng.so.1",
    "/usr/lib/libespeak-ng.so.1",
    "/usr/lib64/libespeak-ng.so.1",
    "/usr/local/lib/libespeak-ng.so.1",
    "/opt/homebrew/lib/libespeak-ng.dylib",
    "/usr/local/lib/libespeak-ng.dylib",
)


class EspeakError(Exception):
    """espeak-ng could not speak a text (unknown voice, internal error)."""


class EspeakMissingError(EspeakError):
    """libespeak-ng or its voice data is not installed."""


@dataclass(frozen=True)
class EspeakSpeech:
    """A synthesised WAV (16-bit mono) and when each word of the text starts and ends."""

    path: Path
    sample_rate: int
    duration: float  # seconds of audio in the file
    audible_end: float  # seconds; trailing silence after it
    words: tuple[WordTiming, ...]


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


class _EventId(ctypes.Union):
    _fields_ = [
        ("number", ctypes.c_int),
        ("name", ctypes.c_char_p),
        ("string", ctypes.c_char * 8),
    ]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based, in characters
        ("length", ctypes.c_int),  # characters (WORD events)
        ("audio_position", ctypes.c_int),  # ms from the start of this synthesis
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass
class _Collector:
    """What the callback gathers during one synthesis."""

    chunks: list[bytes]
    words: list[tuple[int, int]]  # (0-based character position, audio ms)


@dataclass
class _Engine:
    lib: ctypes.CDLL
    sample_rate: int
    callback: object  # the ctypes callback; kept referenced so it is never freed
    pid: int


_lock = threading.Lock()
_engine: _Engine | None = None
_collector: _Collector | None = None
_synthesis_count = 0


def _fresh_lock_in_child() -> None:
    """A child forked while another thread was speaking must not inherit a held lock."""
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_fresh_lock_in_child)


def synthesize_wav(
    text: str, voice: str, path: str | Path, *, rate_wpm: int = NORMAL_RATE_WPM
) -> EspeakSpeech:
    """Speak `text` with espeak-ng `voice` into the WAV file `path` (written atomically).

    `voice` is a voice name ("en-us", "ko") or a language code espeak knows ("zh" finds
    Mandarin). Raises EspeakMissingError when espeak-ng is not installed, EspeakError for an
    unknown voice or a failed synthesis.
    """
    global _collector, _synthesis_count
    target = Path(path)
    with _lock:
        engine = _ensure_engine()
        _select_voice(engine.lib, voice)
        rate = max(MIN_RATE_WPM, min(MAX_RATE_WPM, rate_wpm))
        engine.lib.espeak_SetParameter(_PARAM_RATE, rate, 0)
        _collector = _Collector(chunks=[], words=[])
        try:
            data = text.encode("utf-8") + b"\0"
            status = engine.lib.espeak_Synth(
                data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
            collected = _collector
        finally:
            _collector = None
        _synthesis_count += 1
    if status != _EE_OK:
        raise EspeakError(f"espeak-ng failed to synthesise the text (error {status})")
    pcm = b"".join(collected.chunks)
    _write_wav_atomic(target, pcm, engine.sample_rate)
    samples = array.array("h")
    samples.frombytes(pcm)
    duration = len(samples) / engine.sample_rate
    audible_end = _audible_end(samples, engine.sample_rate)
    words = word_timings(text, collected.words, samples, engine.sample_rate, audible_end)
    return EspeakSpeech(target, engine.sample_rate, duration, audible_end, tuple(words))


def synthesis_count() -> int:
    """How many syntheses this process has run (cache tests check that a hit made none)."""
    return _synthesis_count


def library_path() -> str | None:
    """Where libespeak-ng is, or None when it is not installed."""
    found = ctypes.util.find_library("espeak-ng")
    candidates = ([found] if found else []) + list(_LIBRARY_NAMES)
    for name in candidates:
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return name
    return None


def word_timings(
    text: str,
    events: Sequence[tuple[int, int]],
    samples: Sequence[int],
    sample_rate: int,
    audible_end: float,
) -> list[WordTiming]:
    """One timing per whitespace-separated word of `text`, from WORD events (position, ms)."""
    spans = [(m.start(), m.end(), m.group()) for m in re.finditer(r"\S+", text)]
    if not spans:
        return []
    starts = _fill_missing(spans, _anchor_starts(spans, events), audible_end)
    timings = []
    for i, (_, _, word) in enumerate(spans):
        start = min(starts[i], audible_end)
        next_start = min(starts[i + 1], audible_end) if i + 1 < len(spans) else audible_end
        end = _word_end(samples, sample_rate, start, next_start)
        timings.append(WordTiming(word=word, start=round(start, 3), end=round(end, 3)))
    return timings


# ---- helpers ------------------------------------------------------------------------------


def _ensure_engine() -> _Engine:
    """Load and initialise the library once per process (again in a forked child)."""
    global _engine
    if _engine is not None and _engine.pid == os.getpid():
        return _engine
    name = library_path()
    if name is None:
        raise EspeakMissingError(f"libespeak-ng was not found; {INSTALL_HINT}")
    lib = ctypes.CDLL(name)
    _declare(lib)
    sample_rate = lib.espeak_Initialize(
        _AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, None, _INITIALIZE_DONT_EXIT
    )
    data_path = ctypes.c_char_p()
    lib.espeak_Info(ctypes.byref(data_path))
    folder = (data_path.value or b"").decode("utf-8", "replace")
    if sample_rate <= 0 or not (Path(folder) / "phontab").is_file():
        raise EspeakMissingError(
            f"espeak-ng voice data was not found (looked in {folder or 'the default folder'}); "
            f"{INSTALL_HINT}, or point ESPEAK_DATA_PATH at the folder holding espeak-ng-data"
        )
    callback = _SynthCallback(_on_synth)
    lib.espeak_SetSynthCallback(callback)
    _engine = _Engine(lib=lib, sample_rate=sample_rate, callback=callback, pid=os.getpid())
    return _engine


def _declare(lib: ctypes.CDLL) -> None:
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
    lib.espeak_Info.restype = ctypes.c_char_p
    lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(_Voice)]
    lib.espeak_SetVoiceByProperties.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.POINTER(ctypes.c_uint),
        ctypes.c_void_p,
    ]
    lib.espeak_Synth.restype = ctypes.c_int


def _on_synth(wav: Any, count: int, events: Any) -> int:
    """The synth callback: keep the samples and the WORD events. Runs inside espeak_Synth."""
    collector = _collector
    if collector is None:
        return 1  # nobody is listening: abort
    if wav and count > 0:
        collector.chunks.append(ctypes.string_at(wav, count * ctypes.sizeof(ctypes.c_short)))
    if events:
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == _EVENT_WORD and event.text_position > 0:
                collector.words.append((event.text_position - 1, event.audio_position))
            i += 1
    return 0


def _select_voice(lib: ctypes.CDLL, voice: str) -> None:
    """Voice by name ("en-us"), else by language ("zh" → Mandarin); error when neither."""
    name = voice.strip().encode("utf-8")
    if name and lib.espeak_SetVoiceByName(name) == _EE_OK:
        return
    wanted = _Voice(languages=name)
    if name and lib.espeak_SetVoiceByProperties(ctypes.byref(wanted)) == _EE_OK:
        return
    raise EspeakError(
        f"espeak-ng has no voice {voice!r}; list the voices with `espeak-ng --voices` and set "
        "voice to one of them (e.g. 'en-us', 'ko')"
    )


def _write_wav_atomic(path: Path, pcm: bytes, sample_rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as raw, wave.open(raw, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(sample_rate)
            out.writeframes(pcm)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _anchor_starts(
    spans: list[tuple[int, int, str]], events: Sequence[tuple[int, int]]
) -> list[float | None]:
    """Start times (s) of the words a WORD event points into; None for the others."""
    starts: list[float | None] = [None] * len(spans)
    last_index, last_time = -1, 0.0
    for position, ms in sorted(events, key=lambda e: e[1]):
        index = _span_at(spans, position)
        seconds = ms / 1000.0
        # A later event inside a word already timed (a number read as several words) or
        # pointing back into the text is not a new word.
        if index is None or index <= last_index or seconds < last_time:
            continue
        starts[index] = seconds
        last_index, last_time = index, seconds
    return starts


def _span_at(spans: list[tuple[int, int, str]], position: int) -> int | None:
    """Index of the word holding character `position`, or of the next word after a space."""
    for i, (_, end, _) in enumerate(spans):
        if position < end:
            return i
    return None


def _fill_missing(
    spans: list[tuple[int, int, str]], starts: list[float | None], audible_end: float
) -> list[float]:
    """Give words without an event a share of the gap between timed neighbours, by length."""
    filled: list[float] = []
    i = 0
    while i < len(spans):
        start = starts[i]
        if start is not None:
            filled.append(start)
            i += 1
            continue
        # A run of untimed words i..j-1 between the previous timed word and word j.
        j = i
        while j < len(spans) and starts[j] is None:
            j += 1
        left = filled[-1] if filled else 0.0
        right = starts[j] if j < len(spans) else audible_end
        right = max(left, right if right is not None else audible_end)
        owner = i - 1 if filled else i  # the previous word shares the gap with the run
        lengths = [len(spans[k][2]) for k in range(owner, j)]
        total = sum(lengths) or 1
        time = left
        for k, length in zip(range(owner, j), lengths, strict=True):
            if k >= i:
                filled.append(time)
            time += (right - left) * length / total
        i = j
    return filled


def _word_end(samples: Sequence[int], sample_rate: int, start: float, next_start: float) -> float:
    """Where a word's sound stops: the next word's start, unless a pause comes between."""
    if next_start - start <= _PAUSE_SECONDS:
        return max(start, next_start)
    sound_end = _audible_end(samples, sample_rate, start, next_start)
    if next_start - sound_end >= _PAUSE_SECONDS:
        return max(start, sound_end)
    return next_start


def _audible_end(
    samples: Sequence[int], sample_rate: int, lo: float = 0.0, hi: float | None = None
) -> float:
    """Seconds where sound last rises above silence within [lo, hi] (lo if all silent)."""
    window = max(1, int(sample_rate * _SILENCE_WINDOW_S))
    first = int(lo * sample_rate)
    last = len(samples) if hi is None else min(len(samples), int(hi * sample_rate))
    end = last
    while end > first:
        begin = max(first, end - window)
        chunk = samples[begin:end]
        if max(chunk) > _SILENCE_LEVEL or -min(chunk) > _SILENCE_LEVEL:
            return end / sample_rate
        end = begin
    return first / sample_rate
