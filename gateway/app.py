"""The Starlette application: GraphQL, health probes, auth, and the
delivery worker running beside the server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from auth.dev_issuer import load_or_create_key
from auth.middleware import AuthenticationMiddleware
from auth.principal import ANONYMOUS
from auth.tokens import TokenValidator
from connectors.base import Connector
from connectors.delivery import DeliveryWorker
from connectors.registry import ConnectorRegistry
from gateway.applications import ApplicationStore
from gateway.catalog.loader import load_catalog
from gateway.db.engine import create_engine, session_factory
from gateway.rate_limit import RateLimitConfigError, RateLimiter, RateLimitMiddleware
from gateway.settings import Settings, SettingsError
from schema.context import Context, Services
from schema.root import build_schema


class KhaalgaGraphQL(GraphQL[Context, None]):
    def __init__(self, services: Services, **kwargs: Any) -> None:
        super().__init__(build_schema(services.catalog), **kwargs)
        self.services = services

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        return Context(principal=request.scope.get("principal", ANONYMOUS), services=self.services)


def create_app(
    settings: Settings, *, connector_overrides: Mapping[str, Connector] | None = None
) -> Starlette:
    catalog = load_catalog(settings.catalog_dir)
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    registry = ConnectorRegistry(
        catalog,
        settings.backends,
        timeouts=settings.timeouts,
        concurrency=settings.agency_concurrency,
        breaker_threshold=settings.breaker_threshold,
        breaker_ttl=settings.breaker_ttl,
        overrides=connector_overrides,
    )
    services = Services(catalog=catalog, store=ApplicationStore(sessions), registry=registry)
    worker = DeliveryWorker(
        sessions,
        catalog,
        registry,
        max_attempts=settings.max_attempts,
        poll_interval=settings.delivery_poll,
        status_interval=settings.status_poll,
    )
    graphql = KhaalgaGraphQL(services, graphql_ide="graphiql" if settings.development else None)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_: Request) -> Response:
        try:
            async with engine.connect() as connection:
                await asyncio.wait_for(connection.execute(text("SELECT 1")), 2.0)
        except Exception:  # any failure to reach the database means not ready
            return JSONResponse({"database": "down"}, status_code=503)
        return JSONResponse({"database": "up"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(worker.run()) if settings.worker else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await registry.aclose()
            await limiter.aclose()
            await engine.dispose()

    try:
        limiter = RateLimiter.build(settings.rate_limits, settings.redis_url, settings.redis_prefix)
    except RateLimitConfigError as exc:
        raise SettingsError(str(exc)) from exc
    validator = TokenValidator.development(load_or_create_key(settings.var_dir / "keys"))
    if not settings.development:
        # The OpenID Connect resource server is its own issue; until then a
        # production gateway trusts no issuer rather than the dev one.
        validator = TokenValidator({})
    app = Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
        ],
        middleware=[
            Middleware(AuthenticationMiddleware, validator=validator),
            Middleware(RateLimitMiddleware, limiter=limiter, paths=("/graphql",)),
        ],
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.worker = worker
    app.state.sessions = sessions
    return app
