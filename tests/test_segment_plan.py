"""The segment plan of extend videos: offline and OpenAI-compatible writers, and the guard."""

from __future__ import annotations

import json

import pytest

from shorts_pipeline.models import ExtendSettings, ProjectSettings, ProjectSpec, ScriptSettings
from shorts_pipeline.resources.llm import ScriptError, ScriptWriterResource, speaking_seconds
from shorts_pipeline.resources.segment_plan import (
    CONTINUITY,
    estimated_cost,
    offline_plan,
    plan_problems,
)
from tests.conftest import OPENAI_TEST_KEY
from tests.openai_server import OpenAIServer, Reply


def extend_project(title: str = "A red fox crossing a snowy forest at dawn", **extend: object):
    language = extend.pop("language", "en")
    writer = extend.pop("writer", "offline")
    source = extend.pop("source_text", None)
    return ProjectSpec(
        key="extend-test",
        title=title,
        format="extend",
        source_text=source,  # type: ignore[arg-type]
        settings=ProjectSettings(
            language=str(language),
            script=ScriptSettings(writer=writer),  # type: ignore[arg-type]
            extend=ExtendSettings(**extend),  # type: ignore[arg-type]
        ),
    )


def test_offline_plan_carries_context_and_continuity_into_every_prompt() -> None:
    script = offline_plan(extend_project(segment_count=5, segment_seconds=4))
    plan = script.plan
    assert plan is not None and len(plan.segments) == 5 and plan.seconds == 4
    assert plan.lighting.startswith("first light of dawn")  # "dawn" in the title
    for k, segment in enumerate(plan.segments):
        for shared in (plan.subject, plan.style, plan.camera, plan.lighting):
            assert shared in segment.prompt
        assert (CONTINUITY in segment.prompt) == (k > 0)
        assert segment.action in segment.prompt
    assert plan.segments[0].action.startswith("Wide establishing shot")
    assert plan.segments[-1].action.startswith("Closing shot")
    assert len({s.action for s in plan.segments}) == 5
    # One scene per segment, each line short enough to say within its segment.
    scenes = script.scenes()
    assert len(scenes) == 5
    for scene in scenes:
        assert speaking_seconds(scene.narration, "en") <= 4 - 0.8 + 0.01
        assert scene.duration == 4
    assert offline_plan(extend_project(segment_count=5, segment_seconds=4)) == script


def test_offline_plan_uses_the_creators_beats_and_speaks_korean() -> None:
    beats = "등대가 절벽 위에 서 있다.\nWaves crash on the rocks below. The beam turns on."
    script = offline_plan(extend_project("등대", segment_count=6, language="ko", source_text=beats))
    assert script.plan is not None
    actions = [s.action for s in script.plan.segments]
    assert actions == [
        "등대가 절벽 위에 서 있다.",
        "Waves crash on the rocks below.",
        "The beam turns on.",
    ]
    korean = offline_plan(extend_project("노을 지는 바닷가", segment_count=3, language="ko"))
    assert korean.plan is not None and korean.plan.lighting == "warm low sun"
    assert all(any("\uac00" <= ch <= "\ud7a3" for ch in s.narration) for s in korean.scenes())


def test_the_cost_guard_refuses_before_anything_is_generated() -> None:
    writer = ScriptWriterResource()
    with pytest.raises(ScriptError, match=r"9 segments; the cost guard allows 8"):
        writer.write(extend_project(segment_count=9))
    # A paid provider: 6 × 10 s at $0.10/s = $6 > $5.
    pricey = extend_project(
        provider="fal", segment_count=6, segment_seconds=10, price_per_second_usd=0.10
    )
    with pytest.raises(ScriptError, match=r"estimated at \$6\.00, over the cost guard of \$5\.00"):
        writer.write(pricey)
    fine = extend_project(provider="fal", segment_count=6, segment_seconds=5)
    written = writer.write(fine)
    assert written.script.plan is not None
    assert estimated_cost(written.script.plan, fine.settings.extend) == 1.5
    assert estimated_cost(written.script.plan, extend_project().settings.extend) == 0.0


def test_an_edited_plan_is_checked_too() -> None:
    project = extend_project(segment_count=3)
    script = offline_plan(project)
    assert plan_problems(script, project.settings.extend) == []
    assert script.plan is not None
    broken = script.model_copy(
        update={"plan": script.plan.model_copy(update={"segments": script.plan.segments[:2]})}
    )
    assert any(
        "3 scenes for 2 segments" in p for p in plan_problems(broken, project.settings.extend)
    )
    assert plan_problems(script.model_copy(update={"plan": None}), project.settings.extend)


def _draft(count: int) -> str:
    return json.dumps(
        {
            "subject": "a paper boat",
            "style": "watercolour",
            "camera": "low tracking shot",
            "lighting": "blue hour",
            "segments": [
                {"action": f"The boat drifts past lamp post {k}.", "narration": f"Stop {k}."}
                for k in range(count)
            ],
        }
    )


def test_openai_planner_composes_prompts_and_repairs_a_wrong_count(
    openai_server: OpenAIServer,
) -> None:
    openai_server.queue(Reply(content=_draft(2)), Reply(content=_draft(3)))
    project = extend_project("A paper boat", segment_count=3, writer="openai")
    written = ScriptWriterResource().write(project)
    plan = written.script.plan
    assert written.attempts == 2 and written.repaired
    assert plan is not None and plan.segments[0].action.startswith("The boat")
    assert (
        "Style: watercolour." in plan.segments[1].prompt and CONTINUITY in plan.segments[1].prompt
    )
    assert CONTINUITY not in plan.segments[0].prompt
    assert written.script.writer == "openai:gpt-4o-mini"
    first, second = openai_server.requests
    assert first.body["response_format"]["json_schema"]["name"] == "segment_plan"
    repair = second.body["messages"][-1]["content"]
    assert "the plan has 2 segments; exactly 3 are needed" in repair
    assert OPENAI_TEST_KEY not in json.dumps(second.body)


def test_openai_planner_gives_up_with_a_clear_error(openai_server: OpenAIServer) -> None:
    openai_server.queue(Reply(content="not json"), Reply(content='{"subject": 1}'))
    project = extend_project("A paper boat", segment_count=3, writer="openai")
    with pytest.raises(ScriptError) as err:
        ScriptWriterResource().write(project)
    assert "unusable segment plan twice" in str(err.value)
    assert OPENAI_TEST_KEY not in str(err.value)
