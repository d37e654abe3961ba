"""Local AWS: moto's ThreadedMotoServer (or any endpoint already running, e.g. LocalStack),
with the table, user pool, app client, admin group and bucket provisioned from template.yaml.

moto cannot deploy SAM templates (it silently skips Cognito), so the resources are created
through the service APIs from the template's own properties: the template stays the single
definition of their shape, and `tests/test_template.py` checks the two agree.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.exceptions import ClientError

from . import template as tpl

_TABLE_KEYS = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode",
               "StreamSpecification")
_POOL_KEYS = ("Policies", "UsernameAttributes", "AutoVerifiedAttributes", "MfaConfiguration",
              "AdminCreateUserConfig")
_CLIENT_KEYS = ("ExplicitAuthFlows", "GenerateSecret", "PreventUserExistenceErrors", "AccessTokenValidity",
                "IdTokenValidity", "RefreshTokenValidity", "TokenValidityUnits")


@dataclass
class Resources:
    endpoint: str
    region: str
    table: str
    user_pool_id: str
    app_client_id: str
    backup_bucket: str
    data_key: str = ""  # the KMS key id wrapping field-encryption data keys


def endpoint_answers(url: str, timeout: float = 1.0) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 80), timeout=timeout):
            return True
    except OSError:
        return False


class LocalAws:
    """Start moto on ``port`` unless ``AWS_ENDPOINT_URL`` already answers."""

    def __init__(self, port: int = 4566, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port
        self._server: Any = None
        self.endpoint = ""
        self.external = False

    def start(self) -> str:
        given = os.environ.get("AWS_ENDPOINT_URL", "")
        if given and endpoint_answers(given):
            self.endpoint, self.external = given.rstrip("/"), True
            return self.endpoint
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per AWS call otherwise

        _serialize_moto()
        self._server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        # moto keeps its state per process, not per server: start from nothing every time.
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST"), timeout=10)
        return self.endpoint

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


def _client(service: str, endpoint: str, region: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name=region)


def _pick(props: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: props[k] for k in keys if k in props}


def provision(endpoint: str, prefix: str = "stellar-dev", region: str = "us-east-1") -> Resources:
    """Create (or find) every resource the control plane needs; safe to run again."""
    template = tpl.load()
    (table_id, table_props), = tpl.resources_of(template, "AWS::DynamoDB::Table").items()
    (_, pool_props), = tpl.resources_of(template, "AWS::Cognito::UserPool").items()
    (_, client_props), = tpl.resources_of(template, "AWS::Cognito::UserPoolClient").items()
    groups = tpl.resources_of(template, "AWS::Cognito::UserPoolGroup")
    buckets = tpl.resources_of(template, "AWS::S3::Bucket")

    ddb = _client("dynamodb", endpoint, region)
    table = f"{prefix}-{table_id.lower()}"
    try:
        params = _pick(table_props, _TABLE_KEYS)
        if "StreamSpecification" in params:  # CloudFormation implies what the API spells out
            params["StreamSpecification"] = {"StreamEnabled": True, **params["StreamSpecification"]}
        ddb.create_table(TableName=table, **params)
        ddb.get_waiter("table_exists").wait(TableName=table)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
    ttl = table_props.get("TimeToLiveSpecification")
    if ttl:
        ddb.update_time_to_live(TableName=table, TimeToLiveSpecification=ttl)

    idp = _client("cognito-idp", endpoint, region)
    pool_name = f"{prefix}-users"
    pools = [p for p in idp.list_user_pools(MaxResults=60)["UserPools"] if p["Name"] == pool_name]
    if pools:
        pool_id = pools[0]["Id"]
    else:
        pool_id = idp.create_user_pool(PoolName=pool_name, **_pick(pool_props, _POOL_KEYS))["UserPool"]["Id"]
    client_name = f"{prefix}-web"
    clients = [c for c in idp.list_user_pool_clients(UserPoolId=pool_id, MaxResults=60)["UserPoolClients"]
               if c["ClientName"] == client_name]
    if clients:
        client_id = clients[0]["ClientId"]
    else:
        client_id = idp.create_user_pool_client(UserPoolId=pool_id, ClientName=client_name,
                                                **_pick(client_props, _CLIENT_KEYS))["UserPoolClient"]["ClientId"]
    for props in groups.values():
        try:
            idp.create_group(UserPoolId=pool_id, GroupName=props["GroupName"],
                             Description=props.get("Description", ""))
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "GroupExistsException":
                raise

    s3 = _client("s3", endpoint, region)
    bucket_names = {}
    for logical in buckets:
        name = f"{prefix}-{logical.lower()}"
        try:
            s3.create_bucket(Bucket=name)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise
        bucket_names[logical] = name
    return Resources(endpoint=endpoint, region=region, table=table, user_pool_id=pool_id,
                     app_client_id=client_id, backup_bucket=bucket_names.get("BackupBucket", ""),
                     data_key=_provision_keys(tpl.resources_of(template, "AWS::KMS::Key"), endpoint, prefix,
                                              region))


def _provision_keys(keys: dict[str, Any], endpoint: str, prefix: str, region: str) -> str:
    """Each KMS key of the template, found again by its alias; returns the ``DataKey`` id."""
    kms = _client("kms", endpoint, region)
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases()["Aliases"]}
    found = ""
    for logical, props in keys.items():
        alias = f"alias/{prefix}-{logical.lower()}"
        key_id = aliases.get(alias)
        if not key_id:
            key_id = kms.create_key(**_pick(props, ("Description", "KeySpec", "KeyUsage")))["KeyMetadata"]["KeyId"]
            kms.create_alias(AliasName=alias, TargetKeyId=key_id)
        if props.get("EnableKeyRotation"):
            kms.enable_key_rotation(KeyId=key_id)
        if logical == "DataKey":
            found = key_id
    return found


def ensure_user(res: Resources, email: str, password: str, admin: bool = False) -> str:
    """Create a confirmed user with a permanent password (idempotent); returns its ``sub``."""
    idp = _client("cognito-idp", res.endpoint, res.region)
    try:
        idp.admin_create_user(UserPoolId=res.user_pool_id, Username=email, MessageAction="SUPPRESS",
                              UserAttributes=[{"Name": "email", "Value": email},
                                              {"Name": "email_verified", "Value": "true"}])
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "UsernameExistsException":
            raise
    idp.admin_set_user_password(UserPoolId=res.user_pool_id, Username=email, Password=password, Permanent=True)
    if admin:
        idp.admin_add_user_to_group(UserPoolId=res.user_pool_id, Username=email, GroupName="admins")
    attrs = idp.admin_get_user(UserPoolId=res.user_pool_id, Username=email)["UserAttributes"]
    return next(a["Value"] for a in attrs if a["Name"] == "sub")


_MOTO_LOCK = threading.Lock()


def _serialize_moto() -> None:
    """One request at a time: moto's in-memory backends are not thread-safe, and concurrent
    DynamoDB transactions in it can both pass their conditions (real DynamoDB serializes them).
    Serializing restores the guarantee the store relies on for port allocation."""
    from moto.moto_server import threaded_moto_server as tms

    app_class = tms.DomainDispatcherApplication
    if getattr(app_class, "_stellar_serialized", False):
        return
    original = app_class.__call__

    def call(self: object, environ: dict, start_response: object) -> object:
        with _MOTO_LOCK:
            return list(original(self, environ, start_response))  # type: ignore[arg-type]

    app_class.__call__ = call  # type: ignore[method-assign]
    app_class._stellar_serialized = True  # type: ignore[attr-defined]
