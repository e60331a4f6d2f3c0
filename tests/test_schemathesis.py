"""schemathesis in GraphQL mode: generated operations against every root
field, as a citizen, never get a server error."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from graphql import NameNode, ObjectFieldNode, ObjectValueNode, StringValueNode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.graphql import from_asgi, scalar

from connectors.memory import MemoryConnector
from gateway.app import create_app
from gateway.catalog.loader import load_catalog
from gateway.db.migrate import upgrade
from gateway.settings import ROOT, Settings
from legacy.samples import CITIZENS
from tests.support.gateway import citizen_token
from tests.test_api import fake_answers


def _json_object(values: dict[str, str]) -> ObjectValueNode:
    return ObjectValueNode(
        fields=tuple(
            ObjectFieldNode(name=NameNode(value=k), value=StringValueNode(value=v))
            for k, v in values.items()
        )
    )


# JSON arguments (generic forms) get objects with form-like keys and any text,
# so the validation path sees wrong types, bad formats and unknown fields.
scalar(
    "JSON",
    st.dictionaries(
        st.sampled_from(["registerNumber", "phone", "district", "area", "note", "x"]),
        st.text(max_size=12),
        max_size=4,
    ).map(_json_object),
)


@pytest.fixture(scope="module")
def gateway_schema() -> Any:
    var = Path(tempfile.mkdtemp(prefix="khaalga-fuzz-"))
    config = Settings(var_dir=var, worker=False, rate_limits="", log_format="text")
    upgrade(config.database_url)
    backends: dict[str, MemoryConnector] = fake_answers(load_catalog(ROOT / "catalog"))
    app = create_app(config, connector_overrides=backends)
    app.state.token = citizen_token(config, CITIZENS[0])
    return from_asgi("/graphql", app)


# schemathesis's pytest plugin (from_fixture / parametrize) fails under
# pytest 9, so its Hypothesis strategies are driven directly, one operation
# (root field) at a time.
def test_no_generated_operation_gets_a_server_error(gateway_schema: Any) -> None:
    token = gateway_schema.app.state.token
    operations = [result.ok() for result in gateway_schema.get_all_operations()]
    assert len(operations) > 100  # every root field, generated ones included

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            response = case.call(headers={"Authorization": f"Bearer {token}"})
            label = case.operation.label
            assert response.status_code < 500, (label, response.text)
            for error in response.json().get("errors", []):
                # Errors about the document itself (validation) carry no path;
                # an error raised while executing must be one we meant: coded.
                if "path" in error:
                    assert (error.get("extensions") or {}).get("code"), (label, error)

        check()
