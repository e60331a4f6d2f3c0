"""The operator-facing edges: health probes and the ``khaalga`` command."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from auth.dev_issuer import load_or_create_key
from auth.principal import PrincipalKind
from auth.tokens import TokenValidator
from connectors.base import Action, BackendRequest, BackendResponse, Connector
from connectors.errors import BackendUnavailable
from gateway.app import create_app
from gateway.persisted import document_hash
from gateway.settings import ROOT, Settings

KHAALGA = [sys.executable, "-m", "gateway.cli"]


def run(*args: str, var: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "KHAALGA_VAR_DIR": str(var), "KHAALGA_ENV": "development", **env}
    return subprocess.run(
        [*KHAALGA, *args], capture_output=True, text=True, env=environ, timeout=60
    )


class Down(Connector):
    async def send(self, request: BackendRequest) -> BackendResponse:
        raise BackendUnavailable("LAND", "connection refused")

    async def aclose(self) -> None:
        pass


async def probe(settings: Settings, path: str, trip: str | None = None) -> httpx.Response:
    overrides = {trip: Down()} if trip else None
    app = create_app(settings, connector_overrides=overrides)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://k") as http,
    ):
        if trip:
            connector = app.state.services.registry.connector(trip)
            request = BackendRequest(trip, "X-1", "x", Action.SUBMIT, {}, idempotency_key="k")
            for _ in range(settings.breaker_threshold):
                with contextlib.suppress(BackendUnavailable):
                    await connector.send(request)
        return await http.get(path)


async def test_healthz_and_readyz_when_the_database_is_up(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path, worker=False)
    assert (await probe(settings, "/healthz")).status_code == 200
    ready = await probe(settings, "/readyz")
    assert ready.status_code == 200
    assert ready.json()["database"] == "up"
    assert set(ready.json()["agencies"].values()) == {"CLOSED"}
    assert len(ready.json()["agencies"]) == 13


async def test_readyz_reports_an_open_breaker_and_stays_ready(tmp_path: Path) -> None:
    ready = await probe(Settings(var_dir=tmp_path, worker=False), "/readyz", trip="LAND")
    assert ready.status_code == 200
    agencies = ready.json()["agencies"]
    assert agencies.pop("LAND") == "OPEN"
    assert set(agencies.values()) == {"CLOSED"}


async def test_readyz_is_503_while_the_database_is_unreachable(tmp_path: Path) -> None:
    settings = Settings(
        var_dir=tmp_path, worker=False, database_url="postgresql+asyncpg://nobody@127.0.0.1:9/none"
    )
    assert (await probe(settings, "/healthz")).status_code == 200
    ready = await probe(settings, "/readyz")
    assert (ready.status_code, ready.json()["database"]) == (503, "down")


def test_catalog_check_names_file_service_and_problem(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    shutil.copytree(ROOT / "catalog", catalog)
    land = catalog / "land.toml"
    land.write_text(land.read_text(encoding="utf-8").replace("fee = 0", "fee = -5", 1), "utf-8")
    result = run("catalog", "check", var=tmp_path, KHAALGA_CATALOG_DIR=str(catalog))
    assert result.returncode != 0
    assert "land.toml: service LAND-001: fee: Input should be greater than or equal to 0" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_catalog_check_passes_on_the_real_catalog(tmp_path: Path) -> None:
    result = run("catalog", "check", var=tmp_path)
    assert result.returncode == 0
    assert "13 agencies, 123 services" in result.stdout


async def test_token_prints_a_citizen_token_on_its_last_line(tmp_path: Path) -> None:
    result = run("token", "--citizen", "УБ99010112", var=tmp_path)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    validator = TokenValidator.development(load_or_create_key(tmp_path / "keys"))
    principal = await validator.principal(token)
    assert (principal.kind, principal.subject) == (PrincipalKind.CITIZEN, "УБ99010112")


async def test_token_for_an_officer_and_refusals(tmp_path: Path) -> None:
    officer = run("token", "--officer", "LAND", var=tmp_path)
    validator = TokenValidator.development(load_or_create_key(tmp_path / "keys"))
    principal = await validator.principal(officer.stdout.strip().splitlines()[-1])
    assert (principal.kind, principal.agency) == (PrincipalKind.OFFICER, "LAND")
    assert run("token", "--citizen", "УБ99023012", var=tmp_path).returncode != 0
    assert run("token", "--officer", "NOPE", var=tmp_path).returncode != 0
    production = run("token", "--citizen", "УБ99010112", var=tmp_path, KHAALGA_ENV="production")
    assert production.returncode != 0
    assert "only in development" in production.stderr


def test_catalog_check_catches_a_dialect_typo(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    shutil.copytree(ROOT / "catalog", catalog)
    urb = catalog / "urb.toml"
    text = urb.read_text(encoding="utf-8").replace("paging =", "pagin =", 1)
    urb.write_text(text, encoding="utf-8")
    result = run("catalog", "check", var=tmp_path, KHAALGA_CATALOG_DIR=str(catalog))
    assert result.returncode != 0
    assert "agency URB: backend.dialect: " in result.stderr
    assert "pagin" in result.stderr


def test_processes_starting_together_agree_on_one_dev_key(tmp_path: Path) -> None:
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(4) as pool:
        keys = list(pool.map(_dev_key_pem, [tmp_path] * 8))
    assert len(set(keys)) == 1
    assert [p.name for p in (tmp_path / "keys").iterdir()] == ["dev-issuer.pem"]


def _dev_key_pem(var: Path) -> bytes:
    return bytes(load_or_create_key(var / "keys").as_pem(private=True))


def test_documents_check_prints_what_does_not_run_on_this_schema(tmp_path: Path) -> None:
    good = 'query Land { agency(code: "LAND") { code } }'
    stale = 'query Gone {\n  agency(code: "LAND") { noSuchField }\n}'
    path = tmp_path / "persisted-documents.json"
    path.write_text(json.dumps({document_hash(d): d for d in (good, stale)}), encoding="utf-8")
    result = run("documents", "check", str(path), var=tmp_path)
    assert result.returncode != 0
    assert f"{document_hash(stale)} 2:26: Cannot query field 'noSuchField'" in result.stdout
    assert document_hash(good) not in result.stdout
    assert "2 checked, 1 do not run on this schema" in result.stderr
    # From the setting, and all good: exit 0.
    path.write_text(json.dumps({document_hash(good): good}), encoding="utf-8")
    result = run("documents", "check", var=tmp_path, KHAALGA_TRUSTED_DOCUMENTS_FILE=str(path))
    assert (result.returncode, result.stdout.strip()) == (
        0,
        "1 checked, 0 do not run on this schema",
    )


def test_documents_check_needs_a_file(tmp_path: Path) -> None:
    result = run("documents", "check", var=tmp_path)
    assert result.returncode != 0 and "KHAALGA_TRUSTED_DOCUMENTS_FILE" in result.stderr
