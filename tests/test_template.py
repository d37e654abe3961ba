"""template.yaml is the one source of truth for AWS resource shapes: lint it, and check the
code and the local provisioning agree with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import boto3
from chalicelib.store.dynamo import KEY_SCHEMA, _Item
from stellar.devstack import template as tpl

REPO = Path(__file__).resolve().parents[1]


def _table():
    (props,) = tpl.resources_of(tpl.load(), "AWS::DynamoDB::Table").values()
    return props


def _keys(schema):
    by_type = {k["KeyType"]: k["AttributeName"] for k in schema}
    return by_type["HASH"], by_type["RANGE"]


def test_cfn_lint_passes():
    proc = subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), str(REPO / "template.yaml")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_models_use_exactly_the_table_and_indexes_the_template_declares():
    props = _table()
    assert _keys(props["KeySchema"]) == KEY_SCHEMA["table"]
    declared = {g["IndexName"]: _keys(g["KeySchema"]) for g in props["GlobalSecondaryIndexes"]}
    assert declared == KEY_SCHEMA["indexes"]
    assert props["TimeToLiveSpecification"]["AttributeName"] == KEY_SCHEMA["ttl"]
    # ...and the PynamoDB model really uses those names.
    assert (_Item._hash_keyname, _Item._range_keyname) == KEY_SCHEMA["table"]
    model_indexes = {name: _keys(idx._get_schema()["key_schema"]) for name, idx in _Item._indexes.items()}
    assert model_indexes == KEY_SCHEMA["indexes"]
    assert _Item.expires.attr_name == KEY_SCHEMA["ttl"]


def test_local_provisioning_matches_the_template(stack):
    res = stack.resources
    ddb = boto3.client("dynamodb", endpoint_url=res.endpoint, region_name=res.region)
    table = ddb.describe_table(TableName=res.table)["Table"]
    props = _table()
    assert _keys(table["KeySchema"]) == _keys(props["KeySchema"])
    assert {g["IndexName"]: _keys(g["KeySchema"]) for g in table["GlobalSecondaryIndexes"]} == \
        {g["IndexName"]: _keys(g["KeySchema"]) for g in props["GlobalSecondaryIndexes"]}
    ttl = ddb.describe_time_to_live(TableName=res.table)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == KEY_SCHEMA["ttl"] and ttl["TimeToLiveStatus"] == "ENABLED"
    idp = boto3.client("cognito-idp", endpoint_url=res.endpoint, region_name=res.region)
    client = idp.describe_user_pool_client(UserPoolId=res.user_pool_id, ClientId=res.app_client_id)
    (client_props,) = tpl.resources_of(tpl.load(), "AWS::Cognito::UserPoolClient").values()
    assert set(client["UserPoolClient"]["ExplicitAuthFlows"]) == set(client_props["ExplicitAuthFlows"])
    groups = idp.list_groups(UserPoolId=res.user_pool_id)["Groups"]
    assert [g["GroupName"] for g in groups] == ["admins"]
