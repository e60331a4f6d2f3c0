"""What is measured: one ``Scenario`` per row of the report."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from bench.loadgen import graphql_body

FORM = """query Form($code: ID!) { service(code: $code) { form { fields {
  name type required pattern min max maxLength options { value } } } } }"""
LOOKUP = "query Lookup($c: ID!, $i: JSON!) { lookup(serviceCode: $c, input: $i) }"
SUBMIT = """mutation Submit($c: ID!, $f: JSON!) { submitApplication(serviceCode: $c, form: $f) {
  application { id status } } }"""
MINE = """query Mine { myApplications(first: 50) { totalCount edges { node { id status
  service { code } submittedAt } } } }"""
CATALOG = "query Catalog { agencies { code } }"

# One agency of each kind; the fan-out query asks three of them at once.
KINDS = {"REST": "URB", "SOAP": "TAX", "SQL": "PROP", "FILE": "ENV"}


@dataclass(frozen=True)
class Scenario:
    name: str
    server: str  # baseline | direct | gateway
    path: str
    body: bytes
    headers: dict[str, str]
    baseline: str  # the scenario this one's ratios are taken against
    # Gateway scenarios whose half-peak rate this one is also measured at
    # (a direct back end under the same load as the gateway rows calling it).
    pairs: tuple[str, ...] = ()


BASELINE_ROW = "baseline: Starlette JSON"
CATALOG_ROW = "gateway: catalog"
LOOKUP_ROW = "gateway: LOOKUP (REST)"
# Production's store: the data-access row is one autocommit statement, not a WAL fsync.
LOOKUP_PG_ROW = "gateway: LOOKUP (REST) [PostgreSQL]"
FAN_OUT_ROW = "gateway: fan-out REST+SOAP+SQL"
SUBMIT_ROW = "gateway: APPLICATION submit"
SUBMIT_PG_ROW = "gateway: APPLICATION submit [PostgreSQL]"
# The machine's capacity: a second process on the other core (beside wrk and
# PostgreSQL), no rate limits, so only durability is measured.
SUBMIT_PG_2_ROW = "gateway: APPLICATION submit [PostgreSQL, 2 processes]"
FAN_OUT_KINDS = ("REST", "SOAP", "SQL")
# Rows that need the run's PostgreSQL database (and, for scale-out, Redis).
POSTGRES_ROWS = (
    LOOKUP_PG_ROW,
    SUBMIT_PG_ROW,
    SUBMIT_PG_2_ROW,
    "scale-out: catalog, 1 process",
    "scale-out: catalog, 2 processes",
    "scale-out: APPLICATION submit, 1 process",
    "scale-out: APPLICATION submit, 2 processes",
)


def lookup_code(catalog: dict[str, list[dict[str, Any]]], agency: str) -> str:
    return str(next(s["code"] for s in catalog[agency] if s["kind"] == "LOOKUP"))


def fetch_catalog(http: httpx.Client) -> dict[str, list[dict[str, Any]]]:
    query = "{ agencies { code services { code kind } } }"
    data = http.post("/graphql", json={"query": query}).json()["data"]
    return {a["code"]: a["services"] for a in data["agencies"]}


def fetch_form(http: httpx.Client, code: str, citizen: str) -> dict[str, Any]:
    from legacy.samples import sample_form

    body = http.post("/graphql", json={"query": FORM, "variables": {"code": code}}).json()
    form: dict[str, Any] = sample_form(body["data"]["service"]["form"]["fields"], citizen)
    return form


def build(http: httpx.Client, token: str, citizen: str, seeded_token: str) -> list[Scenario]:
    """Every scenario, with forms fetched from the running gateway.
    ``seeded_token`` is a citizen who has exactly 50 applications (``seed``)."""
    auth = {"Authorization": f"Bearer {token}"}
    catalog = fetch_catalog(http)
    codes = {kind: lookup_code(catalog, agency) for kind, agency in KINDS.items()}
    forms = {kind: fetch_form(http, code, citizen) for kind, code in codes.items()}
    application = next(s["code"] for s in catalog["GOV"] if s["kind"] == "APPLICATION")
    fan = FAN_OUT_KINDS
    fan_query = (
        "query FanOut("
        + ", ".join(f"$c{i}: ID!, $i{i}: JSON!" for i in range(3))
        + ") { "
        + " ".join(f"k{i}: lookup(serviceCode: $c{i}, input: $i{i})" for i in range(3))
        + " }"
    )
    fan_vars: dict[str, object] = {}
    for i, kind in enumerate(fan):
        fan_vars[f"c{i}"], fan_vars[f"i{i}"] = codes[kind], forms[kind]
    scenarios = [
        Scenario(
            BASELINE_ROW,
            "baseline",
            "/json",
            orjson.dumps({"query": CATALOG}),
            {},
            BASELINE_ROW,
        )
    ]
    for kind in KINDS:
        body = orjson.dumps({"service": codes[kind], "form": forms[kind]})
        pairs = ((LOOKUP_ROW, LOOKUP_PG_ROW) if kind == "REST" else ()) + (
            (FAN_OUT_ROW,) if kind in FAN_OUT_KINDS else ()
        )
        scenarios.append(Scenario(f"direct: {kind} connector", "direct", "/direct", body, {},
                                  BASELINE_ROW, pairs))  # fmt: skip
    gateway = [
        (CATALOG_ROW, graphql_body(CATALOG), {}, BASELINE_ROW),
        (LOOKUP_ROW, graphql_body(LOOKUP, {"c": codes["REST"], "i": forms["REST"]}),
         auth, "direct: REST connector"),
        (FAN_OUT_ROW, graphql_body(fan_query, fan_vars), auth,
         "direct: SOAP connector"),
        (SUBMIT_ROW,
         graphql_body(SUBMIT, {"c": application, "f": fetch_form(http, application, citizen)}),
         auth, BASELINE_ROW),
        ("gateway: myApplications (50)", graphql_body(MINE),
         {"Authorization": f"Bearer {seeded_token}"}, BASELINE_ROW),
    ]  # fmt: skip
    for name, body, headers, baseline in gateway:
        scenarios.append(Scenario(name, "gateway", "/graphql", body, headers, baseline))
    by_name = {s.name: s for s in scenarios}
    catalog_row, lookup_row = by_name[CATALOG_ROW], by_name[LOOKUP_ROW]
    submit_row = by_name[SUBMIT_ROW]
    # The same requests against other server configurations (bench/run.py).
    variants = [
        (catalog_row, "gateway-no-cache", "gateway: catalog [no response cache]", CATALOG_ROW),
        (catalog_row, "gateway-asyncio", "gateway: catalog [no response cache, asyncio + h11]",
         CATALOG_ROW),
        (lookup_row, "gateway-pg", LOOKUP_PG_ROW, "direct: REST connector"),
        (submit_row, "gateway-pg", SUBMIT_PG_ROW, SUBMIT_ROW),
        (submit_row, "gateway-pg-2", SUBMIT_PG_2_ROW, SUBMIT_PG_ROW),
        (catalog_row, "scale-1", "scale-out: catalog, 1 process", CATALOG_ROW),
        (catalog_row, "scale-2", "scale-out: catalog, 2 processes",
         "scale-out: catalog, 1 process"),
        (submit_row, "scale-1", "scale-out: APPLICATION submit, 1 process", SUBMIT_PG_ROW),
        (submit_row, "scale-2", "scale-out: APPLICATION submit, 2 processes",
         "scale-out: APPLICATION submit, 1 process"),
    ]  # fmt: skip
    for scenario, server, name, baseline in variants:
        scenarios.append(dataclasses.replace(scenario, name=name, server=server, baseline=baseline))
    return scenarios


def check(http: httpx.Client, scenario: Scenario) -> None:
    """One request before measuring: a scenario answering errors measures nothing."""
    response = http.post(
        scenario.path,
        content=scenario.body,
        headers={**scenario.headers, "Content-Type": "application/json"},
    )
    response.raise_for_status()
    if "errors" in response.json():
        raise RuntimeError(f"{scenario.name}: {response.text[:300]}")


def seed(http: httpx.Client, token: str, citizen: str, count: int = 50) -> None:
    catalog = fetch_catalog(http)
    application = next(s["code"] for s in catalog["LAND"] if s["kind"] == "APPLICATION")
    form = fetch_form(http, application, citizen)
    for _ in range(count):
        response = http.post(
            "/graphql",
            json={"query": SUBMIT, "variables": {"c": application, "f": form}},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert "errors" not in response.json(), response.text
