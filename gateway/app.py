"""The Starlette application: GraphQL, health probes, auth, and the
delivery worker running beside the server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, cast

import strawberry
from graphql import DocumentNode
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp
from starlette.websockets import WebSocket
from strawberry.exceptions import ConnectionRejectionError
from strawberry.extensions import SchemaExtension
from strawberry.types.unset import UNSET, UnsetType

from auth.apps.program import developer_program
from auth.issuers import token_validator
from auth.middleware import AuthenticationMiddleware
from auth.principal import ANONYMOUS
from auth.tokens import InvalidToken, IssuerUnavailable, TokenValidator
from connectors.base import Connector
from gateway.applications import ApplicationStore
from gateway.catalog.loader import load_catalog
from gateway.db.engine import create_engine, session_factory
from gateway.events import application_events
from gateway.http.body_limit import BodyLimitMiddleware
from gateway.http.content_type import JsonContentTypeMiddleware
from gateway.http.public_answer import PublicAnswers
from gateway.http.response_cache import ResponseCache
from gateway.http.view import SpecGraphQL
from gateway.observability.metrics import GatewayMetrics
from gateway.observability.setup import Observability
from gateway.persisted import DocumentStore, document_store, trusted_documents
from gateway.rate_limit import BUDGET, RateLimitConfigError, RateLimiter, RateLimitMiddleware
from gateway.settings import Settings, SettingsError
from gateway.wiring import build_registry, build_sandbox_registry, build_worker
from schema import precompile
from schema.context import Context, Services
from schema.document_cache import DocumentCache, validation_cache
from schema.limits.cost import operation_cost
from schema.limits.exposure import exposure_extensions
from schema.limits.extensions import limit_extensions
from schema.root import build_schema
from schema.store_errors import StoreUnavailable

DOCUMENT_CACHE_SIZE = 1024  # distinct documents kept validated
_UNSET = cast(UnsetType, UNSET)  # strawberry types the sentinel as Any


class KhaalgaGraphQL(SpecGraphQL[Context, None]):
    def __init__(
        self,
        services: Services,
        *,
        extensions: list[Callable[[], SchemaExtension]] | None = None,
        hide_suggestions: bool = False,
        validator: TokenValidator,
        **kwargs: Any,
    ) -> None:
        schema = build_schema(
            services.catalog, extensions=extensions or [], hide_suggestions=hide_suggestions
        )
        super().__init__(schema, **kwargs)
        self.services = services
        self.validator = validator

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        return Context(
            principal=request.scope.get("principal", ANONYMOUS),
            services=self.services,
            budget=request.scope.get(BUDGET),
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Browsers cannot set headers on a WebSocket, so graphql-transport-ws
        clients send the token in ``connection_init``; it is checked exactly
        like a bearer header, and a bad one closes the socket (4403)."""
        params = context.connection_params or {}
        header = params.get("Authorization") or params.get("authorization")
        if header is None:
            return _UNSET  # the upgrade request's header (or none) decides
        scheme, _, token = str(header).partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ConnectionRejectionError()
        try:
            context.principal = await self.validator.principal(token.strip())
        except (InvalidToken, IssuerUnavailable) as exc:
            raise ConnectionRejectionError() from exc
        return _UNSET


def schema_extensions(
    settings: Settings, documents: DocumentStore
) -> list[Callable[[], SchemaExtension]]:
    """Trusted documents first (they supply the document), then the limits,
    then the caches: parsing and validation depend on the document alone (cost,
    which reads variables, runs after validation), and a rejected document is
    never cached. Validation was half of the catalog query's CPU time."""
    return [
        trusted_documents(settings.trusted_documents, documents),
        *limit_extensions(settings.limits),
        DocumentCache,
        validation_cache(DOCUMENT_CACHE_SIZE),
        *exposure_extensions(
            introspection=settings.introspection_enabled, mask_errors=not settings.development
        ),
        # Last, so its answer is in place before masking sees the error:
        # strawberry leaves the extensions' on_operation in reverse order.
        StoreUnavailable,
    ]


def catalog_response_cache(
    graphql: KhaalgaGraphQL, settings: Settings, metrics: GatewayMetrics
) -> ResponseCache:
    """Catalog-only answers, shared by all callers (gateway/http/response_cache.py)."""
    assert isinstance(graphql.schema, strawberry.Schema)
    core = graphql.schema._schema

    def cost_of(document: DocumentNode, name: str | None, variables: Mapping[str, Any]) -> int:
        return operation_cost(core, document, name, variables, settings.limits.default_list_size)

    return ResponseCache(
        lambda: graphql.services.catalog,
        cost_of,
        max_bytes=settings.response_cache_bytes,
        max_document_bytes=settings.limits.document_bytes,
        observe=metrics.response_cache_lookup,
    )


class Gateway(Starlette):
    """Starlette with ``front`` wrapped around its whole middleware stack, error
    handling included; ``state``, routes and lifespan are Starlette's as ever."""

    def __init__(self, *, front: Middleware | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.front = front

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        if self.front is None:
            return stack
        cls, args, kwargs = self.front
        front: ASGIApp = cls(stack, *args, **kwargs)
        return front


def create_app(
    settings: Settings,
    *,
    connector_overrides: Mapping[str, Connector] | None = None,
    public_answers: bool = True,
) -> Starlette:
    """``public_answers``: serve cached public answers in front of the app
    (gateway/http/public_answer.py); off only to compare with the full path."""
    catalog = load_catalog(settings.catalog_dir)
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    registry = build_registry(settings, catalog, connector_overrides)
    sandbox = build_sandbox_registry(catalog)  # sandbox apps' agencies, shared with the worker
    events = application_events(settings.redis_url, settings.redis_prefix)
    program = developer_program(settings, sessions, catalog)
    services = Services(
        catalog=catalog, store=ApplicationStore(sessions), registry=registry, events=events,
        sandbox=sandbox, apps=program.store,
    )  # fmt: skip
    worker = build_worker(settings, sessions, catalog, registry, events, sandbox)
    validator = token_validator(settings, program.issuers)
    documents = document_store(settings)
    graphql = KhaalgaGraphQL(
        services,
        validator=validator,
        extensions=schema_extensions(settings, documents),
        hide_suggestions=not settings.introspection_enabled,
        graphql_ide="graphiql" if settings.graphiql_enabled else None,
    )
    observability = Observability.build(settings, registry)
    services.access_log.observer = observability.metrics
    observability.instrument(graphql.schema)
    if settings.response_cache_bytes:
        graphql.response_cache = catalog_response_cache(graphql, settings, observability.metrics)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_: Request) -> Response:
        # Each agency's breaker is reported but does not make the gateway
        # unready: with one agency down the twelve others are still served,
        # and its citizens' submissions are still stored for later delivery.
        agencies = {report.agency: report.breaker_state for report in await registry.health()}
        try:
            async with engine.connect() as connection:
                await asyncio.wait_for(connection.execute(text("SELECT 1")), 2.0)
        except Exception:  # any failure to reach the database means not ready
            return JSONResponse({"database": "down", "agencies": agencies}, status_code=503)
        return JSONResponse({"database": "up", "agencies": agencies})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        assert isinstance(graphql.schema, strawberry.Schema)
        await precompile.precompile_all(graphql.schema, documents.allowlist)
        task = asyncio.create_task(worker.run()) if settings.worker else None
        try:
            yield
        finally:
            if task is not None:
                # Let the round under way finish; cancel it only if it overstays.
                worker.stop()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(task, settings.timeouts.total)
            await services.store.aclose()  # submissions queued for a group commit
            await services.access_log.aclose()
            await registry.aclose()
            await limiter.aclose()
            await documents.aclose()
            await events.aclose()
            await engine.dispose()

    try:
        limiter = RateLimiter.build(
            settings.rate_limits,
            settings.redis_url,
            settings.redis_prefix,
            settings.cost_limits,
            min_cost=settings.limits.cost,
        )
    except RateLimitConfigError as exc:
        raise SettingsError(str(exc)) from exc
    recorder = observability.recorder(
        ("/graphql", "/healthz", "/readyz", "/metrics", *program.paths)
    )
    front = None
    # It takes, on /graphql, the decisions of the middleware below (all of which
    # cover /graphql). With tracing on, each request has a server span: the
    # full path opens it.
    if public_answers and graphql.response_cache is not None and not observability.tracing:
        front = Middleware(
            PublicAnswers, cache=graphql.response_cache, recorder=recorder, limiter=limiter,
            max_body_bytes=settings.max_body_bytes,
        )  # fmt: skip
    app = Gateway(
        routes=[
            Route("/graphql", graphql),  # the view answers other methods: 405 problem
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            observability.route(sessions),
            *program.routes,  # the developer program's OAuth endpoints, when it has a key
        ],
        middleware=[
            observability.middleware(recorder),
            Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes),
            Middleware(JsonContentTypeMiddleware, paths=("/graphql",)),
            Middleware(AuthenticationMiddleware, validator=validator, skip=program.paths),
            # The token endpoint too, per client address: it checks a secret
            # against the database on every call.
            Middleware(RateLimitMiddleware, limiter=limiter, paths=("/graphql", *program.paths)),
        ],
        lifespan=lifespan,
        front=front,
    )
    app.state.services = services
    app.state.schema = graphql.schema  # for `khaalga documents check`
    app.state.sandbox_registry = sandbox
    app.state.worker = worker
    app.state.sessions = sessions
    app.state.metrics = observability.metrics
    return app
