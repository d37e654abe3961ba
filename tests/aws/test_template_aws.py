"""template.yaml deploys what the code uses: routes, topics, handlers, permissions, settings;
and the SAM transform runs offline (no AWS: empty managed-policy loader, region, s3:// code)."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
from stellar import samroutes
from stellar.devstack import template as tpl
from stellar_protocol import topics

REPO = Path(__file__).resolve().parents[2]
PARAMS = {"Stage": "prod", "IotDataEndpoint": "abc123-ats.iot.us-east-1.amazonaws.com"}


@pytest.fixture(scope="module")
def template():
    return tpl.load()


def _functions(template):
    return tpl.resources_of(template, "AWS::Serverless::Function")


def _sub(value) -> str:
    return value["Fn::Sub"] if isinstance(value, dict) else value


def test_the_deployed_routes_are_exactly_the_chalice_route_table(template):
    routes = samroutes.chalice_routes()
    assert len(routes) > 10
    assert samroutes.template_routes(template) == routes, "run `stellar template routes`"
    assert samroutes.sync(check=True)
    # No catch-all: Chalice dispatches on the API Gateway resource, which must be the route's path.
    assert not any("{proxy+}" in path for _, path in samroutes.template_routes(template))


def test_sync_rewrites_a_drifted_block(tmp_path):
    drifted = tmp_path / "template.yaml"
    text = (REPO / "template.yaml").read_text()
    drifted.write_text(text.replace("Method: GET", "Method: PUT", 1))
    assert samroutes.sync(drifted, check=True) is False
    assert drifted.read_text() != text  # --check only reports: the drift is still there
    assert samroutes.sync(drifted) is False and drifted.read_text() == text


@pytest.fixture(scope="module")
def transformed(template, monkeypatch_module):
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self):
            return {}

    monkeypatch_module.setenv("AWS_DEFAULT_REGION", "us-east-1")
    doc = copy.deepcopy(template)
    for props in _functions(doc).values():
        props["CodeUri"] = "s3://stellar-artifacts/functions.zip"
    return transform(doc, PARAMS, NoManagedPolicies())


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _of(cfn, kind):
    return {k: r for k, r in cfn["Resources"].items() if r["Type"] == kind}


def test_the_sam_transform_runs_offline_and_wires_api_tracing_and_throttling(transformed):
    (api,) = _of(transformed, "AWS::ApiGateway::RestApi").values()
    paths = api["Properties"]["Body"]["paths"]
    deployed = sorted((m.upper(), p) for p, ms in paths.items() for m in ms)
    assert deployed == samroutes.chalice_routes()
    (stage,) = _of(transformed, "AWS::ApiGateway::Stage").values()
    assert stage["Properties"]["TracingEnabled"] is True
    (setting,) = stage["Properties"]["MethodSettings"]
    assert setting["ThrottlingRateLimit"] and setting["ThrottlingBurstLimit"]
    lambdas = _of(transformed, "AWS::Lambda::Function")
    assert len(lambdas) == 5
    modes = {k: f["Properties"]["TracingConfig"]["Mode"] for k, f in lambdas.items()}
    assert modes == {"ApiFunction": "Active", "SweepGrantsFunction": "Active", "RunSchedulesFunction": "Active",
                     "BrokerAuthorizerFunction": "Active", "IngestEventFunction": "PassThrough"}
    # The tickers (grant sweeper, server schedules) are EventBridge rules; agent events reach
    # ingestion through IoT rules.
    assert [r["Properties"]["ScheduleExpression"] for r in _of(transformed, "AWS::Events::Rule").values()] == \
        ["rate(1 minute)", "rate(1 minute)"]
    rules = _of(transformed, "AWS::IoT::TopicRule")
    assert len(rules) == 3
    for rule in rules.values():
        (action,) = rule["Properties"]["TopicRulePayload"]["Actions"]
        assert action["Lambda"]["FunctionArn"] == {"Fn::GetAtt": ["IngestEventFunction", "Arn"]}


def test_iot_rules_listen_on_the_protocol_topics_and_send_what_ingestion_reads(template):
    events = _functions(template)["IngestEventFunction"]["Events"]
    sources = set()
    for event in events.values():
        assert event["Type"] == "IoTRule"
        sql = event["Properties"]["Sql"]
        (source,) = re.findall(r"FROM '([^']+)'", sql)
        sources.add(source)
        assert "topic() AS topic" in sql and "encode(*, 'base64') AS payload_b64" in sql
    assert sources == {topics.ALL_SERVER_STATES, topics.ALL_NODE_STATUS, topics.ALL_SERVER_BACKUPS}


def test_the_node_policy_confines_a_node_to_its_own_subtree(template):
    (policy,) = tpl.resources_of(template, "AWS::IoT::Policy").values()
    node = "node7"
    granted: dict[str, set[str]] = {}
    for st in policy["PolicyDocument"]["Statement"]:
        assert st["Effect"] == "Allow"
        resource = _sub(st["Resource"]).replace("${!iot:Connection.Thing.ThingName}", node)
        resource = resource.split("${AWS::AccountId}:", 1)[1]
        for action in [st["Action"]] if isinstance(st["Action"], str) else st["Action"]:
            granted.setdefault(action, set()).add(resource)
    assert granted == {
        "iot:Connect": {f"client/{node}"},
        "iot:Publish": {f"topic/{topics.node_root(node)}/*"},
        "iot:RetainPublish": {f"topic/{topics.node_root(node)}/*"},
        "iot:Subscribe": {f"topicfilter/{topics.node_commands(node)}"},
        "iot:Receive": {f"topic/{topics.node_commands(node)}"},
    }
    # Everything the agent publishes sits in that subtree (status, acks, state, console, stats).
    for topic in (topics.node_status(node), topics.node_acks(node), topics.server_state(node, "s"),
                  topics.server_console(node, "s"), topics.server_stats(node, "s")):
        assert topic.startswith(topics.node_root(node) + "/")


def test_the_api_may_publish_exactly_to_node_command_topics(template):
    statements = [st for p in _functions(template)["ApiFunction"]["Policies"] if "Statement" in p
                  for st in p["Statement"]]
    (iot,) = [st for st in statements if st["Action"] == "iot:Publish"]
    assert _sub(iot["Resource"]).endswith(":topic/" + topics.node_commands("NODE").replace("NODE", "*"))
    # Cognito admin APIs need IAM; the public (token/client-id) ones do not.
    source = (REPO / "functions/chalicelib/auth/cognito.py").read_text()
    admin_calls = {m for m in re.findall(r'_call\("(admin_[a-z_]+)"', source)}
    allowed = {a for st in statements for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])}
    for call in admin_calls:
        action = "cognito-idp:" + "".join(w.capitalize() for w in call.split("_")).replace("Mfa", "MFA")
        assert action in allowed, action


def test_every_handler_exists_and_the_environment_satisfies_the_settings(template, monkeypatch):
    import app as control_plane
    from chalicelib.config import ConfigError, Settings

    for name, props in _functions(template).items():
        module, attr = props["Handler"].split(".")
        assert module == "app" and callable(getattr(control_plane, attr)), name
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    for key in [k for k in list(__import__("os").environ) if k.startswith("STELLAR_")]:
        monkeypatch.delenv(key)
    with pytest.raises(ConfigError):
        Settings.from_env()
    for key in env:
        monkeypatch.setenv(key, "x")
    Settings.from_env()  # every required setting is provided by the template
    assert env["STELLAR_BROKER_KIND"] == "iot-core"
    assert "x-amz-customauthorizer-name=stellarstack-browser-${Stage}" in _sub(env["STELLAR_BROKER_WS_URL"])
    (authorizer,) = tpl.resources_of(template, "AWS::IoT::Authorizer").values()
    assert _sub(authorizer["AuthorizerName"]) == "stellarstack-browser-${Stage}"
    assert authorizer["SigningDisabled"] is True and authorizer["Status"] == "ACTIVE"


def test_buckets_and_outputs(template):
    buckets = tpl.resources_of(template, "AWS::S3::Bucket")
    assert set(buckets) == {"BackupBucket", "WebBucket"}
    for props in buckets.values():
        assert all(props["PublicAccessBlockConfiguration"].values())
    outputs = template["Outputs"]
    for key in ("ApiUrl", "WebUrl", "WebBucketName", "TableName", "UserPoolId", "WebClientId",
                "BackupBucketName", "NodePolicyName", "BrokerWebSocketUrl"):
        assert key in outputs, key
