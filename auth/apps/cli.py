"""``khaalga apps``: operators manage the developer program from a shell.

Changes made here reach running gateways within their app cache time
(``KHAALGA_APP_CACHE_SECONDS``). A client secret is printed once, by
``register`` and ``rotate``, and exists nowhere afterwards but with its owner.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from auth.apps.model import App, AppEnvironment, AppNotFound, AppStatus, IssuedSecret, WrongStatus
from auth.apps.rules import grace_problem, quota_problems, registration_problems
from auth.apps.store import AppStore
from auth.principal import Principal, PrincipalKind, Quota
from gateway.catalog.model import Text

T = TypeVar("T")
CLI_OPERATOR = Principal(PrincipalKind.OPERATOR, "khaalga-cli")


def _store_call(action: Callable[[AppStore], Awaitable[T]]) -> T:
    from gateway.cli import _settings
    from gateway.db.engine import create_engine, session_factory

    settings = _settings()

    async def run() -> T:
        engine = create_engine(settings.database_url)
        try:
            return await action(AppStore(session_factory(engine)))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except AppNotFound as exc:
        raise click.ClickException("no such app (or secret)") from exc
    except WrongStatus as exc:
        raise click.ClickException(f"an app in status {exc.status} cannot do that") from exc


def _refuse(problems: dict[str, Text]) -> None:
    if problems:
        lines = [f"{field}: {text.en} / {text.mn}" for field, text in sorted(problems.items())]
        raise click.UsageError("\n".join(lines))


def _show(app: App) -> None:
    quota = f"requests={app.quota.requests or '-'} cost={app.quota.cost or '-'}"
    scopes = " ".join(sorted(app.scopes))
    click.echo(f"{app.client_id}\t{app.status}\t{app.environment}\t{app.name}\t{quota}\t{scopes}")


def _show_secret(app: App, issued: IssuedSecret) -> None:
    _show(app)
    click.echo(f"secret id:     {issued.id}")
    click.echo(f"client secret: {issued.value}")
    click.echo("the client secret is shown this once; only its hash is kept")


@click.group()
def apps() -> None:
    """Developer program: registered apps and their secrets."""


@apps.command("register")
@click.option("--name", required=True)
@click.option("--description", default="", show_default=False)
@click.option(
    "--environment",
    type=click.Choice([e.value for e in AppEnvironment], case_sensitive=False),
    default=AppEnvironment.SANDBOX.value,
    show_default=True,
)
@click.option("--scope", "scopes", multiple=True, help="Repeatable: catalog:read, service:CODE…")
@click.option("--purpose", default=None)
def register(
    name: str, description: str, environment: str, scopes: tuple[str, ...], purpose: str | None
) -> None:
    """Register an app, active at once; prints its client secret once."""
    from gateway.cli import _catalog, _settings

    _refuse(registration_problems(_catalog(_settings()), name, description, purpose, scopes))
    app, issued = _store_call(
        lambda store: store.register(
            name=name.strip(), description=description, purpose=purpose,
            environment=AppEnvironment(environment.upper()), scopes=scopes, owner=CLI_OPERATOR,
        )
    )  # fmt: skip
    _show_secret(app, issued)


@apps.command("list")
@click.option(
    "--status", type=click.Choice([s.value for s in AppStatus], case_sensitive=False), default=None
)
def list_apps(status: str | None) -> None:
    """Registered apps, newest first."""
    wanted = AppStatus(status.upper()) if status else None
    page = _store_call(lambda store: store.list(status=wanted, first=10_000))
    for app in page.items:
        _show(app)
    click.echo(f"{page.total} app(s)")


@apps.command("approve")
@click.argument("client_id")
def approve(client_id: str) -> None:
    """Let a pending or suspended app obtain tokens."""
    _show(_store_call(lambda store: store.approve(client_id)))


@apps.command("suspend")
@click.argument("client_id")
def suspend(client_id: str) -> None:
    """Stop an app's tokens until it is approved again."""
    _show(_store_call(lambda store: store.suspend(client_id)))


@apps.command("revoke")
@click.argument("client_id")
def revoke(client_id: str) -> None:
    """End an app and all its secrets for good."""
    _show(_store_call(lambda store: store.revoke(client_id)))


@apps.command("rotate")
@click.argument("client_id")
@click.option("--grace", default=0, show_default=True, help="Seconds the old secrets still work.")
def rotate(client_id: str, grace: int) -> None:
    """A new client secret (printed once); the old ones end after the grace."""
    _refuse(grace_problem(grace))
    app, issued = _store_call(lambda store: store.rotate(client_id, dt.timedelta(seconds=grace)))
    _show_secret(app, issued)


@apps.command("quota")
@click.argument("client_id")
@click.option("--requests", default=None, help="e.g. 1200/minute; omit for the default")
@click.option("--cost", default=None, help="e.g. 50000/hour; omit for the default")
def quota(client_id: str, requests: str | None, cost: str | None) -> None:
    """Set an app's own rate-limit budgets."""
    wanted = Quota(requests.strip() if requests else None, cost.strip() if cost else None)
    _refuse(quota_problems(wanted))
    _show(_store_call(lambda store: store.set_quota(client_id, wanted)))
