"""What one data-access event says."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class ActorKind(StrEnum):
    """Who touched the data: a principal kind, or the gateway itself."""

    CITIZEN = "CITIZEN"
    OFFICER = "OFFICER"
    APP = "APP"
    OPERATOR = "OPERATOR"
    GATEWAY = "GATEWAY"


class Purpose(StrEnum):
    """Why, one value per code path that touches personal data."""

    # Values are only ever added: each one is part of the rows' hashed content.
    LOOKUP = "LOOKUP"  # a lookup at an agency, by the citizen or by an app for them
    SUBMISSION = "SUBMISSION"  # an application filed (or re-sent), by the citizen or an app
    OWN_APPLICATION = "OWN_APPLICATION"  # the citizen read their application
    APPLICATION_LIST = "APPLICATION_LIST"  # the citizen listed their applications
    FOLLOW_UP = "FOLLOW_UP"  # an app read or followed an application it filed for the citizen
    CASE_HANDLING = "CASE_HANDLING"  # an officer read an application of their agency
    STATUS_DECISION = "STATUS_DECISION"  # an officer changed an application's status
    OPERATIONS = "OPERATIONS"  # an operator read an application
    DELIVERY = "DELIVERY"  # the gateway delivered the application to the agency
    # The gateway sent the form but the agency did not confirm it (timeout,
    # 5xx, refusal): it may still have received the data.
    DELIVERY_ATTEMPT = "DELIVERY_ATTEMPT"


GATEWAY_ACTOR = "khaalga-delivery"


@dataclass(frozen=True, slots=True)
class Access:
    citizen: str  # whose data
    actor_kind: ActorKind
    actor: str
    agency: str | None
    service_code: str | None
    fields: tuple[str, ...]  # field names only
    purpose: Purpose
    request_id: str | None = None


def delivery_access(
    citizen: str,
    agency: str,
    service_code: str,
    form: Mapping[str, object],
    purpose: Purpose = Purpose.DELIVERY,
) -> Access:
    """The gateway's own delivery (or unconfirmed attempt) of an
    application's form to its agency."""
    return Access(
        citizen=citizen,
        actor_kind=ActorKind.GATEWAY,
        actor=GATEWAY_ACTOR,
        agency=agency,
        service_code=service_code,
        fields=tuple(sorted(form)),
        purpose=purpose,
    )
