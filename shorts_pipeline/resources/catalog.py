"""The project catalog: every project a creator registered, in SQL.

SQLite under SHORTS_HOME by default; any SQLAlchemy URL (PostgreSQL for a shared
deployment) by configuration. Each project has a monotonically increasing `seq`, which a
sensor can use as its high-water mark.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal

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
    PublishedVideo,
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
    sa.Column("review_state", sa.String(16), nullable=True),
    sa.Column("review_by", sa.Text, nullable=True),
    sa.Column("review_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("review_reason", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


# What creators change after a project was made: the re-render sensor follows this table by
# its `seq` (a high-water mark). An event the CLI already acted on is stored as handled.
changes_table = sa.Table(
    "project_changes",
    _metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(64), nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("handled", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# One row per (project, publisher): the idempotency record that makes publishing happen once.
publications_table = sa.Table(
    "publications",
    _metadata,
    sa.Column("idempotency_key", sa.String(160), primary_key=True),
    sa.Column("key", sa.String(64), nullable=False, index=True),
    sa.Column("publisher", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # started | published | failed
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("resume_token", sa.Text, nullable=True),
    sa.Column("video_id", sa.Text, nullable=True),
    sa.Column("url", sa.Text, nullable=True),
    sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("record", sa.Text, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

ReviewState = Literal["pending", "approved", "rejected"]


@dataclass(frozen=True)
class Review:
    state: ReviewState | None
    by: str | None = None
    at: datetime | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Change:
    seq: int
    key: str
    kind: str
    handled: bool


@dataclass(frozen=True)
class Publication:
    idempotency_key: str
    key: str
    publisher: str
    state: str
    attempts: int
    resume_token: str | None
    url: str | None
    last_error: str | None
    updated_at: datetime
    record: PublishedVideo | None


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

    def set_selection(self, key: str, clip_ids: list[str] | None, *, handled: bool = False) -> None:
        """Fix the clips and their order (None returns to automatic ranking)."""
        value = json.dumps(clip_ids, ensure_ascii=False) if clip_ids else None
        self._update(key, selected_clip_ids=value)
        self.record_change(key, "selection", handled=handled)

    def update_settings(self, key: str, settings: ProjectSettings) -> None:
        self._update(key, settings=settings.model_dump_json())

    def set_script_override(
        self, key: str, script: VideoScript | None, *, handled: bool = False
    ) -> None:
        """Replace the project's script with a creator's edit (None goes back to the writer).
        `handled` says the caller re-renders it itself (the re-render sensor then does not)."""
        self._update(key, script_override=script.model_dump_json() if script else None)
        self.record_change(key, "script", handled=handled)

    # ---- changes ----------------------------------------------------------------------

    def record_change(self, key: str, kind: str, *, handled: bool = False) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(
                changes_table.insert().values(
                    key=key, kind=kind, handled=handled, created_at=datetime.now(UTC)
                )
            )
            inserted = result.inserted_primary_key
            assert inserted is not None
            return int(inserted[0])

    def changes_after(self, seq: int, limit: int = 100) -> list[Change]:
        query = (
            sa.select(changes_table)
            .where(changes_table.c.seq > seq)
            .order_by(changes_table.c.seq)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [
                Change(r["seq"], r["key"], r["kind"], bool(r["handled"]))
                for r in conn.execute(query).mappings()
            ]

    # ---- review -----------------------------------------------------------------------

    def set_review(
        self, key: str, state: ReviewState, *, by: str | None = None, reason: str | None = None
    ) -> None:
        """Record a review decision (who, when, why); `pending` when a new render awaits one."""
        self._update(
            key,
            review_state=state,
            review_by=by,
            review_at=datetime.now(UTC),
            review_reason=reason,
        )

    def review(self, key: str) -> Review:
        validate_project_key(key)
        cols = projects_table.c
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(
                        cols.review_state, cols.review_by, cols.review_at, cols.review_reason
                    ).where(cols.key == key)
                )
                .mappings()
                .first()
            )
        if row is None:
            raise ProjectNotFoundError(key)
        return Review(
            row["review_state"], row["review_by"], _aware(row["review_at"]), row["review_reason"]
        )

    # ---- publications -----------------------------------------------------------------

    def publication(self, idempotency_key: str) -> Publication | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(publications_table).where(
                        publications_table.c.idempotency_key == idempotency_key
                    )
                )
                .mappings()
                .first()
            )
        return _publication(row) if row else None

    def publications(self, key: str | None = None) -> list[Publication]:
        query = sa.select(publications_table).order_by(publications_table.c.updated_at)
        if key is not None:
            query = query.where(publications_table.c.key == key)
        with self.engine.connect() as conn:
            return [_publication(r) for r in conn.execute(query).mappings()]

    def claim_publication(
        self, idempotency_key: str, key: str, publisher: str, lease_seconds: float = 1800
    ) -> Publication:
        """Start (or resume) publishing: one attempt at a time per idempotency key.

        Raises `PublicationBusyError` when another attempt started less than `lease_seconds`
        ago and has not finished, and `AlreadyPublishedError` when it is published."""
        now = datetime.now(UTC)
        table = publications_table
        with self.engine.begin() as conn:
            row = (
                conn.execute(sa.select(table).where(table.c.idempotency_key == idempotency_key))
                .mappings()
                .first()
            )
            if row is None:
                conn.execute(
                    table.insert().values(
                        idempotency_key=idempotency_key,
                        key=key,
                        publisher=publisher,
                        state="started",
                        attempts=1,
                        updated_at=now,
                    )
                )
            else:
                current = _publication(row)
                if current.state == "published":
                    raise AlreadyPublishedError(current)
                age = (now - current.updated_at).total_seconds()
                if current.state == "started" and age < lease_seconds:
                    raise PublicationBusyError(current)
                # Only the attempt that moves the row from its old state wins the claim.
                result = conn.execute(
                    table.update()
                    .where(table.c.idempotency_key == idempotency_key)
                    .where(table.c.state == current.state)
                    .where(table.c.attempts == current.attempts)
                    .values(state="started", attempts=current.attempts + 1, updated_at=now)
                )
                if result.rowcount != 1:
                    raise PublicationBusyError(current)
        claimed = self.publication(idempotency_key)
        assert claimed is not None
        return claimed

    def save_publication_token(self, idempotency_key: str, token: str) -> None:
        """Keep what lets a later attempt resume the upload (e.g. a resumable session URI)."""
        self._update_publication(idempotency_key, resume_token=token)

    def finish_publication(self, record: PublishedVideo) -> None:
        self._update_publication(
            record.idempotency_key,
            state="published",
            video_id=record.video_id,
            url=record.url,
            published_at=record.published_at,
            record=record.model_dump_json(),
            last_error=None,
        )
        self.set_status(self._publication_key(record.idempotency_key), ProjectStatus.published)

    def fail_publication(self, idempotency_key: str, error: str) -> None:
        self._update_publication(idempotency_key, state="failed", last_error=error)

    def _publication_key(self, idempotency_key: str) -> str:
        found = self.publication(idempotency_key)
        if found is None:
            raise KeyError(idempotency_key)
        return found.key

    def _update_publication(self, idempotency_key: str, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                publications_table.update()
                .where(publications_table.c.idempotency_key == idempotency_key)
                .values(updated_at=datetime.now(UTC), **values)
            )

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


class AlreadyPublishedError(RuntimeError):
    def __init__(self, publication: Publication) -> None:
        super().__init__(
            f"{publication.key} is already published on {publication.publisher}: {publication.url}"
        )
        self.publication = publication


class PublicationBusyError(RuntimeError):
    def __init__(self, publication: Publication) -> None:
        super().__init__(
            f"{publication.key} is being published on {publication.publisher} by another run "
            f"(started {publication.updated_at:%Y-%m-%d %H:%M:%S} UTC); it is not started twice"
        )
        self.publication = publication


def _publication(row: Any) -> Publication:
    raw = row["record"]
    return Publication(
        idempotency_key=row["idempotency_key"],
        key=row["key"],
        publisher=row["publisher"],
        state=row["state"],
        attempts=int(row["attempts"] or 0),
        resume_token=row["resume_token"],
        url=row["url"],
        last_error=row["last_error"],
        updated_at=_aware(row["updated_at"]) or datetime.now(UTC),
        record=PublishedVideo.model_validate_json(raw) if raw else None,
    )


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
