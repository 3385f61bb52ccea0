"""Normalisation of identities: emails and slugs compare case-insensitively."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, StringConstraints

__all__ = [
    "EMAIL_MAX_LENGTH",
    "EMAIL_PATTERN",
    "STORABLE_TEXT",
    "Email",
    "StorableText",
    "normalize_email",
    "normalize_slug",
    "slugify",
]

_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_TLD = r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
#: What an email address of a request is: a conservative ASCII subset of RFC 5322's
#: ``addr-spec``. The local part is dot-separated atoms of ``atext`` (no quoted
#: strings, no comments); the domain is dot-separated labels of letters, digits and
#: inner hyphens, the last one (the TLD) starting with a letter (no IP literals, no
#: internationalised names: send their ``xn--`` form). Anchored, no lookarounds, so
#: pydantic's Rust regex engine and Hypothesis' ``from_regex`` read it alike.
EMAIL_PATTERN = rf"^{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+{_TLD}$"
#: The longest address accepted (RFC 5321's path limit, less its angle brackets).
EMAIL_MAX_LENGTH = 254
_EMAIL = re.compile(EMAIL_PATTERN)
#: What the edge accepts in any string (no NUL), as a JSON schema fragment for fields whose
#: model states no stricter pattern. Documentation only: ``tenantkit.http`` enforces it for
#: every body. (Unpaired surrogates, also refused, cannot be sent as UTF-8 and a pattern
#: naming them is not portable, so the pattern leaves them out.)
STORABLE_TEXT: dict[str, str] = {"pattern": "^[^\\x00]*$"}


class StorableText:
    """``Annotated[str, ..., StorableText()]``: the string's JSON schema gets :data:`STORABLE_TEXT`.

    Works where ``Field(json_schema_extra=...)`` does not (inside ``X | None``).
    """

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> Any:
        schema = handler(core_schema)
        if schema.get("type") == "string" and "pattern" not in schema:
            schema.update(STORABLE_TEXT)
        return schema


def normalize_email(value: str) -> str:
    """An address as stored, from operator input: NFKC, trimmed, then checked as :data:`Email` is.

    Request bodies use :data:`Email`, which checks the raw value (no trimming),
    so what the OpenAPI document calls valid is exactly what is accepted.

    Raises:
        ValueError: not an address :data:`EMAIL_PATTERN` matches, or longer than
            :data:`EMAIL_MAX_LENGTH`.
    """
    return _checked_email(unicodedata.normalize("NFKC", value).strip())


def _checked_email(value: str) -> str:
    if len(value) > EMAIL_MAX_LENGTH or not _EMAIL.fullmatch(value):
        raise ValueError("must be an email address such as name@example.com (ASCII)")
    return value.lower()


def normalize_slug(value: str) -> str:
    """A tenant slug as stored: NFKC, lower case; raises ``ValueError`` if not a valid slug."""
    text = unicodedata.normalize("NFKC", value).strip().lower()
    if not _SLUG.match(text):
        raise ValueError("a slug is 1-63 characters of a-z, 0-9 and inner hyphens")
    return text


def slugify(name: str) -> str:
    """A slug derived from a display name (``"ACME Shoes!"`` → ``"acme-shoes"``)."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:63].strip("-")
    return text or "tenant"


#: An email address field of a request body: the raw value must match :data:`EMAIL_PATTERN`
#: (nothing is trimmed first) within :data:`EMAIL_MAX_LENGTH` characters; it is stored lower-cased.
#: The JSON schema states both constraints, so the document and the validator agree.
Email = Annotated[
    str,
    StringConstraints(max_length=EMAIL_MAX_LENGTH, pattern=EMAIL_PATTERN),
    AfterValidator(str.lower),
]
