"""The developer program over GraphQL: developers register apps and manage
their secrets; operators approve, suspend, revoke and set quotas.

A client secret appears in exactly two answers, ``registerApp`` and
``rotateAppSecret``, and nowhere else ever: the gateway keeps only its hash.
Someone else's app looks exactly like a missing one (NOT_FOUND), so client
ids cannot be probed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TypeVar

import strawberry

from auth.apps import model
from auth.apps.model import AppNotFound, IssuedSecret, WrongStatus
from auth.apps.rules import grace_problem, quota_problems, registration_problems
from auth.apps.store import AppStore, decode_cursor, encode_cursor
from auth.permissions import DeveloperOrOperator, OperatorOnly
from auth.principal import Principal, PrincipalKind, Quota
from gateway.keyset_cursor import Page
from schema import errors, paging
from schema.context import Context
from schema.types import PageInfo

T = TypeVar("T")

AppStatus = strawberry.enum(
    model.AppStatus, description="PENDING (awaiting an operator), ACTIVE, SUSPENDED, REVOKED"
)
AppEnvironment = strawberry.enum(
    model.AppEnvironment, description="SANDBOX (never reaches an agency) or PRODUCTION"
)


@strawberry.type(description="An app's own rate-limit budgets; null: the default for apps")
class AppQuota:
    requests: str | None = strawberry.field(description="Requests, e.g. 1200/minute")
    cost: str | None = strawberry.field(description="Operation cost, e.g. 50000/hour")


@strawberry.type(description="A client secret, by its id and first characters only")
class AppSecret:
    id: strawberry.ID
    prefix: str
    created_at: dt.datetime
    expires_at: dt.datetime | None = strawberry.field(description="End of a rotation's grace")
    revoked_at: dt.datetime | None


@strawberry.type(description="An app of the developer program / Хөгжүүлэгчийн программын апп")
class App:
    client_id: strawberry.ID
    name: str
    description: str
    purpose: str | None
    environment: AppEnvironment  # type: ignore[valid-type]
    status: AppStatus  # type: ignore[valid-type]
    scopes: list[str]
    quota: AppQuota
    secrets: list[AppSecret]
    created_at: dt.datetime
    approved_at: dt.datetime | None

    @classmethod
    def of(cls, app: model.App) -> App:
        return cls(
            client_id=strawberry.ID(app.client_id),
            name=app.name,
            description=app.description,
            purpose=app.purpose,
            environment=app.environment,
            status=app.status,
            scopes=sorted(app.scopes),
            quota=AppQuota(requests=app.quota.requests, cost=app.quota.cost),
            secrets=[
                AppSecret(
                    id=strawberry.ID(s.id),
                    prefix=s.prefix,
                    created_at=s.created_at,
                    expires_at=s.expires_at,
                    revoked_at=s.revoked_at,
                )
                for s in app.secrets
            ],
            created_at=app.created_at,
            approved_at=app.approved_at,
        )


@strawberry.type
class AppEdge:
    cursor: str
    node: App


@strawberry.type
class AppConnection:
    total_count: int
    edges: list[AppEdge]
    page_info: PageInfo


@strawberry.type(
    description="The client secret, shown this once only / Нууц үгийг ганц л удаа харуулна"
)
class AppCredentials:
    app: App
    client_secret: str
    secret_id: strawberry.ID


@strawberry.input
class RegisterAppInput:
    name: str
    description: str
    environment: AppEnvironment  # type: ignore[valid-type]
    scopes: list[str] = strawberry.field(
        description="catalog:read, applications:read, applications:write, service:<CODE>"
    )
    purpose: str | None = strawberry.field(
        default=None, description="Why the app needs this access, for the operator's review"
    )


def _store(context: Context) -> AppStore:
    store = context.services.apps
    if store is None:
        raise errors.not_found("Апп", "App")
    return store


def _credentials(app: model.App, issued: IssuedSecret) -> AppCredentials:
    return AppCredentials(
        app=App.of(app), client_secret=issued.value, secret_id=strawberry.ID(issued.id)
    )


def _connection(page: Page[model.App], after: str | None) -> AppConnection:
    edges = [AppEdge(cursor=encode_cursor(a), node=App.of(a)) for a in page.items]
    return AppConnection(
        total_count=page.total,
        edges=edges,
        page_info=PageInfo.of([e.cursor for e in edges], page.has_next, after is not None),
    )


async def _changed(action: Callable[[], Awaitable[T]]) -> T:
    """A store change, its refusals turned into GraphQL errors."""
    try:
        return await action()
    except AppNotFound as exc:
        raise errors.not_found("Апп", "App") from exc
    except WrongStatus as exc:
        status = exc.status.value
        raise errors.conflict(
            f"{status} төлөвтэй аппад энэ үйлдлийг хийх боломжгүй",
            f"An app in status {status} cannot be changed this way",
        ) from exc


async def _own(context: Context, client_id: str) -> AppStore:
    """The store, once the caller is the app's owner or an operator."""
    store = _store(context)
    principal: Principal = context.principal
    if principal.kind is not PrincipalKind.OPERATOR:
        app = await store.get(client_id)
        if app is None or not app.owned_by(principal):
            raise errors.not_found("Апп", "App")
    return store


@strawberry.type
class AppsQuery:
    @strawberry.field(
        description="The apps you registered, newest first / Таны бүртгүүлсэн аппууд",
        permission_classes=[DeveloperOrOperator],
    )
    async def my_apps(
        self, info: strawberry.Info, first: int = 20, after: str | None = None
    ) -> AppConnection:
        size = paging.page_size(first, 20)
        position = paging.position(after, decode_cursor)
        page = await _store(info.context).list(
            owner=info.context.principal, first=size, after=position
        )
        return _connection(page, after)

    @strawberry.field(
        description="Every registered app, newest first (operators)",
        permission_classes=[OperatorOnly],
    )
    async def apps(
        self,
        info: strawberry.Info,
        status: AppStatus | None = None,  # type: ignore[valid-type]
        first: int = 20,
        after: str | None = None,
    ) -> AppConnection:
        size = paging.page_size(first, 20)
        position = paging.position(after, decode_cursor)
        page = await _store(info.context).list(
            status=model.AppStatus(status) if status else None, first=size, after=position
        )
        return _connection(page, after)


@strawberry.type
class AppsMutation:
    @strawberry.mutation(
        description=(
            "Register an app: an operator's is active at once, a developer's waits for "
            "approval. The client secret is in this answer only."
        ),
        permission_classes=[DeveloperOrOperator],
    )
    async def register_app(self, info: strawberry.Info, input: RegisterAppInput) -> AppCredentials:
        context: Context = info.context
        problems = registration_problems(
            context.services.catalog, input.name, input.description, input.purpose, input.scopes
        )
        if problems:
            raise errors.bad_user_input(problems)
        app, issued = await _store(context).register(
            name=input.name.strip(),
            description=input.description,
            purpose=input.purpose,
            environment=model.AppEnvironment(input.environment),
            scopes=input.scopes,
            owner=context.principal,
        )
        return _credentials(app, issued)

    @strawberry.mutation(
        description="Let a pending (or suspended) app obtain tokens (operators)",
        permission_classes=[OperatorOnly],
    )
    async def approve_app(self, info: strawberry.Info, client_id: strawberry.ID) -> App:
        store = _store(info.context)
        return App.of(await _changed(lambda: store.approve(str(client_id))))

    @strawberry.mutation(
        description="Stop an app's tokens until it is approved again (operators)",
        permission_classes=[OperatorOnly],
    )
    async def suspend_app(self, info: strawberry.Info, client_id: strawberry.ID) -> App:
        store = _store(info.context)
        return App.of(await _changed(lambda: store.suspend(str(client_id))))

    @strawberry.mutation(
        description="End an app and every secret of it, for good (operators)",
        permission_classes=[OperatorOnly],
    )
    async def revoke_app(self, info: strawberry.Info, client_id: strawberry.ID) -> App:
        store = _store(info.context)
        return App.of(await _changed(lambda: store.revoke(str(client_id))))

    @strawberry.mutation(
        description="Set an app's own budgets, e.g. 1200/minute; null: the default (operators)",
        permission_classes=[OperatorOnly],
    )
    async def set_app_quota(
        self,
        info: strawberry.Info,
        client_id: strawberry.ID,
        requests: str | None = None,
        cost: str | None = None,
    ) -> App:
        quota = Quota(requests.strip() if requests else None, cost.strip() if cost else None)
        problems = quota_problems(quota)
        if problems:
            raise errors.bad_user_input(problems)
        store = _store(info.context)
        return App.of(await _changed(lambda: store.set_quota(str(client_id), quota)))

    @strawberry.mutation(
        description=(
            "A new client secret (in this answer only); the current ones keep working for "
            "graceSeconds (app owner or operator)"
        ),
        permission_classes=[DeveloperOrOperator],
    )
    async def rotate_app_secret(
        self, info: strawberry.Info, client_id: strawberry.ID, grace_seconds: int = 0
    ) -> AppCredentials:
        problems = grace_problem(grace_seconds)
        if problems:
            raise errors.bad_user_input(problems)
        store = await _own(info.context, str(client_id))
        grace = dt.timedelta(seconds=grace_seconds)
        app, issued = await _changed(lambda: store.rotate(str(client_id), grace))
        return _credentials(app, issued)

    @strawberry.mutation(
        description="Revoke one client secret and its tokens (app owner or operator)",
        permission_classes=[DeveloperOrOperator],
    )
    async def revoke_app_secret(
        self, info: strawberry.Info, client_id: strawberry.ID, secret_id: strawberry.ID
    ) -> App:
        store = await _own(info.context, str(client_id))
        try:
            app = await store.revoke_secret(str(client_id), str(secret_id))
        except AppNotFound as exc:
            raise errors.not_found("Нууц үг", "Secret") from exc
        return App.of(app)
