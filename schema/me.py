"""``me``: who the gateway takes the caller to be."""

from __future__ import annotations

import strawberry

from auth.permissions import Public
from auth.principal import Principal
from auth.principal import PrincipalKind as PrincipalKindModel

PrincipalKind = strawberry.enum(
    PrincipalKindModel, description="CITIZEN OFFICER APP OPERATOR ANONYMOUS"
)


@strawberry.type(description="The caller as the gateway sees them / Таныг хэн гэж танив")
class Me:
    kind: PrincipalKind  # type: ignore[valid-type]
    subject: str | None = strawberry.field(description="Register number, officer id or client id")
    agency: str | None
    scopes: list[str]
    sandbox: bool = strawberry.field(
        description="A sandbox app: its calls never reach an agency / Туршилтын апп"
    )

    @classmethod
    def of(cls, principal: Principal) -> Me:
        return cls(
            kind=principal.kind,
            subject=principal.subject,
            agency=principal.agency,
            scopes=sorted(principal.scopes),
            sandbox=principal.sandbox,
        )


@strawberry.type
class MeQuery:
    @strawberry.field(description="Who you are to the gateway", permission_classes=[Public])
    def me(self, info: strawberry.Info) -> Me:
        return Me.of(info.context.principal)
