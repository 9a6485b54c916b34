"""Script writers: the offline writer and the OpenAI-compatible writer against a real local
HTTP server (tests/openai_server.py), driven through the real `openai` SDK."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shorts_pipeline.models import (
    SOURCE_TEXT_MAX_BYTES,
    ClipCandidate,
    ProjectSettings,
    ProjectSpec,
    ScriptChapter,
    ScriptScene,
    ScriptSettings,
    SelectedClip,
    VideoScript,
)
from shorts_pipeline.render.speech_text import spoken_text
from shorts_pipeline.resources.llm import (
    ScriptError,
    ScriptWriterResource,
    check_script,
    offline_script,
    speaking_seconds,
)
from tests.conftest import OPENAI_TEST_KEY
from tests.helpers import free_port
from tests.openai_server import OpenAIServer, Reply

HANGUL = re.compile(r"[\uac00-\ud7a3]")


# ---- builders ----------------------------------------------------------------------------


def project(
    title: str = "How black holes form",
    format: str = "explainer",
    source_text: str | None = None,
    language: str = "en",
    keywords: list[str] | None = None,
    **script: Any,
) -> ProjectSpec:
    return ProjectSpec(
        key="p-1",
        title=title,
        format=format,
        keywords=keywords or [],
        source_text=source_text,
        settings=ProjectSettings(language=language, script=ScriptSettings(**script)),
    )


def llm_project(**kwargs: Any) -> ProjectSpec:
    kwargs.setdefault("writer", "openai")
    return project(**kwargs)


def clip(rank: int, title: str, views: int | None, seconds: float) -> SelectedClip:
    return SelectedClip(
        rank=rank,
        candidate=ClipCandidate(
            id=f"c{rank}", source="library", url=f"file:///c{rank}.mp4", title=title, views=views
        ),
        score=1.0 / rank,
        media_key=f"clips/c{rank}.mp4",
        duration=20.0,
        display_width=1080,
        display_height=1920,
        rotation=0,
        fps=30.0,
        has_audio=True,
        video_codec="h264",
        trim_start=0.0,
        trim_seconds=seconds,
    )


CLIPS = [
    clip(1, "Insane rabona goal football skills #shorts", 1_234_567, 6.0),
    clip(2, "Street football nutmeg skills 🔥", 300_000, 4.0),
    clip(3, "Freestyle football juggling in the rain at night", 50_000, 2.0),
    clip(4, "Phone video: football skills in the park", 9_000, 1.5),
    clip(5, "Goalkeeper saves", None, 5.0),
]


def scene(narration: str, role: str = "scene", clip_rank: int | None = None) -> dict[str, Any]:
    return {
        "narration": narration,
        "on_screen_text": narration[:30],
        "visual_hint": "space",
        "broll_keywords": ["space"],
        "role": role,
        "clip_rank": clip_rank,
    }


def answer(*scenes: dict[str, Any], chapters: int = 1) -> str:
    """A chat answer holding `scenes` split over `chapters` chapters."""
    per = max(1, -(-len(scenes) // chapters))
    parts = [list(scenes[i : i + per]) for i in range(0, len(scenes), per)]
    return json.dumps(
        {"chapters": [{"title": f"Part {i}", "scenes": p} for i, p in enumerate(parts)]}
    )


GOOD = answer(
    scene("Black holes form when giant stars collapse.", "intro"),
    scene("Gravity squeezes the core until not even light escapes."),
    scene("Follow for more space facts.", "outro"),
)


def write(proj: ProjectSpec, clips: list[SelectedClip] | None = None, **resource: Any) -> Any:
    return ScriptWriterResource(**resource).write(proj, clips or [])


def failure(proj: ProjectSpec, clips: list[SelectedClip] | None = None, **resource: Any):
    with pytest.raises(ScriptError) as caught:
        write(proj, clips, **resource)
    assert OPENAI_TEST_KEY not in str(caught.value)  # the key never reaches a message
    return caught.value


def total_seconds(script: VideoScript) -> float:
    return sum(speaking_seconds(s.narration, script.language) for s in script.scenes())


def authorization(headers: dict[str, str]) -> str | None:
    return {k.lower(): v for k, v in headers.items()}.get("authorization")


def messages_text(server: OpenAIServer, index: int) -> str:
    return json.dumps(server.chat_requests()[index].body["messages"], ensure_ascii=False)


# ---- the OpenAI-compatible writer --------------------------------------------------------


def test_valid_answer_becomes_the_script(openai_server: OpenAIServer) -> None:
    openai_server.queue(GOOD)
    proj = llm_project(source_text="Stars collapse. Gravity wins.", keywords=["space"])
    written = write(proj)

    assert written.writer == "openai:gpt-4o-mini"
    assert (written.attempts, written.repaired) == (1, False)
    script = written.script
    assert script.writer == "openai:gpt-4o-mini"
    assert script.language == "en" and script.title == "How black holes form"
    assert [s.role for s in script.scenes()] == ["intro", "scene", "outro"]
    request = openai_server.chat_requests()[0]
    assert authorization(request.headers) == f"Bearer {OPENAI_TEST_KEY}"
    body = request.body
    assert body["model"] == "gpt-4o-mini"
    assert body["response_format"]["type"] == "json_schema"
    assert "chapters" in body["response_format"]["json_schema"]["schema"]["properties"]
    system, user = body["messages"][0]["content"], body["messages"][1]["content"]
    assert "45 seconds" in system and "at most 10 scenes" in system and "English" in system
    assert "How black holes form" in user and "Stars collapse. Gravity wins." in user
    assert "space" in user


def test_korean_project_asks_for_korean_and_keeps_its_language(
    openai_server: OpenAIServer,
) -> None:
    openai_server.queue(answer(scene("블랙홀은 거대한 별이 무너질 때 생깁니다.", "intro")))
    written = write(llm_project(title="블랙홀의 탄생", language="ko"))
    assert written.script.language == "ko"
    assert "Korean" in openai_server.chat_requests()[0].body["messages"][0]["content"]


def test_invalid_answer_is_repaired_with_the_exact_validation_errors(
    openai_server: OpenAIServer,
) -> None:
    broken = json.dumps({"chapters": [{"title": "One", "scenes": [{"on_screen_text": "x"}]}]})
    openai_server.queue(broken, GOOD)
    written = write(llm_project())

    assert (written.attempts, written.repaired) == (2, True)
    assert written.script.scenes()[1].narration.startswith("Gravity squeezes")
    repair = openai_server.chat_requests()[1].body["messages"]
    assert repair[-2] == {"role": "assistant", "content": broken}
    assert "chapters.0.scenes.0.narration: Field required" in repair[-1]["content"]
    assert any("first answer rejected" in note for note in written.notes)


def test_invalid_twice_is_an_error_naming_model_endpoint_and_problem(
    openai_server: OpenAIServer,
) -> None:
    broken = json.dumps({"chapters": [{"title": "One", "scenes": [{"narration": 5}]}]})
    openai_server.queue(broken, broken)
    err = failure(llm_project(model="tiny-model"))

    message = str(err)
    assert "tiny-model" in message
    assert f"127.0.0.1:{openai_server.port}" in message
    assert "chapters.0.scenes.0.narration: Input should be a valid string" in message
    assert "writer='offline'" in message
    assert err.retryable is False
    assert len(openai_server.chat_requests()) == 2


def test_prose_answer_is_repaired(openai_server: OpenAIServer) -> None:
    openai_server.queue("Sure! Black holes are fascinating. Here is a script idea…", GOOD)
    written = write(llm_project())
    assert written.repaired
    assert "the answer is not JSON" in messages_text(openai_server, 1)


def test_json_wrapped_in_a_code_fence_is_accepted_as_it_is(openai_server: OpenAIServer) -> None:
    openai_server.queue(f"Here is your script:\n```json\n{GOOD}\n```\nEnjoy!")
    written = write(llm_project())
    assert (written.attempts, written.repaired) == (1, False)
    assert len(written.script.scenes()) == 3


def test_answer_missing_fields_fails_after_the_repair_round(openai_server: OpenAIServer) -> None:
    openai_server.queue('{"title": "Black holes"}', '{"chapters": []}')
    err = failure(llm_project())
    assert "chapters: List should have at least 1 item" in str(err)
    assert "chapters: Field required" in messages_text(openai_server, 1)


def test_too_many_scenes_is_sent_back_then_refused(openai_server: OpenAIServer) -> None:
    forty = answer(*(scene(f"Fact number {i} about black holes.") for i in range(40)))
    openai_server.queue(forty, forty)
    err = failure(llm_project())
    limit = "the script has 40 scenes; the limit is 10 (settings.script.max_scenes)"
    assert limit in str(err)
    assert limit in messages_text(openai_server, 1)


def test_timeout_is_a_quick_retryable_error(openai_server: OpenAIServer) -> None:
    openai_server.queue(Reply(delay=3), Reply(delay=3))  # the SDK tries twice
    started = time.monotonic()
    err = failure(llm_project(timeout_seconds=1))
    assert time.monotonic() - started < 6
    assert (
        f"the LLM at {openai_server.base_url} did not answer within 1 s "
        "(settings.script.timeout_seconds)"
    ) in str(err)
    assert err.retryable


def test_unreachable_endpoint_says_to_start_the_server_or_go_offline(
    openai_server: OpenAIServer,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    err = failure(llm_project(base_url=dead))
    assert f"could not connect to the LLM at {dead}" in str(err)
    assert "is the server running?" in str(err)
    assert "settings.script.writer='offline'" in str(err)
    assert err.retryable
    assert openai_server.chat_requests() == []


def test_server_error_is_retryable_and_names_the_status(openai_server: OpenAIServer) -> None:
    openai_server.queue(Reply(status=500), Reply(status=500))
    err = failure(llm_project())
    assert "HTTP 500" in str(err) and err.retryable


def test_refused_key_is_reported_without_the_key(openai_server: OpenAIServer) -> None:
    openai_server.queue(Reply(status=401))
    err = failure(llm_project())
    assert "refused the API key" in str(err) and "OPENAI_API_KEY" in str(err)
    assert not err.retryable


def test_missing_key_says_how_to_set_one() -> None:
    err = failure(llm_project(base_url=f"http://127.0.0.1:{free_port()}/v1"))
    assert "set OPENAI_API_KEY" in str(err)
    assert "Ollama" in str(err) and "accepts any value" in str(err)
    assert not err.retryable


def test_a_body_that_is_not_a_chat_completion_is_explained(openai_server: OpenAIServer) -> None:
    openai_server.queue(Reply(body=b"<html>proxy login</html>", content_type="text/html"))
    err = failure(llm_project())
    assert "not a chat completion" in str(err) and "/v1" in str(err)


def test_endpoint_precedence_settings_then_resource_then_environment(
    openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", dead)
    monkeypatch.delenv("OPENAI_API_KEY")
    openai_server.queue(GOOD, GOOD)

    # The resource's endpoint beats the environment; its key is used when the env has none.
    write(llm_project(), base_url=openai_server.base_url, api_key="sk-resource")
    assert authorization(openai_server.chat_requests()[0].headers) == "Bearer sk-resource"
    # The project's own endpoint beats the resource's.
    write(llm_project(base_url=openai_server.base_url), base_url=dead, api_key="sk-resource")
    assert len(openai_server.chat_requests()) == 2


def test_ranking_answer_is_put_in_countdown_order(openai_server: OpenAIServer) -> None:
    clips = CLIPS[:3]
    openai_server.queue(
        answer(
            scene("Top three football skills!", "intro"),
            scene("Number one, the rabona.", "clip", 1),
            scene("Number two, the nutmeg.", "scene", 2),  # a rank makes it a clip line
            scene("Three: juggling.", "clip", 3),
            scene("Which was best?", "outro"),
        )
    )
    written = write(llm_project(title="Top 3 football skills", format="ranking"), clips)

    scenes = written.script.scenes()
    assert [(s.role, s.clip_rank) for s in scenes] == [
        ("intro", None),
        ("clip", 3),
        ("clip", 2),
        ("clip", 1),
        ("outro", None),
    ]
    user = openai_server.chat_requests()[0].body["messages"][1]["content"]
    assert user.index("rank 3") < user.index("rank 2") < user.index("rank 1")
    assert "1.2 million views" in user and "within 2.0 s" in user


def test_ranking_answer_missing_a_clip_is_repaired(openai_server: OpenAIServer) -> None:
    clips = CLIPS[:2]
    dropped = answer(scene("Here we go.", "intro"), scene("Number one.", "clip", 1))
    fixed = answer(scene("Number two.", "clip", 2), scene("Number one.", "clip", 1))
    openai_server.queue(dropped, fixed)
    written = write(llm_project(format="ranking"), clips)

    assert written.repaired
    assert [s.clip_rank for s in written.script.scenes()] == [2, 1]
    repair = messages_text(openai_server, 1)
    assert "rank 2 ('Street football nutmeg skills 🔥') has no clip scene" in repair


def test_long_source_text_is_condensed_from_its_whole_length(
    openai_server: OpenAIServer,
) -> None:
    openai_server.queue(GOOD)
    source = long_text(60_000)
    written = write(llm_project(source_text=source))

    user = openai_server.chat_requests()[0].body["messages"][1]["content"]
    assert len(user) < 26_000
    assert "Paragraph 0 " in user and f"Paragraph {paragraph_count(source) - 5}" in user
    assert any("condensed" in note for note in written.notes)


def test_unusable_source_text_is_refused_before_any_request(
    openai_server: OpenAIServer,
) -> None:
    err = failure(llm_project(source_text="  🚀  ***  "))
    assert "no words to speak" in str(err)
    assert openai_server.chat_requests() == []


# ---- check_script ------------------------------------------------------------------------


def test_check_script_names_each_limit_and_the_silent_scene() -> None:
    scenes = [ScriptScene(narration=f"Line {i}.") for i in range(40)]
    scenes[2] = ScriptScene(narration="🚀 https://example.com ***")
    chapters = [ScriptChapter(title=f"C{i}", scenes=scenes[i * 8 : i * 8 + 8]) for i in range(5)]
    script = VideoScript(title="T", chapters=chapters)
    with pytest.raises(ScriptError) as caught:
        check_script(script, ScriptSettings())
    message = str(caught.value)
    assert "the script has 40 scenes; the limit is 10 (settings.script.max_scenes)" in message
    assert "the script has 5 chapters; the limit is 4 (settings.script.max_chapters)" in message
    assert "scene 3 has no narration to speak" in message


def test_check_script_accepts_a_script_within_the_limits() -> None:
    check_script(offline_script(project()), ScriptSettings())


# ---- speaking time -------------------------------------------------------------------------


def test_speaking_seconds_follows_each_script() -> None:
    english = " ".join(["word"] * 26)
    assert speaking_seconds(english, "en") == pytest.approx(10.0)
    assert speaking_seconds("가" * 53, "ko") == pytest.approx(10.0)
    assert speaking_seconds("中" * 50, "zh") == pytest.approx(10.0)
    # Markup, links and emoji are not spoken.
    marked_up = f"**{english}** https://example.com/x 🚀🚀"
    assert speaking_seconds(marked_up, "en") == pytest.approx(10.0)
    assert speaking_seconds("🚀 ---", "en") == 0.0


# ---- offline writer: explainer from a source text ---------------------------------------


ARTICLE = """# How black holes form

A black hole is a region of space where gravity is so strong that nothing escapes, not even
light. It forms when a massive star collapses at the end of its life. The boundary is called
the event horizon.

Stars burn hydrogen for billions of years. When the fuel runs out, the core can no longer hold
itself up against its own weight. The outer layers are blown away in a supernova.

## Sizes

Stellar black holes weigh 5 to 100 times the Sun's mass. Supermassive ones sit at the centres
of galaxies, e.g. Sagittarius A* with 4.3 million solar masses. Nobody knows exactly how the
largest ones grew so fast.

## Finding them

We cannot see black holes directly. Astronomers watch the gas and the stars around them. In
2019 the Event Horizon Telescope took the first picture of one, in the galaxy M87.
"""


def long_text(size: int) -> str:
    """About `size` bytes of paragraphs, each naming its number."""
    words = [
        "river",
        "mountain",
        "engine",
        "signal",
        "harvest",
        "copper",
        "lantern",
        "orbit",
        "meadow",
        "crystal",
    ]
    paragraphs: list[str] = []
    while sum(len(p) + 2 for p in paragraphs) < size:
        i = len(paragraphs)
        first, second = words[i % 10], words[(i * 7 + 3) % 10]
        sentences = [
            f"Paragraph {i} explains the {first} {second} idea in plain words.",
            f"It adds a detail about the {second} part.",
            f"Then it gives an example with a {first}.",
            "Finally it sums the point up.",
        ]
        paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


def paragraph_count(text: str) -> int:
    return text.count("\n\n") + 1


def test_offline_writer_is_deterministic() -> None:
    for proj, clips in [
        (project(source_text=ARTICLE), []),
        (project(), []),
        (project(language="ko", title="블랙홀의 탄생"), []),
        (project(format="ranking", title="Top 5 football skills"), CLIPS),
    ]:
        first = offline_script(proj, clips).model_dump()
        assert offline_script(proj.model_copy(deep=True), list(clips)).model_dump() == first


@pytest.mark.parametrize("target", [20.0, 45.0, 90.0])
def test_source_script_length_is_near_the_target(target: float) -> None:
    proj = project(source_text=long_text(20_000), target_seconds=target, max_scenes=20)
    script = offline_script(proj)
    assert target * 0.8 <= total_seconds(script) <= target * 1.1
    for sc in script.scenes():
        assert speaking_seconds(sc.narration, "en") <= 12.0
        assert sc.narration.count(".") <= 2


def test_source_script_follows_headings_and_reads_cleanly() -> None:
    script = offline_script(project(source_text=ARTICLE))
    check_script(script, ScriptSettings())
    assert [c.title for c in script.chapters] == ["How black holes form", "Sizes", "Finding them"]
    scenes = script.scenes()
    assert scenes[0].role == "intro" and scenes[-1].role == "outro"
    body = [s for s in scenes if s.role == "scene"]
    narration = " ".join(s.narration for s in body)
    assert "A black hole is a region of space" in narration
    assert "Stellar black holes weigh 5 to 100 times" in narration  # each section's lead
    assert "We cannot see black holes directly." in narration
    for sc in body:
        assert 0 < len(sc.on_screen_text) <= 40
        assert "*" not in sc.on_screen_text
        assert 1 <= len(sc.broll_keywords) <= 3
        assert not {"the", "a", "is", "of"} & set(sc.broll_keywords)
    assert "gravity" in body[0].broll_keywords


def test_korean_source_text_gives_korean_scenes() -> None:
    source = (
        "## 블랙홀이란\n\n블랙홀은 중력이 너무 강해서 빛조차 빠져나올 수 없는 공간입니다. "
        "거대한 별이 수명을 다하고 붕괴할 때 만들어집니다.\n\n"
        "## 관측\n\n블랙홀은 직접 볼 수 없습니다. 천문학자들은 주변의 가스와 별의 움직임을 "
        "관찰합니다. 2019년에는 사건의 지평선 망원경이 처음으로 블랙홀을 촬영했습니다."
    )
    script = offline_script(project(title="블랙홀의 탄생", language="ko", source_text=source))
    assert script.language == "ko"
    assert [c.title for c in script.chapters] == ["블랙홀이란", "관측"]
    for sc in script.scenes():
        assert HANGUL.search(sc.narration), sc.narration
    body = [s for s in script.scenes() if s.role == "scene"]
    assert body[0].narration.startswith("블랙홀은 중력이 너무 강해서")
    assert "블랙홀" in body[0].broll_keywords  # particle 은 removed
    assert script.scenes()[-1].narration.startswith("지금까지 ‘블랙홀의 탄생’에 대해")


def test_source_text_over_the_limit_is_refused_with_size_and_limit() -> None:
    source = "가나다라마바사아자차. " * 6_100  # 3 bytes a syllable: about 200 KB
    size = len(source.encode("utf-8"))
    assert size > 180_000
    with pytest.raises(ScriptError) as caught:
        offline_script(project(source_text=source))
    assert f"{size:,} bytes" in str(caught.value)
    assert f"the limit is {SOURCE_TEXT_MAX_BYTES:,} bytes" in str(caught.value)


def test_long_source_text_is_summarised_from_its_whole_length() -> None:
    source = long_text(100_000)
    assert len(source.encode()) <= SOURCE_TEXT_MAX_BYTES
    count = paragraph_count(source)
    script = offline_script(project(source_text=source))
    picked = [int(n) for s in script.scenes() for n in re.findall(r"Paragraph (\d+)", s.narration)]
    assert picked == sorted(picked)  # in text order
    thirds = {n * 3 // count for n in picked}
    assert thirds == {0, 1, 2}, picked
    assert max(picked) > count * 0.75


@pytest.mark.parametrize("text", ["   \n\t  ", "🚀🔥 *** —— ###", "https://example.com/a?b=c"])
def test_source_text_without_words_is_refused(text: str) -> None:
    with pytest.raises(ScriptError, match="has no words to speak"):
        offline_script(project(source_text=text))


def test_messy_source_text_gives_clean_speakable_narration() -> None:
    source = (
        "# **Intro** 🚀\n\n"
        "Read [the guide](https://example.com/guide) first 😀! It explains **everything**.\n\n"
        "```python\nprint('code is not narrated')\n```\n\n"
        "| table | row |\n|---|---|\n| not | read |\n\n"
        "الثقوب السوداء مناطق في الفضاء. لا يمكن للضوء أن يهرب منها.\n\n"
        "Mixed 文字 and 한국어 text works too — see www.example.org or mail a@b.io.\n\n"
        "- first point\n- second point 👉\n\n"
        "It weighs 3.5 tons, e.g. a small truck. See x.io for details.\n"
    )
    script = offline_script(project(source_text=source, max_scenes=30, target_seconds=120))
    narration = " ".join(s.narration for s in script.scenes())
    for sc in script.scenes():
        assert sc.narration == spoken_text(sc.narration)  # nothing left to clean
    for leftover in ("http", "www", "@", "**", "```", "|", "😀", "🚀", "👉", "print("):
        assert leftover not in narration
    assert "Read the guide first!" in narration
    assert "الثقوب السوداء مناطق في الفضاء." in narration
    assert "Mixed 文字 and 한국어 text works too" in narration
    assert "first point. second point." in narration  # list items are sentences
    assert "It weighs 3.5 tons, e.g. a small truck." in narration  # not cut at the dots


# ---- offline writer: explainer from the title alone ---------------------------------------


def test_title_only_explainer_in_english() -> None:
    script = offline_script(project(title="Why the sky is blue"))
    scenes = script.scenes()
    assert scenes[0].role == "intro" and scenes[-1].role == "outro"
    assert 3 <= sum(s.role == "scene" for s in scenes) <= 5
    assert scenes[0].narration.startswith("Why the sky is blue.")
    assert any('"Why the sky is blue"' in s.narration for s in scenes[1:])
    assert all(s.broll_keywords == ["sky", "blue"] for s in scenes)
    check_script(script, ScriptSettings())


def test_title_only_explainer_in_korean() -> None:
    script = offline_script(project(title="하늘은 왜 파란가요", language="ko"))
    scenes = script.scenes()
    assert (
        scenes[0].narration
        == "오늘의 주제는 ‘하늘은 왜 파란가요’입니다. 핵심만 짧고 쉽게 알아볼게요."
    )
    for sc in scenes:
        assert HANGUL.search(sc.narration)
        assert not re.search(r"[A-Za-z]", sc.narration)  # no English placeholders
        assert HANGUL.search(sc.on_screen_text)
    assert {c.title for c in script.chapters} <= {"기본", "원리와 예시", "실전 정리"}


def test_title_only_explainer_respects_small_limits() -> None:
    script = offline_script(project(max_scenes=3, max_chapters=1))
    assert len(script.chapters) == 1 and len(script.scenes()) == 3
    assert all(s.role == "scene" for s in script.scenes())  # intro and outro went first


# ---- offline writer: ranking -------------------------------------------------------------


def test_ranking_script_counts_down_with_lines_that_fit_their_clips() -> None:
    proj = project(format="ranking", title="Top 5 football skills")
    script = offline_script(proj, CLIPS)
    scenes = script.scenes()

    assert scenes[0].role == "intro"
    assert scenes[0].narration == "Here are the top 5 football skills."
    assert scenes[-1].role == "outro"
    lines = scenes[1:-1]
    assert [(s.role, s.clip_rank) for s in lines] == [("clip", r) for r in (5, 4, 3, 2, 1)]
    by_rank = {s.clip_rank: s for s in lines}
    for c in CLIPS:
        assert speaking_seconds(by_rank[c.rank].narration, "en") <= c.trim_seconds
        assert by_rank[c.rank].on_screen_text.startswith(f"#{c.rank} ")
    assert by_rank[1].narration == (
        "And number 1: Insane rabona goal football skills, with 1.2 million views."
    )
    assert by_rank[2].narration == "Number 2: Street football nutmeg skills."  # views dropped
    assert by_rank[3].narration == "Number 3: Freestyle football juggling."  # words dropped
    assert by_rank[5].narration == "Number 5: Goalkeeper saves."  # no views known
    assert "#shorts" not in by_rank[1].narration and "🔥" not in by_rank[2].narration


def test_ranking_script_in_korean() -> None:
    proj = project(format="ranking", title="축구 기술 톱 5", language="ko")
    script = offline_script(proj, CLIPS)
    scenes = script.scenes()
    assert scenes[0].narration == "축구 기술 톱 5! 지금부터 순위를 공개합니다."
    by_rank = {s.clip_rank: s.narration for s in scenes if s.role == "clip"}
    assert by_rank[1] == "대망의 1위, Insane rabona goal football skills. 조회수 123만회."
    assert by_rank[2] == "2위, Street football nutmeg skills. 조회수 30만회."
    assert scenes[-1].narration == "여러분의 최애는 몇 위였나요? 댓글로 알려 주세요."


def test_ranking_with_as_many_clips_as_scenes_drops_intro_and_outro() -> None:
    clips = [clip(r, f"Clip number {r}", 1000 * r, 5.0) for r in range(1, 11)]
    script = offline_script(project(format="ranking", title="Top 10"), clips)
    assert [s.clip_rank for s in script.scenes()] == list(range(10, 0, -1))
    with pytest.raises(ScriptError, match=r"raise max_scenes to at least 10"):
        offline_script(project(format="ranking", max_scenes=8), clips)


# ---- property ------------------------------------------------------------------------------


# Text shaped like real sources: Markdown, links, numbers, several scripts, and noise.
FRAGMENTS = st.sampled_from(
    ["# ", "## ", "- ", "1. ", "\n", "\n\n", "```", "**", "https://x.io/a.b ", "🚀", "3.5 ",
     "e.g. ", ". ", "? ", "! ", ", ", "블랙홀은 ", "별이 ", "東京", "مرحبا ", "word ", "| a |",
     "---", "Gravity "]
)  # fmt: skip
SOURCE_LIKE = st.lists(st.one_of(FRAGMENTS, st.text(max_size=12)), max_size=120).map("".join)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.one_of(st.text(max_size=1500), SOURCE_LIKE),
    title=st.text(max_size=120),
    target=st.floats(min_value=5, max_value=180),
    max_scenes=st.integers(min_value=1, max_value=30),
    max_chapters=st.integers(min_value=1, max_value=10),
)
def test_offline_writer_never_crashes_and_stays_speakable(
    text: str, title: str, target: float, max_scenes: int, max_chapters: int
) -> None:
    proj = project(
        title=title,
        source_text=text,
        target_seconds=target,
        max_scenes=max_scenes,
        max_chapters=max_chapters,
    )
    if not spoken_text(text):
        with pytest.raises(ScriptError):
            offline_script(proj)
        return
    script = offline_script(proj)
    check_script(script, proj.settings.script)
    assert all(spoken_text(s.narration) for s in script.scenes())
    assert len(script.scenes()) <= max_scenes and len(script.chapters) <= max_chapters
