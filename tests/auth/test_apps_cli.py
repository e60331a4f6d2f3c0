"""``khaalga apps``: an operator's shell commands for the developer program."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gateway.cli import main
from gateway.db.migrate import upgrade


@pytest.fixture
def khaalga(tmp_path: Path) -> CliRunner:
    url = f"sqlite+aiosqlite:///{tmp_path / 'k.sqlite'}"
    upgrade(url)
    env = {"KHAALGA_ENV": "development", "KHAALGA_VAR_DIR": str(tmp_path)}
    return CliRunner(env={**env, "KHAALGA_DATABASE_URL": url})


def run(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(main, ["apps", *args], catch_exceptions=False)


def secret_of(result: Result) -> str:
    found = re.search(r"client secret: (khs_\S+)", result.output)
    assert found, result.output
    return found.group(1)


def test_an_operator_manages_an_app_from_the_shell(khaalga: CliRunner) -> None:
    registered = run(khaalga, "register", "--name", "Reports", "--environment", "production",
                     "--scope", "catalog:read", "--scope", "service:LAND-001")  # fmt: skip
    assert registered.exit_code == 0, registered.output
    client_id = registered.output.split("\t")[0]
    assert client_id.startswith("app_") and "\tACTIVE\tPRODUCTION\tReports\t" in registered.output
    first = secret_of(registered)

    listed = run(khaalga, "list")
    assert client_id in listed.output and "1 app(s)" in listed.output
    assert first not in listed.output  # shown once, at registration

    quota = run(khaalga, "quota", client_id, "--requests", "1200/minute")
    assert "requests=1200/minute cost=-" in quota.output
    rotated = run(khaalga, "rotate", client_id, "--grace", "60")
    assert rotated.exit_code == 0 and secret_of(rotated) != first
    assert "\tSUSPENDED\t" in run(khaalga, "suspend", client_id).output
    assert "\tACTIVE\t" in run(khaalga, "approve", client_id).output
    assert "\tREVOKED\t" in run(khaalga, "revoke", client_id).output
    assert run(khaalga, "list", "--status", "active").output.strip() == "0 app(s)"

    again = run(khaalga, "approve", client_id)
    assert again.exit_code == 1 and "REVOKED" in again.output


def test_bad_input_is_refused_naming_the_rule(khaalga: CliRunner) -> None:
    scope = run(khaalga, "register", "--name", "X", "--scope", "service:NOPE-999")
    assert scope.exit_code == 2 and "scopes:" in scope.output and "NOPE-999" in scope.output
    quota = run(khaalga, "quota", "app_x", "--cost", "lots")
    assert quota.exit_code == 2 and "cost:" in quota.output
    missing = run(khaalga, "suspend", "app_x")
    assert missing.exit_code == 1 and "no such app" in missing.output
