"""The prepared extension runner (schema/extension_hooks.py) behaves exactly
like strawberry's own: every kind of hook runs, in the same order, around the
same stages, and an error inside a stage reaches the hooks the same way."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace

import pytest
from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner

from schema.extension_hooks import HookPlans, PreparedExtensionsRunner

RUNNERS = [SchemaExtensionsRunner, PreparedExtensionsRunner]


JOURNAL: list[str] = []


class GeneratorHooks(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        JOURNAL.append("gen operation in")
        try:
            yield
        except ValueError:
            JOURNAL.append("gen operation saw ValueError")
            raise
        JOURNAL.append("gen operation out")

    def on_parse(self) -> Iterator[None]:
        JOURNAL.append("gen parse in")
        yield
        JOURNAL.append("gen parse out")


class AsyncGeneratorHooks(SchemaExtension):
    async def on_validate(self) -> AsyncIterator[None]:
        JOURNAL.append("agen validate in")
        yield
        JOURNAL.append("agen validate out")

    async def on_execute(self) -> AsyncIterator[None]:
        JOURNAL.append("agen execute in")
        try:
            yield
        except KeyError:
            JOURNAL.append("agen execute swallowed KeyError")


class CallableHooks(SchemaExtension):
    async def on_operation(self) -> None:  # type: ignore[override]
        JOURNAL.append("coroutine operation")

    def on_execute(self) -> None:  # type: ignore[override]
        JOURNAL.append("function execute")


def runner_for(cls: type[SchemaExtensionsRunner]) -> SchemaExtensionsRunner:
    extensions = [GeneratorHooks(), AsyncGeneratorHooks(), CallableHooks()]
    return cls(None, extensions)  # type: ignore[arg-type]


async def run_stages(runner: SchemaExtensionsRunner, fail_in_execute: Exception | None) -> None:
    async with runner.operation():
        async with runner.parsing():
            JOURNAL.append("parsing")
        async with runner.validation():
            JOURNAL.append("validating")
        async with runner.executing():
            JOURNAL.append("executing")
            if fail_in_execute is not None:
                raise fail_in_execute


async def journal_of(
    cls: type[SchemaExtensionsRunner], fail: Exception | None
) -> tuple[list[str], str | None]:
    JOURNAL.clear()
    raised = None
    try:
        await run_stages(runner_for(cls), fail)
    except Exception as exc:  # what escapes the stages
        raised = type(exc).__name__
    return list(JOURNAL), raised


@pytest.mark.parametrize("fail", [None, KeyError("swallowed"), ValueError("escapes")])
async def test_the_prepared_runner_matches_strawberrys(fail: Exception | None) -> None:
    theirs, ours = [await journal_of(cls, fail) for cls in RUNNERS]
    assert ours == theirs
    lines, _ = ours
    assert "coroutine operation" in lines and "function execute" in lines
    assert lines.index("gen parse in") < lines.index("parsing") < lines.index("gen parse out")


async def test_each_operation_gets_hooks_bound_to_its_own_extensions() -> None:
    seen: list[int] = []

    class Recorder(SchemaExtension):
        def on_execute(self) -> Iterator[None]:
            seen.append(id(self))
            yield

    first, second = Recorder(), Recorder()
    plans = HookPlans()  # one schema's: prepared for the first operation, kept for the second
    for extension in (first, second):
        runner = PreparedExtensionsRunner(None, [extension], plans)  # type: ignore[arg-type]
        async with runner.executing():
            pass
    assert seen == [id(first), id(second)]


async def test_results_come_from_the_extensions_that_give_any() -> None:
    class Timing(SchemaExtension):
        def get_results(self) -> dict[str, object]:
            return {"timing": 1}

    class Tracing(SchemaExtension):
        async def get_results(self) -> dict[str, object]:
            return {"tracing": 2}

    context = SimpleNamespace(extensions_results={"cost": 3})
    extensions = [Timing(), GeneratorHooks(), Tracing()]
    results = [
        await cls(None, extensions).get_extensions_results(context)  # type: ignore[arg-type]
        for cls in RUNNERS
    ]
    assert results[0] == results[1] == {"timing": 1, "tracing": 2, "cost": 3}
