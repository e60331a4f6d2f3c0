"""Cost: roughly how many values an operation can make the gateway produce,
from the schema. Every field costs 1; a list of objects multiplies what is
selected inside it by its ``first`` argument, by the enclosing connection's
``first`` for ``edges``/``nodes``, or else by a default list size.
Introspection fields cost nothing: their shape is bounded by graphql-core's
``MaxIntrospectionDepthRule``.

Strawberry has no cost analysis. This runs after validation (the document is
known to fit the schema) and before execution, with the request's variables
(so ``first: $n`` counts as sent); an operation over the limit runs nothing.
An operation within it is then charged to the principal's cost budget
(``Context.budget``, gateway/rate_limit.py), whatever way its document came
(in full or as a persisted query's hash); a budget that cannot pay runs
nothing either.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
)
from graphql.utilities import get_operation_ast
from strawberry.extensions import SchemaExtension

from schema.limits.error import budget_used_up, limit_error

_PAGE_LISTS = frozenset({"edges", "nodes"})


class _Coster:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
        list_size: int,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.list_size = list_size
        # Fragment costs are remembered: a fragment spread twice in a fragment
        # spread twice... would otherwise cost exponential time to add up.
        self.memo: dict[tuple[str, int | None], int] = {}

    def first(self, node: FieldNode, field: GraphQLField) -> int | None:
        argument = next((a for a in node.arguments or () if a.name.value == "first"), None)
        value: Any = None
        if argument is not None and isinstance(argument.value, IntValueNode):
            value = int(argument.value.value)
        elif argument is not None and isinstance(argument.value, VariableNode):
            value = self.variables.get(argument.value.name.value)
        elif "first" in field.args:
            value = field.args["first"].default_value
        return max(value, 0) if isinstance(value, int) else None

    def selections(
        self, selection_set: SelectionSetNode | None, parent: GraphQLNamedType, page: int | None
    ) -> int:
        if selection_set is None:
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent, page)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selections(selection.selection_set, inner or parent, page)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.fragment(selection.name.value, page)
        return total

    def fragment(self, name: str, page: int | None) -> int:
        key = (name, page)
        if key not in self.memo:
            self.memo[key] = 0  # a cycle (already refused by validation) adds nothing
            fragment = self.fragments[name]
            parent = self.schema.get_type(fragment.type_condition.name.value)
            self.memo[key] = self.selections(fragment.selection_set, parent, page) if parent else 0
        return self.memo[key]

    def field(self, node: FieldNode, parent: GraphQLNamedType, page: int | None) -> int:
        name = node.name.value
        if name.startswith("__") or not isinstance(
            parent, (GraphQLObjectType, GraphQLInterfaceType)
        ):
            return 0
        field = parent.fields.get(name)
        if field is None:
            return 0
        first = self.first(node, field)
        inner = self.selections(node.selection_set, get_named_type(field.type), first)
        if not isinstance(get_nullable_type(field.type), GraphQLList):
            return 1 + inner
        if first is not None:
            size = first
        elif page is not None and name in _PAGE_LISTS:
            size = page
        else:
            size = self.list_size
        return 1 + size * inner


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any],
    list_size: int,
) -> int:
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return 0
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 0
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    coster = _Coster(schema, fragments, variables, list_size)
    return coster.selections(operation.selection_set, root, None)


class CostBudget(Protocol):
    async def charge(self, cost: int) -> bool:
        """Pay ``cost``; False when the budget cannot."""
        ...


class CostLimit(SchemaExtension):
    def __init__(self, maximum: int, default_list_size: int) -> None:
        self.maximum = maximum
        self.default_list_size = default_list_size

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context
        if context.graphql_document is not None and context.result is None:
            cost = operation_cost(
                context.schema._schema,
                context.graphql_document,
                context.operation_name,
                context.variables or {},
                self.default_list_size,
            )
            # A result set before execution replaces it: no resolver runs.
            if cost > self.maximum:
                context.result = ExecutionResult(None, [limit_error("cost", self.maximum)])
            else:
                budget: CostBudget | None = getattr(context.context, "budget", None)
                if budget is not None and not await budget.charge(cost):
                    context.result = ExecutionResult(None, [budget_used_up()])
        yield
