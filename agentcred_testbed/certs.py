"""Throwaway PKI for the local control plane.

kube-apiserver needs a serving certificate, a client CA for the admin identity and
an RSA key pair to sign service-account tokens (TokenRequest); Lowkey Vault needs an
RSA CA and server certificate (its TLS suites are RSA-only), and the Azure replay an
EC pair. These are generated once per testbed state folder with ``cryptography``;
nothing here is used outside the testbed.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=30)
_Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
_Public = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


def _new_key(use_rsa: bool) -> _Key:
    """P-256, or RSA-2048 for a server whose TLS suites are RSA-only."""
    if use_rsa:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: _Key, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(common_name: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _builder(subject: x509.Name, issuer: x509.Name, public: _Public) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )


def make_ca(
    folder: Path, name: str = "agentcred-testbed-ca", *, use_rsa: bool = False, ext: str = "crt"
) -> Pair:
    """A CA (``<folder>/ca.<ext>`` and ``ca.key``); ``use_rsa``: an RSA key, not P-256."""
    key = _new_key(use_rsa)
    subject = _name(name)
    cert = (
        _builder(subject, subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return _save(folder, "ca", cert, key, ext)


def load(pair: Pair) -> tuple[x509.Certificate, _Key]:
    """The certificate and private key of a pair written here."""
    cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
    key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    return cert, key


def _save(folder: Path, stem: str, cert: x509.Certificate, key: _Key, ext: str = "crt") -> Pair:
    folder.mkdir(parents=True, exist_ok=True)
    pair = Pair(folder / f"{stem}.{ext}", folder / f"{stem}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, pair.key)
    return pair


def make_leaf(
    folder: Path,
    stem: str,
    ca: Pair,
    *,
    common_name: str,
    org: str | None = None,
    server_names: tuple[str, ...] = (),
    server_ips: tuple[str, ...] = (),
    use_rsa: bool = False,
    ext: str = "crt",
) -> Pair:
    """A server certificate (if names/IPs given) or a client certificate, signed by ``ca``
    (``<folder>/<stem>.<ext>`` and ``<stem>.key``); ``use_rsa``: an RSA key, not P-256."""
    ca_cert, ca_key = load(ca)
    key = _new_key(use_rsa)
    server = bool(server_names or server_ips)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = _builder(_name(common_name, org), ca_cert.subject, key.public_key()).add_extension(
        x509.ExtendedKeyUsage([usage]), critical=False
    )
    if server:
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in server_names]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return _save(folder, stem, builder.sign(ca_key, hashes.SHA256()), key, ext)


def make_signing_keypair(folder: Path, stem: str = "sa") -> Pair:
    """RSA key pair for service-account token signing (``cert`` holds the public key)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    folder.mkdir(parents=True, exist_ok=True)
    pair = Pair(folder / f"{stem}.pub", folder / f"{stem}.key")
    _write_key(key, pair.key)
    pair.cert.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pair
