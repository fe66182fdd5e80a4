"""The answers the service has acknowledged, in a real database (SQLAlchemy Core).

SQLite (a file path or sqlite:///...) is the embedded default, in WAL mode. Its `synchronous`
setting is NORMAL by default: in WAL mode a commit is written to the log before it returns, so a
killed service (kill -9) loses nothing it acknowledged; only a crash of the machine itself (power,
kernel) can lose the last commits, and never corrupts the file. FULL (`--sqlite-sync full`) also
fsyncs every commit, surviving that too at the cost of one disk flush per request.
PostgreSQL (postgresql://...) commits durably (synchronous_commit on, its default).

An answer is acknowledged only after add() has committed it; a failed add() stores nothing.
One service process per database: the per-student state lives in that process.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
from pathlib import Path

from sqlalchemy import (BigInteger, Column, DateTime, Index, Integer, MetaData, SmallInteger, String, Table, Text,
                        create_engine, event, func, insert, select, text)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from cmkt.errors import CmktError

metadata = MetaData()
answers = Table(
    "cmkt_answers", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("student_id", String(128), nullable=False),
    Column("skill", String(256), nullable=False),       # the run's skill label, as posted
    Column("skill_index", Integer, nullable=False),     # the model's index of that skill
    Column("correct", SmallInteger, nullable=False),
    Column("timestamp", DateTime(timezone=True), nullable=True),   # when it was answered (optional)
    Column("received", DateTime(timezone=True), nullable=False),   # when the service stored it
    Index("cmkt_answers_student", "student_id", "id"),
)
service = Table(
    "cmkt_service", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
SQLITE_SYNC = ("normal", "full")


def database_url(db: str) -> str:
    """--db value -> SQLAlchemy URL: a file path is SQLite; postgresql:// uses psycopg (v3)."""
    if "://" not in db:
        return "sqlite:///" + str(Path(db).expanduser().resolve())
    scheme = db.split("://", 1)[0]
    if scheme in ("postgresql", "postgres"):
        return "postgresql+psycopg://" + db.split("://", 1)[1]
    if scheme.startswith("postgresql+") or scheme == "sqlite":
        return db
    raise CmktError(f"--db {scheme}://...: use a file path (SQLite), sqlite:///FILE or postgresql://...")


class Store:
    def __init__(self, db: str, sqlite_sync: str = "normal"):
        if sqlite_sync not in SQLITE_SYNC:
            raise CmktError(f"--sqlite-sync {sqlite_sync!r}: choose normal or full")
        url = database_url(db)
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise CmktError(f"--db {db!r} is not a database URL or file path") from None
        self.shown = parsed.render_as_string(hide_password=True)
        self.dialect = parsed.get_backend_name()
        self._write = threading.Lock() if self.dialect == "sqlite" else None   # SQLite has one writer
        kwargs = {"pool_pre_ping": True}
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:" and not Path(parsed.database).parent.is_dir():
                raise CmktError(f"--db {db}: the folder {Path(parsed.database).parent} does not exist")
            kwargs = {"connect_args": {"check_same_thread": False, "timeout": 30}}
        else:
            kwargs.update(pool_size=8, max_overflow=8)
        try:
            self.engine = create_engine(url, **kwargs)
        except (ArgumentError, ImportError, SQLAlchemyError) as e:
            raise CmktError(f"--db {self.shown}: {_short(e)}") from None
        if self.dialect == "sqlite":
            sync = sqlite_sync.upper()

            @event.listens_for(self.engine, "connect")
            def _pragmas(conn, _record):
                cur = conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA synchronous={sync}")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()
        try:
            metadata.create_all(self.engine)
        except SQLAlchemyError as e:
            raise CmktError(f"cannot open the database {self.shown}: {_short(e)}") from None

    def claim(self, run_identity: dict) -> None:
        """Tie the database to a skill space: a database holding another run's skills is refused
        (its stored answers would mean other skills)."""
        want = json.dumps(run_identity["skill_labels"])
        with self._writing(), self.engine.begin() as conn:
            have = conn.execute(select(service.c.value).where(service.c.key == "skill_labels")).scalar()
            if have is None:
                conn.execute(insert(service), [{"key": "skill_labels", "value": want}])
            elif have != want:
                n = len(json.loads(have))
                raise CmktError(f"--db {self.shown} holds answers for another skill space ({n} skills); "
                                "use a new database for this run")

    def add(self, student: str, rows: list[dict]) -> None:
        """Store one student's answers (skill, skill_index, correct, timestamp) in one transaction;
        returns once committed."""
        now = dt.datetime.now(dt.timezone.utc)
        values = [{"student_id": student, "received": now, **r} for r in rows]
        with self._writing(), self.engine.begin() as conn:
            conn.execute(insert(answers), values)

    def history(self, student: str) -> tuple[list[int], list[int]]:
        """The student's stored (skill indices, responses) in the order they were acknowledged."""
        q = (select(answers.c.skill_index, answers.c.correct)
             .where(answers.c.student_id == student).order_by(answers.c.id))
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [r[0] for r in rows], [r[1] for r in rows]

    def count(self, student: str | None = None) -> int:
        q = select(func.count()).select_from(answers)
        if student is not None:
            q = q.where(answers.c.student_id == student)
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar())

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            return False

    def close(self) -> None:
        self.engine.dispose()

    def _writing(self):
        return self._write if self._write is not None else contextlib.nullcontext()


def _short(e: Exception) -> str:
    text_ = str(getattr(e, "orig", None) or e).strip().splitlines()
    return (text_[0] if text_ else type(e).__name__)[:300]
