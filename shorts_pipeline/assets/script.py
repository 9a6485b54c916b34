"""script: the validated words of the video, chapters of scenes."""

from typing import Any

import dagster as dg
from pydantic import ValidationError

from shorts_pipeline.assets.common import OWNERS, markdown_table, project_of
from shorts_pipeline.models import ProjectFormat, ProjectSpec, Selections, VideoScript
from shorts_pipeline.partitions import project_partitions
from shorts_pipeline.resources.catalog import CatalogResource
from shorts_pipeline.resources.llm import (
    ScriptError,
    ScriptWriterResource,
    script_problems,
    speaking_seconds,
)
from shorts_pipeline.resources.segment_plan import estimated_cost, plan_problems

# An explainer's estimated speech within this factor of settings.script.target_seconds.
TARGET_RANGE = (0.5, 1.5)

SCRIPT_CHECKS = [
    dg.AssetCheckSpec(
        "speech_length_near_target",
        asset="script",
        blocking=False,
        description="Explainers: the script's estimated speaking time is within "
        f"{TARGET_RANGE[0]}×–{TARGET_RANGE[1]}× of settings.script.target_seconds.",
    )
]


class ScriptConfig(dg.Config):
    """Run config: replace the script with this one (VideoScript JSON). It is kept in the
    catalog, so later runs use it too, as `shorts script KEY --edit FILE` does."""

    script_json: str | None = None


@dg.asset(
    partitions_def=project_partitions,
    group_name="production",
    kinds={"openai", "python"},
    owners=OWNERS,
    pool="network",
    retry_policy=dg.RetryPolicy(max_retries=2, delay=2, backoff=dg.Backoff.EXPONENTIAL),
    check_specs=SCRIPT_CHECKS,
)
def script(
    context: dg.AssetExecutionContext,
    config: ScriptConfig,
    selections: Selections,
    catalog: CatalogResource,
    script_writer: ScriptWriterResource,
):  # untyped: with check_specs, Dagster reads a return annotation as output types
    """The script as chapters of scenes (narration, on-screen text, b-roll keywords), written
    by the project's writer — the offline writer (deterministic, from the title, the source
    text or the ranked clips) or any OpenAI-compatible chat API with a validated structured
    answer and one repair round — unless the creator replaced it (`shorts script KEY --edit`
    or run config), which always wins."""
    project = project_of(context, catalog)
    settings = project.settings.script
    notes: list[str] = []
    attempts = 0
    if config.script_json:
        written = _parse_edit(config.script_json)
        check_or_fail(written, project)
        # This run renders it: the re-render sensor need not start another.
        catalog.set_script_override(project.key, written, handled=True)
        notes.append("replaced by run config (kept in the catalog for later runs)")
    elif (edited := catalog.script_override(project.key)) is not None:
        written = edited
        check_or_fail(written, project)
        notes.append("the creator's edit (`shorts script --edit`)")
    else:
        try:
            result = script_writer.write(project, selections.clips)
        except ScriptError as err:
            raise dg.Failure(description=str(err), allow_retries=err.retryable) from err
        written, attempts = result.script, result.attempts
        notes += result.notes
        if result.repaired:
            notes.append("the first answer was invalid; the repair round fixed it")
    for note in notes:
        context.log.info(note)
    scenes = written.scene_chapters()
    estimate = sum(speaking_seconds(s.narration, written.language) for _, _, s in scenes)
    table = markdown_table(
        ["#", "chapter", "role", "narration", "on screen", "b-roll"],
        (
            [
                n + 1,
                ch.title,
                sc.role,
                sc.narration,
                sc.on_screen_text,
                ", ".join(sc.broll_keywords),
            ]
            for n, (_, ch, sc) in enumerate(scenes)
        ),
    )
    return dg.MaterializeResult(
        value=written,
        metadata={
            "script": dg.MetadataValue.md(written.to_markdown()),
            "scenes": dg.MetadataValue.md(table),
            "scene_count": len(scenes),
            "chapter_count": len(written.chapters),
            "writer": written.writer,
            "language": written.language,
            "estimated_speech_s": round(estimate, 1),
            "target_s": settings.target_seconds,
            "llm_attempts": attempts,
            "notes": dg.MetadataValue.md("\n".join(f"- {n}" for n in notes) or "none"),
            **_plan_metadata(written, project),
        },
        check_results=[speech_length_check(project.format, estimate, settings.target_seconds)],
    )


def speech_length_check(
    fmt: ProjectFormat, estimated_seconds: float, target_seconds: float
) -> dg.AssetCheckResult:
    """`speech_length_near_target`: an explainer far off its target length is caught here,
    before it is spoken and rendered. Rankings and extend videos are timed by their clips and
    segments, not by the target."""
    low, high = (factor * target_seconds for factor in TARGET_RANGE)
    applies = fmt is ProjectFormat.explainer
    return dg.AssetCheckResult(
        check_name="speech_length_near_target",
        passed=not applies or low <= estimated_seconds <= high,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "estimated_speech_s": round(estimated_seconds, 1),
            "target_s": target_seconds,
            "accepted_s": f"{low:.1f}–{high:.1f}" if applies else "not checked: not an explainer",
        },
    )


def _plan_metadata(script: VideoScript, project: ProjectSpec) -> dict[str, Any]:
    """Extend videos: the plan's size and what generating it would cost, before it is made."""
    if script.plan is None:
        return {}
    settings = project.settings.extend
    return {
        "segment_count": len(script.plan.segments),
        "segment_seconds": script.plan.seconds,
        "provider": settings.provider,
        "estimated_cost_usd": estimated_cost(script.plan, settings),
        "cost_guard_usd": settings.max_cost_usd,
    }


def _parse_edit(raw: str) -> VideoScript:
    try:
        script = VideoScript.model_validate_json(raw)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'script'}: {e['msg']}"
            for e in err.errors()[:5]
        )
        raise dg.Failure(
            description=f"the replacement script is not a valid VideoScript: {problems}",
            allow_retries=False,
        ) from err
    return script.model_copy(update={"writer": "edited"})


def check_or_fail(script: VideoScript, project: ProjectSpec) -> None:
    problems = script_problems(script, project.settings.script)
    if project.format is ProjectFormat.extend:
        problems += plan_problems(script, project.settings.extend)
    if problems:
        raise dg.Failure(description="; ".join(problems), allow_retries=False)
