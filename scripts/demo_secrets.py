#!/usr/bin/env python3
"""Secrets Manager side of scripts/demo.sh, against the local moto server.

Never prints a password: secret values go in and out through files (mode 0600) or stdin.

  demo_secrets.py create SECRET_ID            < secret JSON on stdin (force-deletes an old one)
  demo_secrets.py stage SECRET_ID TOKEN ARN   RotateSecret as the service would start it
  demo_secrets.py labels SECRET_ID            print VersionIdsToStages
  demo_secrets.py password SECRET_ID STAGE OUT  write the password of STAGE to file OUT
  demo_secrets.py keys SECRET_ID STAGE        print the JSON keys (not values) of STAGE
  demo_secrets.py arn SECRET_ID               print the secret's ARN
  demo_secrets.py settle SECRET_ID            remove AWSPENDING from the AWSCURRENT version, as
                                              the service does after finishSecret (moto does not)
  demo_secrets.py event-field FILE FIELD      print one field of an event JSON file
  demo_secrets.py events FROM_DIR TOKEN TO_DIR  copy the four step events of FROM_DIR to TO_DIR
                                              with ClientRequestToken TOKEN

Endpoint and region come from AWS_ENDPOINT_URL_SECRETS_MANAGER and AWS_REGION
(eval "$(scripts/stack.sh env)"); run it with the stack's Python, "$DSR_PYTHON", which has boto3.
"""

import json
import os
import sys

AWSPENDING = "AWSPENDING"


def client():
    import boto3  # imported lazily: the event-* commands do not need it

    return boto3.client(
        "secretsmanager",
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        endpoint_url=os.environ["AWS_ENDPOINT_URL_SECRETS_MANAGER"],
    )


def cmd_create(secret_id):
    secret_string = sys.stdin.read()
    json.loads(secret_string)  # must be JSON
    sm = client()
    try:
        sm.delete_secret(SecretId=secret_id, ForceDeleteWithoutRecovery=True)
        print(f"deleted the previous secret {secret_id}")
    except sm.exceptions.ResourceNotFoundException:
        pass
    out = sm.create_secret(Name=secret_id, SecretString=secret_string)
    print(f"created secret {secret_id} (version {out['VersionId']})")


def cmd_stage(secret_id, token, lambda_arn):
    sm = client()
    try:
        sm.rotate_secret(
            SecretId=secret_id,
            ClientRequestToken=token,
            RotationLambdaARN=lambda_arn,
            RotationRules={"AutomaticallyAfterDays": 30},
        )
    except sm.exceptions.ResourceNotFoundException:
        # moto does not know the Lambda and says so, but has already enabled rotation and
        # created an empty AWSPENDING version under the token (docs/protocol.md 7).
        pass
    stages = sm.describe_secret(SecretId=secret_id).get("VersionIdsToStages", {})
    if AWSPENDING not in stages.get(token, []):
        sys.exit(f"RotateSecret did not stage {AWSPENDING} on token {token}: {stages}")
    print(f"RotateSecret staged {AWSPENDING} on token {token}")


def cmd_labels(secret_id):
    stages = client().describe_secret(SecretId=secret_id).get("VersionIdsToStages", {})
    for version, labels in sorted(stages.items(), key=lambda kv: sorted(kv[1])):
        print(f"  {version}  {', '.join(labels)}")


def secret_json(secret_id, stage):
    value = client().get_secret_value(SecretId=secret_id, VersionStage=stage)
    return json.loads(value["SecretString"])


def cmd_password(secret_id, stage, out_path):
    password = secret_json(secret_id, stage)["password"]
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(password)


def cmd_keys(secret_id, stage):
    print(", ".join(secret_json(secret_id, stage).keys()))


def cmd_arn(secret_id):
    print(client().describe_secret(SecretId=secret_id)["ARN"])


def cmd_settle(secret_id):
    sm = client()
    stages = sm.describe_secret(SecretId=secret_id).get("VersionIdsToStages", {})
    for version, labels in stages.items():
        if AWSPENDING not in labels:
            continue
        if "AWSCURRENT" not in labels:
            sys.exit(
                f"{secret_id}: {AWSPENDING} is on version {version}, not on AWSCURRENT's: a "
                "rotation is stuck (db-secret-rotator doctor --secret ... --login says what to do)"
            )
        sm.update_secret_version_stage(
            SecretId=secret_id, VersionStage=AWSPENDING, RemoveFromVersionId=version
        )
        print(f"removed {AWSPENDING} from version {version} (AWSCURRENT), as the service does")


STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


def cmd_events(from_dir, token, to_dir):
    for step in STEPS:
        with open(os.path.join(from_dir, f"{step}.json")) as f:
            event = json.load(f)
        event["ClientRequestToken"] = token
        with open(os.path.join(to_dir, f"{step}.json"), "w") as f:
            json.dump(event, f, indent=2)
            f.write("\n")


def cmd_event_field(path, field):
    with open(path) as f:
        print(json.load(f)[field])


COMMANDS = {
    "create": (cmd_create, 1),
    "stage": (cmd_stage, 3),
    "labels": (cmd_labels, 1),
    "password": (cmd_password, 3),
    "keys": (cmd_keys, 2),
    "arn": (cmd_arn, 1),
    "settle": (cmd_settle, 1),
    "event-field": (cmd_event_field, 2),
    "events": (cmd_events, 3),
}


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS or len(argv) - 2 != COMMANDS[argv[1]][1]:
        sys.exit(__doc__)
    func, _ = COMMANDS[argv[1]]
    func(*argv[2:])


if __name__ == "__main__":
    main(sys.argv)
