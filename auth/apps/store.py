"""Registered apps in the gateway database (tables ``apps``, ``app_secrets``).

Every change first *updates* the app's row (its ``updated_at``): on
PostgreSQL that takes the row lock until commit, on SQLite the writer lock
at once, so two operators changing one app cannot interleave, and SQLite
never has to upgrade a reading transaction to a writing one.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Callable, Iterable

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth.apps import secrets as client_secrets
from auth.apps.model import (
    App,
    AppEnvironment,
    AppNotFound,
    AppSecret,
    AppStatus,
    Credentials,
    IssuedSecret,
    WrongStatus,
)
from auth.principal import Principal, PrincipalKind, Quota
from gateway import keyset_cursor
from gateway.clock import aware, utcnow
from gateway.db.tables import DeveloperApp, DeveloperAppSecret

APPROVABLE = frozenset({AppStatus.PENDING, AppStatus.SUSPENDED})
SUSPENDABLE = frozenset({AppStatus.ACTIVE})
LIVE = frozenset({AppStatus.PENDING, AppStatus.ACTIVE, AppStatus.SUSPENDED})
_CURSOR = "app:"
_CLIENT_ID = re.compile(r"(app|sbx)_[0-9a-f]{20}")


def encode_cursor(app: App) -> str:
    return keyset_cursor.encode(app.created_at, app.client_id, tag=_CURSOR)


def decode_cursor(cursor: str) -> tuple[dt.datetime, str] | None:
    """``None`` when the cursor is not one of ours."""
    return keyset_cursor.decode(cursor, tag=_CURSOR)


def _app(row: DeveloperApp) -> App:
    return App(
        client_id=row.client_id,
        name=row.name,
        description=row.description,
        purpose=row.purpose,
        environment=AppEnvironment(row.environment),
        status=AppStatus(row.status),
        scopes=frozenset(row.scopes),
        quota=Quota(row.quota_requests, row.quota_cost),
        owner_kind=PrincipalKind(row.owner_kind),
        owner=row.owner,
        created_at=aware(row.created_at),
        approved_at=aware(row.approved_at) if row.approved_at else None,
        secrets=tuple(
            AppSecret(
                id=s.id,
                prefix=s.prefix,
                created_at=aware(s.created_at),
                expires_at=aware(s.expires_at) if s.expires_at else None,
                revoked_at=aware(s.revoked_at) if s.revoked_at else None,
            )
            for s in row.secrets
        ),
    )


def _new_secret(client_id: str, now: dt.datetime) -> tuple[IssuedSecret, DeveloperAppSecret]:
    issued, hashed, prefix = client_secrets.new_secret()
    row = DeveloperAppSecret(
        id=issued.id, client_id=client_id, hash=hashed, prefix=prefix, created_at=now
    )
    return issued, row


def new_client_id(environment: AppEnvironment) -> str:
    # The environment shows in the id so a sandbox app is never mistaken
    # for a production one in logs, support mail or configuration.
    mark = "sbx" if environment is AppEnvironment.SANDBOX else "app"
    return f"{mark}_{secrets.token_hex(10)}"


def _well_formed(client_id: str) -> bool:
    # Anything else names no app; it never reaches the database, where a
    # stray NUL or an endless string would be an error rather than a miss.
    return _CLIENT_ID.fullmatch(client_id) is not None


class AppStore:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self._listeners: list[Callable[[str], None]] = []

    def on_change(self, listener: Callable[[str], None]) -> None:
        """``listener(client_id)`` after every committed change (cache invalidation)."""
        self._listeners.append(listener)

    async def register(
        self,
        *,
        name: str,
        description: str,
        purpose: str | None,
        environment: AppEnvironment,
        scopes: Iterable[str],
        owner: Principal,
    ) -> tuple[App, IssuedSecret]:
        """An operator's app is active at once; anyone else's waits for approval."""
        if not owner.subject:
            raise ValueError("an app's owner must be identified")
        now = self.clock()
        active = owner.kind is PrincipalKind.OPERATOR
        row = DeveloperApp(
            client_id=new_client_id(environment), name=name, description=description,
            purpose=purpose, environment=environment.value,
            status=(AppStatus.ACTIVE if active else AppStatus.PENDING).value,
            scopes=sorted(set(scopes)), owner_kind=owner.kind.value, owner=owner.subject,
            created_at=now, updated_at=now, approved_at=now if active else None,
        )  # fmt: skip
        issued, secret = _new_secret(row.client_id, now)
        row.secrets = [secret]
        async with self.sessions.begin() as session:
            session.add(row)
        for listener in self._listeners:
            listener(row.client_id)
        return _app(row), issued

    async def get(self, client_id: str) -> App | None:
        if not _well_formed(client_id):
            return None
        async with self.sessions() as session:
            row = await session.get(DeveloperApp, client_id)
            return _app(row) if row is not None else None

    async def credentials(self, client_id: str) -> Credentials | None:
        if not _well_formed(client_id):
            return None
        async with self.sessions() as session:
            row = await session.get(DeveloperApp, client_id)
            if row is None:
                return None
            return Credentials(_app(row), {s.id: s.hash for s in row.secrets})

    async def list(
        self,
        *,
        status: AppStatus | None = None,
        owner: Principal | None = None,
        first: int = 20,
        after: tuple[dt.datetime, str] | None = None,
    ) -> keyset_cursor.Page[App]:
        """Newest first; ``owner`` narrows it to the apps that principal registered."""
        base = select(DeveloperApp)
        if status is not None:
            base = base.where(DeveloperApp.status == status.value)
        if owner is not None:
            base = base.where(
                DeveloperApp.owner_kind == owner.kind.value, DeveloperApp.owner == owner.subject
            )
        async with self.sessions() as session:
            total = await session.scalar(select(func.count()).select_from(base.subquery())) or 0
            query = keyset_cursor.page(
                base, DeveloperApp.created_at, DeveloperApp.client_id, after, first
            )
            rows = list((await session.scalars(query)).all())
        return keyset_cursor.Page.of([_app(r) for r in rows], first, int(total))

    async def approve(self, client_id: str) -> App:
        def change(row: DeveloperApp, now: dt.datetime) -> None:
            _require(row, APPROVABLE)
            row.status = AppStatus.ACTIVE.value
            row.approved_at = row.approved_at or now

        return await self._change(client_id, change)

    async def suspend(self, client_id: str) -> App:
        def change(row: DeveloperApp, now: dt.datetime) -> None:
            _require(row, SUSPENDABLE)
            row.status = AppStatus.SUSPENDED.value

        return await self._change(client_id, change)

    async def revoke(self, client_id: str) -> App:
        def change(row: DeveloperApp, now: dt.datetime) -> None:
            _require(row, LIVE)
            row.status = AppStatus.REVOKED.value
            for secret in row.secrets:
                secret.revoked_at = secret.revoked_at or now

        return await self._change(client_id, change)

    async def set_quota(self, client_id: str, quota: Quota) -> App:
        def change(row: DeveloperApp, now: dt.datetime) -> None:
            _require(row, LIVE)
            row.quota_requests, row.quota_cost = quota.requests, quota.cost

        return await self._change(client_id, change)

    async def rotate(self, client_id: str, grace: dt.timedelta) -> tuple[App, IssuedSecret]:
        """A new secret; the usable ones keep working for ``grace`` (none: they stop now)."""
        issued: list[IssuedSecret] = []

        def change(row: DeveloperApp, now: dt.datetime) -> None:
            _require(row, LIVE)
            until = now + grace
            for secret in row.secrets:
                if secret.revoked_at is None and (
                    secret.expires_at is None or aware(secret.expires_at) > until
                ):
                    secret.expires_at = until
            new, secret_row = _new_secret(row.client_id, now)
            row.secrets.append(secret_row)
            issued.append(new)

        app = await self._change(client_id, change)
        return app, issued[0]

    async def revoke_secret(self, client_id: str, secret_id: str) -> App:
        def change(row: DeveloperApp, now: dt.datetime) -> None:
            secret = next((s for s in row.secrets if s.id == secret_id), None)
            if secret is None:
                raise AppNotFound(secret_id)
            secret.revoked_at = secret.revoked_at or now

        return await self._change(client_id, change)

    async def _change(
        self, client_id: str, change: Callable[[DeveloperApp, dt.datetime], None]
    ) -> App:
        if not _well_formed(client_id):
            raise AppNotFound(client_id)
        now = self.clock()
        async with self.sessions.begin() as session:
            touched = await session.execute(
                update(DeveloperApp)
                .where(DeveloperApp.client_id == client_id)
                .values(updated_at=now)
                .execution_options(synchronize_session=False)
            )
            if touched.rowcount == 0:  # type: ignore[attr-defined]
                raise AppNotFound(client_id)
            row = await session.get(DeveloperApp, client_id, populate_existing=True)
            assert row is not None  # locked above
            change(row, now)
            await session.flush()
            app = _app(row)
        for listener in self._listeners:
            listener(client_id)
        return app


def _require(row: DeveloperApp, allowed: frozenset[AppStatus]) -> None:
    status = AppStatus(row.status)
    if status not in allowed:
        raise WrongStatus(status)
