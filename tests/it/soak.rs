//! Soak: consecutive rotations in one warm process, the real binary driven through the Lambda
//! Runtime API emulator: resident memory and open descriptors before and after, connections left
//! on the servers, the time it takes, and a leak scan of the whole log stream. Secrets Manager is
//! reached through the proxy with a tight write quota, so that the retry path (throttled answers,
//! backoff, repeated attempts) runs throughout.
//!
//! `DSR_SOAK_ROTATIONS` sets the number of rotations (default 200, alternating between a
//! PostgreSQL and a MariaDB secret; 4 invocations each).

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use serde_json::json;

use crate::support::mariadb::my_admin;
use crate::support::proxy::SmProxy;
use crate::support::runtime_api::{FunctionProcess, Outcome};
use crate::support::scenario::STEPS;
use crate::support::*;

fn rotations() -> usize {
    std::env::var("DSR_SOAK_ROTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

struct SoakSecret {
    server: Server,
    user: TestUser,
    first_password: String,
    arn: String,
}

/// Sessions the server holds for `user`.
async fn open_sessions(stack: &Stack, secret: &SoakSecret) -> i64 {
    match secret.server {
        Server::Postgres => pg_admin(stack, stack.pg_port)
            .await
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = $1",
                &[&secret.user.name()],
            )
            .await
            .unwrap()
            .get(0),
        Server::Mariadb => {
            let mut admin = my_admin(stack).await;
            let n: Option<i64> = admin
                .exec_first(
                    "SELECT COUNT(*) FROM information_schema.processlist WHERE USER = ?",
                    (secret.user.name(),),
                )
                .await
                .unwrap();
            admin.disconnect().await.unwrap();
            n.unwrap_or(0)
        }
    }
}

async fn rotate_once(
    process: &FunctionProcess,
    client: &aws_sdk_secretsmanager::Client,
    secret: &SoakSecret,
) -> Duration {
    let token = token();
    start_rotation(client, &secret.arn, &token).await;
    let started = Instant::now();
    for step in STEPS {
        let event = json!({
            "Step": step,
            "SecretId": secret.arn,
            "ClientRequestToken": token,
            "RotationToken": "soak-rotation-token",
        });
        let outcome = process
            .api
            .invoke_json(&event, Duration::from_secs(30))
            .await;
        assert!(
            matches!(outcome, Outcome::Response(_)),
            "{:?} {step}: {outcome:?}",
            secret.server
        );
    }
    let elapsed = started.elapsed();
    // Registers the new password for the leak scan, and checks the label moved.
    assert_eq!(
        version_with(client, &secret.arn, "AWSCURRENT")
            .await
            .as_deref(),
        Some(token.as_str())
    );
    value(client, &secret.arn, "AWSCURRENT").await;
    elapsed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load profile: scripts/test.sh --load"]
async fn consecutive_rotations_in_one_warm_process() {
    let stack = require_stack!();
    let client = sm_client().await;
    let mut secrets = Vec::new();
    for server in Server::ALL {
        let name = unique("soak");
        let password = fixture_password();
        let user = stack.create_user(server, &name, &password).await;
        let arn = create_secret(&client, &stack.secret(server, &name, &password)).await;
        secrets.push(SoakSecret {
            server,
            user,
            first_password: password,
            arn,
        });
    }
    // One write every 100 ms, no burst: many rotations have a write throttled and retried.
    let proxy = SmProxy::start(stack).await;
    proxy.limit_writes(10.0, 1.0);
    let process =
        FunctionProcess::spawn(stack, "soak", &[("SECRETS_MANAGER_ENDPOINT", &proxy.url)]).await;

    // Warm-up: one rotation per secret, so that every lazily built client and pool exists.
    for secret in &secrets {
        rotate_once(&process, &client, secret).await;
    }
    let (rss_start, fds_start, sockets_start) =
        (process.rss_kib(), process.fds(), process.sockets());
    let throttled_start = proxy.quota_count().throttled;
    let count = rotations();
    let started = Instant::now();
    let mut rss_max = rss_start;
    let mut slowest = Duration::ZERO;
    for i in 0..count {
        let secret = &secrets[i % secrets.len()];
        slowest = slowest.max(rotate_once(&process, &client, secret).await);
        if i % 10 == 9 {
            rss_max = rss_max.max(process.rss_kib());
        }
    }
    let elapsed = started.elapsed();
    let (rss_end, fds_end, sockets_end) = (process.rss_kib(), process.fds(), process.sockets());
    let throttled = proxy.quota_count().throttled - throttled_start;
    let mut sessions = Vec::new();
    for secret in &secrets {
        // A backend may outlive its client's Terminate by a moment: poll for up to 5 s.
        let mut open = open_sessions(stack, secret).await;
        for _ in 0..50 {
            if open == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            open = open_sessions(stack, secret).await;
        }
        let current = value(&client, &secret.arn, "AWSCURRENT").await;
        stack
            .login(
                secret.server,
                secret.user.name(),
                current["password"].as_str().unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            stack
                .login(secret.server, secret.user.name(), &secret.first_password)
                .await,
            Err(secret.server.rejected().to_owned())
        );
        sessions.push(format!("{:?} {open}", secret.server));
        assert_eq!(open, 0, "{:?}: sessions left open", secret.server);
    }
    let log = process.logs();
    assert_no_password_in(&log, "the function's log stream");
    assert!(!log.contains("soak-rotation-token"), "RotationToken logged");
    let text = format!(
        "== soak: {count} rotations ({} invocations) in one warm process, {} ==\n\
         duration {:.1} s ({:.0} ms per rotation, slowest {:.0} ms)\n\
         RSS after warm-up {rss_start} KiB, at the end {rss_end} KiB (growth {} KiB, max {rss_max} KiB)\n\
         open descriptors {fds_start} -> {fds_end} (sockets {sockets_start} -> {sockets_end})\n\
         throttled writes retried: {throttled}\n\
         sessions left on the servers: {}\n\
         log stream {} bytes, no registered password in it\n",
        count * 4,
        secrets
            .iter()
            .map(|s| format!("{:?}", s.server))
            .collect::<Vec<_>>()
            .join(" and "),
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / count.max(1) as f64,
        slowest.as_secs_f64() * 1000.0,
        i64::try_from(rss_end).unwrap() - i64::try_from(rss_start).unwrap(),
        sessions.join(", "),
        log.len(),
    );
    report("soak.txt", &text);
    assert!(
        fds_end <= fds_start + 2,
        "descriptors grew from {fds_start} to {fds_end}"
    );
    assert!(throttled > 0, "the retry path never ran:\n{text}");
    // Flat: no more than allocator noise, whatever the number of rotations.
    assert!(
        rss_max <= rss_start + 4096,
        "resident memory grew from {rss_start} KiB to {rss_max} KiB:\n{text}"
    );
    drop(process);
    for secret in secrets {
        secret.user.drop(stack).await;
    }
}
