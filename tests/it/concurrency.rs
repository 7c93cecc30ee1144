//! Concurrency: the same step delivered twice at once with the same token, for every step, engine
//! and strategy; and 50 secrets on one server rotated at once by one warm function.

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use db_secret_rotator::Config;
use db_secret_rotator::protocol::Strategy;

use crate::support::scenario::{STEPS, Scenario};
use crate::support::*;

on_every_server!(
    #[ignore = "load profile: scripts/test.sh --load"]
    fifty_secrets_rotated_at_once
);

/// Runs steps before `step`, then `step` twice at once, then the rest of the rotation; when a
/// duplicate failed, the service retries the whole rotation with the same token, and so does
/// this. Returns the two duplicates' outcomes.
async fn duplicate_delivery(
    stack: &Stack,
    server: Server,
    strategy: Strategy,
    step: &'static str,
) -> Result<String, String> {
    let scenario = Scenario::new(stack, server, strategy, "dup").await;
    let (arn, token, function) = (&scenario.arn, &scenario.token, &scenario.function);
    for earlier in STEPS.iter().take_while(|s| **s != step) {
        function
            .invoke(earlier, arn, token)
            .await
            .map_err(|e| format!("{earlier}: {e}"))?;
    }
    let (a, b) = tokio::join!(
        function.invoke(step, arn, token),
        function.invoke(step, arn, token)
    );
    let outcome = |r: &Result<(), db_secret_rotator::Error>| match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => e.error_type().to_owned(),
    };
    let outcomes = format!("{} / {}", outcome(&a), outcome(&b));
    if a.is_err() && b.is_err() {
        return Err(format!("both duplicates failed: {outcomes}"));
    }
    let mut rest = Ok(());
    for later in STEPS.iter().skip_while(|s| **s != step).skip(1) {
        rest = function.invoke(later, arn, token).await;
        if rest.is_err() {
            break;
        }
    }
    let retried = if a.is_err() || b.is_err() || rest.is_err() {
        function
            .rotate(arn, token)
            .await
            .map_err(|e| format!("{outcomes}; the same-token retry failed: {e}"))?;
        "; retried"
    } else {
        ""
    };
    let state = scenario
        .check_rotated(stack)
        .await
        .map_err(|e| format!("{outcomes}: {e}"))?;
    scenario.cleanup(stack).await;
    Ok(format!("{outcomes}{retried} -> {state}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_step_twice_at_once() {
    let started = Instant::now();
    let mut cases = Vec::new();
    for server in Server::ALL {
        if stack().is_none() {
            continue;
        }
        for strategy in [Strategy::SingleUser, Strategy::AlternatingUsers] {
            for step in STEPS {
                cases.push((server, strategy, step));
            }
        }
    }
    let results: Vec<_> = futures_util::stream::iter(cases)
        .map(|(server, strategy, step)| async move {
            let stack = stack().expect("stack");
            let result = duplicate_delivery(stack, server, strategy, step).await;
            (server, strategy, step, result)
        })
        .buffered(4)
        .collect()
        .await;
    let mut text = format!(
        "== the same step delivered twice at once ({:.1} s) ==\n",
        started.elapsed().as_secs_f64()
    );
    for (server, strategy, step, result) in &results {
        text.push_str(&format!(
            "{} {server:?} {} {step}: {}\n",
            if result.is_ok() { "ok" } else { "!!" },
            strategy.as_str(),
            match result {
                Ok(text) | Err(text) => text,
            }
        ));
    }
    report("concurrency-duplicates.txt", &text);
    assert!(results.iter().all(|r| r.3.is_ok()), "{text}");
}

/// How many secrets are rotated at once.
const SECRETS: usize = 50;

async fn fifty_secrets_rotated_at_once(server: Server) {
    let stack = require_stack!();
    let client = sm_client().await;
    let setup_started = Instant::now();
    let cases: Vec<(TestUser, String, String, String)> = futures_util::stream::iter(0..SECRETS)
        .map(|_| {
            let (stack, client) = (stack, &client);
            async move {
                let name = unique("many");
                let password = fixture_password();
                let user = stack.create_user(server, &name, &password).await;
                let arn = create_secret(client, &stack.secret(server, &name, &password)).await;
                let token = token();
                start_rotation(client, &arn, &token).await;
                (user, password, arn, token)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let setup = setup_started.elapsed();
    // Fifty logins share one thread here, where a Lambda container serves one invocation at a
    // time: give each attempt room, so that what is tested is the concurrency, not a 2-core
    // machine's handshake rate against the default 5 s connect timeout.
    let function = Function::with_config(Config {
        tls_extra_ca_file: Some(stack.test_ca.clone()),
        connect_timeout: Duration::from_secs(60),
        ..Config::default()
    })
    .await;
    let started = Instant::now();
    let results = futures_util::future::join_all(cases.iter().map(|(_, _, arn, token)| {
        let function = &function;
        async move {
            let started = Instant::now();
            let result = function.rotate(arn, token).await;
            (result, started.elapsed())
        }
    }))
    .await;
    let elapsed = started.elapsed();
    let slowest = results
        .iter()
        .map(|(_, d)| *d)
        .max()
        .unwrap_or(Duration::ZERO);
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(r, _)| r.as_ref().err().map(|e| format!("{}: {e}", e.error_type())))
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
    for (user, password, arn, _) in &cases {
        let current = value(&client, arn, "AWSCURRENT").await;
        stack
            .login(server, user.name(), current["password"].as_str().unwrap())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", user.name()));
        assert_eq!(
            stack.login(server, user.name(), password).await,
            Err(server.rejected().to_owned())
        );
    }
    report(
        &format!("concurrency-fifty-{server:?}.txt").to_lowercase(),
        &format!(
            "{SECRETS} secrets on {server:?} rotated at once by one function: all succeeded in {:.2} s \
             (slowest rotation {:.2} s, {} Secrets Manager calls; setup {:.1} s)\n",
            elapsed.as_secs_f64(),
            slowest.as_secs_f64(),
            function.app.store.total(),
            setup.as_secs_f64()
        ),
    );
    for (user, ..) in cases {
        user.drop(stack).await;
    }
}
