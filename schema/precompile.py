"""The operator's allow-listed documents, parsed and validated when the
gateway starts.

Each document goes through the schema's own parse and validate hooks, under
the options and rules a request has (the token limit, the limit rules,
introspection's rule), so that it lands in ``schema/document_cache.py``'s
caches under the key a request will look up; nothing is executed and
nothing charged. Two things come of it:
- the first request of each document in a new process finds it parsed and
  validated, as later ones do (a fresh replica behind the load balancer
  takes traffic at once); the caches keep the last ``DOCUMENT_CACHE_SIZE``;
- a document this schema no longer accepts (a service left the catalog, a
  field was renamed) is named in the log when the gateway starts, by its
  hash only, rather than found by the citizen whose app sends it. The
  gateway still starts: the other documents run, and that one's requests
  are answered with its errors, as they would be without this.
  ``khaalga documents check`` runs the same check for an operator and
  prints the errors in full.

Strawberry runs these hooks only inside ``Schema.execute``, and no public
call stops after validation, so the steps are taken here as ``execute``
takes them, with the schema's extensions and runner and strawberry's own
parse and validate steps.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping

import strawberry
from graphql import GraphQLError
from strawberry.extensions import AddValidationRules, MaxTokensLimiter
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.schema.schema import _parse_operation_document, _run_validation
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType

log = logging.getLogger("khaalga.persisted")

# The extensions that shape parsing and validation (the token limit, the
# limit rules, introspection's rule) set graphql-core's options and rules as
# the operation starts; only their starts are run here, not the others'
# (metrics, trusted documents, masking), as nothing else of an operation is.
_SHAPING = (MaxTokensLimiter, AddValidationRules)


async def precompile(schema: strawberry.Schema, document: str) -> list[GraphQLError]:
    """Parse and validate ``document`` as a request would; its errors."""
    context = ExecutionContext(query=document, schema=schema, allowed_operations=OperationType)
    extensions = schema.get_extensions()
    for extension in extensions:
        extension.execution_context = context
    runner = schema.create_extensions_runner(context, extensions)
    with contextlib.ExitStack() as started:
        for extension in extensions:
            if isinstance(extension, _SHAPING):  # both classes' starts are plain generators
                started.enter_context(contextlib.contextmanager(extension.on_operation)())
        return await _parse_and_validate(context, runner)


async def _parse_and_validate(
    context: ExecutionContext, runner: SchemaExtensionsRunner
) -> list[GraphQLError]:
    # Strawberry's own steps (private, and what ``Schema.execute`` calls
    # between these hooks), so that precompiling cannot drift from a request.
    async with runner.parsing():
        try:
            _parse_operation_document(context)
        except GraphQLError as error:
            context.pre_execution_errors = [error]
    if context.graphql_document is None:
        return list(context.pre_execution_errors or ())
    async with runner.validation():
        _run_validation(context)
    return list(context.pre_execution_errors or ())


async def precompile_all(schema: strawberry.Schema, documents: Mapping[str, str]) -> list[str]:
    """Precompile every ``sha256 -> document``; the hashes of those that fail.

    Only the hash and where the errors are go to the log: an error's message
    can quote the document's literals, which an app could have filled with
    anything."""
    failing = []
    for sha256, document in documents.items():
        errors = await precompile(schema, document)
        if errors:
            failing.append(sha256)
            where = [f"{loc.line}:{loc.column}" for e in errors for loc in e.locations or ()]
            log.warning(
                "allow-listed document %s does not run on this schema: %d error(s) at %s; "
                "its requests will be answered with them",
                sha256, len(errors), ", ".join(where) or "no location",
            )  # fmt: skip
    if documents:
        log.info("%d allow-listed documents precompiled, %d failing", len(documents), len(failing))
    return failing
