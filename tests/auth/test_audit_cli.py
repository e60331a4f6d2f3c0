"""``khaalga audit verify`` against a real database file."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import update

from auth.audit.model import Access, ActorKind, Purpose
from auth.audit.record import record
from gateway.db.engine import create_engine, session_factory
from gateway.db.migrate import upgrade
from gateway.db.tables import AccessEvent
from legacy.samples import CITIZENS
from tests.test_cli_and_health import run


async def _fill_then_edit(url: str, rows: int, edit: int | None) -> None:
    engine = create_engine(url)
    sessions = session_factory(engine)
    for n in range(rows):
        access = Access(CITIZENS[1], ActorKind.APP, f"app-{n}", None, None, ("a",), Purpose.LOOKUP)
        await record(sessions, access)
    if edit is not None:
        async with sessions.begin() as session:
            await session.execute(
                update(AccessEvent).where(AccessEvent.seq == edit).values(purpose="DELIVERY")
            )
    await engine.dispose()


def test_audit_verify_passes_then_names_the_edited_row(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'khaalga.sqlite'}"
    upgrade(url)
    asyncio.run(_fill_then_edit(url, 4, None))
    sound = run("audit", "verify", var=tmp_path, KHAALGA_DATABASE_URL=url)
    assert sound.returncode == 0, sound.stderr
    assert "access log ok: 4 rows" in sound.stdout
    asyncio.run(_fill_then_edit(url, 0, 3))
    broken = run("audit", "verify", var=tmp_path, KHAALGA_DATABASE_URL=url)
    assert broken.returncode == 1
    assert "broken at row 3" in broken.stderr and "edited" in broken.stderr
