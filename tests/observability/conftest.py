"""The real app on in-memory agencies, reached over ASGI, for the metrics and log tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from connectors.base import BackendRequest
from connectors.memory import MemoryConnector
from gateway.app import create_app
from gateway.catalog.loader import Catalog
from gateway.catalog.model import ServiceKind
from gateway.db.migrate import upgrade_async
from gateway.settings import ROOT, Settings
from legacy.fakedata import fake_value
from legacy.samples import CITIZENS, sample_form
from tests.support.gateway import Api, citizen_token

ALICE = CITIZENS[0]
FORM = """query Form($code: ID!) { service(code: $code) { form { fields {
  name type required pattern min max maxLength options { value } } } } }"""
LOOKUP = """query Look($c: ID!, $i: JSON!) { lookup(serviceCode: $c, input: $i) }"""
SUBMIT = """mutation File($c: ID!, $f: JSON!) { submitApplication(serviceCode: $c, form: $f) {
  application { id } } }"""


def memory_agencies(catalog: Catalog) -> dict[str, MemoryConnector]:
    def answer(request: BackendRequest) -> dict[str, object]:
        service = catalog.service(request.service_code)
        assert service is not None
        return {
            service.binding.response[f.name]: fake_value(f.type, request.service_code + f.name)
            for f in service.result
        }

    return {a.code: MemoryConnector(a.code, answer) for a in catalog.agencies}


@dataclass
class Gateway:
    app: Starlette
    api: Api
    settings: Settings
    agencies: dict[str, MemoryConnector]

    def citizen(self, register_number: str = ALICE) -> Api:
        return self.api.as_(citizen_token(self.settings, register_number))

    async def form(self, code: str, register_number: str = ALICE) -> dict[str, Any]:
        fields = (await self.api.data(FORM, {"code": code}))["service"]["form"]["fields"]
        return sample_form(fields, register_number)

    async def scrape(self) -> str:
        response = await self.api.http.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        return response.text


def first_service(catalog: Catalog, kind: ServiceKind, agency: str | None = None) -> str:
    return next(
        s.code
        for s in catalog.services()
        if s.kind is kind and (agency is None or s.agency_code == agency)
    )


@pytest.fixture
async def gateway(tmp_path: Path, catalog: Catalog) -> AsyncIterator[Gateway]:
    # The worker stays off so submitted applications wait in the outbox.
    settings = Settings(var_dir=tmp_path, catalog_dir=ROOT / "catalog", worker=False)
    await upgrade_async(settings.database_url)
    agencies = memory_agencies(catalog)
    app = create_app(settings, connector_overrides=agencies)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://khaalga.test") as http,
    ):
        yield Gateway(app, Api(http), settings, agencies)
