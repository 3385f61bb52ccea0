"""The schemas state what the validators enforce: patterns checked against their validators."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from tenantkit.normalize import EMAIL_PATTERN, Email, normalize_email
from tenantkit.pagination import CURSOR_PATTERN, INT_CURSOR_PATTERN, decode_cursor
from tenantkit.rbac.schemas import RolePatchIn

EMAIL = TypeAdapter(Email)


@settings(max_examples=200, deadline=None)
@given(st.from_regex(EMAIL_PATTERN, fullmatch=True).filter(lambda s: len(s) <= 254))
def test_every_address_the_pattern_matches_is_accepted(address: str) -> None:
    assert EMAIL.validate_python(address) == address.lower()


@pytest.mark.parametrize(
    "address", ["", " a@example.com", "a@example.com\n", "a..b@example.com", "a@b", "a@-b.com"]
)
def test_what_the_pattern_refuses_is_refused(address: str) -> None:
    assert not re.fullmatch(EMAIL_PATTERN, address)
    with pytest.raises(ValidationError):
        EMAIL.validate_python(address)


def test_operators_may_send_spaces_and_capitals() -> None:
    assert normalize_email("  Owner@Example.COM ") == "owner@example.com"


@settings(max_examples=200, deadline=None)
@given(st.from_regex(CURSOR_PATTERN, fullmatch=True))
def test_every_cursor_the_pattern_matches_decodes(cursor: str) -> None:
    decode_cursor(cursor)


@settings(max_examples=200, deadline=None)
@given(st.from_regex(INT_CURSOR_PATTERN, fullmatch=True))
def test_every_integer_cursor_the_pattern_matches_decodes(cursor: str) -> None:
    decode_cursor(cursor, int)


def test_role_patch_fields_may_be_left_out_but_not_null() -> None:
    assert RolePatchIn.model_validate({}).permissions is None
    with pytest.raises(ValidationError):
        RolePatchIn.model_validate({"description": None})
    assert "anyOf" not in RolePatchIn.model_json_schema()["properties"]["description"]
