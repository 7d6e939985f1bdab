"""`mlos up`'s auth files: the services' token file holds digests only, accepts the user's tokens
and the run's service token; without MLOS_AUTH_TOKENS_FILE auth is off and says so."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mlos_cli.up_auth import suite_auth
from mlos_common.auth import TokenBook


def test_the_services_token_file_holds_digests_of_every_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "tokens"
    user.write_text("# mine\nuser-infer-token-123 infer me\nuser-admin-token-456 admin,infer ops\n")
    monkeypatch.setenv("MLOS_AUTH_TOKENS_FILE", str(user))
    auth = suite_auth(tmp_path / "home")
    assert auth.tokens_file is not None and auth.service_token_file is not None
    text = auth.tokens_file.read_text()
    assert "user-infer-token-123" not in text and "user-admin-token-456" not in text
    for path in (auth.tokens_file, auth.service_token_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    book = TokenBook.load(auth.tokens_file)
    assert book.principal([("authorization", "Bearer user-admin-token-456")]).roles == {"admin", "infer"}
    service = auth.service_token_file.read_text().strip()
    assert book.principal([("authorization", f"Bearer {service}")]).roles == {"service"}
    assert auth.env() == {"MLOS_AUTH_TOKENS_FILE": str(auth.tokens_file), "MLOS_TOKEN_FILE": str(auth.service_token_file)}
    assert auth.line("127.0.0.1").startswith("auth      on: bearer tokens from")


def test_without_a_token_file_auth_is_off_and_says_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLOS_AUTH_TOKENS_FILE", raising=False)
    auth = suite_auth(tmp_path / "home")
    assert auth.env() == {}
    assert "OFF: every RPC is open to this host" in auth.line("127.0.0.1")
    assert "not loopback" in auth.line("0.0.0.0")
