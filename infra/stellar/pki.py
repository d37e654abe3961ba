"""A small file-backed certificate authority for self-hosted brokers (Mosquitto mTLS).

AWS IoT Core issues and revokes device certificates itself; a self-hosted Mosquitto needs
someone to play CA. ``LocalCA`` keeps everything in one directory (created 0700):

- ``ca.pem`` / ``ca.key``: the CA certificate and its EC P-256 key (0600);
- ``crl.pem``: the certificate revocation list Mosquitto reads through ``crlfile``;
- ``issued.json`` / ``revoked.json``: serial numbers issued (with their CN) and revoked.

Server certificates carry SAN ``DNS:localhost`` and ``IP:127.0.0.1`` (plus any extra hosts)
so clients verify them with hostname checks on. Client certificates carry the broker
username as CN (``node-<id>``): with ``use_identity_as_username`` Mosquitto takes the CN
as the username, so the node's dynamic-security roles apply unchanged. A CRL expires
(``next_update``); every ``revoke`` and ``refresh_crl`` re-signs it, and OpenSSL refuses
*every* client once it has expired, so whoever runs the CA must refresh it well before.

One writer at a time: the JSON indexes are rewritten whole, without locking.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_SERVER_HOSTS = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, both PEM; ``serial`` is what ``revoke`` takes."""

    cert_pem: bytes
    key_pem: bytes
    serial: int
    common_name: str

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """Write ``<stem>.pem`` and ``<stem>.key`` (0600); return both paths."""
        directory.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
        cert_path.write_bytes(self.cert_pem)
        _write_private(key_path, self.key_pem)
        return cert_path, key_path


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_private(path: Path, data: bytes) -> None:
    """Create the file 0600 before any secret byte is in it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


class LocalCA:
    """Issue server and per-node client certificates and revoke them via a CRL file."""

    def __init__(self, root: Path, crl_days: int = 30) -> None:
        """Open the CA in ``root``, creating it (key, certificate, empty CRL) if absent."""
        self.root = Path(root)
        self.crl_days = crl_days
        if not self.ca_path.exists():
            self._create()
        self._key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        self.certificate = x509.load_pem_x509_certificate(self.ca_path.read_bytes())

    # -- paths ------------------------------------------------------------------------------

    @property
    def ca_path(self) -> Path:
        return self.root / "ca.pem"

    @property
    def key_path(self) -> Path:
        return self.root / "ca.key"

    @property
    def crl_path(self) -> Path:
        return self.root / "crl.pem"

    # -- creation ---------------------------------------------------------------------------

    def _create(self, name: str = "StellarStack local CA", days: int = 3650) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = _now()
        cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_private(self.key_path, _key_pem(key))
        self.ca_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._key, self.certificate = key, cert
        self._save("issued.json", {})
        self._save("revoked.json", {})
        self.refresh_crl()

    # -- issuing ----------------------------------------------------------------------------

    def issue_server(self, hosts: Iterable[str] = DEFAULT_SERVER_HOSTS, days: int = 365) -> Issued:
        """A TLS server certificate valid for ``hosts`` (DNS names or IP addresses)."""
        hosts = list(dict.fromkeys(hosts))
        if not hosts:
            raise ValueError("a server certificate needs at least one host")
        return self._issue(hosts[0], ExtendedKeyUsageOID.SERVER_AUTH, days, [_san(h) for h in hosts])

    def issue_client(self, common_name: str, days: int = 365) -> Issued:
        """A client certificate whose CN is the broker username (e.g. ``node-<id>``)."""
        if not common_name or any(c in common_name for c in "+#/$\0"):
            raise ValueError(f"invalid broker username for a certificate: {common_name!r}")
        return self._issue(common_name, ExtendedKeyUsageOID.CLIENT_AUTH, days, [])

    def _issue(self, cn: str, usage: x509.ObjectIdentifier, days: int, sans: list[x509.GeneralName]) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        issued = self._load("issued.json")
        issued[str(cert.serial_number)] = {"cn": cn, "not_after": cert.not_valid_after_utc.isoformat()}
        self._save("issued.json", issued)
        return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key), cert.serial_number, cn)

    # -- revocation -------------------------------------------------------------------------

    def revoke(self, serial: int) -> None:
        """Add ``serial`` to the CRL and re-sign it; the broker must then reload the CRL."""
        if str(serial) not in self._load("issued.json"):
            raise KeyError(f"serial {serial} was not issued by this CA")
        revoked = self._load("revoked.json")
        revoked.setdefault(str(serial), _now().isoformat())
        self._save("revoked.json", revoked)
        self.refresh_crl()

    def revoke_subject(self, common_name: str) -> list[int]:
        """Revoke every certificate issued to ``common_name`` (e.g. a deleted node)."""
        serials = [int(s) for s, row in self._load("issued.json").items() if row["cn"] == common_name]
        for serial in serials:
            self.revoke(serial)
        return serials

    def revoked_serials(self) -> set[int]:
        return {int(s) for s in self._load("revoked.json")}

    def refresh_crl(self) -> Path:
        """Re-sign the CRL with a fresh ``next_update``; call it well within ``crl_days``."""
        now = _now()
        builder = (
            x509.CertificateRevocationListBuilder().issuer_name(self.certificate.subject)
            .last_update(now - dt.timedelta(minutes=5)).next_update(now + dt.timedelta(days=self.crl_days))
            .add_extension(x509.CRLNumber(int(now.timestamp() * 1000)), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
        )
        for serial, when in self._load("revoked.json").items():
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(int(serial))
                .revocation_date(dt.datetime.fromisoformat(when)).build()
            )
        crl = builder.sign(self._key, hashes.SHA256())
        tmp = self.crl_path.with_suffix(".tmp")
        tmp.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        os.replace(tmp, self.crl_path)  # a reader never sees half a CRL
        return self.crl_path

    # -- storage ----------------------------------------------------------------------------

    def _load(self, name: str) -> dict[str, Any]:
        path = self.root / name
        return json.loads(path.read_text()) if path.exists() else {}

    def _save(self, name: str, data: dict[str, Any]) -> None:
        tmp = self.root / f"{name}.tmp"
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, self.root / name)
