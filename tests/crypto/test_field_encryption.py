"""Field-level envelope encryption against moto's KMS, with the key provisioned from template.yaml."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from chalicelib.crypto import DecryptError, FieldCipher, is_sealed
from stellar.devstack import aws

SECRET = "node-broker-password-7f3a9c"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def res() -> Iterator[aws.Resources]:
    os.environ.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1")
    saved = os.environ.pop("AWS_ENDPOINT_URL", None)
    local = aws.LocalAws(port=_free_port())
    try:
        yield aws.provision(local.start())
    finally:
        local.stop()
        if saved is not None:
            os.environ["AWS_ENDPOINT_URL"] = saved


@pytest.fixture
def kms(res: aws.Resources) -> Any:
    return boto3.client("kms", endpoint_url=res.endpoint, region_name=res.region)


def test_provisioned_key_matches_the_template(res: aws.Resources, kms: Any) -> None:
    meta = kms.describe_key(KeyId=res.data_key)["KeyMetadata"]
    assert meta["KeyUsage"] == "ENCRYPT_DECRYPT" and meta["KeyState"] == "Enabled"
    assert kms.get_key_rotation_status(KeyId=res.data_key)["KeyRotationEnabled"] is True
    again = aws.provision(res.endpoint)  # idempotent: found again by alias, not duplicated
    assert again.data_key == res.data_key


def test_ciphertext_never_contains_the_plaintext(res: aws.Resources, kms: Any) -> None:
    cipher = FieldCipher(kms, res.data_key)
    sealed = cipher.seal(SECRET, "node", "n1", "broker_secret")
    assert is_sealed(sealed) and SECRET not in sealed
    assert SECRET.encode() not in sealed.encode()
    assert cipher.seal(SECRET, "node", "n1", "broker_secret") != sealed  # fresh nonce each time
    # A new process (empty cache) opens it through KMS.
    assert FieldCipher(kms, res.data_key).open(sealed, "node", "n1", "broker_secret") == SECRET


def test_tampering_is_detected(res: aws.Resources, kms: Any) -> None:
    cipher = FieldCipher(kms, res.data_key)
    sealed = cipher.seal(SECRET, "node", "n1", "broker_secret")
    prefix, wrapped, nonce, body = sealed.split(".")
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    for bad in (f"{prefix}.{wrapped}.{nonce}.{flipped}", f"{prefix}.{wrapped}.{nonce[::-1]}.{body}",
                f"{prefix}.{wrapped[:-4]}AAAA.{nonce}.{body}", "sf1.garbage", SECRET):
        with pytest.raises(DecryptError):
            FieldCipher(kms, res.data_key).open(bad, "node", "n1", "broker_secret")


def test_moving_a_ciphertext_to_another_record_or_field_fails(res: aws.Resources, kms: Any) -> None:
    cipher = FieldCipher(kms, res.data_key)
    sealed = cipher.seal(SECRET, "node", "n1", "broker_secret")
    assert cipher.open(sealed, "node", "n1", "broker_secret") == SECRET
    moves = (("node", "n2", "broker_secret"), ("node", "n1", "other"), ("server", "n1", "broker_secret"))
    for kind, rid, field in moves:
        with pytest.raises(DecryptError):
            cipher.open(sealed, kind, rid, field)


def test_rotation_keeps_old_records_readable(res: aws.Resources, kms: Any) -> None:
    cipher = FieldCipher(kms, res.data_key)
    old = cipher.seal(SECRET, "node", "n1", "broker_secret")
    new_key = kms.create_key(Description="rotated")["KeyMetadata"]["KeyId"]
    cipher.rotate(new_key)
    new = cipher.seal("after-rotation", "node", "n2", "broker_secret")
    assert FieldCipher.fingerprint(new) != FieldCipher.fingerprint(old)
    reader = FieldCipher(kms, new_key)  # a process that only knows the new key
    assert reader.open(old, "node", "n1", "broker_secret") == SECRET
    assert reader.open(new, "node", "n2", "broker_secret") == "after-rotation"
    rewrapped = cipher.rewrap(old)
    assert rewrapped.split(".")[2:] == old.split(".")[2:]  # only the wrapped key changed
    assert rewrapped.split(".")[1] != old.split(".")[1]
    assert FieldCipher(kms, new_key).open(rewrapped, "node", "n1", "broker_secret") == SECRET
    # Which KMS key wraps each value (moto does not refuse disabled keys, so ask KMS directly).
    from chalicelib.crypto import _unb64

    def wrapping_key(value: str) -> str:
        return kms.decrypt(CiphertextBlob=_unb64(value.split(".")[1]))["KeyId"]

    assert wrapping_key(old).endswith(res.data_key)
    assert wrapping_key(rewrapped).endswith(new_key)
    assert wrapping_key(new).endswith(new_key)
