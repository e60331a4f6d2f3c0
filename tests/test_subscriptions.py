"""``applicationStatusChanged`` over graphql-transport-ws against the served app."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from connectors.errors import BackendUnavailable
from connectors.memory import MemoryConnector
from gateway.app import create_app
from gateway.catalog.loader import Catalog
from gateway.db.migrate import upgrade_async
from gateway.settings import ROOT, Settings
from legacy.samples import CITIZENS, sample_form
from tests.support.gateway import Api, citizen_token, served
from tests.test_api import FORM_QUERY, SUBMIT, fake_answers

SUBSCRIBE = """subscription($id: ID!) {
  applicationStatusChanged(id: $id) { status reference history { status } } }"""


@dataclass
class Rig:
    url: str
    api: Api
    settings: Settings
    backends: dict[str, MemoryConnector]


@pytest.fixture
async def rig(tmp_path: Path, catalog: Catalog) -> AsyncIterator[Rig]:
    settings = Settings(
        var_dir=tmp_path, catalog_dir=ROOT / "catalog", rate_limits="",
        delivery_poll=0.05, status_poll=0.1, delivery_backoff=0.05,
    )  # fmt: skip
    await upgrade_async(settings.database_url)
    backends = fake_answers(catalog)
    async with (
        served(create_app(settings, connector_overrides=backends)) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        yield Rig(url.replace("http", "ws") + "/graphql", Api(http), settings, backends)


async def _socket(rig: Rig, register_number: str) -> ClientConnection:
    socket = await connect(rig.url, subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
    token = citizen_token(rig.settings, register_number)
    await socket.send(json.dumps({"type": "connection_init",
                                  "payload": {"Authorization": f"Bearer {token}"}}))  # fmt: skip
    assert json.loads(await socket.recv())["type"] == "connection_ack"
    return socket


async def _subscribe(socket: ClientConnection, app_id: str) -> None:
    payload = {"query": SUBSCRIBE, "variables": {"id": app_id}}
    await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))


async def _message(socket: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), 10))
    return message


async def test_the_owner_hears_each_status_until_the_final_one(rig: Rig, catalog: Catalog) -> None:
    service = next(s for s in catalog.services() if s.kind.value == "APPLICATION")
    backend = rig.backends[service.agency_code]
    backend.fail_with = BackendUnavailable(service.agency_code, "down")  # hold delivery back
    alice = rig.api.as_(citizen_token(rig.settings, CITIZENS[0]))
    fields = (await rig.api.data(FORM_QUERY, {"code": service.code}))["service"]["form"]["fields"]
    payload = await alice.data(SUBMIT, {"code": service.code, "form": sample_form(fields)})
    app_id = payload["submitApplication"]["application"]["id"]

    socket = await _socket(rig, CITIZENS[0])
    await _subscribe(socket, app_id)
    await asyncio.sleep(0.2)
    backend.fail_with = None  # the agency is back: the worker delivers
    delivered = await _message(socket)
    assert delivered["type"] == "next"
    event = delivered["payload"]["data"]["applicationStatusChanged"]
    assert event["status"] == "DELIVERED" and event["reference"]
    backend.statuses[event["reference"]] = ("ISSUED", None)
    issued = await _message(socket)
    assert issued["payload"]["data"]["applicationStatusChanged"]["status"] == "ISSUED"
    assert (await _message(socket))["type"] == "complete"  # final: the stream ends
    await socket.close()


async def test_another_citizen_cannot_subscribe(rig: Rig, catalog: Catalog) -> None:
    service = next(s for s in catalog.services() if s.kind.value == "APPLICATION")
    alice = rig.api.as_(citizen_token(rig.settings, CITIZENS[0]))
    fields = (await rig.api.data(FORM_QUERY, {"code": service.code}))["service"]["form"]["fields"]
    payload = await alice.data(SUBMIT, {"code": service.code, "form": sample_form(fields)})
    app_id = payload["submitApplication"]["application"]["id"]
    socket = await _socket(rig, CITIZENS[1])
    await _subscribe(socket, app_id)
    answer = await _message(socket)
    assert answer["type"] in ("error", "next")
    errors = answer["payload"] if answer["type"] == "error" else answer["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "NOT_FOUND"
    await socket.close()


async def test_a_bad_token_closes_the_socket(rig: Rig) -> None:
    socket = await connect(rig.url, subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
    await socket.send(json.dumps({"type": "connection_init",
                                  "payload": {"Authorization": "Bearer forged"}}))  # fmt: skip
    with pytest.raises(ConnectionClosed) as closed:
        await socket.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
