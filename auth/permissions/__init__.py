"""Who may use each root field: one strawberry permission class per file.

Every root field of the schema carries exactly one of these; a field that
does not is given ``DenyAll`` when the schema is built (``enforce.py``), so
forgetting a policy locks a field instead of opening it.
"""

from auth.permissions.application_reader import ApplicationReader
from auth.permissions.citizen import CitizenOnly
from auth.permissions.deny import DenyAll
from auth.permissions.developer import DeveloperOrOperator
from auth.permissions.officer import OfficerOnly
from auth.permissions.operator import OperatorOnly
from auth.permissions.public import Public
from auth.permissions.scopes import ServiceApplicant, ServiceCaller
from auth.permissions.staff import OfficerOrOperator

__all__ = [
    "ApplicationReader",
    "CitizenOnly",
    "DenyAll",
    "DeveloperOrOperator",
    "OfficerOnly",
    "OfficerOrOperator",
    "OperatorOnly",
    "Public",
    "ServiceApplicant",
    "ServiceCaller",
]
