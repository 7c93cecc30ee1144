//! TLS choices against real servers: cluster A presents a certificate from the test CA and also
//! accepts plaintext; cluster B has no TLS.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use db_secret_rotator::config::TlsMode;
use serde_json::{Value, json};

use crate::support::runtime_api::{FunctionProcess, Outcome};
use crate::support::*;

#[tokio::test]
async fn tls_settings() {
    let stack = require_stack!();
    let password = fixture_password();
    let name = unique("tls");
    let on_a = PgUser::create(stack, stack.pg_port, &name, &password).await;
    let on_b = PgUser::create(stack, stack.pg_plain_port, &name, &password).await;
    let secret = |port: u16, ssl: Option<Value>| {
        let mut s = pg_secret(stack, port, &name, &password);
        if let Some(ssl) = ssl {
            s["ssl"] = ssl;
        }
        s
    };
    let trusted = rotators_trusting(&stack.test_ca, TlsMode::VerifyFull);
    let untrusted = rotators_trusting(&stack.other_ca, TlsMode::VerifyFull);
    let untrusted_prefer = rotators_trusting(&stack.other_ca, TlsMode::Prefer);
    // Every login below speaks for this secret id, which the downgrade warning must name.
    let login = async |rotators, secret: &Value| login(rotators, secret, "arn:tls-test").await;

    // Verified TLS works; `ssl` in every accepted spelling.
    for ssl in [
        None,
        Some(json!(true)),
        Some(json!("TRUE")),
        Some(json!("true")),
    ] {
        login(&trusted, &secret(stack.pg_port, ssl)).await.unwrap();
    }
    // ssl: true against a server without TLS fails; ssl: false reaches it.
    let err = login(&trusted, &secret(stack.pg_plain_port, Some(json!(true))))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "DatabaseError", "{err}");
    login(&trusted, &secret(stack.pg_plain_port, Some(json!("False"))))
        .await
        .unwrap();
    // Default TLS_MODE never downgrades: an untrusted certificate fails although the server
    // accepts plaintext (which ssl: false proves).
    let err = login(&untrusted, &secret(stack.pg_port, None))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "DatabaseError", "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    login(&untrusted, &secret(stack.pg_port, Some(json!(false))))
        .await
        .unwrap();
    // TLS_MODE=prefer falls back to plaintext and says so.
    let marker = unique("prefer-host-marker");
    let mut s = secret(stack.pg_port, None);
    s["tls_server_name"] = json!("localhost");
    s["marker"] = json!(marker);
    login(&untrusted_prefer, &s).await.unwrap();
    let logs = logs();
    assert!(
        logs.lines().any(|l| l.contains("retrying in plaintext")
            && l.contains("arn:tls-test")
            && l.contains(&stack.pg_host)),
        "no downgrade warning"
    );
    // ...but never when the secret demands TLS.
    let err = login(&untrusted_prefer, &secret(stack.pg_port, Some(json!(true))))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "DatabaseError", "{err}");
    // tls_server_name replaces the host for verification: the leaf names localhost, not db.example.
    let mut s = secret(stack.pg_port, Some(json!(true)));
    s["tls_server_name"] = json!("localhost");
    login(&trusted, &s).await.unwrap();
    s["tls_server_name"] = json!("db.example.com");
    let err = login(&trusted, &s).await.unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );

    on_a.drop(stack).await;
    on_b.drop(stack).await;
}

/// The trust roots are loaded when first needed, but `TLS_EXTRA_CA_FILE` is read and checked at
/// start-up: a file that is missing, holds no certificate or holds one that cannot be a trust
/// anchor fails every invocation with `ConfigError` naming the variable, before any AWS call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_extra_ca_file_fails_every_invocation_before_any_aws_call() {
    let stack = require_stack!();
    // Every AWS endpoint is a listener that counts the connections made to it.
    let aws = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", aws.local_addr().unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let _listener = tokio::spawn(async move {
        while let Ok((_socket, _)) = aws.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });
    let dir = std::env::temp_dir().join(unique("dsr-bad-ca"));
    std::fs::create_dir_all(&dir).unwrap();
    let no_anchor = dir.join("not-an-anchor.pem");
    std::fs::write(
        &no_anchor,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let no_certificate = dir.join("no-certificate.pem");
    std::fs::write(&no_certificate, "not a bundle\n").unwrap();
    let missing = dir.join("missing.pem");
    for file in [&missing, &no_certificate, &no_anchor] {
        let file = file.to_str().unwrap();
        let process = FunctionProcess::spawn(
            stack,
            &unique("badca"),
            &[
                ("TLS_EXTRA_CA_FILE", file),
                ("AWS_ENDPOINT_URL", &url),
                ("AWS_ENDPOINT_URL_SECRETS_MANAGER", &url),
                ("AWS_ENDPOINT_URL_RDS", &url),
                ("SECRETS_MANAGER_ENDPOINT", &url),
            ],
        )
        .await;
        for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
            let event = json!({
                "Step": step,
                "SecretId": "arn:aws:secretsmanager:us-east-1:123456789012:secret:badca-AbCdEf",
                "ClientRequestToken": token(),
            });
            let outcome = process
                .api
                .invoke_json(&event, Duration::from_secs(20))
                .await;
            let Outcome::Error {
                error_type,
                message,
            } = &outcome
            else {
                panic!("{outcome:?}");
            };
            assert_eq!(error_type, "ConfigError", "{outcome:?}");
            assert!(
                message.contains("TLS_EXTRA_CA_FILE") && message.contains(file),
                "{message}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(calls.load(Ordering::SeqCst), 0, "an AWS call was made");
}
