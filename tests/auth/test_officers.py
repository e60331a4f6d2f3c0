"""Officers: exactly their agency's applications, and decisions on services
whose back end keeps no workflow (catalog ``gateway_workflow``)."""

from __future__ import annotations

from typing import Any

from tests.auth.conftest import WORKFLOW_SERVICE, Gateway

CASES = """query($status: Status) { agencyApplications(status: $status, first: 50) {
  totalCount nodes { application { id status service { code } } form } } }"""
DECIDE = """mutation($id: ID!, $status: Status!, $note: String) {
  updateApplicationStatus(id: $id, status: $status, note: $note) {
    id status history { status note } } }"""
READ = "query($id: ID!) { application(id: $id) { status history { status note } } }"
PAGE = """query($first: Int!, $after: String) { agencyApplications(first: $first, after: $after) {
  nodes { application { id } } pageInfo { hasNextPage hasPreviousPage endCursor } } }"""
LOG = "{ myDataAccessLog(first: 1) { nodes { actorKind actor purpose agency } } }"


def other_agency_service(gateway: Gateway) -> str:
    catalog = gateway.state.services.catalog
    return next(
        s.code for s in catalog.services()
        if s.kind.value == "APPLICATION" and s.agency_code != "ARCH"
    )  # fmt: skip


async def decide(gateway: Gateway, agency: str, app_id: str, status: str) -> dict[str, Any]:
    variables = {"id": app_id, "status": status, "note": f"to {status}"}
    return await gateway.officer(agency).gql(DECIDE, variables)


async def test_an_officer_sees_exactly_their_agencys_applications(gateway: Gateway) -> None:
    mine = {await gateway.file(WORKFLOW_SERVICE, c) for c in (0, 1)}
    elsewhere = await gateway.file(other_agency_service(gateway))
    cases = (await gateway.officer("ARCH").data(CASES))["agencyApplications"]
    assert {n["application"]["id"] for n in cases["nodes"]} == mine
    assert cases["totalCount"] == 2 and elsewhere not in str(cases)
    assert all(n["form"] and n["application"]["service"]["code"] == WORKFLOW_SERVICE
               for n in cases["nodes"])  # fmt: skip
    filtered = await gateway.officer("ARCH").data(CASES, {"status": "APPROVED"})
    assert filtered["agencyApplications"]["totalCount"] == 0


async def test_cases_page_by_cursor_and_refuse_a_bad_one(gateway: Gateway) -> None:
    filed = {await gateway.file(WORKFLOW_SERVICE, c) for c in (0, 1, 0)}
    officer = gateway.officer("ARCH")
    first = (await officer.data(PAGE, {"first": 2}))["agencyApplications"]
    assert first["pageInfo"]["hasNextPage"]
    after = {"first": 2, "after": first["pageInfo"]["endCursor"]}
    rest = (await officer.data(PAGE, after))["agencyApplications"]
    assert rest["pageInfo"]["hasPreviousPage"] and not rest["pageInfo"]["hasNextPage"]
    seen = [n["application"]["id"] for n in first["nodes"] + rest["nodes"]]
    assert len(seen) == 3 and set(seen) == filed
    # A corrupted cursor is refused, not answered with the first page again.
    body = await officer.gql(PAGE, {"first": 2, "after": "bm9wZQ=="})
    error = body["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["fields"] == {
        "after": {"mn": "Хуудасны заагч буруу", "en": "The cursor is not valid"}
    }
    too_many = await officer.gql(PAGE, {"first": 501})
    assert set(too_many["errors"][0]["extensions"]["fields"]) == {"first"}


async def test_decisions_land_in_the_history_and_the_log(gateway: Gateway) -> None:
    app_id = await gateway.file(WORKFLOW_SERVICE)
    for status in ("IN_REVIEW", "APPROVED", "ISSUED"):
        body = await decide(gateway, "ARCH", app_id, status)
        assert "errors" not in body, body
    seen = (await gateway.citizen(0).data(READ, {"id": app_id}))["application"]
    assert seen["status"] == "ISSUED"
    assert [(h["status"], h["note"]) for h in seen["history"]] == [
        ("SUBMITTED", None), ("IN_REVIEW", "to IN_REVIEW"), ("APPROVED", "to APPROVED"),
        ("ISSUED", "to ISSUED"),
    ]  # fmt: skip
    # The citizen's own read is newest; the officer's decision right before it.
    log = (await gateway.citizen(0).data(LOG.replace("first: 1", "first: 2")))["myDataAccessLog"]
    decision = log["nodes"][1]
    assert decision == {"actorKind": "OFFICER", "actor": "officer-1",
                        "purpose": "STATUS_DECISION", "agency": "ARCH"}  # fmt: skip


async def test_refused_decisions(gateway: Gateway) -> None:
    app_id = await gateway.file(WORKFLOW_SERVICE)
    skipping = await decide(gateway, "ARCH", app_id, "ISSUED")
    assert skipping["errors"][0]["extensions"]["code"] == "CONFLICT"
    foreign = await decide(gateway, "LAND", app_id, "IN_REVIEW")
    assert foreign["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    agency_run = await gateway.file(other_agency_service(gateway))
    agency = other_agency_service(gateway).split("-")[0]
    has_workflow = await decide(gateway, agency, agency_run, "IN_REVIEW")
    assert has_workflow["errors"][0]["extensions"]["code"] == "CONFLICT"
    citizen = await gateway.citizen(0).gql(DECIDE, {"id": app_id, "status": "IN_REVIEW"})
    assert citizen["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    status = (await gateway.citizen(0).data(READ, {"id": app_id}))["application"]["status"]
    assert status == "SUBMITTED"
