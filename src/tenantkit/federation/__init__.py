"""Federated identity: OpenID Connect sign-in, linked identities and per-tenant single sign-on."""
