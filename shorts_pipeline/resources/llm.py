"""Script writers: the offline writer and any OpenAI-compatible chat API.

`ScriptWriterResource.write(project, clips)` returns a validated `VideoScript` written by the
project's writer (`settings.script.writer`):

- `offline` — deterministic, no network. A ranking becomes an intro, one line per clip in
  countdown order (each short enough to be said over its clip) and an outro. An explainer
  with a source text is read out of that text: lead sentences of its sections and paragraphs,
  spread through the whole text, until the target length is filled (see `offline_script`).
  An explainer without one gets a title-specific template (English and Korean).
- `openai` — the chat API through the `openai` SDK, with a JSON-schema structured answer that
  pydantic validates; an invalid answer gets one repair round with the exact errors.

Every failure is a `ScriptError` whose message says what went wrong, where, and what to do;
`retryable` tells the asset whether trying again could help. The API key never appears in a
message.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
import openai
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shorts_pipeline.models import (
    SOURCE_TEXT_MAX_BYTES,
    ProjectFormat,
    ProjectSpec,
    SceneRole,
    ScriptChapter,
    ScriptScene,
    ScriptSettings,
    SelectedClip,
    VideoScript,
)
from shorts_pipeline.render.speech_text import split_sentences, spoken_text, spoken_words

# Speaking rates of a calm narrator (TTS at speed 1.0 is close to these).
WORDS_PER_SECOND = 2.6  # languages written with spaces between words
HANGUL_SYLLABLES_PER_SECOND = 5.3  # espeak-ng reads Korean at ~5.3 syllables/s (measured)
CJK_CHARS_PER_SECOND = 5.0  # Chinese characters and Japanese kana

MAX_SCENE_SECONDS = 12.0  # a scene says at most this much…
MAX_SCENE_SENTENCES = 2  # …in at most this many sentences
HEADLINE_CHARS = 40  # on-screen text
PROMPT_SOURCE_CHARS = 24_000  # source text sent to the LLM as is; longer texts are condensed

OFFLINE_TEMPLATE_LANGUAGES = ("en", "ko")


class ScriptError(Exception):
    """A script could not be written or is not usable. `retryable` is True when the same
    request may succeed later (network, timeout, overloaded server)."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass
class WrittenScript:
    """A script and how it was written."""

    script: VideoScript
    attempts: int  # LLM requests that produced an answer (0 for the offline writer)
    repaired: bool  # the first answer was invalid and the repair round fixed it
    writer: str  # "offline" or "openai:<model>"
    notes: list[str] = field(default_factory=list)


# ---- public functions --------------------------------------------------------------------


def speaking_seconds(text: str, language: str = "en") -> float:
    """About how long a narrator takes to say `text` (Markdown, URLs and emoji are silent).

    Each character's script sets its rate: Hangul syllables at 7/s, Chinese characters and
    kana at 5/s, words of other scripts at 2.6/s. A number counts as one word per two
    digits, or, in Korean, Japanese and Chinese text (`language`), one syllable per digit.
    """
    return _spoken_seconds(spoken_text(text), language)


def _spoken_seconds(spoken: str, language: str) -> float:
    """`speaking_seconds` of text that is already spoken text."""
    syllables = cjk = words = 0.0
    digits_are_syllables = _base_language(language) in ("ko", "ja", "zh")
    for token in _word_tokens(spoken):
        if _is_hangul(token[0]):
            syllables += len(token)
        elif _is_cjk(token[0]):
            cjk += len(token)
        elif _is_number(token):
            digits = sum(ch.isdigit() for ch in token)
            if digits_are_syllables:
                syllables += digits
            else:
                words += math.ceil(digits / 2)
        else:
            words += 1
    return (
        syllables / HANGUL_SYLLABLES_PER_SECOND
        + cjk / CJK_CHARS_PER_SECOND
        + words / WORDS_PER_SECOND
    )


def check_script(script: VideoScript, settings: ScriptSettings) -> None:
    """Raise `ScriptError` naming every way `script` breaks the project's script settings."""
    problems = script_problems(script, settings)
    if problems:
        raise ScriptError("; ".join(problems))


def script_problems(script: VideoScript, settings: ScriptSettings) -> list[str]:
    """Every way `script` breaks the limits in `settings` or cannot be spoken, as sentences."""
    problems = []
    scenes = script.scenes()
    if len(scenes) > settings.max_scenes:
        problems.append(
            f"the script has {len(scenes)} scenes; the limit is {settings.max_scenes} "
            "(settings.script.max_scenes)"
        )
    if len(script.chapters) > settings.max_chapters:
        problems.append(
            f"the script has {len(script.chapters)} chapters; the limit is "
            f"{settings.max_chapters} (settings.script.max_chapters)"
        )
    for number, scene in enumerate(scenes, start=1):
        if not spoken_text(scene.narration):
            problems.append(f"scene {number} has no narration to speak")
    return problems


def offline_script(project: ProjectSpec, clips: Sequence[SelectedClip] = ()) -> VideoScript:
    """The project's script written without a network, the same every time.

    Ranking: an intro, one line per clip from the highest rank number down to #1 (rank,
    title, views; shortened until it can be said within the clip's trimmed length), an outro.

    Explainer with a source text: the text is cut into sections (Markdown headings), those
    into paragraphs (blank lines, or lines when there are no blank lines; list items count as
    sentences) and those into sentences. Sentences are then taken in rounds until the target
    length (`settings.script.target_seconds`, less the intro and outro) is filled: first the
    lead sentence of every section, then the lead sentence of every other paragraph, then the
    second sentences, the third… A sentence is taken only after the one before it in its
    paragraph, so every scene reads on from its paragraph's start; within a round the
    candidates are visited in an evenly spread order (start, middle, quarters, eighths…), so a
    long text is summarised from its whole length, not just its opening. Paragraphs longer
    than eight sentences count as several. Consecutive sentences of one paragraph share a
    scene (at most two, about 12 s); chapters follow the headings (or, without headings,
    groups of paragraphs), merged down to `max_chapters`.

    Explainer without a source text: intro, three to five scenes of a title-specific
    structure (basics, key idea, example, common mistake, takeaway), outro — in English or
    Korean (other languages get the English template).
    """
    return _offline(project, clips)[0]


class ScriptWriterResource(dg.ConfigurableResource):
    """Writes a project's script with the writer its settings name (`settings.script.writer`):
    the offline writer (deterministic, no network) or any OpenAI-compatible chat API (OpenAI,
    Ollama, vLLM…) with a JSON-schema answer validated by pydantic and one repair round.

    The API key is `api_key` (bind it with `dg.EnvVar("OPENAI_API_KEY")`) or, when unset, the
    OPENAI_API_KEY environment variable at call time; it is never logged. The endpoint is the
    project's `settings.script.base_url`, else `base_url`, else OPENAI_BASE_URL, else OpenAI.
    """

    api_key: str | None = Field(
        default=None, description="API key; default: the OPENAI_API_KEY environment variable."
    )
    base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible endpoint (e.g. http://localhost:11434/v1 for Ollama); "
        "a project's settings.script.base_url wins; default OPENAI_BASE_URL.",
    )

    def write(self, project: ProjectSpec, clips: Sequence[SelectedClip] = ()) -> WrittenScript:
        """The project's script, validated against its settings."""
        settings = project.settings.script
        if project.format is ProjectFormat.extend:
            return self._plan(project)
        if settings.writer == "offline":
            script, notes = _offline(project, clips)
            check_script(script, settings)
            return WrittenScript(script, attempts=0, repaired=False, writer="offline", notes=notes)
        return _LlmSession(
            project=project,
            clips=list(clips),
            api_key=self.api_key or os.environ.get("OPENAI_API_KEY") or None,
            base_url=settings.base_url or self.base_url or os.environ.get("OPENAI_BASE_URL"),
        ).run()

    def _plan(self, project: ProjectSpec) -> WrittenScript:
        """An extend video's segment plan (see `segment_plan`)."""
        from shorts_pipeline.resources import segment_plan  # it builds on this module

        settings = project.settings.script
        if settings.writer == "offline":
            script = segment_plan.offline_plan(project)
            written = segment_plan.WrittenPlan(script, attempts=0, repaired=False)
        else:
            written = segment_plan.PlanSession(
                project=project,
                api_key=self.api_key or os.environ.get("OPENAI_API_KEY") or None,
                base_url=settings.base_url or self.base_url or os.environ.get("OPENAI_BASE_URL"),
            ).run()
        problems = segment_plan.plan_problems(written.script, project.settings.extend)
        if problems:
            raise ScriptError("; ".join(problems))
        return WrittenScript(
            written.script,
            attempts=written.attempts,
            repaired=written.repaired,
            writer=written.script.writer,
            notes=written.notes,
        )


# ---- the OpenAI-compatible writer ---------------------------------------------------------


class _DraftScene(BaseModel):
    """One scene as the LLM writes it (the schema sent with the request)."""

    model_config = ConfigDict(extra="forbid")

    narration: str = Field(description="What the voice says: 1-2 short spoken sentences.")
    on_screen_text: str = Field(description="Headline on the slide, at most 40 characters.")
    visual_hint: str = Field(description="What the picture should show.")
    broll_keywords: list[str] = Field(description="1-3 words to find matching footage.")
    role: SceneRole
    clip_rank: int | None = Field(description="Rank of the clip for role 'clip'; else null.")


class _DraftChapter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str
    scenes: list[_DraftScene]


class _DraftScript(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chapters: list[_DraftChapter]


@dataclass
class _Answer:
    text: str
    finish_reason: str | None = None
    refusal: str | None = None


@dataclass
class _LlmSession:
    """One script request: the prompt, up to two answers, their validation."""

    project: ProjectSpec
    clips: list[SelectedClip]
    api_key: str | None
    base_url: str | None
    notes: list[str] = field(default_factory=list)
    where: str = ""  # the endpoint as messages show it (no credentials)

    @property
    def settings(self) -> ScriptSettings:
        return self.project.settings.script

    def run(self) -> WrittenScript:
        if not self.api_key:
            raise ScriptError(
                "no API key for the openai script writer: set OPENAI_API_KEY (a local server "
                "such as Ollama or vLLM accepts any value, e.g. OPENAI_API_KEY=ollama), or set "
                "settings.script.writer='offline' to write without an LLM"
            )
        _source_or_none(self.project)  # refuse an unusable source text before any request
        client = openai.OpenAI(
            base_url=self.base_url,
            api_key=self.api_key,
            timeout=self.settings.timeout_seconds,
            max_retries=1,
        )
        with client:
            self.where = _safe_url(str(client.base_url))
            self.notes.append(f"model {self.settings.model} at {self.where}")
            messages = self._prompt()
            answer = self._ask(client, messages)
            script, problems = self._validate(answer)
            if script is not None and not problems:
                return self._written(script, attempts=1, repaired=False)
            self.notes.append("first answer rejected: " + "; ".join(problems[:5]))
            messages += [
                {"role": "assistant", "content": answer.text},
                {"role": "user", "content": _repair_request(problems)},
            ]
            answer = self._ask(client, messages)
            script, problems = self._validate(answer)
            if script is not None and not problems:
                return self._written(script, attempts=2, repaired=True)
        raise ScriptError(
            f"the LLM {self.settings.model} at {self.where} answered with an unusable script "
            f"twice (after one repair round): {'; '.join(problems[:4])}. Try a stronger model "
            "(settings.script.model), or set settings.script.writer='offline'",
            retryable=False,
        )

    def _written(self, script: VideoScript, attempts: int, repaired: bool) -> WrittenScript:
        seconds = sum(speaking_seconds(s.narration, script.language) for s in script.scenes())
        target = self.settings.target_seconds
        if not 0.5 * target <= seconds <= 1.5 * target:
            self.notes.append(
                f"the narration takes about {seconds:.0f} s; the target is {target:g} s"
            )
        return WrittenScript(
            script,
            attempts=attempts,
            repaired=repaired,
            writer=f"openai:{self.settings.model}",
            notes=self.notes,
        )

    def _prompt(self) -> list[ChatCompletionMessageParam]:
        system = _system_prompt(self.project, bool(self.clips))
        user = _user_prompt(self.project, self.clips, self.notes)
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def _ask(self, client: openai.OpenAI, messages: list[ChatCompletionMessageParam]) -> _Answer:
        settings = self.settings
        try:
            completion = client.chat.completions.create(
                model=settings.model,
                messages=messages,
                temperature=settings.temperature,
                max_tokens=settings.max_tokens,
                response_format={
                    "type": "json_schema",
                    "json_schema": {
                        "name": "video_script",
                        "schema": _DraftScript.model_json_schema(),
                        "strict": True,
                    },
                },
            )
        except openai.OpenAIError as err:
            raise _explain_api_error(err, self.where, settings, self.api_key) from err
        if not isinstance(completion, ChatCompletion):  # the SDK hands back a body it cannot parse
            raise ScriptError(
                f"the server at {self.where} answered with something that is not a chat "
                f"completion ({str(completion)[:80]!r}); check that settings.script.base_url "
                "or OPENAI_BASE_URL points at an OpenAI-compatible API (usually ending in /v1)",
                retryable=False,
            )
        if not completion.choices:
            return _Answer("")
        choice = completion.choices[0]
        return _Answer(
            choice.message.content or "",
            finish_reason=choice.finish_reason,
            refusal=choice.message.refusal,
        )

    def _validate(self, answer: _Answer) -> tuple[VideoScript | None, list[str]]:
        """The answer as a script, and every problem with it (empty when it is usable)."""
        if answer.refusal:
            return None, [f"the model refused: {answer.refusal[:200]}"]
        cut_off = []
        if answer.finish_reason == "length":
            cut_off = [
                f"the answer was cut off at {self.settings.max_tokens} tokens "
                "(settings.script.max_tokens): write a shorter script"
            ]
        data, problem = _json_object(answer.text)
        if data is None:
            return None, [*cut_off, problem]
        if problem:
            self.notes.append(problem)
        data.update(
            title=self.project.title[:300],
            language=self.project.settings.language,
            writer=f"openai:{self.settings.model}",
        )
        try:
            script = VideoScript.model_validate(data)
        except ValidationError as err:
            return None, [*cut_off, *_pydantic_problems(err)]
        script, problems = _fix_roles(script, self.project, self.clips)
        return script, problems + script_problems(script, self.settings)


def _system_prompt(project: ProjectSpec, has_clips: bool) -> str:
    settings = project.settings.script
    language = _base_language(project.settings.language)
    lines = [
        "You write scripts for short vertical videos (YouTube Shorts, TikTok, Reels).",
        f"Write every text in {_LANGUAGE_NAMES.get(language, language)} "
        f"(language code {project.settings.language}). Tone: {settings.tone}.",
        f"Read aloud at a calm pace, the whole narration lasts about {settings.target_seconds:g}"
        f" seconds ({_length_hint(settings.target_seconds, language)}).",
        f"Use at most {settings.max_chapters} chapters and at most {settings.max_scenes} scenes"
        " in the whole script; every chapter has a short title and at least one scene.",
        "Each scene has: narration (what the voice says: one or two short sentences, about "
        f"{MAX_SCENE_SECONDS:g} seconds at most, written to be spoken: plain words only, no "
        "Markdown, emoji, hashtags, URLs or stage directions), on_screen_text (a headline of "
        f"at most {HEADLINE_CHARS} characters), visual_hint (what the picture shows), "
        "broll_keywords (1-3 words to search stock footage), role and clip_rank.",
        "Roles: 'intro' for the opening scene, 'scene' for the body, 'outro' for the closing "
        "scene, 'clip' only for a ranking's line about one clip. clip_rank is the clip's rank "
        "for role 'clip' and null for every other role.",
    ]
    if project.format == ProjectFormat.ranking and has_clips:
        lines.append(
            "This video is a countdown of the clips listed by the user. Write an intro, then "
            "exactly one 'clip' scene per clip in countdown order (the highest rank number "
            "first, rank 1 last), then an outro; leave out the outro, then the intro, if the "
            "scene limit needs it. Each clip line must be short enough to say in the seconds "
            "given for its clip."
        )
    else:
        lines.append(
            "Explain the topic: a hook in the intro, one idea per scene building on the last, "
            "a short outro. Use only facts from the source text when one is given."
        )
    lines.append("Answer with one JSON object that follows the schema, and nothing else.")
    return "\n".join(lines)


def _user_prompt(project: ProjectSpec, clips: Sequence[SelectedClip], notes: list[str]) -> str:
    parts = [f"Title: {project.title}"]
    if project.keywords:
        parts.append("Keywords: " + ", ".join(project.keywords))
    source = _source_or_none(project)
    if source is not None:
        text = source
        if len(source) > PROMPT_SOURCE_CHARS:
            text = condense_source(source, PROMPT_SOURCE_CHARS, project.settings.language)
            notes.append(
                f"the source text ({len(source):,} characters) was condensed to "
                f"{len(text):,} characters for the prompt: the lead sentences of its sections "
                "and paragraphs, spread through the whole text (chunked)"
            )
        parts.append(f"Source text:\n<<<\n{text}\n>>>")
    if project.format == ProjectFormat.ranking and clips:
        parts.append("Clips, in countdown order:")
        language = project.settings.language
        for clip in sorted(clips, key=lambda c: c.rank, reverse=True):
            views = _views_phrase(clip.candidate.views, "en")
            parts.append(
                f"- rank {clip.rank}: {clip.candidate.title!r}"
                + (f", {views}" if views else "")
                + f"; its line must be said within {clip.trim_seconds:.1f} s "
                f"({_length_hint(clip.trim_seconds, _base_language(language))})"
            )
    elif source is None:
        parts.append("There is no source text: explain the title with well-known facts.")
    return "\n\n".join(parts)


def _repair_request(problems: Sequence[str]) -> str:
    listed = "\n".join(f"- {p}" for p in problems[:12])
    return (
        "Your answer cannot be used:\n"
        f"{listed}\n"
        "Reply again with the complete, corrected script as one JSON object that follows the "
        "schema, and nothing else."
    )


def _json_object(text: str) -> tuple[dict[str, Any] | None, str]:
    """The JSON object in an answer, and a note (or, when there is none, the problem)."""
    stripped = text.strip()
    if not stripped:
        return None, "the answer was empty"
    candidates = [stripped]
    fenced = re.search(r"```(?:json)?\s*(.*?)```", stripped, re.DOTALL)
    if fenced:
        candidates.append(fenced.group(1).strip())
    if "{" in stripped and "}" in stripped:
        candidates.append(stripped[stripped.index("{") : stripped.rindex("}") + 1])
    error: json.JSONDecodeError | None = None
    for number, candidate in enumerate(candidates):
        try:
            data = json.loads(candidate)
        except json.JSONDecodeError as err:
            error = error or err
            continue
        if isinstance(data, dict):
            data = _unwrap(data)
            note = "the answer had text around its JSON; the text was ignored" if number else ""
            return data, note
        return None, f"the answer is a JSON {type(data).__name__}, not an object with 'chapters'"
    return None, f"the answer is not JSON ({error}); it starts with {stripped[:80]!r}"


def _unwrap(data: dict[str, Any]) -> dict[str, Any]:
    """{"script": {...chapters...}} as {...chapters...}: some models wrap their answer."""
    if "chapters" not in data and len(data) == 1:
        inner = next(iter(data.values()))
        if isinstance(inner, dict) and "chapters" in inner:
            return inner
    return data


def _pydantic_problems(err: ValidationError) -> list[str]:
    problems = []
    for item in err.errors()[:10]:
        where = ".".join(str(part) for part in item["loc"]) or "script"
        problems.append(f"{where}: {item['msg']}")
    return problems


def _fix_roles(
    script: VideoScript, project: ProjectSpec, clips: Sequence[SelectedClip]
) -> tuple[VideoScript, list[str]]:
    """Make roles and clip ranks agree with the format; what cannot be fixed is a problem.

    A scene with a clip rank is a clip scene; outside a ranking there are none. A ranking has
    exactly one clip scene per selected clip, put in countdown order, each short enough for
    its clip.
    """
    script = script.model_copy(deep=True)
    scenes = script.scenes()
    ranking = project.format == ProjectFormat.ranking and bool(clips)
    for scene in scenes:
        if not ranking:
            if scene.role == "clip" or scene.clip_rank is not None:
                scene.role, scene.clip_rank = "scene", None
        elif scene.clip_rank is not None:
            scene.role = "clip"
    if not ranking:
        return script, []
    problems = _ranking_problems(scenes, clips, project.settings.language)
    if not problems:
        clip_scenes = [s for s in scenes if s.role == "clip"]
        in_countdown = sorted(clip_scenes, key=lambda s: -(s.clip_rank or 0))
        for chapter in script.chapters:  # the clip slots keep their places, in countdown order
            chapter.scenes = [
                in_countdown.pop(0) if s.role == "clip" else s for s in chapter.scenes
            ]
    return script, problems


def _ranking_problems(
    scenes: Sequence[ScriptScene], clips: Sequence[SelectedClip], language: str
) -> list[str]:
    problems = []
    ranks = {clip.rank: clip for clip in clips}
    for number, scene in enumerate(scenes, start=1):
        if scene.role == "clip" and scene.clip_rank is None:
            problems.append(f"scene {number} has role 'clip' but no clip_rank")
        elif scene.clip_rank is not None and scene.clip_rank not in ranks:
            problems.append(
                f"scene {number} has clip_rank {scene.clip_rank}, which is not one of the "
                f"clips (ranks {', '.join(str(r) for r in sorted(ranks))})"
            )
    for rank, clip in sorted(ranks.items()):
        lines = [s for s in scenes if s.clip_rank == rank]
        if not lines:
            problems.append(
                f"rank {rank} ({clip.candidate.title[:60]!r}) has no clip scene; add exactly "
                f"one scene with role 'clip' and clip_rank {rank}"
            )
        elif len(lines) > 1:
            problems.append(f"rank {rank} has {len(lines)} clip scenes; keep exactly one")
        else:
            seconds = speaking_seconds(lines[0].narration, language)
            if seconds > clip.trim_seconds * 1.25 + 0.3:
                problems.append(
                    f"the line for rank {rank} takes about {seconds:.1f} s to say but its clip "
                    f"lasts {clip.trim_seconds:.1f} s; shorten it"
                )
    return problems


def _explain_api_error(
    err: openai.OpenAIError, where: str, settings: ScriptSettings, key: str | None
) -> ScriptError:
    """A specific message (what, where, what to do) for an error of the openai SDK."""
    offline = "or set settings.script.writer='offline' to write without an LLM"
    if isinstance(err, openai.APITimeoutError):
        return ScriptError(
            f"the LLM at {where} did not answer within {settings.timeout_seconds:g} s "
            "(settings.script.timeout_seconds), tried twice; the model may still be loading or "
            f"the server is busy: try again, raise the timeout, {offline}",
            retryable=True,
        )
    if isinstance(err, openai.APIConnectionError):
        cause = _redact(str(err.__cause__ or err), key)[:160]
        return ScriptError(
            f"could not connect to the LLM at {where} ({cause}); is the server running? "
            f"Check settings.script.base_url or OPENAI_BASE_URL, {offline}",
            retryable=True,
        )
    if isinstance(err, openai.APIStatusError):
        return _explain_status(err, where, settings, key, offline)
    return ScriptError(
        f"the LLM at {where} gave an answer the openai SDK could not read "
        f"({type(err).__name__}: {_redact(str(err), key)[:200]}); {offline}",
        retryable=False,
    )


def _explain_status(
    err: openai.APIStatusError, where: str, settings: ScriptSettings, key: str | None, tail: str
) -> ScriptError:
    status = err.status_code
    detail = _redact(_server_message(err), key)[:200]
    said = f"HTTP {status}: {detail}"
    if status == 401:
        text = (
            f"the LLM at {where} refused the API key ({said}): check OPENAI_API_KEY "
            "(or the resource's api_key)"
        )
        return ScriptError(text, retryable=False)
    if status == 403:
        text = f"the LLM at {where} does not allow this key to use {settings.model} ({said})"
        return ScriptError(text, retryable=False)
    if status == 404:
        return ScriptError(
            f"the LLM at {where} has no model {settings.model!r} or no chat endpoint ({said}): "
            "check settings.script.model, and that the base URL ends in /v1",
            retryable=False,
        )
    if status == 429:
        text = f"the LLM at {where} is rate-limiting requests ({said}); try again later, {tail}"
        return ScriptError(text, retryable=True)
    if status >= 500:
        text = f"the LLM at {where} failed ({said}), tried twice; try again later, {tail}"
        return ScriptError(text, retryable=True)
    return ScriptError(
        f"the LLM at {where} refused the request ({said}); check settings.script (model, "
        f"max_tokens, temperature) — the server may not support JSON-schema answers — {tail}",
        retryable=False,
    )


def _server_message(err: openai.APIStatusError) -> str:
    body = err.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return err.message


def _redact(text: str, key: str | None) -> str:
    return text.replace(key, "***") if key else text


def _safe_url(url: str) -> str:
    """`url` without user info, query or fragment: safe to show in a message."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def _length_hint(seconds: float, language: str) -> str:
    if language == "ko":
        return f"about {round(seconds * HANGUL_SYLLABLES_PER_SECOND)} Hangul syllables"
    if language in ("ja", "zh"):
        return f"about {round(seconds * CJK_CHARS_PER_SECOND)} characters"
    return f"about {max(1, round(seconds * WORDS_PER_SECOND))} words"


_LANGUAGE_NAMES = {
    "en": "English",
    "ko": "Korean",
    "ja": "Japanese",
    "zh": "Chinese",
    "es": "Spanish",
    "fr": "French",
    "de": "German",
    "pt": "Portuguese",
    "it": "Italian",
    "ar": "Arabic",
    "hi": "Hindi",
    "ru": "Russian",
    "vi": "Vietnamese",
    "id": "Indonesian",
    "th": "Thai",
}


# ---- the offline writer --------------------------------------------------------------------


def _offline(project: ProjectSpec, clips: Sequence[SelectedClip]) -> tuple[VideoScript, list[str]]:
    language = _base_language(project.settings.language)
    notes = []
    if language not in OFFLINE_TEMPLATE_LANGUAGES:
        notes.append(
            f"the offline writer has no phrases in {project.settings.language!r}; its own lines "
            "(intro, outro, templates) are in English"
        )
    phrases = _PHRASES.get(language, _PHRASES["en"])
    if project.format == ProjectFormat.ranking:
        chapters = _ranking_chapters(project, clips, phrases)
        notes.append(f"offline writer: a countdown of {len(clips)} clips")
    else:
        source = _source_or_none(project)
        if source is None:
            chapters = _template_chapters(project, phrases)
            notes.append("offline writer: no source text, so a template from the title")
        else:
            chapters, note = _source_chapters(project, source, phrases)
            notes.append(note)
    script = VideoScript(
        title=project.title[:300] or "untitled",
        language=project.settings.language,
        chapters=chapters,
        writer="offline",
    )
    return script, notes


@dataclass(frozen=True)
class _Phrases:
    """The offline writer's own lines in one language. `{topic}` is the quoted title."""

    this_topic: str
    quote: str
    intro: str
    intro_untitled: str
    intro_screen: str
    body: tuple[tuple[str, str, str, str], ...]  # (chapter, on screen, narration, visual)
    outro: str
    outro_screen: str
    ranking_intro: str
    ranking_intro_untitled: str
    ranking_outro: str
    ranking_outro_screen: str
    ranking_chapter: str
    clip_line: Callable[[int, str, str, bool], str]  # (rank, title, views, is #1 of several)
    views: Callable[[int], str]


def _clip_line_en(rank: int, title: str, views: str, first: bool) -> str:
    line = "And number 1" if first else f"Number {rank}"
    if title:
        line += f": {title}"
    if views:
        line += f", with {views}"
    return line + "."


def _clip_line_ko(rank: int, title: str, views: str, first: bool) -> str:
    line = "대망의 1위" if first else f"{rank}위"
    if title:
        line += f", {title}"
    line += "."
    if views:
        line += f" 조회수 {views}."
    return line


def _views_en(views: int) -> str:
    for unit, name in ((1e9, "billion"), (1e6, "million"), (1e3, "thousand")):
        if views >= unit * 0.9995:
            return f"{_decimal(views / unit)} {name} views"
    return f"{views} view" + ("" if views == 1 else "s")


def _views_ko(views: int) -> str:
    for unit, name in ((1e8, "억"), (1e4, "만"), (1e3, "천")):
        if views >= unit * 0.9995:
            return f"{_decimal(views / unit)}{name}회"
    return f"{views}회"


def _decimal(value: float) -> str:
    text = f"{value:.1f}" if value < 9.95 else f"{value:.0f}"
    return text.removesuffix(".0")


_PHRASES = {
    "en": _Phrases(
        this_topic="this topic",
        quote='"{}"',
        intro="{sentence} Here is what you need to know.",
        intro_untitled="Here is what you need to know, in a few short steps.",
        intro_screen="In a nutshell",
        body=(
            (
                "The basics",
                "The basics",
                "First, the basics. Before any details, it helps to know what {topic} is "
                "really about, and why it matters.",
                "a simple picture of what {topic} is about",
            ),
            (
                "How it works",
                "The key idea",
                "Next, the key idea. Most of {topic} comes down to one principle, and once "
                "it clicks, the rest makes sense.",
                "a diagram of the key idea",
            ),
            (
                "How it works",
                "A real example",
                "Now a real example. Seeing it in action is the fastest way to understand "
                "how it works.",
                "a real-world example",
            ),
            (
                "In practice",
                "A common mistake",
                "Watch out for the most common mistake: jumping into the details before the "
                "basics are clear.",
                "a warning sign",
            ),
            (
                "In practice",
                "The takeaway",
                "Finally, the takeaway. Remember the key idea, and {topic} will not feel "
                "complicated again.",
                "a short summary on screen",
            ),
        ),
        outro="That was {topic} in a nutshell. Follow for more short explainers.",
        outro_screen="Follow for more",
        ranking_intro="Here are the top {n} {topic}.",
        ranking_intro_untitled="Here is the top {n}.",
        ranking_outro="Which one was your favourite? Tell us in the comments.",
        ranking_outro_screen="Your favourite?",
        ranking_chapter="The countdown",
        clip_line=_clip_line_en,
        views=_views_en,
    ),
    "ko": _Phrases(
        this_topic="이 주제",
        quote="‘{}’",
        intro="오늘의 주제는 ‘{title}’입니다. 핵심만 짧고 쉽게 알아볼게요.",
        intro_untitled="오늘은 핵심만 짧고 쉽게 알아볼게요.",
        intro_screen="핵심만 짧게",
        body=(
            (
                "기본",
                "기본부터",
                "먼저 기본부터 짚어 볼게요. 자세한 내용에 앞서 {topic}의 핵심이 무엇인지, "
                "왜 중요한지 알아 두면 좋습니다.",
                "{topic}의 기본을 보여 주는 간단한 그림",
            ),
            (
                "원리와 예시",
                "핵심 원리",
                "다음은 핵심 원리입니다. {topic}의 대부분은 하나의 원리로 설명되고, "
                "그것만 이해하면 나머지는 자연스럽게 따라옵니다.",
                "핵심 원리를 설명하는 도표",
            ),
            (
                "원리와 예시",
                "실제 예시",
                "이제 실제 예를 볼까요? 직접 적용되는 모습을 보면 어떻게 작동하는지 훨씬 "
                "빨리 이해할 수 있습니다.",
                "실생활 속 예시",
            ),
            (
                "실전 정리",
                "흔한 실수",
                "흔히 하는 실수도 조심하세요. 기본을 건너뛰고 세부 사항부터 파고들면 오히려 "
                "더 헷갈립니다.",
                "주의 표시",
            ),
            (
                "실전 정리",
                "한눈에 정리",
                "마지막으로 정리해 볼게요. 핵심 원리만 기억하면 {topic}도 더 이상 어렵지 않습니다.",
                "화면에 정리된 요약",
            ),
        ),
        outro="지금까지 {topic}에 대해 알아봤습니다. 도움이 됐다면 구독하고 다음 영상도 "
        "확인해 주세요.",
        outro_screen="구독하고 더 보기",
        ranking_intro="{topic} 톱 {n}! 지금부터 순위를 공개합니다.",
        ranking_intro_untitled="톱 {n}! 지금부터 순위를 공개합니다.",
        ranking_outro="여러분의 최애는 몇 위였나요? 댓글로 알려 주세요.",
        ranking_outro_screen="여러분의 최애는?",
        ranking_chapter="카운트다운",
        clip_line=_clip_line_ko,
        views=_views_ko,
    ),
}


# ---- offline: ranking

_TOP_N_PREFIX = re.compile(
    r"^\s*(?:the\s+)?(?:top|best|톱|탑|베스트)\s*\d+\s*(?:of\s+)?[:\-–—,!]*\s*", re.IGNORECASE
)
_TOP_N_SUFFIX = re.compile(r"[\s:\-–—,]*(?:top|best|톱|탑|베스트)\s*\d+\s*[!.]*\s*$", re.IGNORECASE)
_HASHTAG = re.compile(r"(?<!\w)[#@][^\s#@]+")


def _ranking_chapters(
    project: ProjectSpec, clips: Sequence[SelectedClip], phrases: _Phrases
) -> list[ScriptChapter]:
    settings = project.settings.script
    countdown = sorted(clips, key=lambda c: c.rank, reverse=True)
    if len(countdown) > settings.max_scenes:
        raise ScriptError(
            f"the ranking has {len(countdown)} clips but a script may have only "
            f"{settings.max_scenes} scenes (settings.script.max_scenes): raise max_scenes to at "
            f"least {len(countdown)} or lower settings.count"
        )
    n = len(countdown) or project.settings.count
    topic = _ranking_topic(project)
    intro_text = (phrases.ranking_intro if topic else phrases.ranking_intro_untitled).format(
        n=n, topic=topic
    )
    keywords = _content_keywords(topic or project.title) or _first_words(project.title, 1)
    intro = ScriptScene(
        narration=intro_text,
        on_screen_text=_headline(project.title) or intro_text[:HEADLINE_CHARS],
        visual_hint="title card",
        broll_keywords=keywords,
        role="intro",
    )
    language = project.settings.language
    lines = [_clip_scene(c, phrases, c.rank == 1 and n > 1, language) for c in countdown]
    outro = ScriptScene(
        narration=phrases.ranking_outro,
        on_screen_text=phrases.ranking_outro_screen,
        visual_hint="outro card",
        broll_keywords=keywords,
        role="outro",
    )
    scenes = _within_limit([intro, *lines, outro], settings.max_scenes)
    return [ScriptChapter(title=phrases.ranking_chapter, scenes=scenes)]


def _clip_scene(clip: SelectedClip, phrases: _Phrases, first: bool, language: str) -> ScriptScene:
    title = _clip_title(clip.candidate.title)
    narration = _fitting_clip_line(clip, title, phrases, first, language)
    on_screen = f"#{clip.rank} {_headline(title, HEADLINE_CHARS - 4)}".strip()
    keywords = _content_keywords(title) or [t for t in clip.candidate.tags[:3] if t.strip()][:3]
    return ScriptScene(
        narration=narration,
        on_screen_text=on_screen,
        visual_hint=f"clip #{clip.rank}: {title}"[:300],
        broll_keywords=[k[:40] for k in keywords],
        role="clip",
        clip_rank=clip.rank,
    )


def _fitting_clip_line(
    clip: SelectedClip, title: str, phrases: _Phrases, first: bool, language: str
) -> str:
    """The longest clip line that can be said within the clip: with the views, then without,
    then with the title cut word by word, then the rank alone."""
    views = phrases.views(clip.candidate.views) if clip.candidate.views is not None else ""
    words = spoken_words(title)
    options = [(title, views), (title, "")]
    options += [(" ".join(words[:k]), "") for k in range(len(words) - 1, 0, -1)]
    options += [("", "")]
    for option_title, option_views in options:
        line = phrases.clip_line(clip.rank, option_title, option_views, first)
        if speaking_seconds(line, language) <= clip.trim_seconds:
            return line
    return phrases.clip_line(clip.rank, "", "", False)


def _clip_title(title: str) -> str:
    """A clip's title as it can be said: no hashtags, mentions or symbols, ≤ 100 chars."""
    spoken = spoken_text(_HASHTAG.sub(" ", title)).rstrip(" .,;:!?-–—…")
    return _cut_at_word(spoken, 100)


def _ranking_topic(project: ProjectSpec) -> str:
    title = _TOP_N_SUFFIX.sub("", _TOP_N_PREFIX.sub("", project.title))
    topic = spoken_text(_HASHTAG.sub(" ", title)).rstrip(" .,;:!?-–—…")
    if not topic and project.keywords:
        topic = spoken_text(project.keywords[0])
    return _cut_at_word(topic, 80)


def _views_phrase(views: int | None, language: str) -> str:
    if views is None:
        return ""
    return _PHRASES.get(language, _PHRASES["en"]).views(views)


# ---- offline: explainer from the title alone


def _template_chapters(project: ProjectSpec, phrases: _Phrases) -> list[ScriptChapter]:
    settings = project.settings.script
    title = _cut_at_word(spoken_text(project.title), 80)
    topic = phrases.quote.format(title) if title else phrases.this_topic
    keywords = _content_keywords(title) or _first_words(title, 1)
    intro_text = phrases.intro_untitled
    if title:
        intro_text = phrases.intro.format(title=title, sentence=_as_sentence(title))
    intro = _Planned(
        phrases.body[0][0],
        ScriptScene(
            narration=intro_text,
            on_screen_text=_headline(title) or phrases.intro_screen,
            visual_hint="title card",
            broll_keywords=keywords,
            role="intro",
        ),
    )
    outro = _Planned(
        phrases.body[-1][0],
        ScriptScene(
            narration=phrases.outro.format(topic=topic),
            on_screen_text=phrases.outro_screen,
            visual_hint="outro card",
            broll_keywords=keywords,
            role="outro",
        ),
    )
    language = project.settings.language
    spare = settings.target_seconds - speaking_seconds(intro.scene.narration, language)
    spare -= speaking_seconds(outro.scene.narration, language)
    count = min(5, max(3, round(spare / 8.0)))
    picks = {3: (0, 1, 4), 4: (0, 1, 2, 4), 5: (0, 1, 2, 3, 4)}[count]
    body = []
    for index in picks:
        chapter, on_screen, narration, visual = phrases.body[index]
        scene = ScriptScene(
            narration=narration.format(topic=topic),
            on_screen_text=on_screen,
            visual_hint=visual.format(topic=topic),
            broll_keywords=keywords,
        )
        body.append(_Planned(chapter, scene))
    planned = _within_limit([intro, *body, outro], settings.max_scenes)
    return _chapters_from_plan(planned, settings.max_chapters)


@dataclass(frozen=True)
class _Planned:
    chapter: str
    scene: ScriptScene


_T = TypeVar("_T")


def _within_limit(items: list[_T], limit: int) -> list[_T]:
    """Intro, body…, outro cut to `limit`: the outro goes first, then the intro, then the
    body from its end."""
    items = list(items)
    if len(items) > limit:
        items.pop()  # the outro
    if len(items) > limit:
        items.pop(0)  # the intro
    return items[: max(1, limit)]


def _chapters_from_plan(planned: Sequence[_Planned], max_chapters: int) -> list[ScriptChapter]:
    groups: list[tuple[str, list[ScriptScene]]] = []
    for item in planned:
        if groups and groups[-1][0] == item.chapter:
            groups[-1][1].append(item.scene)
        else:
            groups.append((item.chapter, [item.scene]))
    merged = _split_even(groups, max_chapters)
    return [
        ScriptChapter(title=part[0][0], scenes=[s for _, scenes in part for s in scenes])
        for part in merged
    ]


# ---- offline: explainer from a source text


@dataclass(frozen=True)
class _Unit:
    """A sentence (or a piece of a long one) of the source text, as it is spoken."""

    text: str
    seconds: float
    section: int
    paragraph: int  # global index of its (pseudo-)paragraph
    index: int  # position within its paragraph
    order: int  # position in the whole text


@dataclass(frozen=True)
class _Section:
    heading: str
    paragraphs: tuple[tuple[_Unit, ...], ...]


PARAGRAPH_UNITS = 8  # a longer paragraph counts as several for the lead-sentence rounds
_FENCED_CODE = re.compile(r"^\s*```.*?^\s*```[^\n]*$", re.DOTALL | re.MULTILINE)
_HEADING_LINE = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_LIST_LINE = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")
_TABLE_OR_RULE = re.compile(r"^\s*(?:\|.*|[-=*_]{3,}|\|?[\s:|-]+\|[\s:|-]*)$")
_INNER_DOT = re.compile(r"(?<=\w)\.(?=\w)")
_ABBREVIATION = re.compile(
    r"\b(?:e\.g|i\.e|vs|approx|ca|cf|Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|Fig|Inc|Ltd)\.(?=\s)",
    re.IGNORECASE,
)
_DOT_STANDIN = "\u2024"  # one dot leader: keeps "3.5" and "x.io" out of the sentence splitter


def _source_chapters(
    project: ProjectSpec, source: str, phrases: _Phrases
) -> tuple[list[ScriptChapter], str]:
    settings = project.settings.script
    language = project.settings.language
    sections = _parse_source(source, language)
    title = _cut_at_word(spoken_text(project.title), 120)
    topic = phrases.quote.format(title) if title else phrases.this_topic
    intro = ScriptScene(
        narration=_as_sentence(title),
        on_screen_text=_headline(title),
        visual_hint="title card",
        broll_keywords=_content_keywords(title),
        role="intro",
    )
    outro = ScriptScene(
        narration=phrases.outro.format(topic=topic),
        on_screen_text=phrases.outro_screen,
        visual_hint="outro card",
        broll_keywords=_content_keywords(title),
        role="outro",
    )
    frame = [intro, outro] if title else [outro]
    frame = frame[: max(0, settings.max_scenes - 1)]
    framing = sum(speaking_seconds(s.narration, language) for s in frame)
    budget = max(settings.target_seconds - framing, settings.target_seconds * 0.5)
    body_limit = settings.max_scenes - len(frame)
    chosen = _select_units(sections, budget * 1.05, lambda u: u.seconds, max_scenes=body_limit)
    total = sum(len(p) for s in sections for p in s.paragraphs)
    groups = _group_scenes(chosen)
    chapters = _body_chapters(sections, groups, settings.max_chapters, title)
    if frame and frame[0].role == "intro":
        chapters[0].scenes.insert(0, frame[0])
    if frame and frame[-1].role == "outro":
        chapters[-1].scenes.append(frame[-1])
    note = (
        f"offline writer: {len(chosen)} of {total} sentences from the source text in "
        f"{len(groups)} scenes (lead sentences of its sections and paragraphs, spread through "
        "the whole text)"
    )
    return chapters, note


def condense_source(source: str, max_chars: int, language: str = "en") -> str:
    """`source` cut to about `max_chars` by the offline writer's lead-sentence rule, as plain
    paragraphs under their Markdown headings."""
    sections = _parse_source(source, language)
    chosen = _select_units(sections, max_chars, lambda u: len(u.text) + 1, max_scenes=None)
    picked = {u.order for u in chosen}
    out: list[str] = []
    for section in sections:
        paragraphs = [
            " ".join(u.text for u in paragraph if u.order in picked)
            for paragraph in section.paragraphs
        ]
        paragraphs = [p for p in paragraphs if p]
        if paragraphs and section.heading:
            out.append(f"## {section.heading}")
        out += paragraphs
    return "\n\n".join(out)


def _select_units(
    sections: Sequence[_Section],
    budget: float,
    cost: Callable[[_Unit], float],
    max_scenes: int | None,
) -> list[_Unit]:
    """The sentences the lead-sentence rule picks within `budget` (see `offline_script`),
    in text order. At least one is always picked."""
    chosen: dict[int, _Unit] = {}
    spent = 0.0
    for row in _rounds(sections):
        for unit in _spread(row):
            if unit.index > 0 and unit.order - 1 not in chosen:
                continue  # never a sentence without the one before it
            price = cost(unit)
            if spent + price > budget:
                continue
            if max_scenes is not None:
                trial = sorted([*chosen.values(), unit], key=lambda u: u.order)
                if len(_group_scenes(trial)) > max_scenes:
                    continue
            chosen[unit.order] = unit
            spent += price
    if not chosen:
        first = next(p[0] for s in sections for p in s.paragraphs)
        chosen[first.order] = first
    return [chosen[order] for order in sorted(chosen)]


def _rounds(sections: Sequence[_Section]) -> list[list[_Unit]]:
    """Candidates in order of priority: section leads, paragraph leads, then the second
    sentences of every paragraph, the third…"""
    paragraphs = [p for s in sections for p in s.paragraphs]
    rounds = [
        [s.paragraphs[0][0] for s in sections if s.paragraphs],
        [p[0] for s in sections for p in s.paragraphs[1:]],
    ]
    depth = max((len(p) for p in paragraphs), default=0)
    rounds += [[p[i] for p in paragraphs if len(p) > i] for i in range(1, depth)]
    return rounds


def _spread(items: Sequence[_T]) -> list[_T]:
    """`items` in an evenly spread order: first, last, middle, quarters, eighths… (the two
    ends, then the van der Corput sequence), so any prefix of the order spans the whole row."""
    n = len(items)
    if n == 0:
        return []
    ends = [0, n - 1]
    spread = (int(_van_der_corput(k) * n) for k in range(2 ** ((n - 1).bit_length() + 1)))
    order = list(dict.fromkeys([*ends, *spread, *range(n)]))
    return [items[i] for i in order]


def _van_der_corput(k: int) -> float:
    value, denominator = 0.0, 1.0
    while k:
        denominator *= 2
        k, bit = divmod(k, 2)
        value += bit / denominator
    return value


def _group_scenes(units: Sequence[_Unit]) -> list[list[_Unit]]:
    """Consecutive sentences of one paragraph share a scene (≤ 2 sentences, ≤ 12 s)."""
    scenes: list[list[_Unit]] = []
    for unit in units:
        last = scenes[-1] if scenes else None
        if (
            last is not None
            and last[-1].paragraph == unit.paragraph
            and last[-1].order == unit.order - 1
            and len(last) < MAX_SCENE_SENTENCES
            and sum(u.seconds for u in last) + unit.seconds <= MAX_SCENE_SECONDS
        ):
            last.append(unit)
        else:
            scenes.append([unit])
    return scenes


def _body_chapters(
    sections: Sequence[_Section], groups: list[list[_Unit]], max_chapters: int, title: str
) -> list[ScriptChapter]:
    """Chapters by heading, or (without headings) by runs of paragraphs; ≤ max_chapters."""
    has_headings = any(s.heading for s in sections)
    runs: list[list[list[_Unit]]] = []
    key = (lambda g: g[0].section) if has_headings else (lambda g: g[0].paragraph)
    for group in groups:
        if runs and key(runs[-1][-1]) == key(group):
            runs[-1].append(group)
        else:
            runs.append([group])
    count = len(runs) if has_headings else math.ceil(len(groups) / 3)
    chapters = []
    for part in _split_even(runs, min(max_chapters, max(1, count))):
        scene_groups = [g for run in part for g in run]
        first = scene_groups[0][0]
        heading = sections[first.section].heading
        chapter_title = heading or _first_words_title(first.text) or title or "…"
        scenes = [_source_scene(g) for g in scene_groups]
        chapters.append(ScriptChapter(title=_cut_at_word(chapter_title, 120), scenes=scenes))
    return chapters


def _source_scene(units: Sequence[_Unit]) -> ScriptScene:
    narration = " ".join(u.text for u in units)
    keywords = _content_keywords(narration) or _first_words(narration, 1)
    return ScriptScene(
        narration=narration,
        on_screen_text=_headline(units[0].text),
        visual_hint=", ".join(keywords),
        broll_keywords=keywords,
    )


def _parse_source(source: str, language: str) -> list[_Section]:
    """Sections → paragraphs → spoken sentences of a source text (see `offline_script`)."""
    text = _FENCED_CODE.sub("\n", source.replace("\r\n", "\n").replace("\r", "\n"))
    blank_lines = bool(re.search(r"\n[ \t]*\n", text.strip()))
    raw: list[tuple[str, list[list[str]]]] = [("", [])]  # (heading, paragraphs of blocks)
    blocks: list[str] = []

    def end_paragraph() -> None:
        if blocks:
            raw[-1][1].append(list(blocks))
            blocks.clear()

    for line in text.split("\n"):
        heading = _HEADING_LINE.match(line)
        if heading:
            end_paragraph()
            raw.append((_cut_at_word(spoken_text(heading.group(1)), 120), []))
        elif not line.strip() or _TABLE_OR_RULE.match(line):
            end_paragraph()
        elif not blank_lines:  # a text without blank lines has a paragraph per line
            end_paragraph()
            blocks.append(line)
        elif _LIST_LINE.match(line) or not blocks:
            blocks.append(line)
        else:  # a wrapped line continues its block
            blocks[-1] += " " + line
    end_paragraph()
    # Sentences without a content word ("See here for more.") say nothing on their own; they
    # are dropped unless nothing else is left. Failing that, every word was in a heading, a
    # table or code: the whole text is read as one paragraph.
    return (
        _units_of(raw, language, require_content=True)
        or _units_of(raw, language, require_content=False)
        or _units_of([("", [[source]])], language, require_content=False)
    )


def _units_of(
    raw: Sequence[tuple[str, list[list[str]]]], language: str, require_content: bool
) -> list[_Section]:
    sections: list[_Section] = []
    order = paragraph_id = 0
    for heading, paragraphs in raw:
        built: list[tuple[_Unit, ...]] = []
        for blocks in paragraphs:
            texts = [piece for block in blocks for piece in _sentences(block, language)]
            if require_content:
                texts = [text for text in texts if _spoken_keywords(text, limit=1)]
            for start in range(0, len(texts), PARAGRAPH_UNITS):
                chunk = texts[start : start + PARAGRAPH_UNITS]
                section = len(sections)
                units = tuple(
                    _Unit(t, _spoken_seconds(t, language), section, paragraph_id, i, order + i)
                    for i, t in enumerate(chunk)
                )
                order += len(units)
                paragraph_id += 1
                built.append(units)
        if built:
            sections.append(_Section(heading, tuple(built)))
    return sections


def _sentences(block: str, language: str) -> list[str]:
    """The spoken sentences of a block of text, long ones cut into pieces of ≤ 12 s."""
    spoken = spoken_text(block)
    if _LIST_LINE.match(block):  # a list item is a sentence of its own
        spoken = _as_sentence(spoken.rstrip(" ,;:")) if spoken else spoken
    spoken = _ABBREVIATION.sub(lambda m: m.group().replace(".", _DOT_STANDIN), spoken)
    spoken = _INNER_DOT.sub(_DOT_STANDIN, spoken)
    pieces = []
    for sentence in split_sentences(spoken):
        sentence = sentence.replace(_DOT_STANDIN, ".")
        if _word_tokens(sentence):
            pieces += _fit_pieces(sentence, language)
    return pieces


def _fit_pieces(sentence: str, language: str, max_chars: int = 400) -> list[str]:
    """`sentence` as it is, or cut at clauses, then words, into pieces that fit a scene."""
    if _spoken_seconds(sentence, language) <= MAX_SCENE_SECONDS and len(sentence) <= max_chars:
        return [sentence]
    atoms: list[str] = []
    for clause in re.split(r"(?<=[,;:，、；：])\s*", sentence):
        if _spoken_seconds(clause, language) <= MAX_SCENE_SECONDS / 2 and len(clause) < 200:
            atoms.append(clause)
        else:
            for word in spoken_words(clause):
                atoms += [word[i : i + 20] for i in range(0, len(word), 20)]
    pieces: list[str] = []
    current = ""
    for atom in atoms:
        joined = f"{current} {atom}".strip()
        too_long = _spoken_seconds(joined, language) > MAX_SCENE_SECONDS
        if current and (too_long or len(joined) > max_chars):
            pieces.append(current)
            current = atom
        else:
            current = joined
    if current:
        pieces.append(current)
    return [p for p in pieces if _word_tokens(p)]


def _source_or_none(project: ProjectSpec) -> str | None:
    """The project's source text, or None without one; ScriptError when it is unusable."""
    source = project.source_text
    if source is None:
        return None
    size = len(source.encode("utf-8"))
    if size > SOURCE_TEXT_MAX_BYTES:
        raise ScriptError(
            f"the source text of {project.key} is {size:,} bytes; the limit is "
            f"{SOURCE_TEXT_MAX_BYTES:,} bytes (SOURCE_TEXT_MAX_BYTES). Give the part the "
            "video should cover, or a summary"
        )
    if not spoken_text(source):
        raise ScriptError(
            f"the source text of {project.key} has no words to speak (only spaces, symbols, "
            "emoji or links): give the article or notes the explainer should cover, or remove "
            "the source text to write from the title"
        )
    return source


# ---- text helpers ------------------------------------------------------------------------

_CLAUSE_END = re.compile(r"\s*(?:[,;:，、；：(（]|\s[-–—]\s|—)\s*")
_EN_STOPWORD_TEXT = """
    a about above after again against all almost also although always am among an and
    another any anything are aren't around as at be because been before being below between
    both but by can cannot could did do does doing don't done down during each either else
    enough even ever every everything few for from further get gets getting give given go
    goes going got had has have having he her here hers herself him himself his how however
    i if in into is isn't it it's its itself just know let like made make makes making many
    may me might more most much must my myself need never next no nor not nothing now of off
    often on once one only or other others our ours ourselves out over own per perhaps quite
    rather really right same see seem seems several she should since so some something
    sometimes still such take than that that's the their theirs them themselves then there
    therefore these they thing things this those though through thus to together too toward
    under until up upon us use used using very want was wasn't way we well were what when
    where whether which while who whom whose why will with within without would yet you
    your yours yourself yourselves first second third finally here's there's let's
    actually usually probably important different called known became become says said
    including include includes"""
# Tokens lose their apostrophes ("don't" is read as "dont"), so the stopwords do too.
_EN_STOPWORDS = frozenset(_EN_STOPWORD_TEXT.replace("'", "").split())
_KO_STOPWORD_TEXT = """
    그리고 하지만 그러나 그래서 또한 또는 이것 그것 저것 이런 그런 저런 우리 여러분 가장
    정말 아주 매우 너무 모든 어떤 때문 통해 위해 대해 있는 없는 하는 되는 같은 다른 많은
    이렇게 그렇게 오늘 지금 먼저 다음 마지막으로 이제 바로 그냥 다시 함께 어떻게 무엇 경우
    정도 하나 우리의 것이 것은 것을 수도"""
_KO_STOPWORDS = frozenset(_KO_STOPWORD_TEXT.split())
_KO_PARTICLE_TEXT = """은 는 이 가 을 를 에 의 와 과 로 도 만 랑 으로 에서 에게 까지 부터 처럼
    보다 이나 이랑 하고 에는 에도 와는 과는 으로는 에서는 에서도 까지는 이라는 라는 으로부터 로부터
    에게서 이라고 라고"""
# Longest first, so "에서는" is removed before "는".
_KO_PARTICLES = tuple(sorted(_KO_PARTICLE_TEXT.split(), key=len, reverse=True))
_KO_PREDICATE_ENDINGS = ("다", "요", "죠", "까", "니다", "세요", "습니다")


def _content_keywords(text: str, limit: int = 3) -> list[str]:
    """The 1–`limit` longest content words of `text` (stopwords and Korean particles
    removed), in the order they appear."""
    return _spoken_keywords(spoken_text(text), limit)


def _spoken_keywords(spoken: str, limit: int) -> list[str]:
    found: dict[str, int] = {}
    for position, token in enumerate(_word_tokens(spoken)):
        word = _keyword_form(token)
        if word and word not in found:
            found[word] = position
    longest = sorted(found, key=lambda w: (-len(w), found[w]))[:limit]
    return sorted(longest, key=lambda w: found[w])


def _keyword_form(token: str) -> str | None:
    """`token` as a keyword, or None when it is a stopword, a number or too short."""
    if _is_number(token) or len(token) > 24:
        return None
    if _is_hangul(token[0]):
        if token.endswith(_KO_PREDICATE_ENDINGS) or token in _KO_STOPWORDS:
            return None
        for particle in _KO_PARTICLES:
            stem = token[: -len(particle)]
            minimum = 3 if particle == "이" else 2  # 고양이 is a cat, 블랙홀이 is 블랙홀 + 이
            if token.endswith(particle) and len(stem) >= minimum:
                token = stem
                break
        return token if len(token) >= 2 and token not in _KO_STOPWORDS else None
    if _is_cjk(token[0]):
        return token if len(token) >= 2 else None
    word = token.lower()
    if len(word) < 3 or word in _EN_STOPWORDS:
        return None
    return word


def _headline(sentence: str, limit: int = HEADLINE_CHARS) -> str:
    """A short on-screen headline: the first clause of `sentence`, ≤ `limit` characters."""
    text = spoken_text(sentence)
    clause = _CLAUSE_END.split(text, maxsplit=1)[0]
    tokens = _word_tokens(clause)
    if len(tokens) >= 2 or (tokens and len(tokens[0]) >= 4):
        text = clause
    return _cut_at_word(text.rstrip(" .,;:!?。！？…"), limit, ellipsis="…")


def _as_sentence(text: str) -> str:
    """`text` ending with a full stop unless it already ends a sentence."""
    return text if text[-1:] in (".", "!", "?", "。", "！", "？", "…") else f"{text}."


def _first_words_title(sentence: str) -> str:
    """A chapter title from the first words of a sentence."""
    return _cut_at_word(" ".join(spoken_words(_headline(sentence, 32))), 32, ellipsis="…")


def _first_words(text: str, count: int) -> list[str]:
    return [w.lower() for w in _word_tokens(spoken_text(text))[:count]]


def _cut_at_word(text: str, limit: int, ellipsis: str = "") -> str:
    """`text` cut to ≤ `limit` characters at a space (or mid-word when there is none)."""
    text = text.strip()
    if len(text) <= limit:
        return text
    room = limit - len(ellipsis)
    cut = text[: room + 1].rsplit(" ", 1)[0] if " " in text[: room + 1] else text[:room]
    return cut[:room].rstrip(" ,;:-–—") + ellipsis


def _split_even(items: Sequence[_T], parts: int) -> list[list[_T]]:
    """`items` in ≤ `parts` contiguous groups of nearly equal size (none empty)."""
    parts = max(1, min(parts, len(items)))
    size, extra = divmod(len(items), parts)
    groups, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        groups.append(list(items[start:end]))
        start = end
    return [g for g in groups if g]


def _word_tokens(text: str) -> list[str]:
    """Runs of letters and digits (with their marks); Hangul, CJK and other scripts apart.
    "1.2", "1,200" and "it's" stay one token."""
    return _token_pattern().findall(_JOINERS.sub("", text))


_JOINERS = re.compile(r"(?<=\d)[.,](?=\d)|(?<=\w)['’](?=\w)")
_HANGUL_CHARS = "\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f"
_CJK_CHARS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"


@functools.cache
def _token_pattern() -> re.Pattern[str]:
    # `\w` leaves out many combining marks (Devanagari vowel signs…): they join the word.
    marks = "".join(
        re.escape(chr(code))
        for code in range(0x300, 0x10000)
        if unicodedata.category(chr(code))[0] == "M"
    )
    letter = "(?=[^\\W_])"  # a letter or digit (unassigned code points in the ranges are not)
    hangul, cjk = f"(?:{letter}[{_HANGUL_CHARS}])+", f"(?:{letter}[{_CJK_CHARS}])+"
    other = f"(?![{_HANGUL_CHARS}{_CJK_CHARS}])[^\\W_]"
    return re.compile(f"{hangul}|{cjk}|{other}(?:{other}|[{marks}])*")


def _is_hangul(ch: str) -> bool:
    return "\uac00" <= ch <= "\ud7a3" or "\u1100" <= ch <= "\u11ff" or "\u3130" <= ch <= "\u318f"


def _is_cjk(ch: str) -> bool:
    return (
        "\u3040" <= ch <= "\u30ff"
        or "\u3400" <= ch <= "\u4dbf"
        or "\u4e00" <= ch <= "\u9fff"
        or "\uf900" <= ch <= "\ufaff"
        or "\uff66" <= ch <= "\uff9f"
    )


def _is_number(token: str) -> bool:
    return any(ch.isdigit() for ch in token) and all(ch.isdigit() or ch in ".," for ch in token)


def _base_language(language: str) -> str:
    return language.lower().replace("_", "-").split("-")[0]
