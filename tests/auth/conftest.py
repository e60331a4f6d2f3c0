"""The real app over ASGI for the auth tests, with agencies faked in memory
and a catalog in which ARCH-001 keeps its workflow in the gateway."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from auth.audit.model import Access, ActorKind, Purpose
from auth.principal import Principal, PrincipalKind
from gateway.app import create_app
from gateway.catalog.loader import load_catalog
from gateway.settings import ROOT, Settings
from legacy.samples import CITIZENS, sample_form
from tests.support.gateway import Api, token_for
from tests.test_api import fake_answers

WORKFLOW_SERVICE = "ARCH-001"
# These tests fetch many forms anonymously; rate limits are tested elsewhere.
NO_RATE_LIMITS = ",".join(
    f"{kind}=100000/minute" for kind in ("anonymous", "citizen", "officer", "app")
)
FORM_QUERY = """query($code: ID!) { service(code: $code) { form { fields {
  name type required pattern min max maxLength options { value } } } } }"""
SUBMIT = """mutation($code: ID!, $form: JSON!) {
  submitApplication(serviceCode: $code, form: $form) { application { id status } } }"""


def lookup_access(n: int) -> Access:
    """The data-access row of a citizen's n-th lookup through an app."""
    return Access(
        citizen=CITIZENS[1], actor_kind=ActorKind.CITIZEN, actor=f"app-{n}", agency="URB",
        service_code="URB-001", fields=("registerNumber",), purpose=Purpose.LOOKUP,
        request_id=f"req-{n}",
    )  # fmt: skip


def workflow_catalog(tmp_path: Path) -> Path:
    target = tmp_path / "catalog"
    shutil.copytree(ROOT / "catalog", target)
    path = target / "arch.toml"
    text = path.read_text(encoding="utf-8")
    marker = f'code = "{WORKFLOW_SERVICE}"\n'
    assert marker in text
    path.write_text(text.replace(marker, marker + "gateway_workflow = true\n"), encoding="utf-8")
    return target


class Gateway:
    """One running app and a token per principal."""

    def __init__(self, http: httpx.AsyncClient, app: Starlette, settings: Settings) -> None:
        self.http = http
        self.state = app.state  # sessions, worker
        self.settings = settings
        self.anonymous = Api(http)

    def as_(self, principal: Principal) -> Api:
        return Api(self.http, token_for(self.settings, principal))

    def citizen(self, index: int = 0) -> Api:
        return self.as_(
            Principal(PrincipalKind.CITIZEN, CITIZENS[index], None, frozenset({"applications"}))
        )

    def officer(self, agency: str, who: str = "officer-1") -> Api:
        return self.as_(Principal(PrincipalKind.OFFICER, who, agency))

    def operator(self) -> Api:
        return self.as_(Principal(PrincipalKind.OPERATOR, "operator-1"))

    def app(self, client_id: str = "app-1") -> Api:
        return self.as_(Principal(PrincipalKind.APP, client_id, None, frozenset({"catalog:read"})))

    async def form(self, code: str, citizen: int = 0) -> dict[str, Any]:
        fields = (await self.anonymous.data(FORM_QUERY, {"code": code}))["service"]["form"]
        return sample_form(fields["fields"], CITIZENS[citizen])

    async def file(self, code: str, citizen: int = 0) -> str:
        form = await self.form(code, citizen)
        payload = await self.citizen(citizen).data(SUBMIT, {"code": code, "form": form})
        app_id: str = payload["submitApplication"]["application"]["id"]
        return app_id


@pytest.fixture
async def gateway(database_url: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    catalog_dir = workflow_catalog(tmp_path)
    catalog = load_catalog(catalog_dir)
    settings = Settings(var_dir=tmp_path, database_url=database_url, catalog_dir=catalog_dir,
                        worker=False, rate_limits=NO_RATE_LIMITS)  # fmt: skip
    app = create_app(settings, connector_overrides=fake_answers(catalog))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://khaalga.test") as http,
    ):
        yield Gateway(http, app, settings)
