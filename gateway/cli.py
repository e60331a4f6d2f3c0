"""The ``khaalga`` command line (click)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import uvicorn

from auth.apps.cli import apps
from gateway.catalog.loader import Catalog, CatalogError, load_catalog
from gateway.heap import settle_heap
from gateway.settings import Settings, SettingsError, from_env

# uvloop's event loop and httptools' HTTP parser (C; both come with
# uvicorn[standard]), named rather than left to "auto" so that a missing wheel
# fails at start instead of quietly serving on the pure-Python ones.
SERVER_IO: dict[str, Any] = {"loop": "uvloop", "http": "httptools"}


def _settings() -> Settings:
    try:
        return from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def _catalog(settings: Settings) -> Catalog:
    from connectors.kinds import dialect_problems

    try:
        catalog = load_catalog(settings.catalog_dir)
        problems = [p for agency in catalog.agencies for p in dialect_problems(agency)]
        if problems:
            raise CatalogError(problems)
    except CatalogError as exc:
        raise click.ClickException(
            "the catalog is broken:\n  " + "\n  ".join(exc.problems)
        ) from exc
    return catalog


@click.group()
def main() -> None:
    """Khaalga (Хаалга): one GraphQL API in front of Ulaanbaatar's e-services."""


@main.command()
@click.option("--base-port", default=8101, show_default=True, help="First simulator port.")
@click.option("--review-seconds", default=3.0, show_default=True, help="Simulated review step.")
def dev(base_port: int, review_seconds: float) -> None:
    """Embedded default: SQLite, simulated agencies, development token issuer."""
    from gateway.app import create_app
    from gateway.db.migrate import upgrade
    from legacy.topology import default_ports, embedded_endpoints

    settings = _settings()
    if not settings.development:
        raise click.ClickException("khaalga dev needs KHAALGA_ENV=development")
    catalog = _catalog(settings)
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    workdir = settings.var_dir / "legacy"
    ports = default_ports(catalog, base_port)
    endpoints = {**embedded_endpoints(catalog, workdir, ports), **settings.backends}
    settings = dataclasses.replace(settings, backends=endpoints)
    simulators = _start_simulators(settings, workdir, base_port, review_seconds)
    try:
        app = create_app(settings)
        settle_heap()
        url = f"http://{settings.host}:{settings.port}/graphql"
        click.echo(
            f"\nKhaalga serves {sum(1 for _ in catalog.services())} services of "
            f"{len(catalog.agencies)} agencies\n"
            f"  GraphiQL:   {url}\n"
            f"  demo token: .venv/bin/khaalga token --citizen УБ99010112\n"
            f"              (send it as 'Authorization: Bearer <token>')\n"
            f"  stop:       Ctrl-C\n"
        )
        # uvicorn's access log prints query strings (GET variables can hold register
        # numbers); gateway/observability writes its own, safe access line.
        uvicorn.run(
            app, host=settings.host, port=settings.port, log_level="info", access_log=False,
            **SERVER_IO,
        )  # fmt: skip
    finally:
        _stop(simulators)


def _start_simulators(
    settings: Settings, workdir: Path, base_port: int, review_seconds: float
) -> subprocess.Popen[str]:
    command = [
        sys.executable, "-m", "legacy", "--workdir", str(workdir), "--base-port", str(base_port),
        "--review-seconds", str(review_seconds), "--catalog", str(settings.catalog_dir),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    assert process.stdout is not None
    for line in process.stdout:
        click.echo(line.rstrip())
        if "simulators ready" in line:
            return process
        if time.monotonic() > deadline:
            break
    _stop(process)
    raise click.ClickException("the agency simulators did not start")


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@main.command()
def serve() -> None:
    """Production server: configuration from the environment only."""
    from gateway.app import create_app

    settings = _settings()
    _catalog(settings)
    app = create_app(settings)
    settle_heap()
    uvicorn.run(
        app, host=settings.host, port=settings.port,
        proxy_headers=True, log_level="info", access_log=False, **SERVER_IO,
    )  # fmt: skip


@main.command()
def simulators() -> None:
    """Run the simulated agency back ends alone (what ``dev`` starts)."""
    from legacy.__main__ import main as legacy_main

    legacy_main()


@main.command()
def worker() -> None:
    """Run a delivery worker process (outbox and status polling) without HTTP."""
    from gateway.db.engine import create_engine, session_factory
    from gateway.events import application_events
    from gateway.wiring import build_registry, build_worker

    settings = _settings()
    catalog = _catalog(settings)

    async def run() -> None:
        engine = create_engine(settings.database_url)
        events = application_events(settings.redis_url, settings.redis_prefix)
        registry = build_registry(settings, catalog)
        delivery = build_worker(settings, session_factory(engine), catalog, registry, events)
        try:
            await delivery.run()
        finally:
            await registry.aclose()
            await events.aclose()
            await engine.dispose()

    asyncio.run(run())


@main.command()
@click.option("--citizen", metavar="REGISTER_NUMBER", help="Token for this citizen.")
@click.option("--officer", metavar="AGENCY_CODE", help="Token for an officer of this agency.")
@click.option("--operator", is_flag=True, help="Token for a gateway operator.")
def token(citizen: str | None, officer: str | None, operator: bool) -> None:
    """Print a development token (last line of stdout)."""
    from auth import dev_issuer
    from auth.principal import Principal, PrincipalKind
    from gateway.catalog.rules import REGISTER_NUMBER, matches, register_birth_date

    settings = _settings()
    if not settings.development:
        raise click.ClickException("the development issuer exists only in development")
    if sum(bool(x) for x in (citizen, officer, operator)) != 1:
        raise click.UsageError("give exactly one of --citizen, --officer, --operator")
    if citizen is not None:
        citizen = citizen.strip().upper()
        if not matches(REGISTER_NUMBER, citizen) or register_birth_date(citizen) is None:
            raise click.BadParameter("not a valid register number", param_hint="--citizen")
        principal = dev_issuer.citizen(citizen)
    elif officer is not None:
        catalog = _catalog(settings)
        if catalog.agency(officer.upper()) is None:
            raise click.BadParameter("no such agency", param_hint="--officer")
        principal = dev_issuer.officer(officer.upper())
    else:
        principal = Principal(PrincipalKind.OPERATOR, "operator", None, frozenset({"operator"}))
    key = dev_issuer.load_or_create_key(settings.var_dir / "keys")
    click.echo(dev_issuer.issue(key, principal))


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations (Alembic) to KHAALGA_DATABASE_URL."""
    from gateway.db.migrate import upgrade

    settings = _settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    click.echo("database is up to date")


@main.group()
def catalog() -> None:
    """The service catalog."""


@catalog.command("check")
def catalog_check() -> None:
    """Load and validate every catalog file."""
    settings = _settings()
    loaded = _catalog(settings)
    services = list(loaded.services())
    click.echo(f"catalog ok: {len(loaded.agencies)} agencies, {len(services)} services")


@main.group()
def documents() -> None:
    """The operator's allow-list of trusted documents."""


@documents.command("check")
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
def documents_check(path: Path | None) -> None:
    """Parse and validate every document of PATH (default: the
    KHAALGA_TRUSTED_DOCUMENTS_FILE) against this gateway's schema, as it
    does at start-up, and print each failing one's errors in full."""
    from gateway.app import create_app
    from gateway.persisted import load_allowlist
    from schema.precompile import precompile

    settings = _settings()
    path = path or settings.trusted_documents_file
    if path is None:
        raise click.ClickException("give the documents' file or set KHAALGA_TRUSTED_DOCUMENTS_FILE")
    try:
        listed = load_allowlist(path)
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    # The schema with the extensions a request meets, limits and rules included.
    schema = create_app(dataclasses.replace(settings, trusted_documents_file=path)).state.schema

    async def check() -> int:
        failing = 0
        for sha256, document in listed.items():
            errors = await precompile(schema, document)
            failing += bool(errors)
            for error in errors:
                where = ", ".join(f"{loc.line}:{loc.column}" for loc in error.locations or ())
                click.echo(f"{sha256} {where or '-'}: {error.message}")
        return failing

    failing = asyncio.run(check())
    summary = f"{len(listed)} checked, {failing} do not run on this schema"
    if failing:
        raise click.ClickException(summary)
    click.echo(summary)


@main.group()
def outbox() -> None:
    """Durable delivery: dead letters and replay."""


@outbox.command("list")
def outbox_list() -> None:
    """Show dead-lettered deliveries with their reasons."""
    from sqlalchemy import select

    from gateway.db.engine import create_engine, session_factory
    from gateway.db.tables import OutboxItem

    async def run() -> None:
        engine = create_engine(_settings().database_url)
        async with session_factory(engine)() as session:
            rows = (
                await session.scalars(select(OutboxItem).where(OutboxItem.state == "DEAD"))
            ).all()
        await engine.dispose()
        for row in rows:
            click.echo(f"{row.id}\t{row.agency}\tattempts={row.attempts}\t{row.last_error}")
        click.echo(f"{len(rows)} dead-lettered")

    asyncio.run(run())


@outbox.command("replay")
@click.option("--id", "ids", type=int, multiple=True, help="Item id (repeatable).")
@click.option("--all", "everything", is_flag=True, help="Every dead-lettered item.")
def outbox_replay(ids: tuple[int, ...], everything: bool) -> None:
    """Put dead-lettered deliveries back in the queue."""
    from connectors.delivery import replay
    from gateway.db.engine import create_engine, session_factory

    if not ids and not everything:
        raise click.UsageError("give --id N or --all")

    async def run() -> int:
        engine = create_engine(_settings().database_url)
        try:
            return await replay(session_factory(engine), None if everything else list(ids))
        finally:
            await engine.dispose()

    click.echo(f"{asyncio.run(run())} item(s) queued again")


@main.group()
def audit() -> None:
    """The data-access log."""


@audit.command("verify")
def audit_verify() -> None:
    """Check the access log's hash chain; fail naming the first bad row."""
    from auth.audit.verify import Verdict, verify
    from gateway.db.engine import create_engine, session_factory

    async def run() -> Verdict:
        engine = create_engine(_settings().database_url)
        try:
            return await verify(session_factory(engine))
        finally:
            await engine.dispose()

    verdict = asyncio.run(run())
    if not verdict.ok:
        raise click.ClickException(
            f"access log broken at row {verdict.first_bad_seq}: {verdict.reason} "
            f"({verdict.checked} rows before it are sound)"
        )
    click.echo(f"access log ok: {verdict.checked} rows; head {verdict.head_hash}")


main.add_command(apps)  # the developer program's operator commands (auth/apps/cli.py)

if __name__ == "__main__":
    os.environ.setdefault("KHAALGA_ENV", "development")
    main()
