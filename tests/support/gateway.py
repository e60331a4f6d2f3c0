"""Run the real app for tests: in-process over ASGI, or on a loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette

from auth.dev_issuer import citizen, issue, load_or_create_key, officer
from auth.principal import Principal, PrincipalKind
from gateway.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Api:
    """A GraphQL client bound to one principal."""

    http: httpx.AsyncClient
    token: str | None = None

    async def post(self, query: str, variables: Mapping[str, Any] | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )

    async def gql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        response = await self.post(query, variables)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def data(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        body = await self.gql(query, variables)
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    def as_(self, token: str | None) -> Api:
        return Api(self.http, token)


def token_for(settings: Settings, principal: Principal) -> str:
    return issue(load_or_create_key(settings.var_dir / "keys"), principal)


def citizen_token(settings: Settings, register_number: str) -> str:
    return token_for(settings, citizen(register_number))


def officer_token(settings: Settings, agency: str) -> str:
    return token_for(settings, officer(agency))


def operator_token(settings: Settings) -> str:
    return token_for(settings, Principal(PrincipalKind.OPERATOR, "operator"))


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # pytest owns the process's signals; the server must not take them.
        yield


@contextlib.asynccontextmanager
async def served(app: Starlette) -> AsyncIterator[str]:
    """Serve ``app`` (lifespan included) on a free loopback port; yield its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
