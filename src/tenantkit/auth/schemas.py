"""Request bodies of the auth routes (unknown fields are refused)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, RootModel, StringConstraints

from tenantkit.auth.passwords import MAX_PASSWORD_BYTES
from tenantkit.http import RequestModel, SafeText, check_text
from tenantkit.normalize import Email, StorableText
from tenantkit.openapi.schemas import MeOut, TenantSummary, TokenPairOut
from tenantkit.rbac.registry import PERMISSION_PATTERN

__all__ = [
    "AcceptInvitationIn",
    "ApiKeyCreatedOut",
    "ApiKeyIn",
    "ApiKeyMeOut",
    "ApiKeyOut",
    "ApiKeyPage",
    "Email",
    "ImpersonateIn",
    "ImpersonationOut",
    "LoginIn",
    "LoginOut",
    "MfaChallengeOut",
    "MfaCodeIn",
    "MfaRecoveryIn",
    "MfaVerifyIn",
    "NewPassword",
    "PasswordChangeIn",
    "PasswordIn",
    "PasswordResetConfirmIn",
    "PasswordResetIn",
    "RecoveryCodesOut",
    "RefreshIn",
    "RegisterIn",
    "SwitchTenantIn",
    "TotpCodeIn",
    "TotpDisableIn",
    "TotpSetupOut",
    "WhoAmIOut",
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


TotpCode = Annotated[
    str, Field(pattern=r"^[0-9]{6}$", description="The 6-digit code of the authenticator app.")
]
RecoveryCodeText = Annotated[str, Field(pattern=r"^ *[0-9A-Fa-f]{5}-?[0-9A-Fa-f]{5} *$")]


class TotpCodeIn(_Body):
    code: TotpCode


class PasswordIn(_Body):
    password: Password


class TotpDisableIn(RootModel[TotpCodeIn | PasswordIn]):
    """A current code, or the password."""


class MfaCodeIn(_Body):
    mfa_token: Token
    code: TotpCode


class MfaRecoveryIn(_Body):
    mfa_token: Token
    recovery_code: RecoveryCodeText


class MfaVerifyIn(RootModel[MfaCodeIn | MfaRecoveryIn]):
    """The challenge's ``mfa_token`` with a TOTP code, or with a recovery code."""


class MfaChallengeOut(BaseModel):
    """The password was right; a second factor is awaited (``POST /auth/2fa/verify``)."""

    mfa_required: Literal[True]
    mfa_token: str = Field(description="Single use; lives five minutes; spent by its fifth wrong code.")
    methods: list[Literal["totp", "recovery_code"]]


class LoginOut(RootModel[TokenPairOut | MfaChallengeOut]):
    """A token pair, or a second-factor challenge when the user has 2FA on."""


class TotpSetupOut(BaseModel):
    """A new TOTP secret (RFC 6238, SHA-1, 6 digits, 30 s): show it once, then confirm a code."""

    secret: str
    otpauth_uri: str
    qr_svg: str = Field(description="The otpauth URI as a QR code (SVG).")


class RecoveryCodesOut(BaseModel):
    """Ten single-use recovery codes, shown once."""

    recovery_codes: list[str]


class ApiKeySummary(BaseModel):
    id: str = Field(json_schema_extra={"format": "uuid"})
    name: str


class ApiKeyMeOut(BaseModel):
    """``GET /auth/me`` with an API key: the key, its tenant and what it may do now."""

    api_key: ApiKeySummary
    tenant: TenantSummary
    permissions: list[str]


class WhoAmIOut(RootModel[MeOut | ApiKeyMeOut]):
    """The signed-in user, or the API key, in the current tenant."""


class ApiKeyIn(RequestModel):
    name: Annotated[SafeText, Field(min_length=1, max_length=200)]
    scopes: Annotated[
        list[Annotated[str, Field(pattern=PERMISSION_PATTERN)]], Field(min_length=1, max_length=100)
    ]
    expires_in_days: Annotated[int, Field(ge=1, le=3650)] | None = None


class ApiKeyOut(BaseModel):
    """An API key (never its secret)."""

    id: str = Field(json_schema_extra={"format": "uuid"})
    name: str
    prefix: str = Field(description="``tk_<public id>``: how the key starts.")
    scopes: list[str]
    created_at: str
    expires_at: str | None
    last_used_at: str | None = Field(None, description="Written in batches: up to a minute behind.")


class ApiKeyCreatedOut(ApiKeyOut):
    """A new key: ``key`` is shown this once."""

    key: str


class ApiKeyPage(BaseModel):
    items: list[ApiKeyOut]
    next_cursor: str | None = None


class ImpersonateIn(RequestModel):
    user_id: uuid.UUID
    reason: Annotated[SafeText, Field(min_length=3, max_length=500)]
    read_only: bool = False
    minutes: Annotated[int, Field(ge=1, le=60)] = 15


class ImpersonationOut(BaseModel):
    """An access token of the user, acted on by the caller: no refresh token."""

    access_token: str
    token_type: Literal["bearer"]
    expires_in: int
