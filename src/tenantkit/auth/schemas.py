"""Request bodies of the auth routes (unknown fields are refused)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from tenantkit.auth.passwords import MAX_PASSWORD_BYTES
from tenantkit.http import check_text
from tenantkit.normalize import Email, StorableText

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

#: The shortest new password accepted, in characters.
MIN_PASSWORD_LENGTH = 8
#: The longest new password accepted, in characters: 256 characters are at most
#: 1024 bytes of UTF-8, within the hasher's ``MAX_PASSWORD_BYTES``.
MAX_PASSWORD_LENGTH = 256
#: The longest password a login (or a password change) may send, in characters:
#: every password ever accepted fits (earlier versions capped new ones at
#: 1024 bytes), and the HMAC pre-hash makes the bcrypt work independent of it.
MAX_ANY_PASSWORD_LENGTH = MAX_PASSWORD_BYTES
#: The longest token (refresh, invitation, password reset) accepted.
MAX_TOKEN_LENGTH = 512

#: A password being set: 8 to 256 characters, stated in the schema as enforced.
NewPassword = Annotated[
    str,
    StringConstraints(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH),
    AfterValidator(check_text),
    StorableText(),
]
#: A password being checked (login, current password): at most 1024 characters.
Password = Annotated[
    str,
    StringConstraints(max_length=MAX_ANY_PASSWORD_LENGTH),
    AfterValidator(check_text),
    StorableText(),
]
#: A token (refresh, invitation, password reset): ``SafeText`` of 1 to 512 characters.
Token = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_TOKEN_LENGTH),
    AfterValidator(check_text),
    StorableText(),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class RegisterIn(_Body):
    email: Email
    password: NewPassword
    tenant_name: Annotated[str, Field(min_length=1, max_length=200), StorableText()] | None = None
    invite_token: Token | None = None


class LoginIn(_Body):
    email: Email
    password: Password


class RefreshIn(_Body):
    refresh_token: Token | None = None


class SwitchTenantIn(_Body):
    tenant: Annotated[str, Field(min_length=1, max_length=100), StorableText()]


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
