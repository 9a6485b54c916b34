"""The project catalog: every project a creator registered, in SQL.

SQLite under SHORTS_HOME by default; any SQLAlchemy URL (PostgreSQL for a shared
deployment) by configuration. Each project has a monotonically increasing `seq`, which a
sensor can use as its high-water mark.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from functools import cache
from typing import Any

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

from shorts_pipeline.home import catalog_url
from shorts_pipeline.keys import project_key, validate_project_key
from shorts_pipeline.models import (
    SOURCE_TEXT_MAX_BYTES,
    ProjectFormat,
    ProjectSettings,
    ProjectSpec,
    ProjectStatus,
    VideoScript,
)

_metadata = sa.MetaData()

projects_table = sa.Table(
    "projects",
    _metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(64), nullable=False, unique=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("format", sa.String(16), nullable=False),
    sa.Column("keywords", sa.Text, nullable=False, default="[]"),
    sa.Column("settings", sa.Text, nullable=False, default="{}"),
    sa.Column("publish_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("review", sa.Boolean, nullable=False, default=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("selected_clip_ids", sa.Text, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("source_text", sa.Text, nullable=True),
    sa.Column("script_override", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


class ProjectExistsError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(
            f"a project with this title and format already exists: {key} "
            f"(run `shorts run {key}` to render it again, or change the title)"
        )
        self.key = key


class ProjectNotFoundError(KeyError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return f"no project {self.key!r} in the catalog; `shorts status` lists the projects"


_engine_lock = threading.Lock()


@cache
def _engine(url: str) -> sa.Engine:
    with _engine_lock:
        engine = sa.create_engine(url, future=True)
        if engine.dialect.name == "sqlite":

            @sa.event.listens_for(engine, "connect")
            def _sqlite_pragmas(conn: Any, _record: Any) -> None:
                cur = conn.cursor()
                # WAL lets the Dagster webserver read while a run writes; busy_timeout rides
                # out a concurrent write instead of failing with "database is locked".
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA busy_timeout=10000")
                cur.close()

        _metadata.create_all(engine)
        _add_missing_columns(engine)
        return engine


def _add_missing_columns(engine: sa.Engine) -> None:
    """Catalogs made by an older version gain the columns added since (all nullable)."""
    present = {c["name"] for c in sa.inspect(engine).get_columns("projects")}
    missing = [c for c in projects_table.columns if c.name not in present]
    with engine.begin() as conn:
        for column in missing:
            kind = column.type.compile(dialect=engine.dialect)
            conn.execute(sa.text(f'ALTER TABLE projects ADD COLUMN "{column.name}" {kind}'))


class CatalogResource(dg.ConfigurableResource):
    """The project catalog (SQL). Default: SQLite at SHORTS_HOME/catalog.db.

    Set `url` (or SHORTS_CATALOG_URL) to any SQLAlchemy URL, e.g.
    `postgresql+psycopg://user@host/shorts`, to share projects between machines.
    """

    url: str | None = Field(
        default=None, description="SQLAlchemy URL; default SQLite in SHORTS_HOME."
    )

    @property
    def engine(self) -> sa.Engine:
        return _engine(self.url or catalog_url())

    def add_project(
        self,
        title: str,
        fmt: ProjectFormat | str = ProjectFormat.ranking,
        *,
        keywords: list[str] | None = None,
        settings: ProjectSettings | None = None,
        publish_at: datetime | None = None,
        review: bool = False,
        source_text: str | None = None,
    ) -> ProjectSpec:
        """Register a project; raise ProjectExistsError if its key is taken."""
        clean_title = " ".join(title.split())
        if not clean_title:
            raise ValueError("the title is empty; give the project a title")
        if source_text is not None:
            check_source_text(source_text)
        fmt = ProjectFormat(fmt)
        if publish_at is not None:
            # Stored as UTC: SQLite keeps no offset, and "18:00+09:00" must stay that instant.
            publish_at = (publish_at if publish_at.tzinfo else publish_at.astimezone()).astimezone(
                UTC
            )
        key = project_key(clean_title, fmt.value)
        now = datetime.now(UTC)
        spec = ProjectSpec(
            key=key,
            title=clean_title,
            format=fmt,
            keywords=[k.strip() for k in (keywords or []) if k.strip()],
            settings=settings or ProjectSettings(),
            publish_at=publish_at,
            review=review,
            source_text=source_text,
            created_at=now,
        )
        row = {
            "key": key,
            "title": spec.title,
            "format": fmt.value,
            "keywords": json.dumps(spec.keywords, ensure_ascii=False),
            "settings": spec.settings.model_dump_json(),
            "publish_at": publish_at,
            "review": review,
            "source_text": source_text,
            "status": ProjectStatus.registered.value,
            "created_at": now,
            "updated_at": now,
        }
        with self.engine.begin() as conn:
            exists = conn.execute(
                sa.select(projects_table.c.key).where(projects_table.c.key == key)
            ).first()
            if exists:
                raise ProjectExistsError(key)
            conn.execute(projects_table.insert().values(**row))
        return spec

    def get_project(self, key: str) -> ProjectSpec:
        validate_project_key(key)
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(projects_table).where(projects_table.c.key == key))
                .mappings()
                .first()
            )
        if row is None:
            raise ProjectNotFoundError(key)
        return _spec(row)

    def list_projects(self, after_seq: int = 0, limit: int | None = None) -> list[ProjectSpec]:
        query = (
            sa.select(projects_table)
            .where(projects_table.c.seq > after_seq)
            .order_by(projects_table.c.seq)
        )
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [_spec(r) for r in conn.execute(query).mappings()]

    def project_seq(self, key: str) -> int:
        with self.engine.connect() as conn:
            seq = conn.execute(
                sa.select(projects_table.c.seq).where(projects_table.c.key == key)
            ).scalar()
        if seq is None:
            raise ProjectNotFoundError(key)
        return int(seq)

    def set_status(self, key: str, status: ProjectStatus, error: str | None = None) -> None:
        self._update(key, status=status.value, last_error=error)

    def set_selection(self, key: str, clip_ids: list[str] | None) -> None:
        """Fix the clips and their order (None returns to automatic ranking)."""
        value = json.dumps(clip_ids, ensure_ascii=False) if clip_ids else None
        self._update(key, selected_clip_ids=value)

    def update_settings(self, key: str, settings: ProjectSettings) -> None:
        self._update(key, settings=settings.model_dump_json())

    def set_script_override(self, key: str, script: VideoScript | None) -> None:
        """Replace the project's script with a creator's edit (None goes back to the writer)."""
        self._update(key, script_override=script.model_dump_json() if script else None)

    def script_override(self, key: str) -> VideoScript | None:
        with self.engine.connect() as conn:
            raw = conn.execute(
                sa.select(projects_table.c.script_override).where(projects_table.c.key == key)
            ).scalar()
        return VideoScript.model_validate_json(raw) if raw else None

    def set_source_text(self, key: str, text: str | None) -> None:
        if text is not None:
            check_source_text(text)
        self._update(key, source_text=text)

    def last_error(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(projects_table.c.last_error).where(projects_table.c.key == key)
            ).scalar()

    def _update(self, key: str, **values: Any) -> None:
        validate_project_key(key)
        with self.engine.begin() as conn:
            result = conn.execute(
                projects_table.update()
                .where(projects_table.c.key == key)
                .values(updated_at=datetime.now(UTC), **values)
            )
        if result.rowcount == 0:
            raise ProjectNotFoundError(key)


def check_source_text(text: str) -> None:
    """Refuse a source text that is empty or larger than an explainer can use."""
    size = len(text.encode("utf-8"))
    if size > SOURCE_TEXT_MAX_BYTES:
        raise ValueError(
            f"the source text is {size / 1000:.0f} KB; the limit is "
            f"{SOURCE_TEXT_MAX_BYTES / 1000:.0f} KB (about 20 000 words). Give the part the "
            "video should cover, or a summary"
        )
    if not any(ch.isalnum() for ch in text):
        raise ValueError("the source text has no words; give a text file with the material")


def _spec(row: Any) -> ProjectSpec:
    selected = row["selected_clip_ids"]
    publish_at = row["publish_at"]
    created = row["created_at"]
    return ProjectSpec(
        key=row["key"],
        title=row["title"],
        format=ProjectFormat(row["format"]),
        keywords=json.loads(row["keywords"] or "[]"),
        settings=ProjectSettings.model_validate_json(row["settings"] or "{}"),
        publish_at=_aware(publish_at),
        review=bool(row["review"]),
        status=ProjectStatus(row["status"]),
        selected_clip_ids=json.loads(selected) if selected else None,
        source_text=row["source_text"],
        created_at=_aware(created) or datetime.now(UTC),
    )


def _aware(value: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes; everything we store is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
