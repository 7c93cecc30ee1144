//! Single-user rotations through the handler against the emulator and each real server.

use db_secret_rotator::Config;
use db_secret_rotator::credentials::Password;
use db_secret_rotator::env::Env;
use serde_json::{Value, json};

use crate::support::*;

on_every_server!(
    full_rotation,
    every_step_and_the_whole_rotation_replayed,
    set_secret_when_pending_already_works,
    set_secret_falls_back_to_previous,
    no_working_login_fails_and_changes_nothing,
    pending_for_another_user_or_host_is_refused,
    usernames_that_need_quoting_and_passwords_with_quotes_and_backslashes,
    test_secret_alone_writes_nothing,
    a_server_that_never_answers_fails_before_the_deadline,
    no_password_reaches_logs_or_errors,
);

/// A user, its secret in the emulator, and a staged rotation token.
struct Case {
    user: TestUser,
    password: String,
    arn: String,
    token: String,
    client: aws_sdk_secretsmanager::Client,
}

async fn case(stack: &Stack, server: Server, name: &str) -> Case {
    let password = fixture_password();
    let user = stack.create_user(server, name, &password).await;
    let client = sm_client().await;
    let arn = create_secret(&client, &stack.secret(server, name, &password)).await;
    let token = token();
    start_rotation(&client, &arn, &token).await;
    Case {
        user,
        password,
        arn,
        token,
        client,
    }
}

/// Labels moved, the new password logs in, the old one is rejected, and every other key is
/// unchanged in value, type and order.
async fn assert_rotated(stack: &Stack, server: Server, case: &Case, old_version: &str) {
    let labels = labels(&case.client, &case.arn).await;
    assert!(
        labels[&case.token].contains(&"AWSCURRENT".to_owned()),
        "{labels:?}"
    );
    assert_eq!(labels[old_version], ["AWSPREVIOUS"], "{labels:?}");
    let new = value(&case.client, &case.arn, "AWSCURRENT").await;
    let new_password = new["password"].as_str().unwrap().to_owned();
    assert_ne!(new_password, case.password);
    stack
        .login(server, case.user.name(), &new_password)
        .await
        .expect("the new password logs in");
    assert_eq!(
        stack.login(server, case.user.name(), &case.password).await,
        Err(server.rejected().to_owned()),
        "the old password is rejected"
    );
    let old: Value = value(&case.client, &case.arn, "AWSPREVIOUS").await;
    let mut expected = old.clone();
    expected["password"] = json!(new_password);
    assert_eq!(new, expected);
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&new), keys(&old), "key order is kept");
    assert!(new["port"].is_string(), "a string port stays a string");
}

async fn full_rotation(server: Server) {
    let stack = require_stack!();
    let case = case(stack, server, &unique("app")).await;
    let old_version = version_with(&case.client, &case.arn, "AWSCURRENT")
        .await
        .unwrap();
    let function = Function::new(stack).await;
    function.rotate(&case.arn, &case.token).await.unwrap();
    assert_rotated(stack, server, &case, &old_version).await;
    let new = value(&case.client, &case.arn, "AWSCURRENT").await;
    assert_eq!(
        new["password"].as_str().unwrap().chars().count(),
        32,
        "PASSWORD_LENGTH default"
    );
    let calls = function.app.store.calls.lock().unwrap().clone();
    assert!(function.app.store.total() <= 11, "{calls:?}");
    assert_eq!(calls["DescribeSecret"], 4, "{calls:?}");
    assert_eq!(calls["PutSecretValue"], 1, "{calls:?}");
    assert_eq!(calls["UpdateSecretVersionStage"], 1, "{calls:?}");
    case.user.drop(stack).await;
}

async fn state(
    stack: &Stack,
    case: &Case,
) -> (
    std::collections::BTreeMap<String, (Vec<String>, Option<String>)>,
    String,
) {
    (
        snapshot(&case.client, &case.arn).await,
        case.user.verifier(stack).await,
    )
}

async fn every_step_and_the_whole_rotation_replayed(server: Server) {
    let stack = require_stack!();
    let case = case(stack, server, &unique("replay")).await;
    let old_version = version_with(&case.client, &case.arn, "AWSCURRENT")
        .await
        .unwrap();
    let function = Function::new(stack).await;
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        function.invoke(step, &case.arn, &case.token).await.unwrap();
        let before = state(stack, &case).await;
        function.invoke(step, &case.arn, &case.token).await.unwrap();
        assert_eq!(
            before,
            state(stack, &case).await,
            "{step} replayed changed something"
        );
    }
    let before = state(stack, &case).await;
    let writes = function.app.store.writes();
    function.rotate(&case.arn, &case.token).await.unwrap();
    assert_eq!(
        before,
        state(stack, &case).await,
        "the replayed rotation changed something"
    );
    assert_eq!(function.app.store.writes(), writes);
    assert_eq!(before.0.len(), 2, "exactly one new version");
    assert_rotated(stack, server, &case, &old_version).await;
    case.user.drop(stack).await;
}

async fn set_secret_when_pending_already_works(server: Server) {
    let stack = require_stack!();
    let case = case(stack, server, &unique("crash")).await;
    let function = Function::new(stack).await;
    function
        .invoke("createSecret", &case.arn, &case.token)
        .await
        .unwrap();
    // The password statement ran but the function died before reporting success.
    let pending = value(&case.client, &case.arn, "AWSPENDING").await;
    case.user
        .set_password(stack, pending["password"].as_str().unwrap())
        .await;
    let verifier = case.user.verifier(stack).await;
    function
        .invoke("setSecret", &case.arn, &case.token)
        .await
        .unwrap();
    assert_eq!(
        case.user.verifier(stack).await,
        verifier,
        "no second password statement"
    );
    function
        .invoke("testSecret", &case.arn, &case.token)
        .await
        .unwrap();
    function
        .invoke("finishSecret", &case.arn, &case.token)
        .await
        .unwrap();
    case.user.drop(stack).await;
}

async fn set_secret_falls_back_to_previous(server: Server) {
    let stack = require_stack!();
    let case = case(stack, server, &unique("prev")).await;
    let function = Function::new(stack).await;
    function.rotate(&case.arn, &case.token).await.unwrap();
    // The database went back to the previous password (a restore, a manual change).
    case.user.set_password(stack, &case.password).await;
    let token2 = token();
    start_rotation(&case.client, &case.arn, &token2).await;
    function.rotate(&case.arn, &token2).await.unwrap();
    let current = value(&case.client, &case.arn, "AWSCURRENT").await;
    stack
        .login(
            server,
            case.user.name(),
            current["password"].as_str().unwrap(),
        )
        .await
        .expect("the rotation recovered through AWSPREVIOUS");
    assert_eq!(
        stack.login(server, case.user.name(), &case.password).await,
        Err(server.rejected().to_owned())
    );
    case.user.drop(stack).await;
}

async fn no_working_login_fails_and_changes_nothing(server: Server) {
    let stack = require_stack!();
    let case = case(stack, server, &unique("nologin")).await;
    let function = Function::new(stack).await;
    function
        .invoke("createSecret", &case.arn, &case.token)
        .await
        .unwrap();
    case.user.set_password(stack, "changed-by-hand").await;
    let before = state(stack, &case).await;
    let err = function
        .invoke("setSecret", &case.arn, &case.token)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "LoginFailed", "{err}");
    assert!(err.to_string().contains(&case.arn), "{err}");
    assert_eq!(before, state(stack, &case).await);
    stack
        .login(server, case.user.name(), "changed-by-hand")
        .await
        .unwrap();
    case.user.drop(stack).await;
}

async fn pending_for_another_user_or_host_is_refused(server: Server) {
    let stack = require_stack!();
    let victim_password = fixture_password();
    let victim = stack
        .create_user(server, &unique("victim"), &victim_password)
        .await;
    for (key, value, what) in [
        ("username", json!(victim.name()), "user"),
        ("host", json!("localhost"), "host"),
    ] {
        let case = case(stack, server, &unique("deputy")).await;
        let mut pending = stack.secret(server, case.user.name(), "attacker-chosen");
        pending[key] = value.clone();
        put_pending(&case.client, &case.arn, &case.token, &pending.to_string()).await;
        let before = (state(stack, &case).await, victim.verifier(stack).await);
        let function = Function::new(stack).await;
        let err = function
            .invoke("setSecret", &case.arn, &case.token)
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "IdentityMismatch", "{err}");
        let text = err.to_string();
        assert!(
            text.contains(what) && text.contains(value.as_str().unwrap()),
            "{text}"
        );
        assert_eq!(
            before,
            (state(stack, &case).await, victim.verifier(stack).await)
        );
        case.user.drop(stack).await;
    }
    stack
        .login(server, victim.name(), &victim_password)
        .await
        .unwrap();
    victim.drop(stack).await;
}

async fn usernames_that_need_quoting_and_passwords_with_quotes_and_backslashes(server: Server) {
    let stack = require_stack!();
    // No excluded characters: the policy itself can produce `'` and `\`.
    let (config, _) = Config::from_env(&Env::from_pairs(&[
        ("EXCLUDE_CHARACTERS", ""),
        ("TLS_EXTRA_CA_FILE", stack.test_ca.to_str().unwrap()),
    ]))
    .unwrap();
    for name in [
        unique("MixedCase"),
        format!("we\"ird `user' {}", unique("x")),
        "select".to_owned(),
    ] {
        let case = case(stack, server, &name).await;
        let old_version = version_with(&case.client, &case.arn, "AWSCURRENT")
            .await
            .unwrap();
        let mut function = Function::with_config(config.clone()).await;
        function.password = Some(Box::new(|_| {
            Password::new(format!("q'uo\\te\"d\\'-{:08x}", rand::random::<u32>()))
        }));
        function.rotate(&case.arn, &case.token).await.unwrap();
        assert_rotated(stack, server, &case, &old_version).await;
        // The policy itself can produce both characters.
        let token2 = token();
        start_rotation(&case.client, &case.arn, &token2).await;
        let function = Function::with_config(config.clone()).await;
        function.rotate(&case.arn, &token2).await.unwrap();
        let current = value(&case.client, &case.arn, "AWSCURRENT").await;
        stack
            .login(server, &name, current["password"].as_str().unwrap())
            .await
            .unwrap();
        case.user.drop(stack).await;
    }
}

async fn test_secret_alone_writes_nothing(server: Server) {
    let stack = require_stack!();
    let case = case(stack, server, &unique("testonly")).await;
    // RotateImmediately=false: the service stages a version and invokes testSecret alone.
    let current = raw_value(&case.client, &case.arn, "AWSCURRENT").await;
    put_pending(&case.client, &case.arn, &case.token, &current).await;
    let before = state(stack, &case).await;
    let function = Function::new(stack).await;
    function
        .invoke("testSecret", &case.arn, &case.token)
        .await
        .unwrap();
    assert_eq!(before, state(stack, &case).await);
    assert_eq!(function.app.store.writes(), 0);
    case.user.drop(stack).await;
}

async fn a_server_that_never_answers_fails_before_the_deadline(server: Server) {
    let stack = require_stack!();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket); // accept and never answer
        }
    });
    let client = sm_client().await;
    let mut secret = stack.secret(server, &unique("silent"), "pw");
    secret["host"] = json!("127.0.0.1");
    secret["port"] = json!(port);
    let arn = create_secret(&client, &secret).await;
    let token = token();
    start_rotation(&client, &arn, &token).await;
    let mut function = Function::new(stack).await;
    function.invoke("createSecret", &arn, &token).await.unwrap();

    function.deadline = Some(std::time::Duration::from_secs(4));
    let started = std::time::Instant::now();
    let err = function
        .invoke("setSecret", &arn, &token)
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    // Not answering is not refusing: no other version is tried.
    assert!(
        matches!(err.error_type(), "DeadlineExceeded" | "DatabaseTimeout"),
        "{err}"
    );
    assert!(
        elapsed < std::time::Duration::from_secs(4),
        "took {elapsed:?}"
    );
    assert!(err.to_string().contains("setSecret"), "{err}");

    // Without a Lambda deadline, the connect timeout alone bounds each attempt.
    function.deadline = None;
    function.app.config.connect_timeout = std::time::Duration::from_millis(500);
    let started = std::time::Instant::now();
    let err = function
        .invoke("testSecret", &arn, &token)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "DatabaseTimeout", "{err}");
    assert!(
        err.to_string()
            .contains(&format!("testSecret of secret {arn}, at 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
}

async fn no_password_reaches_logs_or_errors(server: Server) {
    let stack = require_stack!();
    let sentinel = format!("S3ntinel-{:08x}", rand::random::<u32>());
    let user = stack.create_user(server, &unique("leak"), &sentinel).await;
    let client = sm_client().await;
    let arn = create_secret(&client, &stack.secret(server, user.name(), &sentinel)).await;
    let mut errors = Vec::new();
    let token1 = token();
    start_rotation(&client, &arn, &token1).await;
    let mut function = Function::new(stack).await;
    let next = format!("{sentinel}-new'\\");
    function.password = Some(Box::new(move |_| Password::new(next.clone())));
    function.rotate(&arn, &token1).await.unwrap();
    // Failing paths: a second rotation against a changed password, then an untrusted server.
    let token2 = token();
    start_rotation(&client, &arn, &token2).await;
    function
        .invoke("createSecret", &arn, &token2)
        .await
        .unwrap();
    user.set_password(stack, "changed-by-hand").await;
    errors.push(
        function
            .invoke("setSecret", &arn, &token2)
            .await
            .unwrap_err(),
    );
    errors.push(
        function
            .invoke("testSecret", &arn, &token2)
            .await
            .unwrap_err(),
    );
    let function = Function::trusting_only(&stack.other_ca, Default::default()).await;
    errors.push(
        function
            .invoke("testSecret", &arn, &token2)
            .await
            .unwrap_err(),
    );

    for error in errors {
        let mut shown = format!("{error} {error:?}");
        let diagnostic: lambda_runtime::Diagnostic = error.into();
        shown.push_str(&format!("{diagnostic:?}"));
        assert!(!shown.contains(&sentinel), "{shown}");
    }
    let logs = logs();
    assert!(logs.contains(&arn), "the capture sees this test's lines");
    assert!(!logs.contains(&sentinel), "a password reached the logs");
    assert!(
        !logs.contains("it-rotation-token"),
        "the RotationToken reached the logs"
    );
    user.drop(stack).await;
}
