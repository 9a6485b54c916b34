"""The segment plan of an extend video: N prompts that share one context and continue each
other, written offline (deterministic) or by an OpenAI-compatible chat model.

Either way the prompts themselves are composed here, from the shared context (subject,
style, camera, lighting), the segment's action and — for every segment after the first — the
continuity instruction. An LLM writes only the parts that need imagination (the context and
one action and one narration line per segment), so no segment can lose the context or the
instruction, whatever the model answers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import openai
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shorts_pipeline.models import (
    ExtendSettings,
    PlannedSegment,
    ProjectSpec,
    ScriptChapter,
    ScriptScene,
    SegmentPlan,
    VideoScript,
)
from shorts_pipeline.render.speech_text import split_sentences, spoken_text
from shorts_pipeline.resources import llm

PROMPT_MAX_CHARS = 2000
NARRATION_MARGIN = 0.8  # seconds of a segment left unspoken, so lines never run into the next

CONTINUITY = (
    "Continue seamlessly from the reference image: the same subject, place, colours and "
    "lighting; keep the camera moving the same way; no cuts, no new characters, no text."
)
DEFAULT_STYLE = "cinematic, photorealistic, natural colours, shallow depth of field"
DEFAULT_CAMERA = "slow, steady camera movement at eye level, one continuous shot"

# Light that words of the title suggest, checked in order (the first match wins).
_LIGHTING = (
    (("dawn", "sunrise", "새벽", "일출"), "first light of dawn, soft pink and gold sky"),
    (("sunset", "dusk", "evening", "golden hour", "노을", "저녁", "해질"), "warm low sun"),
    (("night", "midnight", "moon", "stars", "밤", "야경", "달빛"), "night, cool moonlight"),
    (("storm", "rain", "fog", "mist", "비", "폭풍", "안개"), "overcast, diffuse grey light"),
    (("snow", "winter", "ice", "눈", "겨울"), "bright, cold winter light"),
)
DEFAULT_LIGHTING = "soft natural daylight"

# Beats of a single continuous shot, for plans written without an LLM. {s} is the subject.
_BEATS_EN = (
    "Wide establishing shot of {s}.",
    "The camera glides closer and {s} comes into focus.",
    "A slow pan across the details of {s}.",
    "{s} comes alive as the scene unfolds.",
    "The camera circles slowly around {s}.",
    "The light shifts gently over {s}.",
    "A close, intimate view of {s}.",
    "The camera rises for a wider view of {s} and its surroundings.",
    "A calm moment: the camera drifts while {s} holds still.",
    "Closing shot: the camera pulls back and {s} settles into the distance.",
)
# What the voice says over each beat (offline plans), in the project's language.
_LINES_EN = (
    "{s}.",
    "Let's get closer.",
    "Look at the details.",
    "Now it comes alive.",
    "Let's go around.",
    "The light is changing.",
    "Up close.",
    "Rising for the bigger picture.",
    "A quiet moment.",
    "And we pull back. Thanks for watching.",
)
_LINES_KO = (
    "{s}.",
    "조금 더 다가가 봅니다.",
    "구석구석을 살펴봅니다.",
    "이제 움직이기 시작합니다.",
    "주위를 천천히 돌아봅니다.",
    "빛이 조금씩 바뀝니다.",
    "가까이에서 봅니다.",
    "위로 올라가 더 넓게 봅니다.",
    "잠시 고요한 순간입니다.",
    "천천히 물러나며 마무리합니다.",
)


class PlanError(llm.ScriptError):
    """A segment plan could not be written or breaks the project's limits."""


@dataclass
class WrittenPlan:
    script: VideoScript
    attempts: int
    repaired: bool
    notes: list[str] = field(default_factory=list)


def estimated_cost(plan: SegmentPlan, settings: ExtendSettings) -> float:
    """US dollars the provider would charge for the plan (0 for the offline storyboard)."""
    if settings.provider == "storyboard":
        return 0.0
    return round(len(plan.segments) * plan.seconds * settings.price_per_second_usd, 2)


def plan_problems(script: VideoScript, settings: ExtendSettings) -> list[str]:
    """Every way an extend script breaks the cost guard or cannot be generated."""
    plan = script.plan
    if plan is None:
        return ["an extend video needs a segment plan (script.plan); none was given"]
    problems = []
    count = len(plan.segments)
    if count > settings.max_segments:
        problems.append(
            f"the plan has {count} segments; the cost guard allows {settings.max_segments} "
            "(settings.extend.max_segments): plan fewer segments or raise the guard"
        )
    if count < 2:
        problems.append("an extend video needs at least 2 segments")
    cost = estimated_cost(plan, settings)
    if cost > settings.max_cost_usd:
        problems.append(
            f"generating {count} × {plan.seconds:g} s is estimated at ${cost:.2f}, over the "
            f"cost guard of ${settings.max_cost_usd:.2f} (settings.extend.max_cost_usd; price "
            f"${settings.price_per_second_usd:g}/s from settings.extend.price_per_second_usd)"
        )
    scenes = script.scenes()
    if len(scenes) != count:
        problems.append(
            f"the script has {len(scenes)} scenes for {count} segments: an extend script has "
            "one scene (its narration) per segment"
        )
    for k, seg in enumerate(plan.segments, start=1):
        if not seg.prompt.strip():
            problems.append(f"segment {k} has an empty prompt")
    return problems


def compose_prompt(plan: SegmentPlan, action: str, index: int) -> str:
    """The whole prompt of segment `index` (0-based): action, shared context, continuity."""
    parts = [
        _sentence(action),
        f"Subject: {plan.subject}.",
        f"Style: {plan.style}.",
        f"Camera: {plan.camera}.",
        f"Lighting: {plan.lighting}.",
    ]
    if index > 0:
        parts.append(plan.continuity)
    return " ".join(parts)[:PROMPT_MAX_CHARS]


def offline_plan(project: ProjectSpec) -> VideoScript:
    """The plan written without a network, the same every time.

    The subject is the project's title; lighting follows words in it (dawn, sunset, night,
    rain, snow… in English or Korean); the actions are the sentences of the source text when
    the project has one (one per segment), else beats of one continuous shot (establishing,
    closer, details, movement, orbit, light, close-up, rise, pause, pull back), the first and
    the last always included. Each segment's narration is its action, shortened to be said
    within the segment.
    """
    settings = project.settings.extend
    language = llm._base_language(project.settings.language)
    subject = _subject(project.title)
    plan_context = SegmentPlan(
        subject=subject,
        style=DEFAULT_STYLE,
        camera=DEFAULT_CAMERA,
        lighting=_lighting(" ".join([project.title, *project.keywords])),
        continuity=CONTINUITY,
        seconds=settings.segment_seconds,
        aspect=settings.aspect,
        segments=[PlannedSegment(action="-", prompt="-")],
    )
    actions = _source_actions(project, settings.segment_count)
    if actions:
        lines = [_fit_line(a, settings.segment_seconds, project.settings.language) for a in actions]
    else:
        chosen = _spread_beats(len(_BEATS_EN), settings.segment_count)
        short = _short_subject(subject)
        actions = [_sentence(_BEATS_EN[i].format(s=short)) for i in chosen]
        voice = _LINES_KO if language == "ko" else _LINES_EN
        lines = [
            _fit_line(
                voice[i].format(s=subject), settings.segment_seconds, project.settings.language
            )
            for i in chosen
        ]
    return _script(project, plan_context, actions, lines, writer="offline")


def _script(
    project: ProjectSpec,
    context: SegmentPlan,
    actions: Sequence[str],
    lines: Sequence[str],
    writer: str,
) -> VideoScript:
    segments = [
        PlannedSegment(action=a[:400], prompt=compose_prompt(context, a, k))
        for k, a in enumerate(actions)
    ]
    plan = context.model_copy(update={"segments": segments})
    scenes = [
        ScriptScene(
            narration=line,
            duration=context.seconds,
            visual_hint=action[:300],
            role="scene",
        )
        for action, line in zip(actions, lines, strict=True)
    ]
    return VideoScript(
        title=project.title[:300],
        language=project.settings.language,
        chapters=[ScriptChapter(title=project.title[:200], scenes=scenes)],
        writer=writer,
        plan=plan,
    )


def _subject(title: str) -> str:
    text = spoken_text(title).strip().rstrip(".!?")
    return text[:300] or "the scene"


def _short_subject(subject: str) -> str:
    """The subject to use inside a sentence: "A red fox" → "a red fox" ("NASA" stays)."""
    first = subject.split(" ", 1)[0]
    if first[:1].isupper() and not first[1:2].isupper():
        return subject[0].lower() + subject[1:]
    return subject


def _lighting(text: str) -> str:
    lowered = text.lower()
    for words, light in _LIGHTING:
        if any(w in lowered for w in words):
            return light
    return DEFAULT_LIGHTING


def _spread_beats(available: int, count: int) -> list[int]:
    """`count` beat indices from `available`, first and last included, evenly in between."""
    if count >= available:
        return [min(i, available - 1) for i in range(count)]
    if count == 1:
        return [0]
    return [round(i * (available - 1) / (count - 1)) for i in range(count)]


def _source_actions(project: ProjectSpec, count: int) -> list[str]:
    """One action per sentence of the source text (the creator's own beat list), at most
    `count`; a single sentence gets a closing beat added."""
    if not project.source_text or not project.source_text.strip():
        return []
    sentences: list[str] = []
    for line in project.source_text.splitlines():
        text = spoken_text(line).strip()
        if text:
            sentences += [s for s in split_sentences(text) if s.strip()]
    actions = sentences[:count]
    if len(actions) == 1:
        actions.append(_sentence(_BEATS_EN[-1].format(s=_short_subject(_subject(project.title)))))
    return actions


def _fit_line(action: str, seconds: float, language: str) -> str:
    """`action` as a narration line that can be said within the segment."""
    limit = max(1.0, seconds - NARRATION_MARGIN)
    line = _sentence(re.sub(r"^[^:]{0,30}:\s*", "", action) or action)
    words = line.split()
    while len(words) > 2 and llm.speaking_seconds(" ".join(words), language) > limit:
        words = words[:-1]
    fitted = " ".join(words)
    return fitted if fitted == line else fitted.rstrip(",;:") + "…"


def _sentence(text: str) -> str:
    text = text.strip()
    if text and text[-1] not in ".!?…。！？":
        text += "."
    return text[:1].upper() + text[1:]


# ---- the OpenAI-compatible planner -------------------------------------------------------


class _DraftSegment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: str = Field(description="What happens in this segment, as one visual sentence.")
    narration: str = Field(description="One short spoken sentence heard over the segment.")


class _DraftPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str = Field(description="The main subject, described the same way every time.")
    style: str = Field(description="Visual style: medium, look, colour palette.")
    camera: str = Field(description="Camera: lens, height, kind of movement.")
    lighting: str = Field(description="Light: time of day, direction, quality.")
    segments: list[_DraftSegment]


@dataclass
class PlanSession:
    """One plan request to an OpenAI-compatible chat API: prompt, up to two answers."""

    project: ProjectSpec
    api_key: str | None
    base_url: str | None
    notes: list[str] = field(default_factory=list)
    where: str = ""

    def run(self) -> WrittenPlan:
        settings = self.project.settings.script
        if not self.api_key:
            raise PlanError(
                "no API key for the openai script writer: set OPENAI_API_KEY (a local server "
                "accepts any value), or set settings.script.writer='offline' to plan without "
                "an LLM"
            )
        client = openai.OpenAI(
            base_url=self.base_url,
            api_key=self.api_key,
            timeout=settings.timeout_seconds,
            max_retries=1,
        )
        with client:
            self.where = llm._safe_url(str(client.base_url))
            self.notes.append(f"model {settings.model} at {self.where}")
            messages: list[ChatCompletionMessageParam] = [
                {"role": "system", "content": self._system()},
                {"role": "user", "content": self._user()},
            ]
            problems: list[str] = []
            for attempt in (1, 2):
                answer = self._ask(client, messages)
                script, problems = self._validate(answer)
                if script is not None and not problems:
                    return WrittenPlan(
                        script, attempts=attempt, repaired=attempt == 2, notes=self.notes
                    )
                if attempt == 1:
                    self.notes.append("first answer rejected: " + "; ".join(problems[:5]))
                    messages += [
                        {"role": "assistant", "content": answer},
                        {"role": "user", "content": llm._repair_request(problems)},
                    ]
        raise PlanError(
            f"the LLM {settings.model} at {self.where} answered with an unusable segment plan "
            f"twice (after one repair round): {'; '.join(problems[:4])}. Try a stronger model "
            "(settings.script.model), or set settings.script.writer='offline'"
        )

    def _system(self) -> str:
        extend = self.project.settings.extend
        language = llm._base_language(self.project.settings.language)
        name = llm._LANGUAGE_NAMES.get(language, language)
        speech = llm._length_hint(max(1.0, extend.segment_seconds - NARRATION_MARGIN), language)
        return "\n".join(
            [
                "You plan long AI-generated videos made of short segments. An image-to-video "
                "model generates each segment from the last frame of the one before, so the "
                "segments must read as ONE continuous shot: same subject, place, style and "
                "light, the camera moving on, the action progressing a little each time.",
                f"Plan exactly {extend.segment_count} segments of {extend.segment_seconds:g} "
                f"seconds each, aspect ratio {extend.aspect}.",
                "Give the shared context once (subject, style, camera, lighting — concrete, "
                "visual, in English, which video models follow best), then for each segment "
                "an action (one visual sentence in English: what moves, what the camera does; "
                "no cuts, no on-screen text) and a narration line in "
                f"{name} ({speech}, plain spoken words).",
                "Answer with one JSON object that follows the schema, and nothing else.",
            ]
        )

    def _user(self) -> str:
        parts = [f"Video idea: {self.project.title}"]
        if self.project.keywords:
            parts.append("Keywords: " + ", ".join(self.project.keywords))
        if self.project.source_text:
            parts.append(f"Notes from the creator:\n<<<\n{self.project.source_text[:8000]}\n>>>")
        return "\n\n".join(parts)

    def _ask(self, client: openai.OpenAI, messages: list[ChatCompletionMessageParam]) -> str:
        settings = self.project.settings.script
        try:
            completion = client.chat.completions.create(
                model=settings.model,
                messages=messages,
                temperature=settings.temperature,
                max_tokens=settings.max_tokens,
                response_format={
                    "type": "json_schema",
                    "json_schema": {
                        "name": "segment_plan",
                        "schema": _DraftPlan.model_json_schema(),
                        "strict": True,
                    },
                },
            )
        except openai.OpenAIError as err:
            raise llm._explain_api_error(err, self.where, settings, self.api_key) from err
        if not isinstance(completion, ChatCompletion) or not completion.choices:
            return ""
        message = completion.choices[0].message
        if message.refusal:
            raise PlanError(
                f"the LLM {settings.model} at {self.where} refused to plan this video: "
                f"{message.refusal[:200]}"
            )
        return message.content or ""

    def _validate(self, text: str) -> tuple[VideoScript | None, list[str]]:
        data, problem = llm._json_object(text)
        if data is None:
            return None, [problem]
        try:
            draft = _DraftPlan.model_validate(data)
        except ValidationError as err:
            return None, llm._pydantic_problems(err)
        extend = self.project.settings.extend
        problems = []
        if len(draft.segments) != extend.segment_count:
            problems.append(
                f"the plan has {len(draft.segments)} segments; exactly "
                f"{extend.segment_count} are needed"
            )
        for k, seg in enumerate(draft.segments, start=1):
            if not seg.action.strip():
                problems.append(f"segment {k} has no action")
            if not spoken_text(seg.narration):
                problems.append(f"segment {k} has no narration")
        if problems:
            return None, problems
        context = SegmentPlan(
            subject=draft.subject[:300] or _subject(self.project.title),
            style=draft.style[:300] or DEFAULT_STYLE,
            camera=draft.camera[:300] or DEFAULT_CAMERA,
            lighting=draft.lighting[:300] or DEFAULT_LIGHTING,
            continuity=CONTINUITY,
            seconds=extend.segment_seconds,
            aspect=extend.aspect,
            segments=[PlannedSegment(action="-", prompt="-")],
        )
        language = self.project.settings.language
        lines = [_fit_line(s.narration, extend.segment_seconds, language) for s in draft.segments]
        script = _script(
            self.project,
            context,
            [s.action for s in draft.segments],
            lines,
            writer=f"openai:{self.project.settings.script.model}",
        )
        return script, plan_problems(script, extend)
