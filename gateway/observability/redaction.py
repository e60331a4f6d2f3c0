"""Keeping client-sent values out of strawberry's error log.

strawberry logs every GraphQL error without an ``extensions.code`` (see
``schema.root.KhaalgaSchema``) on ``strawberry.execution``, and graphql-core
quotes the offending value in validation and coercion messages: ``Variable
'$f' got invalid value 'УБ99010112'; ...``. This filter rewrites those
messages with every quoted value replaced, keeping names and types
(``'$f'``, ``'Int!'``) so the line still says what was wrong.
"""

from __future__ import annotations

import logging
import re
import traceback

from graphql import GraphQLError

REDACTED = "<redacted>"
_QUOTED = re.compile(r"'[^']*'|\"(?:[^\"\\]|\\.)*\"")
# A variable, field or type name, as graphql-core quotes them. Four digits in
# a row make it a value: a register number written in Latin letters passes the
# name grammar.
_NAME = re.compile(r"[\"']\$?[_A-Za-z][_0-9A-Za-z.]*[!\[\]]*[\"']")
_DIGIT_RUN = re.compile(r"[0-9]{4}")
# Whatever follows "value" or "found" up to the next clause is a value, quoted
# or not (numbers, lists, input objects whose keys look like names).
_TAIL = re.compile(r"((?:invalid value|value:|found)\s+).+?(?=; | at '|\.?$)")


def redact(message: str) -> str:
    def quoted(match: re.Match[str]) -> str:
        text = match.group(0)
        if _NAME.fullmatch(text) and not _DIGIT_RUN.search(text):
            return text
        return REDACTED

    return _TAIL.sub(lambda m: m.group(1) + REDACTED, _QUOTED.sub(quoted, message))


class RedactGraphQLValues(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.msg
        if not isinstance(error, GraphQLError):
            return True
        record.msg = redact(error.message)
        record.args = ()
        # The exception's own text would repeat the value, so the traceback
        # is kept without it: frames and class name only, and only for a
        # fault inside a resolver (a path); coercion errors need no stack.
        original = error.original_error
        record.exc_info = None
        record.exc_text = None
        if original is not None and error.path is not None:
            frames = "".join(traceback.format_tb(original.__traceback__))
            record.msg += f" [{type(original).__name__}]\n{frames.rstrip()}"
        return True


def install_redaction() -> None:
    logger = logging.getLogger("strawberry.execution")
    if not any(isinstance(f, RedactGraphQLValues) for f in logger.filters):
        logger.addFilter(RedactGraphQLValues())
