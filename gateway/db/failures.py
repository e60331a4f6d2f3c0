"""What a database driver's error means, whichever of the three dialects
raised it: from its MariaDB/MySQL error number, its SQLSTATE (PostgreSQL),
or, for SQLite, which has neither, its text.

Used at two boundaries: the SQL connector (an agency's database) and the
gateway's own store (schema/store_errors.py), which must tell "busy, try
again" from a bug.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import exc as sa_exc

Failure = Literal["unavailable", "timeout", "missing", "data", "integrity", "rejected", "unknown"]

# MariaDB/MySQL server and client error numbers, by what they mean for us.
_MYSQL: dict[int, Failure] = {
    **dict.fromkeys((1040, 1053, 1205, 1213, 1927, 2002, 2003, 2006, 2013, 2055), "unavailable"),
    **dict.fromkeys((1969, 3024), "timeout"),
    **dict.fromkeys((1146, 1054), "missing"),
    **dict.fromkeys((1264, 1265, 1292, 1365, 1366, 1406), "data"),
    **dict.fromkeys((1048, 1062, 1216, 1217, 1451, 1452), "integrity"),
    **dict.fromkeys((1044, 1045, 1142, 1143), "rejected"),
}


def classify(exc: sa_exc.DBAPIError) -> Failure:
    """What a driver error means, from its MySQL number, SQLSTATE or SQLite text."""
    orig = exc.orig
    # MySQL numbers first: MariaDB also reports SQLSTATEs, but coarse ones (42S02, HY000).
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in _MYSQL:
        return _MYSQL[args[0]]
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(sqlstate, str) and len(sqlstate) == 5:
        cls = sqlstate[:2]
        if sqlstate == "57014":  # statement_timeout
            return "timeout"
        if sqlstate == "55P03" or cls in ("08", "40", "53", "57", "58"):
            return "unavailable"
        if sqlstate in ("42P01", "42703"):
            return "missing"
        if cls == "22":
            return "data"
        if cls == "23":
            return "integrity"
        if cls in ("28", "42"):
            return "rejected"
    text = str(orig).lower()
    if any(s in text for s in ("locked", "busy", "unable to open", "disk i/o")):
        return "unavailable"
    if "no such table" in text or "no such column" in text:
        return "missing"
    if isinstance(exc, sa_exc.IntegrityError):
        return "integrity"
    if isinstance(exc, sa_exc.DataError):
        return "data"
    if isinstance(exc, sa_exc.ProgrammingError | sa_exc.NotSupportedError):
        return "rejected"
    return "unknown"


def error_code(exc: sa_exc.DBAPIError) -> str:
    """SQLSTATE, MySQL error number or driver class: safe to log, unlike driver texts."""
    orig = exc.orig
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        return str(args[0])
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate
    return type(orig).__name__
