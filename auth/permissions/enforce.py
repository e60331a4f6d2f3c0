"""Deny by default, applied to the schema's root types as they are built."""

from __future__ import annotations

from strawberry.permission import BasePermission, PermissionExtension
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.field import StrawberryField

from auth.permissions.deny import DenyAll


def policy_of(field: StrawberryField) -> list[type[BasePermission]]:
    return [
        type(permission)
        for extension in field.extensions
        if isinstance(extension, PermissionExtension)
        for permission in extension.permissions
    ]


def guard(field: StrawberryField, *policies: type[BasePermission] | BasePermission) -> None:
    """Attach a policy to a field built elsewhere (the generated ones): a
    class, or an instance bound to something (e.g. the field's service)."""
    permissions = [p() if isinstance(p, type) else p for p in policies]
    field.extensions.append(PermissionExtension(permissions, use_directives=False))


def deny_unguarded(root: type) -> list[str]:
    """Give ``DenyAll`` to each field of ``root`` without a policy; their names."""
    definition: StrawberryObjectDefinition = root.__strawberry_definition__  # type: ignore[attr-defined]
    denied = []
    for field in definition.fields:
        if not policy_of(field):
            guard(field, DenyAll)
            denied.append(field.name)
    return denied
