"""Normalisation of identities: emails and slugs compare case-insensitively."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, Field

__all__ = ["Email", "normalize_email", "normalize_slug", "slugify"]

_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def normalize_email(value: str) -> str:
    """NFKC, trimmed, validated and lower-cased.

    Raises:
        ValueError: not a valid address.
    """
    text = unicodedata.normalize("NFKC", value).strip()
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None
    return result.normalized.lower()


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


#: An email address field of a request body: validated and normalised (lower case).
Email = Annotated[str, Field(max_length=320), AfterValidator(normalize_email)]
