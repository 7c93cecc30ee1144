//! TLS choices against real servers: cluster A presents a certificate from the test CA and also
//! accepts plaintext; cluster B has no TLS.

use db_secret_rotator::config::TlsMode;
use db_secret_rotator::credentials::DbSecret;
use db_secret_rotator::deadline::{Deadline, StepContext};
use db_secret_rotator::protocol::{Stage, Step};
use db_secret_rotator::rotators::{Rotator, Rotators};
use db_secret_rotator::tls::TlsRoots;
use db_secret_rotator::{Config, Error};
use serde_json::{Value, json};

use crate::support::*;

async fn login(rotators: &Rotators, secret: &Value) -> Result<(), Error> {
    let secret = DbSecret::parse("arn:tls-test", Stage::Pending, &secret.to_string()).unwrap();
    let step = Step::TestSecret;
    let ctx = StepContext {
        secret_id: "arn:tls-test",
        step: &step,
        deadline: Deadline::new(None, std::time::Duration::from_secs(5)),
    };
    let mut session = rotators.connect(&secret, "login", &ctx).await?;
    let result = rotators.check(&mut session, &ctx).await;
    rotators.close(session).await;
    result
}

fn rotators(ca: &std::path::Path, mode: TlsMode) -> Rotators {
    capture_logs();
    let roots = TlsRoots::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    Rotators::with_roots(
        &roots,
        &Config {
            tls_mode: mode,
            ..Config::default()
        },
    )
}

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
    let trusted = rotators(&stack.test_ca, TlsMode::VerifyFull);
    let untrusted = rotators(&stack.other_ca, TlsMode::VerifyFull);
    let untrusted_prefer = rotators(&stack.other_ca, TlsMode::Prefer);

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
