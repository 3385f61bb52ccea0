"""``/auth/2fa/*``: enrol, confirm and turn off TOTP; answer the sign-in challenge."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tenantkit.auth.accounts import Accounts
from tenantkit.auth.mfa import TwoFactor
from tenantkit.auth.schemas import (
    MfaCodeIn,
    MfaRecoveryIn,
    MfaVerifyIn,
    PasswordIn,
    RecoveryCodesOut,
    TotpCodeIn,
    TotpDisableIn,
    TotpSetupOut,
)
from tenantkit.auth.sessions import Sessions
from tenantkit.auth.tokens import TokenPair
from tenantkit.errors import AuthenticationError
from tenantkit.http import NO_STORE, parse_body
from tenantkit.openapi import describe
from tenantkit.openapi.schemas import TokenPairOut
from tenantkit.rbac.decorators import request_principal, requires_auth

__all__ = ["TwoFactorRoutes"]


class TwoFactorRoutes:
    """The two-factor API.

    Args:
        mfa: TOTP and recovery codes.
        sessions: Finishes a challenged sign-in; checks the password when 2FA is turned off.
        accounts: The user's email (the lockout is per account).
        pair_response: Renders a token pair with its refresh cookie (the auth routes' own).
        max_json_depth: Deepest JSON body accepted.
        prefix: Where the auth routes live.
    """

    def __init__(
        self,
        mfa: TwoFactor,
        sessions: Sessions,
        accounts: Accounts,
        *,
        pair_response: Callable[[TokenPair], Response],
        max_json_depth: int = 32,
        prefix: str = "/auth",
    ) -> None:
        self.mfa = mfa
        self.sessions = sessions
        self.accounts = accounts
        self.pair_response = pair_response
        self.depth = max_json_depth
        self.prefix = prefix

    def routes(self) -> list[BaseRoute]:
        p = f"{self.prefix}/2fa"
        return [
            Route(f"{p}/totp/setup", self.setup, methods=["POST"], name="auth:2fa-setup"),
            Route(f"{p}/totp/confirm", self.confirm, methods=["POST"], name="auth:2fa-confirm"),
            Route(f"{p}/totp", self.disable, methods=["DELETE"], name="auth:2fa-disable"),
            Route(f"{p}/verify", self.verify, methods=["POST"], name="auth:2fa-verify"),
        ]

    @describe(
        summary="Start TOTP enrolment: a secret, its otpauth URI and QR code",
        response=TotpSetupOut,
        responses={409: "Two-factor sign-in is already on."},
        tags=["auth"],
    )
    @requires_auth(enrolment=True, session=True)
    async def setup(self, request: Request) -> Response:
        principal = request_principal(request)
        email = await self.accounts.email_of(principal.user_id) or ""
        return JSONResponse(await self.mfa.setup(principal.user_id, email), headers=NO_STORE)

    @describe(
        summary="Turn TOTP on with a first code; ten recovery codes, shown once",
        body=TotpCodeIn,
        response=RecoveryCodesOut,
        responses={400: "Wrong code, or no enrolment started."},
        tags=["auth"],
    )
    @requires_auth(enrolment=True, session=True)
    async def confirm(self, request: Request) -> Response:
        body = await parse_body(request, TotpCodeIn, max_depth=self.depth)
        codes = await self.mfa.confirm(request_principal(request).user_id, body.code)
        return JSONResponse({"recovery_codes": codes}, headers=NO_STORE)

    @describe(
        summary="Turn TOTP off (with a current code or the password)",
        body=TotpDisableIn,
        status=204,
        responses={401: "Wrong code or password.", 404: "Two-factor sign-in is not on.", 423: "Locked."},
        tags=["auth"],
    )
    @requires_auth(enrolment=True, session=True)
    async def disable(self, request: Request) -> Response:
        proof = (await parse_body(request, TotpDisableIn, max_depth=self.depth)).root
        principal = request_principal(request)
        email = await self.accounts.email_of(principal.user_id) or ""
        if isinstance(proof, PasswordIn):
            try:
                await self.sessions.check_password(
                    email, proof.password, ip=request.state.client_ip, reason="mfa_disable"
                )
            except AuthenticationError:
                raise AuthenticationError("The password is wrong.") from None
        else:
            await self.mfa.verify(principal.user_id, email, code=proof.code)
        await self.mfa.disable(principal.user_id)
        return Response(status_code=204)

    @describe(
        summary="Answer the sign-in challenge: a token pair, as sign-in",
        body=MfaVerifyIn,
        response=TokenPairOut,
        responses={401: "Unknown, expired or spent challenge, or a wrong or used code.", 423: "Locked."},
        tags=["auth"],
        public=True,
    )
    async def verify(self, request: Request) -> Response:
        answer = (await parse_body(request, MfaVerifyIn, max_depth=self.depth)).root
        pair = await self.sessions.complete_second_factor(
            answer.mfa_token,
            code=answer.code if isinstance(answer, MfaCodeIn) else None,
            recovery_code=answer.recovery_code if isinstance(answer, MfaRecoveryIn) else None,
            ip=request.state.client_ip,
            user_agent=request.headers.get("user-agent", ""),
        )
        return self.pair_response(pair)
