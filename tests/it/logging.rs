//! What the function prints, through the real binary under the Runtime API emulator, where the
//! Lambda runtime and the AWS SDK really log: no directive prints the raw event or its
//! `RotationToken`, a full rotation at TRACE prints no password, no other key of the secret and no
//! token, text lines escape control characters taken from secrets, and the runtime's concurrency
//! warning is dropped when one invocation at a time is asked for.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::support::runtime_api::{FunctionProcess, Outcome};
use crate::support::scenario::STEPS;
use crate::support::*;

/// Directives that ask for the runtime's raw events one way or another.
const DIRECTIVES: &[&str] = &[
    "lambda_runtime::layers::api_response=trace",
    "info,lambda_runtime::layers=trace",
    "[Lambda runtime invoke]=trace",
    "trace",
    "lambda_runtime=trace,aws_smithy_runtime=trace",
    "off,[Lambda runtime invoke]=trace",
];

/// A sentinel that needs no escaping in either format.
fn sentinel(what: &str) -> String {
    format!("Sentinel{what}{:016x}", rand::random::<u64>())
}

/// The event Secrets Manager would send, with `rotation_token`.
fn event(step: &str, arn: &str, token: &str, rotation_token: &str) -> Value {
    json!({
        "Step": step,
        "SecretId": arn,
        "ClientRequestToken": token,
        "RotationToken": rotation_token,
    })
}

/// One process per setting: an invocation for a secret that does not exist, then its log.
async fn log_of_one_invocation(
    stack: &Stack,
    env: Vec<(&str, &str)>,
    rotation_token: &str,
) -> String {
    let process = FunctionProcess::spawn(stack, &unique("logging"), &env).await;
    let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:dsr-test/absent-AbCdEf";
    let outcome = process
        .api
        .invoke_json(
            &event("createSecret", arn, &token(), rotation_token),
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(
        outcome.error_type(),
        Some("SecretsManagerError"),
        "{env:?}: {outcome:?}"
    );
    process.logs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_directive_prints_the_raw_event() {
    let stack = require_stack!();
    let rotation_token = sentinel("RotationToken");
    let mut settings = Vec::new();
    for variable in ["RUST_LOG", "AWS_LAMBDA_LOG_LEVEL"] {
        for format in ["JSON", "Text"] {
            for directive in DIRECTIVES {
                settings.push(vec![
                    (variable, *directive),
                    ("AWS_LAMBDA_LOG_FORMAT", format),
                ]);
            }
        }
    }
    for batch in settings.chunks(6) {
        let logs = join_all(
            batch
                .iter()
                .map(|env| log_of_one_invocation(stack, env.clone(), &rotation_token)),
        )
        .await;
        for (env, log) in batch.iter().zip(logs) {
            assert!(
                !log.contains(&rotation_token) && !log.contains("raw JSON event"),
                "{env:?}: {log}"
            );
            // The directive was honoured: at `trace`, the SDK's DEBUG lines and the handler's
            // own lines are there.
            if env[0].1 == "trace" {
                assert!(log.contains("beginning attempt #1"), "{env:?}: {log}");
                assert!(log.contains("step failed"), "{env:?}: {log}");
            }
        }
    }
}

/// A secret whose user's password, other keys and token are sentinels, rotated through the binary
/// at TRACE with the SDK told to log sensitive bodies.
async fn rotation_at_trace(stack: &Stack, server: Server, format: &str) {
    let client = sm_client().await;
    let name = unique("logtrace");
    let password = sentinel("OldPassword");
    register_password(&password);
    let user = stack.create_user(server, &name, &password).await;
    let note = sentinel("OtherKey");
    let mut secret = stack.secret(server, &name, &password);
    secret["note"] = json!(note);
    if server == Server::Mariadb {
        // Alternating users: the function also reads the master secret.
        secret["masterarn"] = json!(create_secret(&client, &stack.master_secret(server)).await);
        secret["rotation_strategy"] = json!("alternating-users");
    }
    let arn = create_secret(&client, &secret).await;
    let rotation_token = sentinel("RotationToken");
    let process = FunctionProcess::spawn(
        stack,
        &unique("logtrace"),
        &[
            ("AWS_LAMBDA_LOG_LEVEL", "TRACE"),
            ("AWS_LAMBDA_LOG_FORMAT", format),
            ("LOG_SENSITIVE_BODIES", "true"),
            ("EXCLUDE_PUNCTUATION", "true"),
        ],
    )
    .await;
    let token = token();
    start_rotation(&client, &arn, &token).await;
    for step in STEPS {
        let outcome = process
            .api
            .invoke_json(
                &event(step, &arn, &token, &rotation_token),
                Duration::from_secs(30),
            )
            .await;
        assert!(
            matches!(outcome, Outcome::Response(_)),
            "{server:?} {step}: {outcome:?}"
        );
    }
    let current = value(&client, &arn, "AWSCURRENT").await;
    let new_password = current["password"].as_str().unwrap();
    let log = process.logs();
    for (what, sentinel) in [
        ("the new password", new_password),
        ("the old password", password.as_str()),
        ("another key of the secret", note.as_str()),
        ("the RotationToken", rotation_token.as_str()),
    ] {
        assert!(
            !log.contains(sentinel),
            "{server:?} {format}: {what} was logged"
        );
    }
    assert_no_password_in(&log, "the function's log stream");
    // TRACE was on: the function's and the SDK's detail is there, the bodies are not.
    assert!(log.contains("beginning attempt #1"), "{log}");
    assert!(log.contains("version promoted"), "{log}");
    drop(process);
    if server == Server::Mariadb {
        stack.drop_user(server, &format!("{name}_clone")).await;
    }
    user.drop(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_at_trace_prints_no_secret() {
    let stack = require_stack!();
    join_all([
        rotation_at_trace(stack, Server::Postgres, "JSON"),
        rotation_at_trace(stack, Server::Mariadb, "Text"),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_lines_escape_a_user_name_with_a_newline() {
    let stack = require_stack!();
    let client = sm_client().await;
    let name = unique("logesc");
    let arn = create_secret(
        &client,
        &stack.secret(Server::Postgres, &name, &fixture_password()),
    )
    .await;
    let token = token();
    start_rotation(&client, &arn, &token).await;
    // A pending version naming another user, with a forged log line in the name.
    let mut pending = stack.secret(
        Server::Postgres,
        &format!("{name}\nWARN forged line"),
        &fixture_password(),
    );
    pending["note"] = json!("pending");
    put_pending(&client, &arn, &token, &pending.to_string()).await;
    let process = FunctionProcess::spawn(
        stack,
        &unique("logesc"),
        &[("AWS_LAMBDA_LOG_FORMAT", "Text")],
    )
    .await;
    let outcome = process
        .api
        .invoke_json(
            &event("setSecret", &arn, &token, "rt"),
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(
        outcome.error_type(),
        Some("IdentityMismatch"),
        "{outcome:?}"
    );
    let log = process.logs();
    assert!(
        !log.lines().any(|line| line.starts_with("WARN forged line")),
        "{log}"
    );
    assert!(log.contains(r"\nWARN forged line"), "{log}");
}

/// The runtime's warning about `AWS_LAMBDA_MAX_CONCURRENCY`, after one invocation.
async fn concurrency_warning(stack: &Stack, value: &str) -> bool {
    let process = FunctionProcess::spawn(
        stack,
        &unique("logconc"),
        &[("AWS_LAMBDA_MAX_CONCURRENCY", value)],
    )
    .await;
    let outcome = process
        .api
        .invoke_json(&json!({}), Duration::from_secs(20))
        .await;
    assert_eq!(outcome.error_type(), Some("InvalidEvent"), "{outcome:?}");
    process.logs().contains("concurrency-tokio")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_warning_only_when_concurrency_is_asked_for() {
    let stack = require_stack!();
    // `cargo lambda watch` sets 1: one invocation at a time is how the function runs anyway.
    assert!(!concurrency_warning(stack, "1").await);
    // More than one: the platform expects concurrency the function does not give; keep it.
    assert!(concurrency_warning(stack, "4").await);
}
