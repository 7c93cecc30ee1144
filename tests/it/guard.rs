//! Every branch of the handler guard (docs/protocol.md section 2) against the emulator: each failure
//! names the secret and writes nothing.

use serde_json::json;

use crate::support::*;

fn unreachable_secret() -> serde_json::Value {
    // Port 9 (discard) on loopback: any login attempt fails at once, and none should happen.
    json!({"engine": "postgres", "host": "127.0.0.1", "port": 9, "username": "nobody", "password": "pw"})
}

#[tokio::test]
async fn guard_branches_write_nothing() {
    let stack = require_stack!();
    let client = sm_client().await;
    let function = Function::new(stack).await;

    // Rotation never enabled, token staged by hand.
    let arn = create_secret(&client, &unreachable_secret()).await;
    let token1 = token();
    put_pending(&client, &arn, &token1, &unreachable_secret().to_string()).await;
    let disabled = client
        .describe_secret()
        .secret_id(&arn)
        .send()
        .await
        .unwrap();
    let mut cases = Vec::new();
    if disabled.rotation_enabled() == Some(false) {
        cases.push((
            arn.clone(),
            token1.clone(),
            "createSecret",
            Some("RotationDisabled"),
        ));
    }

    // Rotation staged by the service.
    let arn = create_secret(&client, &unreachable_secret()).await;
    let staged = token();
    start_rotation(&client, &arn, &staged).await;
    cases.push((arn.clone(), token(), "setSecret", Some("UnknownVersion")));
    cases.push((
        arn.clone(),
        staged.clone(),
        "create_secret",
        Some("InvalidStep"),
    ));
    cases.push((
        arn.clone(),
        staged.clone(),
        "CreateSecret",
        Some("InvalidStep"),
    ));
    let current = version_with(&client, &arn, "AWSCURRENT").await.unwrap();
    // Already current: success for any step, even an unknown one, and nothing else happens.
    cases.push((arn.clone(), current.clone(), "bogusStep", None));
    cases.push((arn.clone(), current.clone(), "setSecret", None));

    // A version with only a custom label.
    let arn2 = create_secret(&client, &unreachable_secret()).await;
    start_rotation(&client, &arn2, &token()).await;
    let custom = token();
    client
        .put_secret_value()
        .secret_id(&arn2)
        .client_request_token(&custom)
        .secret_string(unreachable_secret().to_string())
        .version_stages("CUSTOM")
        .send()
        .await
        .unwrap();
    cases.push((arn2.clone(), custom, "testSecret", Some("NotPending")));

    for (arn, token, step, expected) in cases {
        let before = snapshot(&client, &arn).await;
        let calls_before = function.app.store.total();
        let result = function.invoke(step, &arn, &token).await;
        match (expected, result) {
            (None, Ok(())) => {}
            (Some(error_type), Err(e)) => {
                assert_eq!(e.error_type(), error_type, "{step}: {e}");
                assert!(e.to_string().contains(&arn), "{e}");
            }
            (expected, got) => panic!("{step}: expected {expected:?}, got {got:?}"),
        }
        assert_eq!(snapshot(&client, &arn).await, before, "{step} wrote");
        assert_eq!(
            function.app.store.total(),
            calls_before + 1,
            "{step}: only DescribeSecret"
        );
    }
    assert!(
        !logs().contains(
            "login failed\",\"attempt\":\"login with pending secret\",\"user\":\"nobody\""
        )
    );
}

#[tokio::test]
async fn invalid_events_make_no_call() {
    let stack = require_stack!();
    let function = Function::new(stack).await;
    for (step, arn, token) in [
        ("", "arn", "t"),
        ("createSecret", "", "t"),
        ("createSecret", "arn", ""),
    ] {
        let err = function.invoke(step, arn, token).await.unwrap_err();
        assert_eq!(err.error_type(), "InvalidEvent");
    }
    assert_eq!(function.app.store.total(), 0);
}

#[tokio::test]
async fn finish_secret_moves_current_in_one_call() {
    let stack = require_stack!();
    let client = sm_client().await;
    let arn = create_secret(&client, &unreachable_secret()).await;
    let old = version_with(&client, &arn, "AWSCURRENT").await.unwrap();
    let staged = token();
    start_rotation(&client, &arn, &staged).await;
    put_pending(&client, &arn, &staged, &unreachable_secret().to_string()).await;
    let function = Function::new(stack).await;
    function
        .invoke("finishSecret", &arn, &staged)
        .await
        .unwrap();
    let labels = labels(&client, &arn).await;
    assert!(
        labels[&staged].contains(&"AWSCURRENT".to_owned()),
        "{labels:?}"
    );
    assert_eq!(labels[&old], ["AWSPREVIOUS"]);
    let calls = function.app.store.calls.lock().unwrap().clone();
    assert_eq!(calls.get("UpdateSecretVersionStage"), Some(&1), "{calls:?}");
    assert_eq!(calls.get("GetSecretValue"), None, "{calls:?}");
}
