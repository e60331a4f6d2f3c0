"""Reading a back end's dates: whatever the text, exactly what strptime
reads in the agency's date format, else in ISO form, else a MappingError."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from connectors.errors import MappingError
from connectors.mapping import from_backend
from gateway.catalog.model import Agency
from tests.factories import agency, lookup_service

FORMATS = ["%Y.%m.%d", "%d/%m/%Y", "%Y-%m-%d", "%m%d%Y", "%Y.%m.%d T", "%y-%m-%d", "%Y%%%m%d"]
AGENCIES = {f: agency(dialect={"date_format": f}) for f in FORMATS}
SERVICE = lookup_service()
NEAR_DATES = st.from_regex(
    r"\s?[0-9٣]{1,4}[./-][0-9]{1,3}[./%-][0-9]{1,4}( T|T.*)?", fullmatch=True
)


def _strptime(text: str, date_format: str) -> dt.date | None:
    text = text.strip()
    for fmt in (date_format, "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(text[:10] if fmt == "%Y-%m-%d" else text, fmt).date()
        except ValueError:
            continue
    return None


def _read(backend: Agency, text: str) -> dt.date | None:
    data = {"VALID_DT": text, "DUE_AMT": 1, "ACT": True}
    try:
        day = from_backend(backend, SERVICE, data)["validUntil"]
    except MappingError:
        return None
    assert isinstance(day, dt.date)
    return day


@pytest.mark.parametrize("date_format", FORMATS)
@given(day=st.dates())
def test_what_strftime_writes_reads_back(date_format: str, day: dt.date) -> None:
    text = day.strftime(date_format)
    assert _read(AGENCIES[date_format], text) == _strptime(text, date_format)


@pytest.mark.parametrize("date_format", FORMATS)
@given(text=st.one_of(NEAR_DATES, st.text(alphabet="0123456789./-% Tt", min_size=1)))
@example(text="2026.02.30")
@example(text="2026.2.3")
@example(text="0000.01.01")
@example(text="2026.13.01")
@example(text="2026-02-10T08:00:00")
def test_any_text_reads_as_strptime_reads_it(date_format: str, text: str) -> None:
    assert _read(AGENCIES[date_format], text) == _strptime(text, date_format)
