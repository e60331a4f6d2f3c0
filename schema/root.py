"""The hand-written root fields, and ``build_schema`` joining both halves."""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Callable, Iterable
from typing import Any, cast

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from auth.permissions import (
    ApplicationReader,
    CitizenOnly,
    OfficerOrOperator,
    Public,
    ServiceApplicant,
    ServiceCaller,
)
from auth.permissions.enforce import deny_unguarded, guard
from auth.principal import PrincipalKind
from gateway.applications import NotCancellable, Status, decode_cursor, encode_cursor
from gateway.catalog.loader import Catalog
from gateway.catalog.model import Service as ServiceModel
from gateway.catalog.model import ServiceKind as ServiceKindModel
from gateway.catalog.model import Text
from schema import errors, operations, paging
from schema.access_log import AccessLogQuery, record_application_list, record_application_reads
from schema.apps import AppsMutation, AppsQuery
from schema.catalog_view import CatalogView
from schema.execution_context import AcyclicExecutionContext
from schema.extension_hooks import HookPlans, PreparedExtensionsRunner
from schema.generated import service_fields
from schema.limits.time_budget import bound_root_fields
from schema.me import MeQuery
from schema.officers import OfficerMutation, OfficerQuery
from schema.outbox import OutboxQuery
from schema.selection import selects
from schema.subscriptions import Subscription
from schema.types import (
    Agency,
    AgencyHealth,
    Application,
    ApplicationConnection,
    ApplicationEdge,
    PageInfo,
    Service,
    ServiceConnection,
    ServiceEdge,
    ServiceFilter,
    SubmitApplicationPayload,
)

_WORD = re.compile(r"\w+")


def _words(service: ServiceModel) -> frozenset[str]:
    text = " ".join(
        (service.name.mn, service.name.en, service.description.mn, service.description.en)
    )
    return frozenset(w.casefold() for w in _WORD.findall(text))


def _matches(service: ServiceModel, query: str) -> bool:
    words = _words(service)
    return all(
        any(word.startswith(term) for word in words)
        for term in (t.casefold() for t in _WORD.findall(query))
    )


def _offset_cursor(index: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{index}".encode()).decode()


def _offset(cursor: str) -> int | None:
    """The index of the row the cursor names; ``None`` when it names none."""
    try:
        kind, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        index = int(value)
    except (ValueError, UnicodeDecodeError):
        return None
    return index if kind == "offset" and index >= 0 else None


_NOT_OBJECT = Text(mn="JSON объект байх ёстой", en="Must be a JSON object")


@strawberry.type
class BaseQuery:
    @strawberry.field(
        description="All city organisations / Бүх байгууллага", permission_classes=[Public]
    )
    def agencies(self, info: strawberry.Info) -> list[Agency]:
        return info.context.services.view.agency_list  # type: ignore[no-any-return]

    @strawberry.field(permission_classes=[Public])
    def agency(self, info: strawberry.Info, code: strawberry.ID) -> Agency | None:
        return info.context.services.view.agencies.get(str(code))  # type: ignore[no-any-return]

    @strawberry.field(
        description="Services, filtered and paged (Relay connection)", permission_classes=[Public]
    )
    def services(
        self,
        info: strawberry.Info,
        filter: ServiceFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> ServiceConnection:
        catalog: Catalog = info.context.services.catalog
        view: CatalogView = info.context.services.view
        chosen = list(catalog.services())
        if filter is not None:
            if filter.agency:
                chosen = [s for s in chosen if s.agency_code == filter.agency]
            if filter.category:
                chosen = [s for s in chosen if s.category == filter.category]
            if filter.kind:
                chosen = [s for s in chosen if s.kind == filter.kind]
            if filter.search:
                chosen = [s for s in chosen if _matches(s, filter.search)]
        # An empty cursor has always meant the first page here.
        last = paging.position(after or None, _offset)
        start = 0 if last is None else last + 1
        size = paging.page_size(first, 50)
        window = chosen[start : start + size]
        edges = [
            ServiceEdge(cursor=_offset_cursor(start + i), node=view.services[s.code])
            for i, s in enumerate(window)
        ]
        return ServiceConnection(
            total_count=len(chosen),
            edges=edges,
            page_info=PageInfo.of([e.cursor for e in edges], start + size < len(chosen), start > 0),
        )

    @strawberry.field(permission_classes=[Public])
    def service(self, info: strawberry.Info, code: strawberry.ID) -> Service | None:
        return info.context.services.view.services.get(str(code))  # type: ignore[no-any-return]

    @strawberry.field(
        description="Generic LOOKUP for form-driven clients", permission_classes=[ServiceCaller]
    )
    async def lookup(self, info: strawberry.Info, service_code: strawberry.ID, input: JSON) -> JSON:
        service = operations.find_service(info.context, str(service_code), ServiceKindModel.LOOKUP)
        if not isinstance(input, dict):
            raise errors.bad_user_input({"input": _NOT_OBJECT})
        values = await operations.lookup(info, service, input)
        return cast(JSON, operations.jsonable(values))

    @strawberry.field(permission_classes=[ApplicationReader])
    async def application(self, info: strawberry.Info, id: strawberry.ID) -> Application | None:
        principal = operations.require_authenticated(info.context)
        app = await info.context.services.store.get(principal, str(id))
        if app is not None:
            await record_application_reads(info.context, [app], with_form=False)
        return Application.of(app) if app else None

    @strawberry.field(
        description="The calling citizen's applications, newest first",
        permission_classes=[CitizenOnly],
    )
    async def my_applications(
        self,
        info: strawberry.Info,
        status: Status | None = None,  # registered with strawberry as ApplicationStatus
        first: int | None = None,
        after: str | None = None,
    ) -> ApplicationConnection:
        principal = operations.require_citizen(info.context)
        size = paging.page_size(first, 20)
        position = paging.position(after, decode_cursor)
        # A citizen's Application has no form field; its history is loaded
        # only when asked for.
        history = selects(info, "edges", "node", "history")
        page = await info.context.services.store.list(
            principal, status, size, position, form=False, history=history
        )
        await record_application_list(info.context)
        edges = [
            ApplicationEdge(cursor=encode_cursor(a), node=Application.of(a, history=history))
            for a in page.items
        ]
        return ApplicationConnection(
            total_count=page.total,
            edges=edges,
            page_info=PageInfo.of([e.cursor for e in edges], page.has_next, after is not None),
        )

    @strawberry.field(
        description="Each agency back end's health (officers and operators)",
        permission_classes=[OfficerOrOperator],
    )
    async def agency_health(self, info: strawberry.Info) -> list[AgencyHealth]:
        principal = operations.require_authenticated(info.context)
        if principal.kind not in (PrincipalKind.OPERATOR, PrincipalKind.OFFICER):
            raise errors.forbidden()
        view: CatalogView = info.context.services.view
        reports = await info.context.services.registry.health()
        return [
            AgencyHealth(
                agency=view.agencies[r.agency],
                backend_kind=r.backend_kind,
                status=r.status,
                breaker_state=r.breaker_state,
                last_error=r.last_error,
                latency_p50_ms=r.latency_p50_ms,
                latency_p95_ms=r.latency_p95_ms,
            )
            for r in reports
        ]


@strawberry.type
class BaseMutation:
    @strawberry.mutation(
        description="Generic APPLICATION submission for form-driven clients",
        permission_classes=[ServiceApplicant],
    )
    async def submit_application(
        self,
        info: strawberry.Info,
        service_code: strawberry.ID,
        form: JSON,
        idempotency_key: str | None = None,
    ) -> SubmitApplicationPayload:
        service = operations.find_service(
            info.context, str(service_code), ServiceKindModel.APPLICATION
        )
        if not isinstance(form, dict):
            raise errors.bad_user_input({"form": _NOT_OBJECT})
        app = await operations.submit(info.context, service, form, idempotency_key)
        return SubmitApplicationPayload(application=Application.of(app))

    @strawberry.mutation(
        description="Cancel an application not yet in review", permission_classes=[CitizenOnly]
    )
    async def cancel_application(self, info: strawberry.Info, id: strawberry.ID) -> Application:
        principal = operations.require_citizen(info.context)
        try:
            app = await info.context.services.store.cancel(principal, str(id))
        except NotCancellable as exc:
            if exc.sent:
                raise errors.conflict(
                    "Өргөдлийг байгууллагад илгээсэн тул энд цуцлах боломжгүй; "
                    "байгууллагад хандаж буцаан авна уу",
                    "The application has been sent to the agency and can no longer be "
                    "cancelled here; ask the agency to withdraw it",
                ) from exc
            raise errors.conflict(
                "Шийдвэрлэгдсэн өргөдлийг цуцлах боломжгүй",
                "A decided application can no longer be cancelled",
            ) from exc
        if app is None:
            raise errors.not_found("Өргөдөл", "Application")
        return Application.of(app)


class KhaalgaSchema(strawberry.Schema):
    @functools.cached_property
    def _hook_plans(self) -> HookPlans:
        return HookPlans()

    def create_extensions_runner(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension]
    ) -> SchemaExtensionsRunner:
        return PreparedExtensionsRunner(execution_context, extensions, self._hook_plans)

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Errors we raised on purpose carry a code and are answers, not
        # faults; logging them would only repeat user mistakes (and their
        # tracebacks) into the logs. Everything else is logged as strawberry does.
        unexpected = [e for e in errors if not (e.extensions or {}).get("code")]
        super().process_errors(unexpected, execution_context)

    @staticmethod
    def remove_field_suggestion(error: GraphQLError) -> None:
        # Called for every error when ``disable_field_suggestions`` is set.
        # Strawberry strips only "Cannot query field" suggestions; arguments,
        # types and enum values ("Did you mean 'ADMIN'?") would still spell
        # out the schema that disabled introspection hides.
        head, found, _ = error.message.partition(" Did you mean")
        if found:
            error.message = head.strip()


def build_schema(
    catalog: Catalog,
    *,
    extensions: Iterable[Callable[[], SchemaExtension]] = (),
    hide_suggestions: bool = False,
) -> strawberry.Schema:
    queries, mutations = service_fields(catalog)
    # A service's own field: the citizen's lookup or application, or an app's
    # holding that service's scopes (the policy is bound to the service).
    code_of = {s.graphql_field: s.code for s in catalog.services()}
    for field in queries.values():
        guard(field, ServiceCaller(code_of[field.graphql_name]))
    for field in mutations.values():
        guard(field, ServiceApplicant(code_of[field.graphql_name]))
    query_bases = (BaseQuery, OutboxQuery, MeQuery, AccessLogQuery, OfficerQuery, AppsQuery)
    mutation_bases = (BaseMutation, OfficerMutation, AppsMutation)
    query: Any = strawberry.type(type("Query", query_bases, queries))
    mutation: Any = strawberry.type(type("Mutation", mutation_bases, mutations))
    deny_unguarded(query)  # deny by default: a root field nobody gave a policy is closed
    deny_unguarded(mutation)
    deny_unguarded(Subscription)
    # After the policies, so the deadline is outermost; never on Subscription,
    # whose streams are meant to stay open.
    bound_root_fields(query)
    bound_root_fields(mutation)
    config = StrawberryConfig(disable_field_suggestions=hide_suggestions)
    return KhaalgaSchema(
        query=query,
        mutation=mutation,
        subscription=Subscription,
        extensions=extensions,
        config=config,
        execution_context_class=AcyclicExecutionContext,
    )
