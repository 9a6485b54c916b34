from datetime import UTC, datetime, timedelta, timezone

import pytest

from shorts_pipeline.models import ProjectSettings, ProjectStatus
from shorts_pipeline.resources.catalog import (
    CatalogResource,
    ProjectExistsError,
    ProjectNotFoundError,
)


def test_sqlite_under_shorts_home_by_default(shorts_home):
    catalog = CatalogResource()
    spec = catalog.add_project("Top 5 football skills", keywords=["football", " skills "])
    assert (shorts_home / "catalog.db").exists()
    again = catalog.get_project(spec.key)
    assert again.title == "Top 5 football skills"
    assert again.keywords == ["football", "skills"]
    assert again.status is ProjectStatus.registered
    assert again.created_at.tzinfo is not None


def test_any_sqlalchemy_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'other.db'}"
    catalog = CatalogResource(url=url)
    catalog.add_project("elsewhere")
    assert (tmp_path / "other.db").exists()
    assert [p.title for p in CatalogResource(url=url).list_projects()] == ["elsewhere"]


def test_fields_round_trip():
    catalog = CatalogResource()
    when = datetime(2026, 12, 1, 18, 0, tzinfo=timezone(timedelta(hours=9)))
    settings = ProjectSettings(count=3, fit="contain", transition="wipe", music=None)
    spec = catalog.add_project(
        "축구 🔥 ../../x", keywords=["축구"], settings=settings, publish_at=when, review=True
    )
    got = catalog.get_project(spec.key)
    assert got.title == "축구 🔥 ../../x"
    assert got.settings == settings
    assert got.review is True
    assert got.publish_at == when.astimezone(UTC)


def test_duplicate_title_names_existing_key():
    catalog = CatalogResource()
    spec = catalog.add_project("Same title")
    with pytest.raises(ProjectExistsError, match=spec.key):
        catalog.add_project("Same  title")  # whitespace-normalised: the same project


def test_empty_title_is_refused():
    with pytest.raises(ValueError, match="title is empty"):
        CatalogResource().add_project("   ")


def test_status_selection_and_high_water_mark():
    catalog = CatalogResource()
    a = catalog.add_project("first")
    b = catalog.add_project("second")
    assert catalog.project_seq(b.key) > catalog.project_seq(a.key)
    assert [p.key for p in catalog.list_projects(after_seq=catalog.project_seq(a.key))] == [b.key]
    catalog.set_status(a.key, ProjectStatus.failed, "boom")
    catalog.set_selection(a.key, ["c1", "c2"])
    got = catalog.get_project(a.key)
    assert got.status is ProjectStatus.failed and got.selected_clip_ids == ["c1", "c2"]
    assert catalog.last_error(a.key) == "boom"
    catalog.set_selection(a.key, None)
    assert catalog.get_project(a.key).selected_clip_ids is None


def test_unknown_key_is_specific():
    with pytest.raises(ProjectNotFoundError, match="shorts status"):
        CatalogResource().get_project("nope-12345678")


def test_catalog_from_an_older_version_gains_new_columns(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # the first released schema, with one project in it
        db.execute(
            "CREATE TABLE projects (seq INTEGER PRIMARY KEY AUTOINCREMENT, key VARCHAR(64) "
            "NOT NULL UNIQUE, title TEXT NOT NULL, format VARCHAR(16) NOT NULL, keywords TEXT "
            "NOT NULL, settings TEXT NOT NULL, publish_at DATETIME, review BOOLEAN NOT NULL, "
            "status VARCHAR(16) NOT NULL, selected_clip_ids TEXT, last_error TEXT, "
            "created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL)"
        )
        db.execute(
            "INSERT INTO projects (key, title, format, keywords, settings, review, status, "
            "created_at, updated_at) VALUES ('old-12345678', 'Old', 'ranking', '[]', '{}', 0, "
            "'registered', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
        )
    catalog = CatalogResource(url=f"sqlite:///{path}")
    old = catalog.get_project("old-12345678")
    assert old.title == "Old" and old.source_text is None
    catalog.set_source_text("old-12345678", "Now it has a text.")
    assert catalog.get_project("old-12345678").source_text == "Now it has a text."


def test_source_text_limits_and_script_override():
    from shorts_pipeline.models import VideoScript

    catalog = CatalogResource()
    with pytest.raises(ValueError, match=r"source text is 200 KB; the limit is 120 KB"):
        catalog.add_project("Too long", "explainer", source_text="word " * 40_000)
    with pytest.raises(ValueError, match="source text has no words"):
        catalog.add_project("Empty", "explainer", source_text="  \n ... 🚀 ")
    spec = catalog.add_project("Fine", "explainer", source_text="A short text.")
    assert catalog.script_override(spec.key) is None
    script = VideoScript(
        title="Fine", chapters=[{"title": "One", "scenes": [{"narration": "Hello."}]}]
    )
    catalog.set_script_override(spec.key, script)
    assert catalog.script_override(spec.key) == script
    catalog.set_script_override(spec.key, None)
    assert catalog.script_override(spec.key) is None
