"""`mlos up`'s authentication: off unless MLOS_AUTH_TOKENS_FILE names a token file.

With a token file, the services accept its tokens plus one `service` token made for this run (a
random token, written 0600 under <home>/auth/). The services' token file there holds every token
only as its sha256 (no copy of a secret). The services send each other the run's token, and the
launcher uses it for its own calls. Clients use the tokens of the user's file (`mlos --token ...`,
MLOS_TOKEN, MLOS_TOKEN_FILE; tritonclient: headers={"authorization": "Bearer ..."}).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from mlos_common.config import ServiceSettings

OUTGOING = ("MLOS_TOKEN", "MLOS_TOKEN_FILE")


@dataclass(frozen=True)
class SuiteAuth:
    user_tokens_file: Path | None = None  # the user's MLOS_AUTH_TOKENS_FILE; None = auth off
    tokens_file: Path | None = None  # the one the services read: the user's tokens + the run's service token
    service_token_file: Path | None = None

    def env(self) -> dict[str, str]:
        """The services' auth environment (empty with auth off)."""
        if self.tokens_file is None or self.service_token_file is None:
            return {}
        return {"MLOS_AUTH_TOKENS_FILE": str(self.tokens_file), "MLOS_TOKEN_FILE": str(self.service_token_file)}

    def settings(self) -> ServiceSettings:
        """Settings for the launcher's own calls: the run's service token (TLS from the environment)."""
        return ServiceSettings(token_file=self.service_token_file) if self.service_token_file else ServiceSettings()

    def line(self, host: str) -> str:
        """The one line `mlos up` prints about authentication."""
        if self.user_tokens_file is None:
            where = "this host" if _is_loopback(host) else f"ANY host that can reach {host} (not loopback!)"
            return f"auth      OFF: every RPC is open to {where}; set MLOS_AUTH_TOKENS_FILE to require tokens"
        return f"auth      on: bearer tokens from {self.user_tokens_file} (default deny; health open)"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def suite_auth(home: Path) -> SuiteAuth:
    """Auth for a run under `home`, from the environment's MLOS_AUTH_TOKENS_FILE."""
    user_file = ServiceSettings().auth_tokens_file
    if user_file is None:
        return SuiteAuth()
    folder = home / "auth"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_urlsafe(32)
    digest = hashlib.sha256(token.encode()).hexdigest()
    tokens = folder / "tokens"
    _write_private(tokens, f"{_digested(user_file.read_text())}sha256:{digest} service mlos-up-services\n")
    token_file = folder / "service-token"
    _write_private(token_file, token + "\n")
    return SuiteAuth(user_file, tokens, token_file)


def _digested(text: str) -> str:
    """The token file's lines with each token replaced by its `sha256:` digest (comments dropped)."""
    lines = []
    for raw in text.splitlines():
        fields = raw.split()
        if not fields or fields[0].startswith("#"):
            continue
        if not fields[0].startswith("sha256:"):
            fields[0] = "sha256:" + hashlib.sha256(fields[0].encode()).hexdigest()
        lines.append(" ".join(fields) + "\n")
    return "".join(lines)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
