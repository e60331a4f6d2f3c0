"""Every read or write of a citizen's data lands in their access log, and
only they read it; operators verify the chain over GraphQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from gateway.db.tables import AccessEvent
from legacy.samples import CITIZENS
from tests.auth.conftest import SUBMIT, WORKFLOW_SERVICE, Gateway

LOG = """query($first: Int!, $after: String) { myDataAccessLog(first: $first, after: $after) {
  totalCount nodes { at actorKind actor agency serviceCode fields purpose }
  pageInfo { hasNextPage endCursor } } }"""
READ = "query($id: ID!) { application(id: $id) { id status } }"
CASES = """query($status: Status) { agencyApplications(status: $status, first: 50) {
  totalCount nodes { application { id status } form } } }"""
VERIFY = "{ auditVerify { ok checked headHash firstBadSeq reason } }"
LOOKUP = "query($c: ID!, $i: JSON!) { lookup(serviceCode: $c, input: $i) }"


async def log_of(gateway: Gateway, citizen: int = 0, first: int = 50) -> dict[str, Any]:
    data = await gateway.citizen(citizen).data(LOG, {"first": first})
    log: dict[str, Any] = data["myDataAccessLog"]
    return log


async def test_submission_lookup_and_reading_are_logged_newest_first(gateway: Gateway) -> None:
    alice = gateway.citizen(0)
    app_id = await gateway.file(WORKFLOW_SERVICE)
    await alice.data(READ, {"id": app_id})
    catalog = gateway.state.services.catalog
    lookup_code = next(s.code for s in catalog.services() if s.kind.value == "LOOKUP")
    form = await gateway.form(lookup_code)
    answer = (await alice.data(LOOKUP, {"c": lookup_code, "i": form}))["lookup"]
    log = await log_of(gateway)
    assert log["totalCount"] == 3
    assert [n["purpose"] for n in log["nodes"]] == ["LOOKUP", "OWN_APPLICATION", "SUBMISSION"]
    assert {n["actorKind"] for n in log["nodes"]} == {"CITIZEN"}
    lookup, _, submission = log["nodes"]
    assert lookup["serviceCode"] == lookup_code
    assert lookup["agency"] == lookup_code.split("-")[0]
    assert set(lookup["fields"]) == set(form) | set(answer)
    assert submission["fields"] == sorted(await gateway.form(WORKFLOW_SERVICE))
    text = str(log)
    for value in [*form.values(), *answer.values()]:
        if isinstance(value, str) and len(value) > 3:
            assert value not in text  # names only, never values


async def test_officer_reads_land_in_the_citizens_log_only(gateway: Gateway) -> None:
    app_id = await gateway.file(WORKFLOW_SERVICE, citizen=0)
    await gateway.file(WORKFLOW_SERVICE, citizen=1)
    officer = gateway.officer("ARCH", "officer-7")
    cases = (await officer.data(CASES))["agencyApplications"]
    assert cases["totalCount"] == 2
    assert app_id in {c["application"]["id"] for c in cases["nodes"]}
    for citizen in (0, 1):
        log = await log_of(gateway, citizen)
        newest = log["nodes"][0]
        assert newest["actorKind"] == "OFFICER" and newest["actor"] == "officer-7"
        assert newest["agency"] == "ARCH" and newest["purpose"] == "CASE_HANDLING"
        assert newest["fields"]  # the form was shown: its field names are listed
        assert log["totalCount"] == 2  # their submission and the officer's read
    # Another agency's officer sees none of them, and nothing is logged for it.
    assert (await gateway.officer("LAND").data(CASES))["agencyApplications"]["totalCount"] == 0
    assert (await log_of(gateway, 2))["totalCount"] == 0


async def test_nobody_else_reads_a_citizens_log(gateway: Gateway) -> None:
    await gateway.file(WORKFLOW_SERVICE)
    for who, code in (
        (gateway.anonymous, "UNAUTHENTICATED"),
        (gateway.officer("ARCH"), "FORBIDDEN"),
        (gateway.operator(), "FORBIDDEN"),
        (gateway.app(), "FORBIDDEN"),
    ):
        body = await who.gql(LOG, {"first": 5})
        assert body["errors"][0]["extensions"]["code"] == code
    assert (await log_of(gateway, 1))["totalCount"] == 0


async def test_the_log_pages_backwards_in_time(gateway: Gateway) -> None:
    for _ in range(5):
        await gateway.file(WORKFLOW_SERVICE)
    alice = gateway.citizen(0)
    seen: list[str] = []
    after = None
    while True:
        page = (await alice.data(LOG, {"first": 2, "after": after}))["myDataAccessLog"]
        assert page["totalCount"] == 5
        seen += [n["at"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)


async def test_delivery_is_logged_as_the_gateways_access(gateway: Gateway) -> None:
    app_id = await gateway.file(WORKFLOW_SERVICE)
    assert await gateway.state.worker.deliver_due() == 1
    newest = (await log_of(gateway))["nodes"][0]
    assert newest["actorKind"] == "GATEWAY" and newest["purpose"] == "DELIVERY"
    assert newest["agency"] == "ARCH" and newest["serviceCode"] == WORKFLOW_SERVICE
    status = (await gateway.citizen(0).data(READ, {"id": app_id}))["application"]["status"]
    assert status == "DELIVERED"


async def test_request_id_is_recorded(gateway: Gateway) -> None:
    form = await gateway.form(WORKFLOW_SERVICE)
    alice = gateway.citizen(0)
    query = SUBMIT.replace("id status", "id")
    response = await gateway.http.post(
        "/graphql",
        json={"query": query, "variables": {"code": WORKFLOW_SERVICE, "form": form}},
        headers={"Authorization": f"Bearer {alice.token}", "X-Request-ID": "trace-42"},
    )
    assert response.status_code == 200 and "errors" not in response.json()
    async with gateway.state.sessions() as session:
        row = (await session.scalars(select(AccessEvent))).one()
    assert row.request_id == "trace-42" and row.citizen == CITIZENS[0]


async def test_operators_verify_the_chain_and_see_tampering(gateway: Gateway) -> None:
    for _ in range(3):
        await gateway.file(WORKFLOW_SERVICE)
    operator = gateway.operator()
    verdict = (await operator.data(VERIFY))["auditVerify"]
    assert verdict == {
        "ok": True, "checked": 3, "headHash": verdict["headHash"], "firstBadSeq": None,
        "reason": None,
    }  # fmt: skip
    denied = await gateway.citizen(0).gql(VERIFY)
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    async with gateway.state.sessions.begin() as session:
        await session.execute(update(AccessEvent).where(AccessEvent.seq == 2).values(fields=[]))
    broken = (await operator.data(VERIFY))["auditVerify"]
    assert broken["ok"] is False and broken["firstBadSeq"] == 2 and broken["checked"] == 1
