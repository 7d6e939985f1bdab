"""Certificates and token files made in the tests: a CA, leaf certificates for 127.0.0.1 and
localhost signed by it (cryptography), and token files with one token per role."""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROLE_NAMES = ("infer", "admin", "service")


@dataclass(frozen=True)
class Ca:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    cert_path: Path


@dataclass(frozen=True)
class Leaf:
    cert_path: Path
    key_path: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return builder.not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))


def make_ca(folder: Path, name: str) -> Ca:
    """A self-signed CA; its certificate is written to <folder>/<name>-ca.pem."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
    builder = _validity(builder).public_key(key.public_key()).serial_number(x509.random_serial_number())
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    cert = builder.sign(key, hashes.SHA256())
    path = folder / f"{name}-ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Ca(key, cert, path)


def make_leaf(folder: Path, ca: Ca, name: str) -> Leaf:
    """A certificate for 127.0.0.1 and localhost, usable by servers and clients, signed by `ca`."""
    key = ec.generate_private_key(ec.SECP256R1())
    sans = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    builder = x509.CertificateBuilder().subject_name(_name(name)).issuer_name(ca.cert.subject)
    builder = _validity(builder).public_key(key.public_key()).serial_number(x509.random_serial_number())
    builder = builder.add_extension(sans, critical=False).add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
    )
    cert = builder.sign(ca.key, hashes.SHA256())
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Leaf(cert_path, key_path)


@dataclass(frozen=True)
class Tokens:
    """One fresh token per role (tokens[role]) and the token file the servers read."""

    by_role: dict[str, str]
    file: Path

    def __getitem__(self, role: str) -> str:
        return self.by_role[role]

    def header(self, role: str) -> tuple[str, str]:
        return ("authorization", f"Bearer {self.by_role[role]}")


def make_tokens(folder: Path) -> Tokens:
    """A token file with one token per role, `service` stored as its sha256 (both forms are read)."""
    import hashlib

    by_role = {role: f"tok-{role}-{secrets.token_hex(16)}" for role in ROLE_NAMES}
    lines = ["# test tokens", f"{by_role['infer']} infer client", f"{by_role['admin']} admin operator"]
    lines.append(f"sha256:{hashlib.sha256(by_role['service'].encode()).hexdigest()} service peers")
    path = folder / "tokens"
    path.write_text("\n".join(lines) + "\n")
    return Tokens(by_role, path)
