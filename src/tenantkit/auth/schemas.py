"""Request bodies of the auth routes (unknown fields are refused)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from tenantkit.auth.passwords import MAX_PASSWORD_BYTES
from tenantkit.normalize import Email

__all__ = [
    "AcceptInvitationIn",
    "Email",
    "LoginIn",
    "NewPassword",
    "PasswordChangeIn",
    "PasswordResetConfirmIn",
    "PasswordResetIn",
    "RefreshIn",
    "RegisterIn",
    "SwitchTenantIn",
]

MIN_PASSWORD_LENGTH = 8


def _new_password(value: str) -> str:
    if len(value) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(value.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise ValueError(f"must be at most {MAX_PASSWORD_BYTES} bytes (UTF-8)")
    return value


def _any_password(value: str) -> str:
    if len(value.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise ValueError(f"must be at most {MAX_PASSWORD_BYTES} bytes (UTF-8)")
    return value


NewPassword = Annotated[str, AfterValidator(_new_password)]
Password = Annotated[str, AfterValidator(_any_password)]
Token = Annotated[str, Field(min_length=1, max_length=512)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class RegisterIn(_Body):
    email: Email
    password: NewPassword
    tenant_name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    invite_token: Token | None = None


class LoginIn(_Body):
    email: Email
    password: Password


class RefreshIn(_Body):
    refresh_token: Token | None = None


class SwitchTenantIn(_Body):
    tenant: Annotated[str, Field(min_length=1, max_length=100)]


class AcceptInvitationIn(_Body):
    invite_token: Token


class PasswordChangeIn(_Body):
    current_password: Password
    new_password: NewPassword


class PasswordResetIn(_Body):
    email: Email


class PasswordResetConfirmIn(_Body):
    token: Token
    new_password: NewPassword
