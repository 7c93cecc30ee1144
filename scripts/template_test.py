#!/usr/bin/env python3
"""Security and shape test for template.yaml (and examples/*.yaml).

Reads the SAM template with cfn-lint's own decoder (so !Ref, !Sub, !If, !GetAtt become their
JSON forms) and asserts the properties the deployment depends on, above all that the execution
role cannot be widened silently:

- every secretsmanager statement is limited to the four rotation actions on this account's
  secrets, under the condition secretsmanager:resource/AllowRotationLambdaArn == this function
  (the exceptions: GetSecretValue on the superuser secret parameter, when it is given,
  DescribeSecret on it for the RDS lookups, and the scheduled audit's reads below);
- the RDS lookups of alternating users (rds:DescribeDBInstances, rds:DescribeDBClusters on this
  account's and Region's instances and clusters, and the superuser secret's tags) exist only with
  a superuser secret and AllowRdsLookup=true; the conditions are evaluated in both states;
- the ElastiCache and MemoryDB user actions (elasticache:DescribeUsers and elasticache:ModifyUser
  on this account's and Region's user:*, memorydb:DescribeUsers and memorydb:UpdateUser on its
  user/*; the password changes only for password authentication) exist only with
  AllowElastiCacheUsers=true and AllowMemoryDbUsers=true respectively, both off by default; the
  conditions are evaluated in both states;
- no "*" or wildcard action, no NotAction/NotResource, no Deny tricks, no managed policies;
- Resource "*" only on the Lambda VPC network-interface actions, under the VPC condition, and on
  ListSecrets, under the audit's;
- KMS only on the key parameter, only when it is given, only through Secrets Manager;
- logs only on the function's own log group, which the template creates with a retention;
- the Lambda permission lets only secretsmanager.amazonaws.com invoke, with SourceAccount;
- runtime, handler, build method, memory, timeout, architecture, JSON logs, and the environment
  variables of docs/protocol.md section 8 with the reference's defaults (empty parameter = unset), plus
  the metrics variables of src/metrics.rs;
- the optional alerting: the EventBridge rule (Secrets Manager's rotation failure events), its SNS
  topic, the topic policy and the email subscription exist only when EnableRotationAlerts is true
  (off by default), and only EventBridge, on behalf of that rule (aws:SourceArn), may publish;
- the optional scheduled audit (AuditSchedule, off by default): a schedule rule invoking this
  function with the documented doctor event for its own secrets (--repair only when AuditRepair
  is true), a Lambda permission for that rule alone, ListSecrets (the one action on Resource "*")
  and ListSecretVersionIds on the secrets naming this function only while it is on, and, with
  alerts too, an alarm on the UnhealthySecrets metric that alone may publish to the alert topic
  besides the failure rule;
- the optional dashboard (Dashboard, off by default): the dashboard and an action-less alarm on
  failed steps exist only when Dashboard is true, graph the function's metrics of src/metrics.rs
  (Failure, Duration, SecretsManagerRetries, SecretsManagerThrottles, UnhealthySecrets) in
  METRICS_NAMESPACE, and show the states of both alarms; its body is valid JSON in every state.

The examples are checked too: examples/rotation-schedule.yaml attaches a secret to the function
of template.yaml and grants nothing of its own; examples/redeploy-on-rotation.yaml, the recipe on
Secrets Manager's "Secret Label Updated" event, redeploys one ECS service when AWSCURRENT moves on
one secret, with roles that can do only that.

Any resource type it does not know fails the test, so a new resource needs a new check.

    template_test.py [--template template.yaml] [--examples 'examples/*.yaml'] [--self-test]

--self-test also applies a list of harmful edits to an in-memory copy of the template (and another
to the recipe example) and requires the test to reject each one (the test must be able to fail). The last line reads
`template: N passed, M failed`. Exit status: 0 when every check passes (and, with --self-test,
every mutation is caught), 1 otherwise, 2 when a file cannot be read.
"""

from __future__ import annotations

import argparse
import copy
import glob
import json
import os
import sys
from typing import Any, Callable, Iterator

try:
    from cfnlint.decode import decode
except ImportError:  # pragma: no cover - depends on the environment
    sys.exit("template_test.py: cfn-lint is not installed (scripts/check_template.sh installs it)")

NO_VALUE = {"Ref": "AWS::NoValue"}

ROTATION_ACTIONS = {
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecretVersionStage",
}
SECRETS_RESOURCE = {
    "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:*"
}
ALLOW_ROTATION_KEY = "secretsmanager:resource/AllowRotationLambdaArn"
# The scheduled audit's reads beyond the rotation's: the listing (no resource-level permission)
# and the versions' dates (on the secrets naming this function).
AUDIT_LIST_ACTION = "secretsmanager:ListSecrets"
AUDIT_SECRET_ACTIONS = {"secretsmanager:ListSecretVersionIds"}
AUDIT_METRIC = "UnhealthySecrets"
KMS_ACTIONS = {"kms:Decrypt", "kms:GenerateDataKey"}
LOG_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents"}
# The ec2 actions of AWS's managed policy AWSLambdaVPCAccessExecutionRole (v3).
VPC_ACTIONS = {
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
}

RDS_ACTIONS = {"rds:DescribeDBInstances", "rds:DescribeDBClusters"}
RDS_RESOURCES = [
    {"Fn::Sub": "arn:${AWS::Partition}:rds:${AWS::Region}:${AWS::AccountId}:db:*"},
    {"Fn::Sub": "arn:${AWS::Partition}:rds:${AWS::Region}:${AWS::AccountId}:cluster:*"},
]
MASTER_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:master-AbCdEf"

# ElastiCache and MemoryDB users: per service, the parameter that turns it on, the two actions
# (read, then the password change), the users of this account and Region, and the condition key
# that keeps a password change from switching a user to another authentication mode.
CACHE_USER_SERVICES = {
    "elasticache": {
        "param": "AllowElastiCacheUsers",
        "read": "elasticache:DescribeUsers",
        "write": "elasticache:ModifyUser",
        "resource": {"Fn::Sub": "arn:${AWS::Partition}:elasticache:${AWS::Region}:${AWS::AccountId}:user:*"},
        "mode_key": "elasticache:UserAuthenticationMode",
    },
    "memorydb": {
        "param": "AllowMemoryDbUsers",
        "read": "memorydb:DescribeUsers",
        "write": "memorydb:UpdateUser",
        "resource": {"Fn::Sub": "arn:${AWS::Partition}:memorydb:${AWS::Region}:${AWS::AccountId}:user/*"},
        "mode_key": "memorydb:UserAuthenticationMode",
    },
}

# docs/protocol.md section 8 variable -> reference default ("" = unset: the function's default applies).
ENV_DEFAULTS = {
    "PASSWORD_LENGTH": "32",
    "EXCLUDE_CHARACTERS": "",  # engine-dependent default in the function
    "EXCLUDE_NUMBERS": "false",
    "EXCLUDE_PUNCTUATION": "false",
    "EXCLUDE_UPPERCASE": "false",
    "EXCLUDE_LOWERCASE": "false",
    "REQUIRE_EACH_INCLUDED_TYPE": "true",
    "TLS_MODE": "verify-full",
    "TLS_EXTRA_CA_FILE": "",
    "DB_CONNECT_TIMEOUT_SECS": "5",
    "ROTATION_STRATEGY": "single-user",
    "USERNAME_CHARACTER_LIMIT": "16",
    "SECRETS_MANAGER_ENDPOINT": "",
    # src/metrics.rs
    "METRICS": "on",
    "METRICS_NAMESPACE": "DbSecretRotator",
    "METRICS_DIMENSIONS": "Engine,Strategy,Step",
}

# Secrets Manager's rotation failure events, as CloudTrail delivers them to EventBridge.
ALERT_PATTERN = {
    "source": ["aws.secretsmanager"],
    "detail-type": ["AWS Service Event via CloudTrail"],
    "detail": {"eventSource": ["secretsmanager.amazonaws.com"]},
}
ALERT_EVENTS = {"RotationFailed", "RotationAbandoned", "TestRotationFailed"}

KNOWN_TYPES = {
    "AWS::Serverless::Function",
    "AWS::Logs::LogGroup",
    "AWS::IAM::Role",
    "AWS::Lambda::Permission",
    "AWS::Events::Rule",
    "AWS::SNS::Topic",
    "AWS::SNS::TopicPolicy",
    "AWS::SNS::Subscription",
    "AWS::CloudWatch::Alarm",
    "AWS::CloudWatch::Dashboard",
}
# src/metrics.rs: what every rotation step's metrics line carries.
STEP_METRICS = {"Failure": "Sum", "Duration": "Average", "SecretsManagerRetries": "Sum", "SecretsManagerThrottles": "Sum"}
# examples/redeploy-on-rotation.yaml: Secrets Manager's native event when a label moves.
CURRENT_MOVED_PATTERN = {
    "source": ["aws.secretsmanager"],
    "detail-type": ["Secret Label Updated"],
    "resources": [{"Ref": "SecretArn"}],
    "detail": {"labelUpdated": ["AWSCURRENT"]},
}
RECIPE_TYPES = {"AWS::Events::Rule", "AWS::IAM::Role", "AWS::StepFunctions::StateMachine"}
EXAMPLE_FORBIDDEN_TYPES = {
    "AWS::IAM::Policy",
    "AWS::IAM::ManagedPolicy",
    "AWS::IAM::RolePolicy",
    "AWS::IAM::UserPolicy",
    "AWS::IAM::GroupPolicy",
    "AWS::IAM::User",
    "AWS::IAM::Group",
    "AWS::IAM::Role",
    "AWS::IAM::InstanceProfile",
    "AWS::Lambda::Permission",
    "AWS::Serverless::Function",
    "AWS::Serverless::Api",
    "AWS::Serverless::HttpApi",
    "AWS::Serverless::StateMachine",
}


class Checker:
    """Collects named checks; prints them unless quiet."""

    def __init__(self, name: str, quiet: bool = False) -> None:
        self.name = name
        self.quiet = quiet
        self.failures: list[str] = []
        self.passed = 0

    def check(self, ok: bool, what: str, detail: str = "") -> bool:
        if ok:
            self.passed += 1
            if not self.quiet:
                print(f"ok    {self.name}: {what}")
        else:
            msg = f"{what}" + (f" ({detail})" if detail else "")
            self.failures.append(msg)
            if not self.quiet:
                print(f"FAIL  {self.name}: {msg}")
        return ok


def load(path: str) -> dict:
    template, matches = decode(path)
    if matches or template is None:
        for m in matches:
            print(f"FAIL  {path}: cannot parse: {m}", file=sys.stderr)
        sys.exit(2)
    # Plain dicts, lists and strs (cfn-lint's nodes carry line marks we do not need).
    return json.loads(json.dumps(template))


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def expand(value: Any, conds: tuple = ()) -> Iterator[tuple[Any, tuple]]:
    """Yield (value, conditions) for each concrete alternative of a possibly Fn::If'd value.

    A condition is a name, or ("not", name) for the false branch. AWS::NoValue alternatives are
    dropped: they contribute nothing.
    """
    if isinstance(value, dict) and list(value) == ["Fn::If"]:
        name, yes, no = value["Fn::If"]
        yield from expand(yes, conds + (name,))
        yield from expand(no, conds + (("not", name),))
    elif value == NO_VALUE:
        return
    else:
        yield value, conds


def expand_list(items: Any, conds: tuple = ()) -> Iterator[tuple[Any, tuple]]:
    """Expand a list (itself possibly Fn::If'd) whose items may be Fn::If'd."""
    for whole, c in expand(items, conds):
        for item in as_list(whole):
            yield from expand(item, c)


def is_nonempty_condition(template: dict, name: Any, param: str, joined: bool = False) -> bool:
    """True when Conditions[name] is exactly `param is not empty`."""
    if not isinstance(name, str):
        return False
    ref: Any = {"Ref": param}
    if joined:
        ref = {"Fn::Join": ["", {"Ref": param}]}
    cond = template.get("Conditions", {}).get(name)
    return cond in (
        {"Fn::Not": [{"Fn::Equals": [ref, ""]}]},
        {"Fn::Not": [{"Fn::Equals": ["", ref]}]},
    )


def is_alerts_condition(template: dict, name: Any) -> bool:
    """True when Conditions[name] is exactly `EnableRotationAlerts == "true"`."""
    if not isinstance(name, str):
        return False
    cond = template.get("Conditions", {}).get(name)
    ref = {"Ref": "EnableRotationAlerts"}
    return cond in ({"Fn::Equals": [ref, "true"]}, {"Fn::Equals": ["true", ref]})


def is_audit_condition(template: dict, name: Any) -> bool:
    """True when Conditions[name] is exactly `AuditSchedule is not empty`."""
    return is_nonempty_condition(template, name, "AuditSchedule")


def requires(template: dict, name: Any, test: Callable[[Any], bool]) -> bool:
    """True when condition `name` is, or is an Fn::And of, one that passes `test`."""
    return any(test(n) for n in condition_parts(template, name))


def requires_true(template: dict, name: Any, param: str) -> bool:
    """True when condition `name` requires `param` == "true" (itself, or a term of its Fn::And)."""
    cond = template.get("Conditions", {}).get(name) if isinstance(name, str) else None
    terms = cond["Fn::And"] if isinstance(cond, dict) and list(cond) == ["Fn::And"] else [cond]
    ref = {"Ref": param}
    return any(t in ({"Fn::Equals": [ref, "true"]}, {"Fn::Equals": ["true", ref]}) for t in terms)


def condition_parts(template: dict, name: Any) -> list:
    """The condition names an Fn::And condition requires (or [name] itself)."""
    cond = template.get("Conditions", {}).get(name) if isinstance(name, str) else None
    if isinstance(cond, dict) and list(cond) == ["Fn::And"]:
        return [x.get("Condition") for x in cond["Fn::And"] if isinstance(x, dict)]
    return [name]


def is_rds_lookup_condition(template: dict, name: Any) -> bool:
    """True when Conditions[name] requires a superuser secret and AllowRdsLookup == "true"."""
    conditions = template.get("Conditions", {})
    cond = conditions.get(name) if isinstance(name, str) else None
    if not (isinstance(cond, dict) and list(cond) == ["Fn::And"]):
        return False
    flag = {"Ref": "AllowRdsLookup"}
    on = ({"Fn::Equals": [flag, "true"]}, {"Fn::Equals": ["true", flag]})

    def resolved(part: Any) -> Any:
        if isinstance(part, dict) and list(part) == ["Condition"]:
            return conditions.get(part["Condition"])
        return part

    parts = cond["Fn::And"]
    return any(
        isinstance(p, dict) and is_nonempty_condition(template, p.get("Condition"), "MasterSecretArn")
        for p in parts
    ) and any(resolved(p) in on for p in parts)


def evaluate(template: dict, expr: Any, params: dict) -> Any:
    """The value of a condition expression (or of a value inside one) for the parameters
    `params` (others at their defaults)."""
    if isinstance(expr, dict) and len(expr) == 1:
        (fn, arg), = expr.items()
        if fn == "Ref":
            if arg in params:
                return params[arg]
            return param_default(template, arg)
        if fn == "Condition":
            return evaluate(template, template.get("Conditions", {}).get(arg), params)
        if fn == "Fn::Equals":
            return evaluate(template, arg[0], params) == evaluate(template, arg[1], params)
        if fn == "Fn::Not":
            return not evaluate(template, arg[0], params)
        if fn == "Fn::And":
            return all(evaluate(template, x, params) for x in arg)
        if fn == "Fn::Or":
            return any(evaluate(template, x, params) for x in arg)
        if fn == "Fn::Join":
            value = evaluate(template, arg[1], params)
            return arg[0].join(value if isinstance(value, list) else [str(value)])
    return expr


def granted(c: Checker, template: dict, params: dict) -> set[tuple[str, str]]:
    """(action, resource) pairs that the role grants for `params`."""
    out = set()
    for _, stmt, conds in iam_statements(c, template):
        live = all(
            not evaluate(template, {"Condition": cond[1]}, params)
            if isinstance(cond, tuple)
            else evaluate(template, {"Condition": cond}, params)
            for cond in conds
        )
        if live:
            for action in as_list(stmt.get("Action")):
                for res in as_list(stmt.get("Resource")):
                    out.add((action, json.dumps(res, sort_keys=True)))
    return out


def check_rds_states(template: dict, c: Checker) -> None:
    """The RDS lookups in both states of AllowRdsLookup, with and without a superuser secret."""
    allow = template.get("Parameters", {}).get("AllowRdsLookup", {})
    c.check(
        str(allow.get("Default")) == "true" and set(allow.get("AllowedValues", [])) == {"true", "false"},
        "AllowRdsLookup: true or false, on by default",
    )
    quiet = Checker("states", quiet=True)
    master_tags = ("secretsmanager:DescribeSecret", json.dumps({"Ref": "MasterSecretArn"}))
    for params, expected in (
        ({"MasterSecretArn": MASTER_ARN}, True),
        ({"MasterSecretArn": MASTER_ARN, "AllowRdsLookup": "false"}, False),
        ({"MasterSecretArn": ""}, False),
        ({"MasterSecretArn": "", "AllowRdsLookup": "true"}, False),
    ):
        grants = granted(quiet, template, params)
        rds = {a for a, _ in grants if a.startswith("rds:")}
        c.check(
            (rds == RDS_ACTIONS) == expected and (bool(rds) == expected),
            f"RDS lookups {'granted' if expected else 'not granted'} with {params}",
            str(sorted(rds)),
        )
        c.check(
            (master_tags in grants) == expected,
            f"superuser secret's tags {'readable' if expected else 'not readable'} with {params}",
        )


def resources_of(template: dict, rtype: str) -> dict:
    return {k: v for k, v in template.get("Resources", {}).items() if v.get("Type") == rtype}


def single(
    c: Checker, template: dict, rtype: str, which: Callable[[dict], bool] | None = None, what: str = ""
) -> tuple[str, dict] | tuple[None, None]:
    """The one resource of `rtype` (for which `which` holds, when given)."""
    found = {k: v for k, v in resources_of(template, rtype).items() if which is None or which(v)}
    label = f"exactly one {rtype}" + (f" {what}" if what else "")
    if c.check(len(found) == 1, label, f"found {sorted(found)}"):
        return next(iter(found.items()))
    return None, None


def props(res: dict) -> dict:
    return res.get("Properties", {})


def is_alert_rule(res: dict) -> bool:
    return "EventPattern" in props(res)


def is_schedule_rule(res: dict) -> bool:
    return "ScheduleExpression" in props(res)


def is_audit_alarm(res: dict) -> bool:
    """The audit's alarm watches one metric; the dashboard's failure alarm a query."""
    return "Metrics" not in props(res)


def is_rotation_permission(res: dict) -> bool:
    return props(res).get("Principal") == "secretsmanager.amazonaws.com"


def param_default(template: dict, name: str) -> Any:
    return template.get("Parameters", {}).get(name, {}).get("Default")


def iam_statements(c: Checker, template: dict) -> list[tuple[str, dict, tuple]]:
    """Every policy statement of every IAM resource, with the conditions it exists under."""
    out: list[tuple[str, dict, tuple]] = []
    for logical, res in template.get("Resources", {}).items():
        rtype, props = res.get("Type"), res.get("Properties", {})
        res_conds: tuple = (res["Condition"],) if "Condition" in res else ()
        docs: list[tuple[str, Any, tuple]] = []
        if rtype == "AWS::IAM::Role":
            for pol, pc in expand_list(props.get("Policies", []), res_conds):
                docs.append((f"{logical}/{pol.get('PolicyName')}", pol.get("PolicyDocument"), pc))
        elif rtype in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy"}:
            docs.append((logical, props.get("PolicyDocument"), res_conds))
        for where, doc, dc in docs:
            if not c.check(isinstance(doc, dict), f"{where}: policy document is a literal mapping"):
                continue
            for stmt, sc in expand_list(doc.get("Statement", []), dc):
                if c.check(isinstance(stmt, dict), f"{where}: statement is a literal mapping"):
                    out.append((f"{where}/{stmt.get('Sid', '?')}", stmt, sc))
    return out


def check_template(template: dict, c: Checker) -> None:
    resources = template.get("Resources", {})

    # --- resource inventory -------------------------------------------------------------
    unknown = {k: v.get("Type") for k, v in resources.items() if v.get("Type") not in KNOWN_TYPES}
    c.check(not unknown, "only known resource types (a new one needs a check here)", str(unknown))
    c.check(
        not any(k in template.get("Globals", {}).get("Function", {}) for k in ("Role", "Policies")),
        "Globals set neither Role nor Policies",
    )

    # --- the function ---------------------------------------------------------------------
    fname, fn = single(c, template, "AWS::Serverless::Function")
    if fn is None:
        return
    props = fn.get("Properties", {})
    meta = fn.get("Metadata", {})
    c.check(props.get("Runtime") == "provided.al2023", "Runtime provided.al2023", props.get("Runtime"))
    c.check(props.get("Handler") == "bootstrap", "Handler bootstrap", props.get("Handler"))
    c.check(props.get("MemorySize") == 256, "MemorySize 256", str(props.get("MemorySize")))
    c.check(props.get("CodeUri") == ".", "CodeUri is the Cargo package at the repository root")
    c.check(meta.get("BuildMethod") == "rust-cargolambda", "Metadata BuildMethod rust-cargolambda")
    c.check(
        meta.get("BuildProperties", {}).get("Binary") == "db-secret-rotator",
        "BuildProperties Binary db-secret-rotator",
    )
    arch = props.get("Architectures")
    c.check(
        arch == [{"Ref": "Architecture"}]
        and param_default(template, "Architecture") == "arm64"
        and set(template["Parameters"]["Architecture"].get("AllowedValues", [])) == {"arm64", "x86_64"},
        "Architectures from parameter Architecture (arm64 default, or x86_64)",
        json.dumps(arch),
    )
    c.check(
        props.get("Timeout") == {"Ref": "Timeout"} and str(param_default(template, "Timeout")) == "30",
        "Timeout from parameter Timeout, default 30",
    )
    logging = props.get("LoggingConfig", {})
    c.check(logging.get("LogFormat") == "JSON", "LoggingConfig LogFormat JSON", str(logging.get("LogFormat")))
    c.check(props.get("FunctionName") == {"Ref": "FunctionName"}, "FunctionName is the FunctionName parameter")
    c.check("Policies" not in props, "function has no SAM Policies (they would add a generated role)")
    role_ref = props.get("Role")
    role_name = role_ref.get("Fn::GetAtt", [None])[0] if isinstance(role_ref, dict) else None
    if isinstance(role_name, str) and "." in role_name:  # !GetAtt Role.Arn in string form
        role_name = role_name.split(".")[0]
    role = resources.get(role_name or "", {})
    c.check(
        role.get("Type") == "AWS::IAM::Role",
        "function's Role is the template's own AWS::IAM::Role",
        json.dumps(role_ref),
    )

    # --- log group ------------------------------------------------------------------------
    lg_ref = logging.get("LogGroup")
    lg_name = lg_ref.get("Ref") if isinstance(lg_ref, dict) else None
    log_group = resources.get(lg_name or "", {})
    c.check(log_group.get("Type") == "AWS::Logs::LogGroup", "LoggingConfig LogGroup is the template's log group")
    c.check(
        log_group.get("Properties", {}).get("LogGroupName") == {"Fn::Sub": "/aws/lambda/${FunctionName}"},
        "log group named /aws/lambda/${FunctionName}",
    )
    c.check("RetentionInDays" in log_group.get("Properties", {}), "log group has a retention")

    # --- environment ----------------------------------------------------------------------
    variables = dict(props.get("Environment", {}).get("Variables", {}))
    # The settings of docs/protocol.md 5.14, which follow other parameters rather than mirror one.
    c.check(
        variables.pop("ALLOW_CLEARTEXT_PASSWORDS", None) == {"Ref": "AllowCleartextPasswords"}
        and param_default(template, "AllowCleartextPasswords") == "off",
        "ALLOW_CLEARTEXT_PASSWORDS: parameter AllowCleartextPasswords, off by default",
    )
    c.check(
        variables.pop("MASTER_SECRET_ARNS", None)
        == {"Fn::If": ["HasMasterSecret", {"Ref": "MasterSecretArn"}, NO_VALUE]}
        and is_nonempty_condition(template, "HasMasterSecret", "MasterSecretArn"),
        "MASTER_SECRET_ARNS: the MasterSecretArn the role may read, and no other",
    )
    c.check(
        variables.pop("AUDIT_EVENTS", None)
        == {"Fn::If": ["ScheduledRepair", "repair", {"Fn::If": ["ScheduledAudit", "audit", "off"]}]},
        "AUDIT_EVENTS: repair only with AuditRepair, audit only with AuditSchedule, else off",
    )
    c.check(
        set(variables) == set(ENV_DEFAULTS),
        "environment variables are exactly docs/protocol.md section 8's and the metrics ones",
        f"extra {sorted(set(variables) - set(ENV_DEFAULTS))}, missing {sorted(set(ENV_DEFAULTS) - set(variables))}",
    )
    for var, default in ENV_DEFAULTS.items():
        value = variables.get(var)
        ok = False
        if isinstance(value, dict) and list(value) == ["Fn::If"]:
            cond, yes, no = value["Fn::If"]
            param = yes.get("Ref") if isinstance(yes, dict) else None
            ok = (
                isinstance(param, str)
                and no == NO_VALUE
                and is_nonempty_condition(template, cond, param)
                and str(param_default(template, param)) == default
            )
        c.check(ok, f"{var}: parameter, default {default!r}, unset when empty")

    # --- VPC ------------------------------------------------------------------------------
    vpc = props.get("VpcConfig")
    vpc_cond = None
    if vpc is not None:
        if c.check(
            isinstance(vpc, dict) and list(vpc) == ["Fn::If"] and vpc["Fn::If"][2] == NO_VALUE,
            "VpcConfig only under a condition",
        ):
            vpc_cond = vpc["Fn::If"][0]
            both = template.get("Conditions", {}).get(vpc_cond, {}).get("Fn::And", [])
            names = [x.get("Condition") for x in both if isinstance(x, dict)]
            c.check(
                len(names) == 2
                and any(is_nonempty_condition(template, n, "SubnetIds", joined=True) for n in names)
                and any(is_nonempty_condition(template, n, "SecurityGroupIds", joined=True) for n in names),
                f"VPC condition {vpc_cond} requires both SubnetIds and SecurityGroupIds",
            )

    # --- the execution role -----------------------------------------------------------------
    for logical, r in resources_of(template, "AWS::IAM::Role").items():
        rp = r.get("Properties", {})
        c.check("ManagedPolicyArns" not in rp, f"{logical}: no managed policies")
        trust = [s for s, _ in expand_list(rp.get("AssumeRolePolicyDocument", {}).get("Statement", []))]
        c.check(
            len(trust) == 1
            and trust[0].get("Principal") == {"Service": "lambda.amazonaws.com"}
            and as_list(trust[0].get("Action")) == ["sts:AssumeRole"],
            f"{logical}: only lambda.amazonaws.com may assume it",
        )

    function_arn = {
        "Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${FunctionName}"
    }
    granted_rotation: set[str] = set()
    for where, stmt, conds in iam_statements(c, template):
        actions = stmt.get("Action")
        res = stmt.get("Resource")
        c.check(stmt.get("Effect") == "Allow", f"{where}: Effect Allow")
        c.check(
            "NotAction" not in stmt and "NotResource" not in stmt and "NotPrincipal" not in stmt,
            f"{where}: no NotAction/NotResource",
        )
        if not c.check(
            all(isinstance(a, str) for a in as_list(actions)) and actions,
            f"{where}: actions are literal strings",
        ):
            continue
        actions = set(as_list(actions))
        c.check(not any("*" in a for a in actions), f"{where}: no wildcard action", str(sorted(actions)))
        resources_l = as_list(res)
        star = any(r == "*" or r == {"Fn::Sub": "*"} for r in resources_l)
        services = {a.split(":")[0] for a in actions}
        if not c.check(len(services) == 1, f"{where}: one service per statement", str(sorted(services))):
            continue
        service = services.pop()

        if service == "secretsmanager" and actions & ({AUDIT_LIST_ACTION} | AUDIT_SECRET_ACTIONS):
            check_audit_statement(template, c, where, stmt, actions, conds, function_arn)
            continue
        if service == "secretsmanager":
            condition = stmt.get("Condition")
            if condition is not None:
                c.check(actions <= ROTATION_ACTIONS, f"{where}: only the four rotation actions", str(sorted(actions)))
                c.check(resources_l == [SECRETS_RESOURCE], f"{where}: only this account's and Region's secrets")
                c.check(
                    condition == {"StringEquals": {ALLOW_ROTATION_KEY: function_arn}},
                    f"{where}: condition {ALLOW_ROTATION_KEY} == this function's ARN",
                    json.dumps(condition),
                )
                c.check(not conds, f"{where}: unconditional (the function always needs it)")
                granted_rotation |= actions
            elif actions == {"secretsmanager:DescribeSecret"}:
                # The RDS lookups read the superuser secret's tags.
                c.check(
                    resources_l == [{"Ref": "MasterSecretArn"}]
                    and any(is_rds_lookup_condition(template, n) for n in conds),
                    f"{where}: DescribeSecret without the {ALLOW_ROTATION_KEY} condition only on "
                    "MasterSecretArn, for the RDS lookups",
                    f"resource {json.dumps(res)}, conditions {conds}",
                )
            else:
                # The other statement without the condition: read the superuser secret.
                c.check(
                    actions == {"secretsmanager:GetSecretValue"}
                    and resources_l == [{"Ref": "MasterSecretArn"}]
                    and any(is_nonempty_condition(template, n, "MasterSecretArn") for n in conds),
                    f"{where}: without the {ALLOW_ROTATION_KEY} condition only GetSecretValue "
                    "on MasterSecretArn, when given",
                    f"actions {sorted(actions)}, resource {json.dumps(res)}, conditions {conds}",
                )
        elif service == "rds":
            c.check(actions <= RDS_ACTIONS, f"{where}: only rds:DescribeDBInstances and rds:DescribeDBClusters", str(sorted(actions)))
            c.check(
                sorted(map(json.dumps, resources_l)) == sorted(map(json.dumps, RDS_RESOURCES)),
                f"{where}: only this account's and Region's DB instances and clusters",
                json.dumps(res),
            )
            c.check(
                any(is_rds_lookup_condition(template, n) for n in conds),
                f"{where}: only with a superuser secret and AllowRdsLookup=true",
                f"exists under {conds}",
            )
        elif service in CACHE_USER_SERVICES:
            check_cache_user_statement(template, c, where, service, stmt, actions, conds)
        elif service == "kms":
            c.check(actions <= KMS_ACTIONS, f"{where}: only kms:Decrypt and kms:GenerateDataKey", str(sorted(actions)))
            c.check(resources_l == [{"Ref": "KmsKeyArn"}], f"{where}: only the KmsKeyArn key", json.dumps(res))
            c.check(
                any(is_nonempty_condition(template, n, "KmsKeyArn") for n in conds),
                f"{where}: only when KmsKeyArn is given",
            )
            c.check(
                stmt.get("Condition")
                == {"StringEquals": {"kms:ViaService": {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}}},
                f"{where}: only through Secrets Manager (kms:ViaService)",
            )
        elif service == "logs":
            c.check(actions <= LOG_ACTIONS, f"{where}: only CreateLogStream and PutLogEvents", str(sorted(actions)))
            c.check(
                lg_name is not None and resources_l == [{"Fn::GetAtt": [lg_name, "Arn"]}],
                f"{where}: only the function's own log group",
                json.dumps(res),
            )
        elif service == "ec2":
            c.check(actions <= VPC_ACTIONS, f"{where}: only the Lambda VPC network-interface actions", str(sorted(actions)))
            c.check(
                vpc_cond is not None and vpc_cond in conds,
                f"{where}: only when the VPC is configured (condition {vpc_cond})",
                f"exists under {conds}",
            )
        else:
            c.check(False, f"{where}: service {service} is not expected in the execution role")
        if service != "ec2":
            c.check(not star, f'{where}: no Resource "*"', json.dumps(res))
    c.check(
        granted_rotation == ROTATION_ACTIONS,
        "the four rotation actions are granted (the function works)",
        str(sorted(granted_rotation)),
    )

    # --- invoke permission ----------------------------------------------------------------
    _, perm = single(c, template, "AWS::Lambda::Permission", is_rotation_permission, "for Secrets Manager")
    if perm is not None:
        pp = perm.get("Properties", {})
        c.check(pp.get("Principal") == "secretsmanager.amazonaws.com", "permission principal secretsmanager.amazonaws.com")
        c.check(pp.get("SourceAccount") == {"Ref": "AWS::AccountId"}, "permission has SourceAccount = this account")
        c.check(pp.get("Action") == "lambda:InvokeFunction", "permission action lambda:InvokeFunction")
        c.check(
            pp.get("FunctionName") in ({"Fn::GetAtt": [fname, "Arn"]}, {"Ref": fname}),
            "permission is on the rotation function",
        )
        c.check("Condition" not in perm, "permission is unconditional")

    out = template.get("Outputs", {}).get("RotationLambdaArn", {})
    c.check(out.get("Value") == {"Fn::GetAtt": [fname, "Arn"]}, "output RotationLambdaArn is the function's ARN")

    check_alerts(template, c)
    check_audit(template, c, fname, function_arn)
    check_dashboard(template, c)
    check_rds_states(template, c)
    check_cache_user_states(template, c)


def is_true_condition(template: dict, name: Any, param: str) -> bool:
    """True when Conditions[name] is exactly `param == "true"`."""
    cond = template.get("Conditions", {}).get(name) if isinstance(name, str) else None
    ref = {"Ref": param}
    return cond in ({"Fn::Equals": [ref, "true"]}, {"Fn::Equals": ["true", ref]})


def check_cache_user_statement(
    template: dict, c: Checker, where: str, service: str, stmt: dict, actions: set, conds: tuple
) -> None:
    """An ElastiCache or MemoryDB user statement: only its two actions, only on this account's and
    Region's users, only when its parameter is true; the password change only for password
    authentication."""
    spec = CACHE_USER_SERVICES[service]
    resources_l = as_list(stmt.get("Resource"))
    c.check(
        actions <= {spec["read"], spec["write"]},
        f"{where}: only {spec['read']} and {spec['write']}",
        str(sorted(actions)),
    )
    c.check(
        resources_l == [spec["resource"]],
        f"{where}: only this account's and Region's {service} users",
        json.dumps(stmt.get("Resource")),
    )
    c.check(
        any(is_true_condition(template, n, spec["param"]) for n in conds),
        f"{where}: only when {spec['param']} is true",
        f"exists under {conds}",
    )
    if spec["write"] in actions:
        c.check(
            actions == {spec["write"]}
            and stmt.get("Condition") == {"StringEqualsIfExists": {spec["mode_key"]: "password"}},
            f"{where}: {spec['write']} alone, and only to keep password authentication ({spec['mode_key']})",
            json.dumps(stmt.get("Condition")),
        )


def check_cache_user_states(template: dict, c: Checker) -> None:
    """The ElastiCache and MemoryDB user actions in both states of their parameters."""
    quiet = Checker("states", quiet=True)
    for service, spec in CACHE_USER_SERVICES.items():
        param = template.get("Parameters", {}).get(spec["param"], {})
        c.check(
            str(param.get("Default")) == "false" and set(param.get("AllowedValues", [])) == {"true", "false"},
            f"{spec['param']}: true or false, off by default",
        )
        resource = json.dumps(spec["resource"], sort_keys=True)
        for value, expected in (("true", True), ("false", False)):
            grants = granted(quiet, template, {spec["param"]: value})
            got = {(a, r) for a, r in grants if a.split(":")[0] == service}
            want = {(spec["read"], resource), (spec["write"], resource)} if expected else set()
            c.check(
                got == want,
                f"{service} user actions {'granted' if expected else 'not granted'} with {spec['param']}={value}",
                str(sorted(got)),
            )


def check_audit_statement(
    template: dict, c: Checker, where: str, stmt: dict, actions: set, conds: tuple, function_arn: dict
) -> None:
    """The scheduled audit's reads: only while it is on, and no more than it needs."""
    resources_l = as_list(stmt.get("Resource"))
    c.check(
        any(is_audit_condition(template, n) for n in conds),
        f"{where}: only when AuditSchedule is given",
        f"exists under {conds}",
    )
    if actions == {AUDIT_LIST_ACTION}:
        c.check(
            resources_l == ["*"] and "Condition" not in stmt,
            f"{where}: ListSecrets alone, on Resource \"*\" (it has no resource-level permission)",
            json.dumps(stmt.get("Resource")),
        )
    else:
        c.check(actions <= AUDIT_SECRET_ACTIONS, f"{where}: only ListSecretVersionIds", str(sorted(actions)))
        c.check(resources_l == [SECRETS_RESOURCE], f"{where}: only this account's and Region's secrets")
        c.check(
            stmt.get("Condition") == {"StringEquals": {ALLOW_ROTATION_KEY: function_arn}},
            f"{where}: condition {ALLOW_ROTATION_KEY} == this function's ARN",
            json.dumps(stmt.get("Condition")),
        )


def audit_event(value: Any, function_arn: dict) -> tuple[bool, list]:
    """(the Input is the doctor event for this function's secrets with --login, its other
    arguments) for one Fn::Sub'd Input string."""
    if not (isinstance(value, dict) and list(value) == ["Fn::Sub"] and isinstance(value["Fn::Sub"], str)):
        return False, []
    try:
        event = json.loads(value["Fn::Sub"])
    except ValueError:
        return False, []
    arguments = event.get("Arguments") if isinstance(event, dict) else None
    if event.get("Command") != "doctor" or not isinstance(arguments, list) or set(event) != {"Command", "Arguments"}:
        return False, []
    rest = list(arguments)
    ok = rest[:2] == ["--function", function_arn["Fn::Sub"]] and "--login" in rest
    return ok, [a for a in rest[2:] if a != "--login"]


def check_audit(template: dict, c: Checker, fname: str | None, function_arn: dict) -> None:
    """The optional scheduled audit: off by default, invoking this function with the doctor event
    for its own secrets, repairing only when asked, alarming only with alerts on."""
    params = template.get("Parameters", {})
    c.check(str(param_default(template, "AuditSchedule")) == "", "AuditSchedule: empty (no audit) by default")
    repair = params.get("AuditRepair", {})
    c.check(
        str(repair.get("Default")) == "false" and set(repair.get("AllowedValues", [])) == {"true", "false"},
        "AuditRepair: true or false, off by default",
    )
    sname, rule = single(c, template, "AWS::Events::Rule", is_schedule_rule, "with a schedule")
    if rule is not None:
        rp = props(rule)
        c.check(is_audit_condition(template, rule.get("Condition")), f"{sname}: only when AuditSchedule is given")
        c.check(rp.get("ScheduleExpression") == {"Ref": "AuditSchedule"}, f"{sname}: the AuditSchedule expression")
        targets = rp.get("Targets", [])
        target = targets[0] if isinstance(targets, list) and len(targets) == 1 else {}
        c.check(
            target.get("Arn") == {"Fn::GetAtt": [fname, "Arn"]} and "RoleArn" not in target,
            f"{sname}: one target, this function",
            json.dumps(targets),
        )
        inputs = list(expand(target.get("Input")))
        for value, conds in inputs:
            ok, extra = audit_event(value, function_arn)
            c.check(ok, f"{sname}: the Input is the doctor event for this function's secrets, --login", json.dumps(value))
            repairs = any(requires_true(template, n, "AuditRepair") for n in conds)
            c.check(
                extra == (["--repair"] if repairs else []),
                f"{sname}: --repair only when AuditRepair is true, no other argument",
                f"{extra} under {conds}",
            )
        c.check(bool(inputs), f"{sname}: has an Input")
    pname, perm = single(
        c, template, "AWS::Lambda::Permission", lambda r: props(r).get("Principal") == "events.amazonaws.com",
        "for EventBridge",
    )
    if perm is not None:
        pp = props(perm)
        c.check(is_audit_condition(template, perm.get("Condition")), f"{pname}: only when AuditSchedule is given")
        c.check(
            pp.get("SourceArn") == {"Fn::GetAtt": [sname, "Arn"]},
            f"{pname}: only for the audit rule (SourceArn)",
            json.dumps(pp.get("SourceArn")),
        )
        c.check(pp.get("Action") == "lambda:InvokeFunction", f"{pname}: lambda:InvokeFunction")
        c.check(pp.get("FunctionName") == {"Fn::GetAtt": [fname, "Arn"]}, f"{pname}: on the rotation function")
    aname, alarm = single(c, template, "AWS::CloudWatch::Alarm", is_audit_alarm, "on one metric (the audit's)")
    if alarm is not None:
        ap = props(alarm)
        parts = condition_parts(template, alarm.get("Condition"))
        c.check(
            any(is_audit_condition(template, n) for n in parts) and any(is_alerts_condition(template, n) for n in parts),
            f"{aname}: only when AuditSchedule is given and EnableRotationAlerts is true",
        )
        c.check(
            ap.get("MetricName") == AUDIT_METRIC
            and ap.get("Namespace") == {"Fn::If": ["SetMetricsNamespace", {"Ref": "MetricsNamespace"}, ENV_DEFAULTS["METRICS_NAMESPACE"]]}
            and ap.get("Dimensions") == [{"Name": "FunctionName", "Value": {"Ref": "FunctionName"}}],
            f"{aname}: the audit's {AUDIT_METRIC} metric for this function, in METRICS_NAMESPACE",
        )
        c.check(
            ap.get("ComparisonOperator") == "GreaterThanThreshold"
            and str(ap.get("Threshold")) == "0"
            and ap.get("TreatMissingData") == "notBreaching",
            f"{aname}: alarms on any unhealthy secret, not on missing data",
        )
        topics = resources_of(template, "AWS::SNS::Topic")
        c.check(
            ap.get("AlarmActions") == [{"Ref": t} for t in topics] and len(topics) == 1,
            f"{aname}: notifies the alert topic only",
            json.dumps(ap.get("AlarmActions")),
        )
    assertion = template.get("Rules", {}).get("AuditAlarmNeedsMetrics", {})
    c.check(
        assertion.get("Assertions") == [
            {"Assert": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Metrics"}, "off"]}]},
             "AssertDescription": assertion.get("Assertions", [{}])[0].get("AssertDescription")}
        ],
        "rule AuditAlarmNeedsMetrics: the alarm's metric is not turned off",
    )


NAMESPACE_VALUE = {"Fn::If": ["SetMetricsNamespace", {"Ref": "MetricsNamespace"}, "DbSecretRotator"]}


def dashboard_body(c: Checker, where: str, body: Any, audit_alarm: str) -> dict | None:
    """The dashboard's JSON with its Fn::Sub variables given test values (`audit_alarm` for the
    optional audit alarm's entry), or None when it is not an Fn::Sub of JSON."""
    if not (isinstance(body, dict) and list(body) == ["Fn::Sub"] and isinstance(body["Fn::Sub"], list)):
        c.check(False, f"{where}: the body is an Fn::Sub with variables", json.dumps(body)[:200])
        return None
    text, variables = body["Fn::Sub"]
    c.check(variables.get("Namespace") == NAMESPACE_VALUE, f"{where}: ${{Namespace}} is METRICS_NAMESPACE or its default",
            json.dumps(variables.get("Namespace")))
    values = {
        "Namespace": "NS", "FunctionName": "FN", "AWS::Region": "us-east-1",
        "RotationFailuresAlarm.Arn": "arn:failures", "AuditAlarm": audit_alarm,
    }
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    c.check("${" not in text, f"{where}: every ${{...}} of the body is known to this test", text[text.find("${"):][:60])
    try:
        return json.loads(text)
    except ValueError as e:
        c.check(False, f"{where}: the body is JSON", str(e))
        return None


def check_dashboard(template: dict, c: Checker) -> None:
    """The optional dashboard: off by default; the function's metrics in METRICS_NAMESPACE; the
    alarms' states; an alarm on failed steps that notifies nobody."""
    dash = template.get("Parameters", {}).get("Dashboard", {})
    c.check(
        str(dash.get("Default")) == "false" and set(dash.get("AllowedValues", [])) == {"true", "false"},
        "Dashboard: true or false, off by default",
    )
    dname, board = single(c, template, "AWS::CloudWatch::Dashboard")
    fname, alarm = single(c, template, "AWS::CloudWatch::Alarm", lambda r: not is_audit_alarm(r), "on a query (failed steps)")
    for name, res in ((dname, board), (fname, alarm)):
        if res is not None:
            c.check(requires_true(template, res.get("Condition"), "Dashboard"), f"{name}: only when Dashboard is true")
    if alarm is not None:
        ap = props(alarm)
        metrics = ap.get("Metrics", [])
        query = metrics[0] if isinstance(metrics, list) and len(metrics) == 1 else {}
        c.check(
            query.get("Expression") == {"Fn::Sub": ['SELECT SUM(Failure) FROM "${Namespace}"', {"Namespace": NAMESPACE_VALUE}]}
            and query.get("ReturnData") is True,
            f"{fname}: the sum of every Failure metric in METRICS_NAMESPACE",
            json.dumps(metrics),
        )
        c.check(
            ap.get("ComparisonOperator") == "GreaterThanThreshold"
            and str(ap.get("Threshold")) == "0"
            and ap.get("TreatMissingData") == "notBreaching",
            f"{fname}: alarms on any failed step, not on missing data",
        )
        c.check(
            not any(k in ap for k in ("AlarmActions", "OKActions", "InsufficientDataActions")),
            f"{fname}: notifies nobody (the dashboard shows it; alerts come from EventBridge)",
        )
    if board is not None and fname is not None:
        body = props(board).get("DashboardBody")
        variables = body.get("Fn::Sub", [None, {}])[1] if isinstance(body, dict) else {}
        audit = variables.get("AuditAlarm") if isinstance(variables, dict) else None
        c.check(
            audit == {"Fn::If": ["AuditAlerts", {"Fn::Sub": ', "${UnhealthySecretsAlarm.Arn}"'}, ""]},
            f"{dname}: the audit alarm is shown when it exists",
            json.dumps(audit),
        )
        c.check(fname == "RotationFailuresAlarm", f"{dname}: the body names the failure alarm {fname}")
        for state, entry, alarms in (
            ("without the audit alarm", "", ["arn:failures"]),
            ("with the audit alarm", ', "arn:audit"', ["arn:failures", "arn:audit"]),
        ):
            parsed = dashboard_body(c, f"{dname} ({state})", body, entry)
            widgets = parsed.get("widgets", []) if isinstance(parsed, dict) else []
            expressions = [
                m.get("expression", "")
                for w in widgets for row in w.get("properties", {}).get("metrics", []) for m in row
                if isinstance(m, dict)
            ]
            rows = [row for w in widgets for row in w.get("properties", {}).get("metrics", []) if not isinstance(row[0], dict)]
            for metric, stat in STEP_METRICS.items():
                search = f"""SEARCH('Namespace="NS" MetricName="{metric}"', '{stat}', """
                c.check(any(e.startswith(search) for e in expressions), f"{dname} ({state}): graphs {metric} ({stat}) of METRICS_NAMESPACE")
            c.check(
                ["NS", AUDIT_METRIC, "FunctionName", "FN"] in rows,
                f"{dname} ({state}): graphs the audit's {AUDIT_METRIC} of this function",
            )
            shown = [w.get("properties", {}).get("alarms") for w in widgets if w.get("type") == "alarm"]
            c.check(shown == [alarms], f"{dname} ({state}): shows the alarms {alarms}", json.dumps(shown))
            regions = {w.get("properties", {}).get("region") for w in widgets if w.get("type") == "metric"}
            c.check(regions == {"us-east-1"}, f"{dname} ({state}): every graph in the stack's Region", str(regions))
    assertion = template.get("Rules", {}).get("DashboardNeedsMetrics", {})
    c.check(
        assertion.get("RuleCondition") == {"Fn::Equals": [{"Ref": "Dashboard"}, "true"]}
        and [a.get("Assert") for a in assertion.get("Assertions", [])]
        == [{"Fn::Not": [{"Fn::Equals": [{"Ref": "Metrics"}, "off"]}]}],
        "rule DashboardNeedsMetrics: the dashboard's metrics are not turned off",
    )
    outputs = {k: v for k, v in template.get("Outputs", {}).items() if dname and dname in json.dumps(v.get("Value"))}
    for oname, out in outputs.items():
        c.check(requires_true(template, out.get("Condition"), "Dashboard"), f"output {oname}: only when the dashboard exists")


def check_alerts(template: dict, c: Checker) -> None:
    """The optional rotation alerts: conditional, the right events, a publish-only topic policy."""
    params = template.get("Parameters", {})
    enable = params.get("EnableRotationAlerts", {})
    c.check(
        str(enable.get("Default")) == "false" and set(enable.get("AllowedValues", [])) == {"true", "false"},
        "EnableRotationAlerts: true or false, off by default",
    )
    rname, rule = single(c, template, "AWS::Events::Rule", is_alert_rule, "with an event pattern")
    tname, topic = single(c, template, "AWS::SNS::Topic")
    pname, policy = single(c, template, "AWS::SNS::TopicPolicy")
    for name, res in ((rname, rule), (tname, topic), (pname, policy)):
        if res is not None:
            c.check(is_alerts_condition(template, res.get("Condition")), f"{name}: only when EnableRotationAlerts is true")
    topic_ref = {"Ref": tname}

    if rule is not None:
        rp = rule.get("Properties", {})
        pattern = copy.deepcopy(rp.get("EventPattern", {}))
        names = pattern.get("detail", {}).pop("eventName", []) if isinstance(pattern.get("detail"), dict) else []
        c.check(
            pattern == ALERT_PATTERN,
            f"{rname}: matches Secrets Manager service events delivered via CloudTrail",
            json.dumps(rp.get("EventPattern")),
        )
        c.check(
            isinstance(names, list) and set(names) == ALERT_EVENTS,
            f"{rname}: eventName is exactly {sorted(ALERT_EVENTS)}",
            json.dumps(names),
        )
        c.check(rp.get("State", "ENABLED") == "ENABLED", f"{rname}: enabled")
        targets = rp.get("Targets", [])
        c.check(
            isinstance(targets, list)
            and len(targets) == 1
            and targets[0].get("Arn") == topic_ref
            and "RoleArn" not in targets[0],
            f"{rname}: one target, the alert topic",
            json.dumps(targets),
        )

    if policy is not None:
        pp = policy.get("Properties", {})
        c.check(pp.get("Topics") == [topic_ref], f"{pname}: applies to the alert topic only")
        expanded = list(expand_list(pp.get("PolicyDocument", {}).get("Statement", [])))
        stmts = [s for s, conds in expanded if not conds]
        stmt = stmts[0] if len(stmts) == 1 and isinstance(stmts[0], dict) else {}
        c.check(len(stmts) == 1, f"{pname}: exactly one unconditional statement", str(len(stmts)))
        for extra, conds in expanded:
            if conds:
                check_alarm_statement(template, c, pname, extra, conds, topic_ref)
        c.check(stmt.get("Effect") == "Allow", f"{pname}: Effect Allow")
        c.check(
            stmt.get("Principal") == {"Service": "events.amazonaws.com"},
            f"{pname}: principal events.amazonaws.com only",
            json.dumps(stmt.get("Principal")),
        )
        c.check(as_list(stmt.get("Action")) == ["sns:Publish"], f"{pname}: sns:Publish only", json.dumps(stmt.get("Action")))
        c.check(as_list(stmt.get("Resource")) == [topic_ref], f"{pname}: on the alert topic only")
        c.check(
            rname is not None
            and stmt.get("Condition") == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [rname, "Arn"]}}},
            f"{pname}: only on behalf of {rname} (aws:SourceArn)",
            json.dumps(stmt.get("Condition")),
        )
        c.check(
            not any(k in stmt for k in ("NotAction", "NotResource", "NotPrincipal")),
            f"{pname}: no NotAction/NotResource/NotPrincipal",
        )

    for sname, sub in resources_of(template, "AWS::SNS::Subscription").items():
        sp = sub.get("Properties", {})
        parts = condition_parts(template, sub.get("Condition"))
        c.check(
            any(is_alerts_condition(template, n) for n in parts)
            and any(is_nonempty_condition(template, n, "AlertEmail") for n in parts),
            f"{sname}: only when EnableRotationAlerts is true and AlertEmail is given",
        )
        c.check(
            sp.get("TopicArn") == topic_ref and sp.get("Protocol") == "email" and sp.get("Endpoint") == {"Ref": "AlertEmail"},
            f"{sname}: emails AlertEmail from the alert topic",
        )
    for oname, out in template.get("Outputs", {}).items():
        if tname is not None and out.get("Value") == topic_ref:
            c.check(is_alerts_condition(template, out.get("Condition")), f"output {oname}: only when the topic exists")


def check_alarm_statement(template: dict, c: Checker, pname: str, stmt: Any, conds: tuple, topic_ref: dict) -> None:
    """The topic policy's other statement: the audit alarm, and only it, may publish."""
    stmt = stmt if isinstance(stmt, dict) else {}
    alarms = [k for k, v in resources_of(template, "AWS::CloudWatch::Alarm").items() if is_audit_alarm(v)]
    c.check(
        any(requires(template, n, lambda m: is_audit_condition(template, m)) for n in conds),
        f"{pname}: the second statement only with the scheduled audit",
        str(conds),
    )
    c.check(
        stmt.get("Effect") == "Allow"
        and stmt.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
        and as_list(stmt.get("Action")) == ["sns:Publish"]
        and as_list(stmt.get("Resource")) == [topic_ref]
        and not any(k in stmt for k in ("NotAction", "NotResource", "NotPrincipal")),
        f"{pname}: CloudWatch may only publish to the alert topic",
        json.dumps(stmt),
    )
    c.check(
        len(alarms) == 1
        and stmt.get("Condition") == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [alarms[0], "Arn"]}}},
        f"{pname}: only on behalf of the audit alarm (aws:SourceArn)",
        json.dumps(stmt.get("Condition")),
    )


def is_recipe(template: dict) -> bool:
    """The example that reacts to Secrets Manager's Secret Label Updated event."""
    return any(
        "Secret Label Updated" in json.dumps(props(r).get("EventPattern", {}))
        for r in resources_of(template, "AWS::Events::Rule").values()
    )


def check_example(template: dict, c: Checker) -> None:
    if is_recipe(template):
        check_recipe(template, c)
        return
    resources = template.get("Resources", {})
    iam = {k: v.get("Type") for k, v in resources.items() if v.get("Type") in EXAMPLE_FORBIDDEN_TYPES}
    c.check(
        not iam,
        "no IAM, Lambda or function resources of its own (the function comes from template.yaml)",
        str(iam),
    )
    for logical, res in resources.items():
        if res.get("Type") == "AWS::Serverless::Application":
            c.check(
                res.get("Properties", {}).get("Location") == "../template.yaml",
                f"{logical}: nested application is ../template.yaml",
            )
    schedules = resources_of(template, "AWS::SecretsManager::RotationSchedule")
    c.check(bool(schedules), "has an AWS::SecretsManager::RotationSchedule")
    for logical, res in schedules.items():
        p = res.get("Properties", {})
        rules = p.get("RotationRules", {})
        c.check("HostedRotationLambda" not in p, f"{logical}: not an AWS hosted rotation function")
        c.check("RotationLambdaARN" in p, f"{logical}: RotationLambdaARN set")
        c.check("ScheduleExpression" in rules and "Duration" in rules, f"{logical}: schedule expression and window")



def trusts_only(c: Checker, where: str, role: dict, service: str) -> None:
    """The role may be assumed by `service` alone, on behalf of this account."""
    trust = props(role).get("AssumeRolePolicyDocument", {}).get("Statement", [])
    c.check(
        trust == [{
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
        }],
        f"{where}: assumed by {service} alone, for this account (aws:SourceAccount)",
        json.dumps(trust),
    )


def only_statement(c: Checker, where: str, role: dict) -> dict:
    """The role's one inline statement (and no managed policy)."""
    rp = props(role)
    c.check("ManagedPolicyArns" not in rp and "PermissionsBoundary" not in rp, f"{where}: no managed policy")
    policies = rp.get("Policies", [])
    stmts = [s for p in policies for s in as_list(p.get("PolicyDocument", {}).get("Statement", []))]
    c.check(len(stmts) == 1, f"{where}: exactly one statement", str(len(stmts)))
    return stmts[0] if len(stmts) == 1 and isinstance(stmts[0], dict) else {}


def check_recipe(template: dict, c: Checker) -> None:
    """examples/redeploy-on-rotation.yaml: one secret's AWSCURRENT moving redeploys one ECS
    service, and its roles can do nothing else."""
    resources = template.get("Resources", {})
    unknown = {k: v.get("Type") for k, v in resources.items() if v.get("Type") not in RECIPE_TYPES}
    c.check(not unknown, "only an EventBridge rule, a state machine and their two roles", str(unknown))
    rname, rule = single(c, template, "AWS::Events::Rule")
    mname, machine = single(c, template, "AWS::StepFunctions::StateMachine")
    roles = resources_of(template, "AWS::IAM::Role")
    if rule is None or machine is None:
        return
    rp = props(rule)
    c.check(
        rp.get("EventPattern") == CURRENT_MOVED_PATTERN,
        f"{rname}: Secret Label Updated, AWSCURRENT, on the SecretArn secret alone",
        json.dumps(rp.get("EventPattern")),
    )
    c.check(rp.get("State", "ENABLED") == "ENABLED" and "Condition" not in rule, f"{rname}: enabled")
    targets = rp.get("Targets", [])
    target = targets[0] if isinstance(targets, list) and len(targets) == 1 else {}
    role_ref = target.get("RoleArn", {}).get("Fn::GetAtt", [None])[0] if isinstance(target.get("RoleArn"), dict) else None
    c.check(
        target.get("Arn") == {"Ref": mname} and role_ref in roles,
        f"{rname}: one target, the state machine, through a role of this stack",
        json.dumps(targets),
    )
    if role_ref in roles:
        trusts_only(c, role_ref, roles[role_ref], "events.amazonaws.com")
        stmt = only_statement(c, role_ref, roles[role_ref])
        c.check(
            stmt.get("Effect") == "Allow"
            and as_list(stmt.get("Action")) == ["states:StartExecution"]
            and as_list(stmt.get("Resource")) == [{"Ref": mname}]
            and "Condition" not in stmt,
            f"{role_ref}: states:StartExecution of {mname} alone",
            json.dumps(stmt),
        )
    mp = props(machine)
    definition = mp.get("Definition", {})
    states = definition.get("States", {}) if isinstance(definition, dict) else {}
    task = states.get(definition.get("StartAt"), {}) if isinstance(definition, dict) else {}
    c.check(
        len(states) == 1
        and task.get("Type") == "Task"
        and task.get("Resource") == "arn:aws:states:::aws-sdk:ecs:updateService"
        and task.get("Parameters") == {"Cluster": {"Ref": "ClusterName"}, "Service": {"Ref": "ServiceName"}, "ForceNewDeployment": True}
        and task.get("End") is True,
        f"{mname}: one task, ecs:UpdateService of the service with forceNewDeployment",
        json.dumps(definition),
    )
    mrole = mp.get("RoleArn", {}).get("Fn::GetAtt", [None])[0] if isinstance(mp.get("RoleArn"), dict) else None
    c.check(mrole in roles and mrole != role_ref, f"{mname}: its own role of this stack", json.dumps(mp.get("RoleArn")))
    if mrole in roles:
        trusts_only(c, mrole, roles[mrole], "states.amazonaws.com")
        stmt = only_statement(c, mrole, roles[mrole])
        c.check(
            stmt.get("Effect") == "Allow"
            and as_list(stmt.get("Action")) == ["ecs:UpdateService"]
            and as_list(stmt.get("Resource")) == [{"Fn::Sub": SERVICE_ARN}]
            and "Condition" not in stmt,
            f"{mrole}: ecs:UpdateService of the one service alone",
            json.dumps(stmt),
        )
    c.check(len(roles) == 2, "two roles: the rule's and the state machine's", str(sorted(roles)))


SERVICE_ARN = "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:service/${ClusterName}/${ServiceName}"


# --- mutations: each must make check_template fail ----------------------------------------


def _role(t: dict) -> dict:
    return next(iter(resources_of(t, "AWS::IAM::Role").values()))["Properties"]


def _stmts(t: dict, policy: int) -> list:
    return _role(t)["Policies"][policy]["PolicyDocument"]["Statement"]


def _fn(t: dict) -> dict:
    return next(iter(resources_of(t, "AWS::Serverless::Function").values()))


def _perm(t: dict) -> dict:
    return next(p for p in resources_of(t, "AWS::Lambda::Permission").values() if is_rotation_permission(p))["Properties"]


def _vpc_policy(t: dict) -> dict:
    return next(p for p in _role(t)["Policies"] if "Fn::If" in p)


def _rds_policy(t: dict) -> dict:
    return next(p for p in _role(t)["Policies"] if "Fn::If" in p and p["Fn::If"][0] == "RdsLookup")["Fn::If"][1]


def _rds_stmts(t: dict) -> list:
    return _rds_policy(t)["PolicyDocument"]["Statement"]


def _cache_policy(t: dict, condition: str) -> dict:
    return next(p for p in _role(t)["Policies"] if "Fn::If" in p and p["Fn::If"][0] == condition)


def _cache_stmts(t: dict, condition: str) -> list:
    return _cache_policy(t, condition)["Fn::If"][1]["PolicyDocument"]["Statement"]


def _unwrap_cache_policy(t: dict, condition: str) -> None:
    policies = _role(t)["Policies"]
    i = next(i for i, p in enumerate(policies) if "Fn::If" in p and p["Fn::If"][0] == condition)
    policies[i] = policies[i]["Fn::If"][1]


def _alert(t: dict, rtype: str) -> dict:
    found = resources_of(t, rtype).values()
    return next(r for r in found if rtype != "AWS::Events::Rule" or is_alert_rule(r))


def _audit(t: dict, rtype: str) -> dict:
    found = resources_of(t, rtype).values()
    return next(
        r for r in found
        if (rtype != "AWS::Events::Rule" or is_schedule_rule(r))
        and (rtype != "AWS::Lambda::Permission" or not is_rotation_permission(r))
    )


def _audit_input(t: dict) -> list:
    return _audit(t, "AWS::Events::Rule")["Properties"]["Targets"][0]["Input"]["Fn::If"]


def _audit_stmt(t: dict, action: str) -> list:
    """The role's Fn::If holding the audit statement with `action`, as [condition, statement, no]."""
    return next(
        s["Fn::If"] for s in _stmts(t, 0) if isinstance(s, dict) and "Fn::If" in s and s["Fn::If"][1].get("Action") == action
    )


def _unwrap_audit_stmt(t: dict, action: str) -> None:
    statements = _stmts(t, 0)
    i = next(i for i, s in enumerate(statements) if isinstance(s, dict) and "Fn::If" in s and s["Fn::If"][1].get("Action") == action)
    statements[i] = statements[i]["Fn::If"][1]


def _alarm_stmt(t: dict) -> list:
    return _alert(t, "AWS::SNS::TopicPolicy")["Properties"]["PolicyDocument"]["Statement"][1]["Fn::If"]


def _topic_stmt(t: dict) -> dict:
    return _alert(t, "AWS::SNS::TopicPolicy")["Properties"]["PolicyDocument"]["Statement"][0]


def _set(d: dict, key: str, value: Any) -> None:
    d[key] = value


def _board(t: dict) -> dict:
    return next(iter(resources_of(t, "AWS::CloudWatch::Dashboard").values()))


def _board_sub(t: dict) -> list:
    return _board(t)["Properties"]["DashboardBody"]["Fn::Sub"]


def _edit_board(t: dict, old: str, new: str) -> None:
    sub = _board_sub(t)
    if old not in sub[0]:
        raise KeyError(old)
    sub[0] = sub[0].replace(old, new)


def _failures_alarm(t: dict) -> dict:
    return next(r for r in resources_of(t, "AWS::CloudWatch::Alarm").values() if not is_audit_alarm(r))


def _recipe(t: dict, rtype: str, index: int = 0) -> dict:
    return list(resources_of(t, rtype).values())[index]


def _recipe_role(t: dict, service: str) -> dict:
    return next(
        r for r in resources_of(t, "AWS::IAM::Role").values()
        if r["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"] == service
    )


def _recipe_stmt(t: dict, service: str) -> dict:
    return _recipe_role(t, service)["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0]


def _pattern(t: dict) -> dict:
    return _recipe(t, "AWS::Events::Rule")["Properties"]["EventPattern"]


def _task(t: dict) -> dict:
    return _recipe(t, "AWS::StepFunctions::StateMachine")["Properties"]["Definition"]["States"]["ForceNewDeployment"]


MUTATIONS: list[tuple[str, Callable[[dict], None]]] = [
    ("drop the AllowRotationLambdaArn condition", lambda t: _stmts(t, 0)[0].pop("Condition")),
    (
        "bind the condition to another function",
        lambda t: _set(
            _stmts(t, 0)[0]["Condition"]["StringEquals"],
            ALLOW_ROTATION_KEY,
            {"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:*"},
        ),
    ),
    ("add secretsmanager:*", lambda t: _stmts(t, 0)[0]["Action"].append("secretsmanager:*")),
    ("add secretsmanager:GetRandomPassword", lambda t: _stmts(t, 0)[0]["Action"].append("secretsmanager:GetRandomPassword")),
    ("secrets on Resource *", lambda t: _set(_stmts(t, 0)[0], "Resource", "*")),
    (
        "add an Action * statement",
        lambda t: _stmts(t, 1).append({"Effect": "Allow", "Action": "*", "Resource": "*"}),
    ),
    (
        "add a NotAction statement",
        lambda t: _stmts(t, 1).append({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}),
    ),
    ("master secret statement can write", lambda t: _set(_stmts(t, 0)[1]["Fn::If"][1], "Action", ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"])),
    ("master secret statement unconditional", lambda t: _stmts(t, 0).__setitem__(1, _stmts(t, 0)[1]["Fn::If"][1])),
    ("KMS on Resource *", lambda t: _set(_stmts(t, 0)[2]["Fn::If"][1], "Resource", "*")),
    ("KMS unconditional", lambda t: _stmts(t, 0).__setitem__(2, _stmts(t, 0)[2]["Fn::If"][1])),
    ("KMS without kms:ViaService", lambda t: _stmts(t, 0)[2]["Fn::If"][1].pop("Condition")),
    ("kms:* action", lambda t: _set(_stmts(t, 0)[2]["Fn::If"][1], "Action", "kms:*")),
    ("logs:* on every log group", lambda t: _set(_stmts(t, 1)[0], "Resource", {"Fn::Sub": "arn:${AWS::Partition}:logs:*:*:*"})),
    ("logs:CreateLogGroup added", lambda t: _stmts(t, 1)[0]["Action"].append("logs:CreateLogGroup")),
    ("VPC actions unconditional", lambda t: _role(t)["Policies"].__setitem__(2, _vpc_policy(t)["Fn::If"][1])),
    (
        "ec2:* under the VPC condition",
        lambda t: _vpc_policy(t)["Fn::If"][1]["PolicyDocument"]["Statement"][0]["Action"].append("ec2:*"),
    ),
    (
        "VPC condition needs only subnets",
        lambda t: _set(t["Conditions"], "HasVpc", {"Fn::And": [{"Condition": "HasSubnets"}, {"Condition": "HasSubnets"}]}),
    ),
    ("managed policy on the role", lambda t: _set(_role(t), "ManagedPolicyArns", ["arn:aws:iam::aws:policy/AdministratorAccess"])),
    ("SAM Policies on the function", lambda t: _set(_fn(t)["Properties"], "Policies", ["AWSLambdaBasicExecutionRole"])),
    ("SAM-generated role (no Role)", lambda t: _fn(t)["Properties"].pop("Role")),
    (
        "an extra AWS::IAM::Policy",
        lambda t: _set(
            t["Resources"],
            "Extra",
            {"Type": "AWS::IAM::Policy", "Properties": {"PolicyName": "x", "Roles": ["r"], "PolicyDocument": {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}}},
        ),
    ),
    ("permission without SourceAccount", lambda t: _perm(t).pop("SourceAccount")),
    ("permission for another principal", lambda t: _set(_perm(t), "Principal", "*")),
    ("Runtime provided.al2", lambda t: _set(_fn(t)["Properties"], "Runtime", "provided.al2")),
    ("Handler main", lambda t: _set(_fn(t)["Properties"], "Handler", "main")),
    ("MemorySize 128", lambda t: _set(_fn(t)["Properties"], "MemorySize", 128)),
    ("BuildMethod makefile", lambda t: _set(_fn(t)["Metadata"], "BuildMethod", "makefile")),
    ("LogFormat Text", lambda t: _set(_fn(t)["Properties"]["LoggingConfig"], "LogFormat", "Text")),
    ("Architecture default x86_64", lambda t: _set(t["Parameters"]["Architecture"], "Default", "x86_64")),
    ("TLS_MODE default prefer", lambda t: _set(t["Parameters"]["TlsMode"], "Default", "prefer")),
    (
        "PASSWORD_LENGTH always set",
        lambda t: _set(_fn(t)["Properties"]["Environment"]["Variables"], "PASSWORD_LENGTH", {"Ref": "PasswordLength"}),
    ),
    ("output is the role, not the function", lambda t: _set(t["Outputs"]["RotationLambdaArn"], "Value", {"Fn::GetAtt": ["RotationRole", "Arn"]})),
    ("METRICS default off", lambda t: _set(t["Parameters"]["Metrics"], "Default", "off")),
    ("alerts on by default", lambda t: _set(t["Parameters"]["EnableRotationAlerts"], "Default", "true")),
    ("alert rule unconditional", lambda t: _alert(t, "AWS::Events::Rule").pop("Condition")),
    ("alert topic unconditional", lambda t: _alert(t, "AWS::SNS::Topic").pop("Condition")),
    ("topic policy unconditional", lambda t: _alert(t, "AWS::SNS::TopicPolicy").pop("Condition")),
    ("topic policy for any principal", lambda t: _set(_topic_stmt(t), "Principal", "*")),
    ("topic policy without aws:SourceArn", lambda t: _topic_stmt(t).pop("Condition")),
    (
        "topic policy for any rule",
        lambda t: _set(
            _topic_stmt(t)["Condition"]["ArnEquals"],
            "aws:SourceArn",
            {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/*"},
        ),
    ),
    ("topic policy allows sns:*", lambda t: _set(_topic_stmt(t), "Action", "sns:*")),
    ("rule without RotationAbandoned", lambda t: _alert(t, "AWS::Events::Rule")["Properties"]["EventPattern"]["detail"]["eventName"].remove("RotationAbandoned")),
    (
        "rule on API calls instead of service events",
        lambda t: _set(_alert(t, "AWS::Events::Rule")["Properties"]["EventPattern"], "detail-type", ["AWS API Call via CloudTrail"]),
    ),
    ("email subscription without an address", lambda t: _set(_alert(t, "AWS::SNS::Subscription"), "Condition", "RotationAlerts")),
    ("audit on by default", lambda t: _set(t["Parameters"]["AuditSchedule"], "Default", "rate(1 day)")),
    ("audit repairs by default", lambda t: _set(t["Parameters"]["AuditRepair"], "Default", "true")),
    ("audit rule unconditional", lambda t: _audit(t, "AWS::Events::Rule").pop("Condition")),
    (
        "audit rule invokes another function",
        lambda t: _set(
            _audit(t, "AWS::Events::Rule")["Properties"]["Targets"][0],
            "Arn",
            {"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:other"},
        ),
    ),
    ("audit event for every secret", lambda t: _set(_audit_input(t)[2], "Fn::Sub", '{"Command": "doctor", "Arguments": ["--all", "--login"]}')),
    ("audit repairs whatever AuditRepair says", lambda t: _audit_input(t).__setitem__(2, _audit_input(t)[1])),
    ("audit permission without SourceArn", lambda t: _audit(t, "AWS::Lambda::Permission")["Properties"].pop("SourceArn")),
    ("audit permission for any principal", lambda t: _set(_audit(t, "AWS::Lambda::Permission")["Properties"], "Principal", "*")),
    ("ListSecrets without the audit", lambda t: _unwrap_audit_stmt(t, "secretsmanager:ListSecrets")),
    (
        "GetSecretValue on every secret beside ListSecrets",
        lambda t: _set(_audit_stmt(t, "secretsmanager:ListSecrets")[1], "Action", ["secretsmanager:ListSecrets", "secretsmanager:GetSecretValue"]),
    ),
    ("ListSecretVersionIds without the rotation condition", lambda t: _audit_stmt(t, "secretsmanager:ListSecretVersionIds")[1].pop("Condition")),
    ("ListSecretVersionIds without the audit", lambda t: _unwrap_audit_stmt(t, "secretsmanager:ListSecretVersionIds")),
    ("alarm on another metric", lambda t: _set(_alert(t, "AWS::CloudWatch::Alarm")["Properties"], "MetricName", "Errors")),
    ("alarm without alerts", lambda t: _set(_alert(t, "AWS::CloudWatch::Alarm"), "Condition", "ScheduledAudit")),
    ("alarm fires on missing data", lambda t: _set(_alert(t, "AWS::CloudWatch::Alarm")["Properties"], "TreatMissingData", "breaching")),
    (
        "topic policy for any alarm",
        lambda t: _set(
            _alarm_stmt(t)[1]["Condition"]["ArnEquals"],
            "aws:SourceArn",
            {"Fn::Sub": "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:*"},
        ),
    ),
    ("alarm statement without the audit", lambda t: _alert(t, "AWS::SNS::TopicPolicy")["Properties"]["PolicyDocument"]["Statement"].__setitem__(1, _alarm_stmt(t)[1])),
    ("alarm metric may be turned off", lambda t: t["Rules"].pop("AuditAlarmNeedsMetrics")),
    ("RDS lookups on Resource *", lambda t: _set(_rds_stmts(t)[0], "Resource", "*")),
    (
        "RDS lookups in every account",
        lambda t: _set(_rds_stmts(t)[0], "Resource", [{"Fn::Sub": "arn:${AWS::Partition}:rds:*:*:db:*"}]),
    ),
    ("RDS lookups may modify", lambda t: _rds_stmts(t)[0]["Action"].append("rds:ModifyDBInstance")),
    ("rds:Describe* action", lambda t: _set(_rds_stmts(t)[0], "Action", "rds:Describe*")),
    ("RDS lookups unconditional", lambda t: _role(t)["Policies"].__setitem__(3, _rds_policy(t))),
    (
        "RDS lookups ignore AllowRdsLookup",
        lambda t: _set(t["Conditions"], "RdsLookup", {"Fn::And": [{"Condition": "HasMasterSecret"}, {"Condition": "HasMasterSecret"}]}),
    ),
    (
        "RDS lookups never granted",
        lambda t: t["Conditions"]["RdsLookup"]["Fn::And"].append({"Fn::Not": [{"Condition": "HasMasterSecret"}]}),
    ),
    ("AllowRdsLookup off by default", lambda t: _set(t["Parameters"]["AllowRdsLookup"], "Default", "false")),
    ("cleartext passwords allowed by default", lambda t: _set(t["Parameters"]["AllowCleartextPasswords"], "Default", "on")),
    ("any master secret may be named", lambda t: _env(t).pop("MASTER_SECRET_ARNS")),
    ("events may always repair", lambda t: _set(_env(t), "AUDIT_EVENTS", "repair")),
    (
        "events may repair without AuditRepair",
        lambda t: _set(_env(t), "AUDIT_EVENTS", {"Fn::If": ["ScheduledAudit", "repair", "off"]}),
    ),
    ("tags of every secret", lambda t: _set(_rds_stmts(t)[1], "Resource", "*")),
    ("ElastiCache users on by default", lambda t: _set(t["Parameters"]["AllowElastiCacheUsers"], "Default", "true")),
    ("MemoryDB users on by default", lambda t: _set(t["Parameters"]["AllowMemoryDbUsers"], "Default", "true")),
    ("ElastiCache user actions on Resource *", lambda t: _set(_cache_stmts(t, "ElastiCacheUsers")[1], "Resource", "*")),
    (
        "ElastiCache users of every account and Region",
        lambda t: _set(_cache_stmts(t, "ElastiCacheUsers")[0], "Resource", {"Fn::Sub": "arn:${AWS::Partition}:elasticache:*:*:user:*"}),
    ),
    (
        "ElastiCache: every resource of the account",
        lambda t: _set(
            _cache_stmts(t, "ElastiCacheUsers")[1],
            "Resource",
            {"Fn::Sub": "arn:${AWS::Partition}:elasticache:${AWS::Region}:${AWS::AccountId}:*"},
        ),
    ),
    (
        "ElastiCache user groups too",
        lambda t: _set(_cache_stmts(t, "ElastiCacheUsers")[1], "Action", ["elasticache:ModifyUser", "elasticache:ModifyUserGroup"]),
    ),
    (
        "ElastiCache users may be deleted",
        lambda t: _set(_cache_stmts(t, "ElastiCacheUsers")[0], "Action", ["elasticache:DescribeUsers", "elasticache:DeleteUser"]),
    ),
    ("elasticache:* action", lambda t: _set(_cache_stmts(t, "ElastiCacheUsers")[1], "Action", "elasticache:*")),
    ("ElastiCache users unconditional", lambda t: _unwrap_cache_policy(t, "ElastiCacheUsers")),
    (
        "ElastiCache users ignore AllowElastiCacheUsers",
        lambda t: _set(t["Conditions"], "ElastiCacheUsers", {"Fn::Equals": ["true", "true"]}),
    ),
    ("ModifyUser for any authentication mode", lambda t: _cache_stmts(t, "ElastiCacheUsers")[1].pop("Condition")),
    (
        "ModifyUser may switch a user to IAM",
        lambda t: _set(
            _cache_stmts(t, "ElastiCacheUsers")[1],
            "Condition",
            {"StringEqualsIfExists": {"elasticache:UserAuthenticationMode": ["password", "iam"]}},
        ),
    ),
    ("MemoryDB user actions on Resource *", lambda t: _set(_cache_stmts(t, "MemoryDbUsers")[1], "Resource", "*")),
    (
        "MemoryDB users of every account and Region",
        lambda t: _set(_cache_stmts(t, "MemoryDbUsers")[1], "Resource", {"Fn::Sub": "arn:${AWS::Partition}:memorydb:*:*:user/*"}),
    ),
    (
        "MemoryDB ACLs too",
        lambda t: _set(_cache_stmts(t, "MemoryDbUsers")[1], "Action", ["memorydb:UpdateUser", "memorydb:UpdateACL"]),
    ),
    ("memorydb:* action", lambda t: _set(_cache_stmts(t, "MemoryDbUsers")[0], "Action", "memorydb:*")),
    ("MemoryDB users unconditional", lambda t: _unwrap_cache_policy(t, "MemoryDbUsers")),
    (
        "MemoryDB users under the ElastiCache switch",
        lambda t: _cache_policy(t, "MemoryDbUsers")["Fn::If"].__setitem__(0, "ElastiCacheUsers"),
    ),
    ("UpdateUser for any authentication mode", lambda t: _cache_stmts(t, "MemoryDbUsers")[1].pop("Condition")),
    (
        "superuser secret writable through the RDS lookups",
        lambda t: _set(_rds_stmts(t)[1], "Action", ["secretsmanager:DescribeSecret", "secretsmanager:PutSecretValue"]),
    ),
    ("dashboard on by default", lambda t: _set(t["Parameters"]["Dashboard"], "Default", "true")),
    ("dashboard unconditional", lambda t: _board(t).pop("Condition")),
    ("failure alarm unconditional", lambda t: _failures_alarm(t).pop("Condition")),
    ("dashboard without the failed steps", lambda t: _edit_board(t, 'MetricName=\\"Failure\\"', 'MetricName=\\"Errors\\"')),
    ("dashboard without the throttled answers", lambda t: _edit_board(t, 'MetricName=\\"SecretsManagerThrottles\\"', 'MetricName=\\"SecretsManagerRetries\\"')),
    ("dashboard durations summed", lambda t: _edit_board(t, """MetricName=\\"Duration\\"', 'Average'""", """MetricName=\\"Duration\\"', 'Sum'""")),
    ("dashboard without the audit's metric", lambda t: _edit_board(t, '"UnhealthySecrets"', '"Errors"')),
    ("dashboard on another namespace", lambda t: _set(_board_sub(t)[1], "Namespace", "AWS/Lambda")),
    ("dashboard hides the audit alarm", lambda t: _set(_board_sub(t)[1], "AuditAlarm", "")),
    ("dashboard without the alarms", lambda t: _edit_board(t, '"type": "alarm"', '"type": "text"')),
    ("dashboard body not JSON", lambda t: _edit_board(t, '"widgets": [', '"widgets": [,')),
    ("failure alarm with an action", lambda t: _set(_failures_alarm(t)["Properties"], "AlarmActions", [{"Fn::Sub": "arn:${AWS::Partition}:sns:${AWS::Region}:${AWS::AccountId}:other"}])),
    (
        "failure alarm on another metric",
        lambda t: _set(_failures_alarm(t)["Properties"]["Metrics"][0]["Expression"]["Fn::Sub"], 0, 'SELECT SUM(Errors) FROM "${Namespace}"'),
    ),
    ("failure alarm fires on missing data", lambda t: _set(_failures_alarm(t)["Properties"], "TreatMissingData", "breaching")),
    ("dashboard metrics may be turned off", lambda t: t["Rules"].pop("DashboardNeedsMetrics")),
]

# Harmful edits of examples/redeploy-on-rotation.yaml; each must make check_recipe fail.
RECIPE_MUTATIONS: list[tuple[str, Callable[[dict], None]]] = [
    ("recipe: every label", lambda t: _pattern(t)["detail"].pop("labelUpdated")),
    ("recipe: AWSPENDING instead of AWSCURRENT", lambda t: _set(_pattern(t)["detail"], "labelUpdated", ["AWSPENDING"])),
    ("recipe: every secret", lambda t: _pattern(t).pop("resources")),
    ("recipe: API calls instead of the native event", lambda t: _set(_pattern(t), "detail-type", ["AWS API Call via CloudTrail"])),
    ("recipe: the rule's role starts any state machine", lambda t: _set(_recipe_stmt(t, "events.amazonaws.com"), "Resource", "*")),
    ("recipe: the rule's role may do more", lambda t: _set(_recipe_stmt(t, "events.amazonaws.com"), "Action", "states:*")),
    ("recipe: the state machine updates any service", lambda t: _set(_recipe_stmt(t, "states.amazonaws.com"), "Resource", "*")),
    ("recipe: the state machine may delete the service", lambda t: _set(_recipe_stmt(t, "states.amazonaws.com"), "Action", ["ecs:UpdateService", "ecs:DeleteService"])),
    ("recipe: no forced deployment", lambda t: _set(_task(t)["Parameters"], "ForceNewDeployment", False)),
    ("recipe: another service", lambda t: _set(_task(t)["Parameters"], "Service", "other")),
    (
        "recipe: trust without aws:SourceAccount",
        lambda t: _recipe_role(t, "states.amazonaws.com")["Properties"]["AssumeRolePolicyDocument"]["Statement"][0].pop("Condition"),
    ),
    ("recipe: a managed policy", lambda t: _set(_recipe_role(t, "events.amazonaws.com")["Properties"], "ManagedPolicyArns", ["arn:aws:iam::aws:policy/AdministratorAccess"])),
    (
        "recipe: an extra resource",
        lambda t: _set(t["Resources"], "Extra", {"Type": "AWS::Lambda::Function", "Properties": {}}),
    ),
]


def _env(t: dict) -> dict:
    return _fn(t)["Properties"]["Environment"]["Variables"]


def self_test(
    template: dict,
    mutations: list[tuple[str, Callable[[dict], None]]] = MUTATIONS,
    check: Callable[[dict, Checker], None] = check_template,
) -> tuple[int, int]:
    """Applies every mutation; returns (rejected, not rejected or not applicable)."""
    caught = missed = 0
    for name, mutate in mutations:
        mutated = copy.deepcopy(template)
        try:
            mutate(mutated)
        except (KeyError, IndexError, StopIteration, TypeError) as e:
            print(f"FAIL  self-test: cannot apply mutation {name!r}: {e!r} (update the mutations)")
            missed += 1
            continue
        c = Checker("mutant", quiet=True)
        try:
            check(mutated, c)
        except Exception as e:  # the real run would stop with this traceback: a rejection too
            c.failures.append(f"check raised {e!r}")
        if c.failures:
            print(f"ok    self-test: rejected {name!r}: {c.failures[0]}")
            caught += 1
        else:
            print(f"FAIL  self-test: mutation {name!r} was NOT detected")
            missed += 1
    return caught, missed


def display(path: str) -> str:
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def main() -> int:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--template", default=os.path.join(root, "template.yaml"))
    ap.add_argument("--examples", default=os.path.join(root, "examples", "*.yaml"), help="glob, '' for none")
    ap.add_argument("--self-test", action="store_true", help="also require every built-in mutation to fail")
    args = ap.parse_args()

    passed = failed = 0
    template = load(args.template)
    c = Checker(display(args.template))
    check_template(template, c)
    passed, failed = passed + c.passed, failed + len(c.failures)
    print(f"{display(args.template)}: {c.passed} checks passed, {len(c.failures)} failed")

    recipe = None
    for path in sorted(glob.glob(args.examples)) if args.examples else []:
        e = Checker(display(path))
        example = load(path)
        check_example(example, e)
        if is_recipe(example):
            recipe = (display(path), example)
        passed, failed = passed + e.passed, failed + len(e.failures)
        print(f"{display(path)}: {e.passed} checks passed, {len(e.failures)} failed")

    if args.self_test:
        caught, missed = self_test(template)
        passed, failed = passed + caught, failed + missed
        print(f"self-test: {caught} of {len(MUTATIONS)} mutations of {display(args.template)} rejected")
        if recipe is not None:
            caught, missed = self_test(recipe[1], RECIPE_MUTATIONS, check_recipe)
            passed, failed = passed + caught, failed + missed
            print(f"self-test: {caught} of {len(RECIPE_MUTATIONS)} mutations of {recipe[0]} rejected")
    # A plain closing line that CI reads: every check and every rejected mutation counts once.
    print(f"template: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
