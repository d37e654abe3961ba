"""Field-level envelope encryption for sensitive values kept in the store.

Why envelope: KMS (moto's locally) only ever sees 32-byte data keys, never field values, so one
KMS call per data key serves many fields, and rotating the KMS key means re-wrapping those small
keys (``KMS ReEncrypt``) instead of rewriting every record. Each field is AES-256-GCM with the
record's kind, id and field name as associated data: a ciphertext copied to another record, or
edited, fails to decrypt instead of yielding some other tenant's secret.

A sealed value is one ASCII string, so both store backends keep it in a plain text column:
``sf1.<wrapped data key>.<nonce>.<ciphertext+tag>`` (urlsafe base64, no padding).
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "sf1"


class DecryptError(Exception):
    """The value was tampered with, moved to another record, or its key is gone."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def associated_data(kind: str, record_id: str, field: str) -> bytes:
    """What a ciphertext is bound to; length-prefixed so no two triples encode alike."""
    parts = [p.encode() for p in (kind, record_id, field)]
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX + ".")


class FieldCipher:
    """Seals and opens field values under data keys wrapped by one KMS key (``key_id``).

    A process reuses one data key for its writes (fresh random nonce per field) and caches the
    data keys it has unwrapped, keyed by their wrapped form.
    """

    def __init__(self, kms: Any, key_id: str) -> None:
        self.kms = kms
        self.key_id = key_id
        self._lock = threading.Lock()
        self._active: tuple[bytes, bytes] | None = None  # (plaintext key, wrapped key)
        self._cache: dict[bytes, bytes] = {}

    @classmethod
    def from_env(cls, endpoint: str | None = None, region: str | None = None) -> FieldCipher:
        """The cipher of the deployed stack: ``STELLAR_DATA_KEY`` names the KMS key."""
        import boto3

        key_id = os.environ.get("STELLAR_DATA_KEY", "")
        if not key_id:
            raise RuntimeError("STELLAR_DATA_KEY is not set")
        kms = boto3.client("kms", endpoint_url=endpoint or os.environ.get("AWS_ENDPOINT_URL") or None,
                           region_name=region or os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
        return cls(kms, key_id)

    # ---- data keys ----------------------------------------------------------------------
    def _data_key(self) -> tuple[bytes, bytes]:
        with self._lock:
            if self._active is None:
                made = self.kms.generate_data_key(KeyId=self.key_id, KeySpec="AES_256")
                self._active = (made["Plaintext"], made["CiphertextBlob"])
                self._cache[made["CiphertextBlob"]] = made["Plaintext"]
            return self._active

    def _unwrap(self, wrapped: bytes) -> bytes:
        with self._lock:
            key = self._cache.get(wrapped)
        if key is not None:
            return key
        try:
            key = self.kms.decrypt(CiphertextBlob=wrapped)["Plaintext"]
        except Exception as exc:  # botocore ClientError: invalid ciphertext, disabled key, ...
            raise DecryptError(f"cannot unwrap the data key: {exc}") from None
        with self._lock:
            self._cache[wrapped] = key
        return key

    # ---- fields -------------------------------------------------------------------------
    def seal(self, plaintext: str, kind: str, record_id: str, field: str) -> str:
        key, wrapped = self._data_key()
        nonce = os.urandom(12)
        body = AESGCM(key).encrypt(nonce, plaintext.encode(), associated_data(kind, record_id, field))
        return ".".join((PREFIX, _b64(wrapped), _b64(nonce), _b64(body)))

    def open(self, sealed: str, kind: str, record_id: str, field: str) -> str:
        try:
            prefix, wrapped, nonce, body = sealed.split(".")
            if prefix != PREFIX:
                raise ValueError(prefix)
            wrapped_b, nonce_b, body_b = _unb64(wrapped), _unb64(nonce), _unb64(body)
        except ValueError:
            raise DecryptError("not a sealed field value") from None
        key = self._unwrap(wrapped_b)
        try:
            return AESGCM(key).decrypt(nonce_b, body_b, associated_data(kind, record_id, field)).decode()
        except (InvalidTag, ValueError):
            raise DecryptError(f"{kind} {record_id}: {field} was altered or belongs to another record") from None

    # ---- rotation -----------------------------------------------------------------------
    def rotate(self, new_key_id: str) -> None:
        """New writes use a fresh data key under ``new_key_id``; existing values stay readable,
        since each carries its wrapped data key and KMS finds the key that wrapped it."""
        with self._lock:
            self.key_id = new_key_id
            self._active = None

    def rewrap(self, sealed: str) -> str:
        """The same value with its data key re-wrapped under the current KMS key (``ReEncrypt``):
        the field ciphertext and its binding are unchanged and the plaintext never leaves KMS."""
        try:
            prefix, wrapped, nonce, body = sealed.split(".")
        except ValueError:
            raise DecryptError("not a sealed field value") from None
        try:
            out = self.kms.re_encrypt(CiphertextBlob=_unb64(wrapped), DestinationKeyId=self.key_id)
        except Exception as exc:
            raise DecryptError(f"cannot re-wrap the data key: {exc}") from None
        return ".".join((prefix, _b64(out["CiphertextBlob"]), nonce, body))

    @staticmethod
    def fingerprint(sealed: str) -> str:
        """A short id of the wrapped data key (which key generation a value is under), for audits."""
        return hashlib.sha256(sealed.split(".")[1].encode()).hexdigest()[:12]
