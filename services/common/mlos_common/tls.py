"""TLS and mutual TLS for servers and channels, and the bearer token a channel sends.

Files (PEM), the same env names in every process: MLOS_TLS_CERT and MLOS_TLS_KEY (this process's
certificate and key: served by servers, presented by clients), MLOS_TLS_CA (servers require a
client certificate signed by it; clients verify servers by it). Cert and key without a CA: the
server speaks TLS without asking for client certificates. Nothing set: plaintext (the default on
loopback).

The outgoing token (MLOS_TOKEN, or the file MLOS_TOKEN_FILE) is added to every call by one client
interceptor on the channels client_channel builds, so every client wrapper carries it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc import aio

from mlos_common.config import ServiceSettings


class TlsSettingsError(ValueError):
    """The TLS or token settings are incomplete or their files unreadable; the message names them."""


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsSettingsError(f"cannot read {what} {path}: {exc.strerror or type(exc).__name__}") from None


def server_credentials(settings: ServiceSettings) -> grpc.ServerCredentials | None:
    """None for plaintext; TLS with the cert/key; mutual TLS (client certs required) with a CA too."""
    if settings.tls_cert is None and settings.tls_key is None:
        if settings.tls_ca is not None:
            raise TlsSettingsError("MLOS_TLS_CA is set without MLOS_TLS_CERT and MLOS_TLS_KEY: a server needs both")
        return None
    if settings.tls_cert is None or settings.tls_key is None:
        raise TlsSettingsError("set both MLOS_TLS_CERT and MLOS_TLS_KEY (one is missing)")
    pair = (_read(settings.tls_key, "MLOS_TLS_KEY"), _read(settings.tls_cert, "MLOS_TLS_CERT"))
    ca = _read(settings.tls_ca, "MLOS_TLS_CA") if settings.tls_ca is not None else None
    return grpc.ssl_server_credentials([pair], root_certificates=ca, require_client_auth=ca is not None)


def add_port(server: aio.Server, address: str, settings: ServiceSettings) -> int:
    """Binds `address` with TLS when configured, plaintext otherwise; 0 when it cannot bind."""
    credentials = server_credentials(settings)
    if credentials is None:
        return server.add_insecure_port(address)
    return server.add_secure_port(address, credentials)


def channel_credentials(settings: ServiceSettings) -> grpc.ChannelCredentials | None:
    """None for plaintext; TLS verified by MLOS_TLS_CA, presenting the cert/key when set."""
    if settings.tls_ca is None:
        return None
    ca = _read(settings.tls_ca, "MLOS_TLS_CA")
    key = _read(settings.tls_key, "MLOS_TLS_KEY") if settings.tls_key is not None else None
    cert = _read(settings.tls_cert, "MLOS_TLS_CERT") if settings.tls_cert is not None else None
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


def outgoing_token(settings: ServiceSettings) -> str | None:
    """The token to send: MLOS_TOKEN, else the first line of MLOS_TOKEN_FILE, else None."""
    if settings.token is not None:
        return settings.token.get_secret_value() or None
    if settings.token_file is not None:
        return _read(settings.token_file, "MLOS_TOKEN_FILE").decode(errors="replace").strip() or None
    return None


class _Bearer:
    """Adds `authorization: Bearer <token>` to a call's metadata. grpc.aio sorts a channel's
    interceptors by the first kind each one is, so each call kind needs an object of its own."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, details: aio.ClientCallDetails) -> aio.ClientCallDetails:
        metadata = aio.Metadata(*(details.metadata or ()))
        metadata.add(*self._header)
        return aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


class _UnaryUnary(_Bearer, aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _UnaryStream(_Bearer, aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _StreamUnary(_Bearer, aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


class _StreamStream(_Bearer, aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


def bearer_interceptors(token: str) -> list[aio.ClientInterceptor]:
    """Client interceptors that send `token` on every call, of every kind."""
    return [kind(token) for kind in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)]


def check_client_settings(settings: ServiceSettings) -> None:
    """Reads the outgoing token and client TLS files once, so a missing one stops start-up
    (TlsSettingsError naming it) instead of failing each later call."""
    outgoing_token(settings)
    channel_credentials(settings)


def secure_channel(
    addr: str, settings: ServiceSettings, options: Sequence[tuple[str, Any]], interceptors: Sequence[Any] = ()
) -> aio.Channel:
    """A channel to `addr` with the settings' TLS and bearer token (plaintext and none when unset)."""
    chain = list(interceptors)
    token = outgoing_token(settings)
    if token is not None:
        chain += bearer_interceptors(token)
    credentials = channel_credentials(settings)
    if credentials is None:
        return aio.insecure_channel(addr, options=list(options), interceptors=chain or None)
    return aio.secure_channel(addr, credentials, options=list(options), interceptors=chain or None)
