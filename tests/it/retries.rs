//! Retries and time: Secrets Manager calls ride out throttling and transient failures for as long
//! as the invocation's deadline allows, and a silent endpoint never outlives it; database
//! connection attempts and statements stay under the invocation deadline in every path; TLS
//! works through the fault proxy and byte-count cuts fail cleanly.

use std::time::{Duration, Instant};

use serde_json::json;

use db_secret_rotator::protocol::Strategy;

use futures_util::StreamExt;

use crate::support::proxy::{Answer, Fault, Rule, Trigger, TriggerAction, When};
use crate::support::runtime_api::FunctionProcess;
use crate::support::scenario::{self, STEPS, Scenario};
use crate::support::*;

on_every_server!(
    silent_and_slow_servers_end_the_step_under_the_deadline,
    tls_through_the_proxy_and_cuts_by_byte_count,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_retried_for_as_long_as_the_deadline_allows() {
    let stack = require_stack!();
    let mut lines =
        String::from("== Secrets Manager retries (full-jitter backoff under the deadline) ==\n");
    for answer in [Answer::Throttle, Answer::ServerError, Answer::Cut] {
        let scenario = Scenario::new(stack, Server::Postgres, Strategy::SingleUser, "thr").await;
        scenario.sm.add(Rule::NextRequests { count: 2, answer });
        let started = Instant::now();
        scenario
            .function
            .rotate(&scenario.arn, &scenario.token)
            .await
            .unwrap_or_else(|e| panic!("two {} answers failed the rotation: {e}", answer.name()));
        let elapsed = started.elapsed();
        scenario.check_rotated(stack).await.unwrap();
        let log = scenario.sm.log();
        assert!(log[0].fault.is_some() && log[1].fault.is_some(), "{log:?}");
        assert_eq!(
            (log[0].op, log[1].op, log[2].op, log[2].attempt),
            (1, 1, 1, 3),
            "the first operation succeeded at its third attempt: {log:?}"
        );
        lines.push_str(&format!(
            "two {} answers, then a full rotation: ok in {:.2} s ({} requests for {} operations)\n",
            answer.name(),
            elapsed.as_secs_f64(),
            log.len(),
            scenario.sm.operations()
        ));
        scenario.cleanup(stack).await;
    }

    // A throttle that never lifts: retried, not three times but until the deadline is near; the
    // step then stops in time with DeadlineExceeded naming the step and the operation, having
    // written nothing.
    let mut scenario = Scenario::new(stack, Server::Postgres, Strategy::SingleUser, "thr").await;
    scenario.sm.add(Rule::Operation {
        n: 4,
        when: When::Before,
        answer: Answer::Throttle,
    });
    let deadline = Duration::from_secs(5);
    scenario.function.deadline = Some(deadline);
    let before = snapshot(&scenario.client, &scenario.arn).await;
    let err = scenario
        .function
        .invoke("createSecret", &scenario.arn, &scenario.token)
        .await
        .unwrap_err();
    let elapsed = scenario.function.handler_time.get();
    assert_eq!(err.error_type(), "DeadlineExceeded", "{err}");
    let text = err.to_string();
    assert!(
        text.contains("createSecret")
            && text.contains("PutSecretValue")
            && text.contains("ThrottlingException"),
        "{text}"
    );
    assert!(elapsed < deadline, "{elapsed:?}");
    let attempts = scenario.sm.log().iter().filter(|r| r.op == 4).count();
    assert!(attempts > 3, "only {attempts} attempts in {elapsed:?}");
    assert_eq!(snapshot(&scenario.client, &scenario.arn).await, before);
    lines.push_str(&format!(
        "PutSecretValue throttled at every attempt, {} s deadline: DeadlineExceeded after {attempts} attempts in {:.2} s\n",
        deadline.as_secs(),
        elapsed.as_secs_f64()
    ));

    // A non-retryable answer fails at once: one attempt.
    scenario.sm.clear();
    let ops = scenario.sm.operations();
    scenario.sm.add(Rule::Operation {
        n: ops + 1,
        when: When::Before,
        answer: Answer::Invalid,
    });
    let err = scenario
        .function
        .invoke("createSecret", &scenario.arn, &scenario.token)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "SecretsManagerError", "{err}");
    assert!(err.to_string().contains("DescribeSecret"), "{err}");
    let attempts = scenario.sm.log().iter().filter(|r| r.op == ops + 1).count();
    assert_eq!(attempts, 1);
    lines.push_str(
        "a non-retryable answer (InvalidRequestException): SecretsManagerError after 1 attempt\n",
    );

    scenario.sm.clear();
    scenario.heal();
    scenario
        .function
        .rotate(&scenario.arn, &scenario.token)
        .await
        .unwrap();
    scenario.check_rotated(stack).await.unwrap();
    scenario.cleanup(stack).await;
    report("retries-secrets-manager.txt", &lines);
}

/// The answer to `UpdateSecretVersionStage` lost after the service moved the label: the repeat
/// is refused (the label is no longer on `RemoveFromVersionId`), and the store reads the labels,
/// finds the step done, and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_to_the_label_move_is_read_back_from_the_labels() {
    let stack = require_stack!();
    let scenario = Scenario::new(stack, Server::Postgres, Strategy::SingleUser, "lost").await;
    for step in &STEPS[..3] {
        scenario
            .function
            .invoke(step, &scenario.arn, &scenario.token)
            .await
            .unwrap();
    }
    // finishSecret: DescribeSecret, then UpdateSecretVersionStage.
    let update = scenario.sm.operations() + 2;
    scenario.sm.add(Rule::Attempt {
        n: update,
        attempt: 1,
        when: When::After,
        answer: Answer::Cut,
    });
    scenario
        .function
        .invoke("finishSecret", &scenario.arn, &scenario.token)
        .await
        .unwrap();
    let log = scenario.sm.log();
    let attempts: Vec<_> = log.iter().filter(|r| r.op == update).collect();
    assert_eq!(attempts.len(), 2, "{log:?}");
    assert_eq!(attempts[0].name, "UpdateSecretVersionStage");
    let last = log.last().unwrap();
    assert_eq!(
        (last.op, last.name.as_str()),
        (update + 1, "DescribeSecret")
    );
    scenario.check_rotated(stack).await.unwrap();
    scenario.cleanup(stack).await;
}

/// The Secrets Manager operations each step makes in a clean single-user rotation.
async fn operations_per_step(stack: &Stack) -> Vec<(&'static str, Vec<String>)> {
    let scenario = Scenario::new(stack, Server::Postgres, Strategy::SingleUser, "smcal").await;
    let mut steps = Vec::new();
    for step in STEPS {
        let before = scenario.sm.operations();
        scenario
            .function
            .invoke(step, &scenario.arn, &scenario.token)
            .await
            .unwrap();
        let log = scenario.sm.log();
        let names = (before + 1..=scenario.sm.operations())
            .map(|op| log.iter().find(|r| r.op == op).unwrap().name.clone())
            .collect();
        steps.push((step, names));
    }
    scenario.cleanup(stack).await;
    steps
}

/// A Secrets Manager endpoint that accepts and never answers, at each call of each step in turn,
/// under a 6 s invocation deadline: the step stops before it with `DeadlineExceeded` naming the
/// step and the operation, and the rotation completes when re-driven once the endpoint answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_secrets_manager_never_outlives_the_invocation() {
    let stack = require_stack!();
    let deadline = Duration::from_secs(6);
    let mut cases = Vec::new();
    for (index, (step, names)) in operations_per_step(stack).await.into_iter().enumerate() {
        for (k, name) in names.into_iter().enumerate() {
            cases.push((index, step, k + 1, name));
        }
    }
    let rows: Vec<String> = futures_util::stream::iter(cases)
        .map(|(index, step, k, name)| async move {
            let mut scenario =
                Scenario::new(stack, Server::Postgres, Strategy::SingleUser, "smhang").await;
            for earlier in &STEPS[..index] {
                scenario
                    .function
                    .invoke(earlier, &scenario.arn, &scenario.token)
                    .await
                    .unwrap();
            }
            let op = scenario.sm.operations() + k;
            scenario.sm.add(Rule::Operation {
                n: op,
                when: When::Before,
                answer: Answer::Hang,
            });
            scenario.function.deadline = Some(deadline);
            let err = scenario
                .function
                .invoke(step, &scenario.arn, &scenario.token)
                .await
                .unwrap_err();
            let elapsed = scenario.function.handler_time.get();
            let hung = scenario
                .sm
                .log()
                .iter()
                .any(|r| r.op == op && r.name == name);
            assert!(hung, "{step}: operation {k} ({name}) was not reached");
            assert_eq!(err.error_type(), "DeadlineExceeded", "{step} {name}: {err}");
            let text = err.to_string();
            assert!(text.contains(step) && text.contains(&name), "{text}");
            assert!(elapsed < deadline, "{step} {name}: {elapsed:?}");
            scenario.sm.clear();
            scenario.heal();
            scenario
                .function
                .rotate(&scenario.arn, &scenario.token)
                .await
                .unwrap();
            scenario.check_rotated(stack).await.unwrap();
            scenario.cleanup(stack).await;
            format!(
                "{step} call {k} ({name}) silent: {} after {:.2} s of {} s\n",
                err.error_type(),
                elapsed.as_secs_f64(),
                deadline.as_secs()
            )
        })
        .buffered(4)
        .collect()
        .await;
    report(
        "retries-silent-secrets-manager.txt",
        &format!("== a silent Secrets Manager endpoint ==\n{}", rows.concat()),
    );
}

/// The same through the real binary, whose deadline comes from the Lambda context: the
/// invocation ends with an `errorType` before Lambda would kill it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reports_a_silent_secrets_manager_before_its_deadline() {
    let stack = require_stack!();
    let scenario = Scenario::new(stack, Server::Postgres, Strategy::SingleUser, "smbin").await;
    scenario.sm.add(Rule::All {
        when: When::Before,
        answer: Answer::Hang,
    });
    let process = FunctionProcess::spawn(
        stack,
        "silent-sm",
        &[("SECRETS_MANAGER_ENDPOINT", &scenario.sm.url)],
    )
    .await;
    let budget = Duration::from_secs(6);
    for step in STEPS {
        let event = serde_json::json!({
            "Step": step,
            "SecretId": scenario.arn,
            "ClientRequestToken": scenario.token,
        });
        let started = Instant::now();
        let outcome = process.api.invoke_json(&event, budget).await;
        let elapsed = started.elapsed();
        assert_eq!(
            outcome.error_type(),
            Some("DeadlineExceeded"),
            "{step}: {outcome:?}"
        );
        assert!(elapsed < budget, "{step}: {elapsed:?}");
    }
    assert_no_password_in(&process.logs(), "the function's log stream");
    drop(process);
    scenario.cleanup(stack).await;
}

/// setSecret against a silent server, a slow one, and a password statement never answered: every
/// path ends with a typed error before the invocation deadline, and a server that does not answer
/// costs one connect timeout, not one per version.
async fn silent_and_slow_servers_end_the_step_under_the_deadline(server: Server) {
    let stack = require_stack!();
    let mut scenario = Scenario::new(stack, server, Strategy::SingleUser, "late").await;
    // A first rotation gives the secret an AWSPREVIOUS with the same user and host.
    scenario
        .function
        .rotate(&scenario.arn, &scenario.token)
        .await
        .unwrap();
    let token2 = token();
    start_rotation(&scenario.client, &scenario.arn, &token2).await;
    scenario
        .function
        .invoke("createSecret", &scenario.arn, &token2)
        .await
        .unwrap();

    let mut lines = format!("== deadlines, {server:?} (margin 1 s) ==\n");
    // (case, fault, statement left unanswered, connect timeout, deadline in seconds, accepted
    // errorTypes). Each outcome follows from the fault and the two times the case sets: a silent
    // or slowed server meets the short connect timeout well inside a long deadline; a tight
    // deadline cuts a patient connect timeout short; a statement never answered meets the
    // deadline, or the deadline is reached before it.
    type Case<'a> = (
        &'a str,
        Fault,
        Option<&'a str>,
        Duration,
        u64,
        &'a [&'a str],
    );
    let cases: [Case; 4] = [
        (
            "a silent server",
            Fault::Blackhole,
            None,
            scenario::SILENCE,
            30,
            &["DatabaseTimeout"],
        ),
        (
            // 1 s left after the margin, less than the connect timeout: the deadline, not the
            // server, ends the wait.
            "a silent server, tight deadline",
            Fault::Blackhole,
            None,
            scenario::PATIENT,
            2,
            &["DeadlineExceeded"],
        ),
        (
            // Every packet 0.7 s late each way: a login's round trips take longer than the
            // connect timeout, however fast the machine.
            "slow server (0.7 s per packet)",
            Fault::Delay(Duration::from_millis(700)),
            None,
            scenario::SILENCE,
            30,
            &["DatabaseTimeout"],
        ),
        (
            "password statement never answered",
            Fault::Pass,
            Some(match server {
                Server::Postgres => "ALTER ROLE",
                Server::Mariadb => "SET PASSWORD",
            }),
            scenario::PATIENT,
            4,
            &["DatabaseError", "DeadlineExceeded"],
        ),
    ];
    for (case, fault, hang_on, connect_timeout, deadline, expected) in cases {
        scenario.db.set(fault);
        scenario.set_connect_timeout(connect_timeout);
        if let Some(pattern) = hang_on {
            scenario.db.arm(Trigger {
                pattern: pattern.as_bytes().to_vec(),
                action: TriggerAction::HangReply,
            });
        }
        scenario.function.deadline = Some(Duration::from_secs(deadline));
        let before = scenario.db.connections();
        let started = Instant::now();
        let err = scenario
            .function
            .invoke("setSecret", &scenario.arn, &token2)
            .await
            .unwrap_err();
        let total = started.elapsed();
        let elapsed = scenario.function.handler_time.get();
        let fired = scenario.db.disarm();
        scenario.db.set(Fault::Pass);
        let attempts = scenario.db.connections() - before;
        lines.push_str(&format!(
            "{case} (connect timeout {:.1} s): {} after {:.2} s of a {deadline} s budget ({:.2} s with the leak check), {attempts} connection(s){}\n",
            connect_timeout.as_secs_f64(),
            err.error_type(),
            elapsed.as_secs_f64(),
            total.as_secs_f64(),
            if hang_on.is_some() {
                format!(", statement reached: {fired}")
            } else {
                String::new()
            }
        ));
        assert!(
            expected.contains(&err.error_type()),
            "{case}: {err} ({lines})"
        );
        // Ended with time to spare for reporting the error before the Lambda timeout.
        assert!(
            elapsed + Duration::from_millis(250) < Duration::from_secs(deadline),
            "{case}: {elapsed:?} ({lines})"
        );
        assert!(
            err.to_string().contains("setSecret") || hang_on.is_some(),
            "{err}"
        );
        if case == "a silent server" {
            // Not answering is not refusing: another version at the same endpoint would meet
            // the same silence, so none is tried.
            assert_eq!(attempts, 1, "only current was tried: {lines}");
        }
        // Nothing but the statement that never answered may have changed: AWSCURRENT or
        // AWSPENDING still logs in.
        assert!(
            scenario.logs_in(stack, "AWSCURRENT").await
                || logs_in_token(&scenario, stack, &token2).await,
            "{case}: no credential logs in"
        );
    }
    report(
        &format!(
            "retries-deadlines-{}.txt",
            format!("{server:?}").to_lowercase()
        ),
        &lines,
    );
    scenario.heal();
    scenario
        .function
        .rotate(&scenario.arn, &token2)
        .await
        .unwrap();
    let (user, password) = scenario.credential("AWSCURRENT").await.unwrap();
    stack.login(server, &user, &password).await.unwrap();
    scenario.cleanup(stack).await;
}

async fn logs_in_token(scenario: &Scenario, stack: &Stack, token: &str) -> bool {
    let Ok(out) = scenario
        .client
        .get_secret_value()
        .secret_id(&scenario.arn)
        .version_id(token)
        .version_stage("AWSPENDING")
        .send()
        .await
    else {
        return false;
    };
    let Some(text) = out.secret_string else {
        return false;
    };
    register_secret(&text);
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    scenario
        .target
        .login(
            stack,
            value["username"].as_str().unwrap(),
            value["password"].as_str().unwrap(),
        )
        .await
        .is_ok()
}

/// Verified TLS through the proxy (the test certificate names 127.0.0.1), and connections cut
/// after a number of bytes in either direction, mid-handshake: the step fails, typed, and the
/// rotation completes once the path is clean.
async fn tls_through_the_proxy_and_cuts_by_byte_count(server: Server) {
    let stack = require_stack!();
    let scenario = Scenario::new(stack, server, Strategy::SingleUser, "tlsp").await;
    // Scenario secrets are plaintext; this one requires verified TLS.
    let mut secret = serde_json::from_str::<serde_json::Value>(
        &raw_value(&scenario.client, &scenario.arn, "AWSCURRENT").await,
    )
    .unwrap();
    secret["ssl"] = json!(true);
    let arn = create_secret(&scenario.client, &secret).await;
    let token = token();
    start_rotation(&scenario.client, &arn, &token).await;
    scenario
        .function
        .invoke("createSecret", &arn, &token)
        .await
        .unwrap();
    for (up, down) in [(None, Some(7)), (Some(40), None), (None, Some(600))] {
        scenario.db.set(Fault::CutAfter { up, down });
        let before = snapshot(&scenario.client, &arn).await;
        let err = scenario
            .function
            .invoke("setSecret", &arn, &token)
            .await
            .unwrap_err();
        // A cut connection is no refusal of the password: the step ends there.
        assert_eq!(
            err.error_type(),
            "DatabaseError",
            "cut {up:?}/{down:?}: {err}"
        );
        assert_eq!(snapshot(&scenario.client, &arn).await, before);
    }
    scenario.db.set(Fault::Pass);
    scenario.function.rotate(&arn, &token).await.unwrap();
    let current = value(&scenario.client, &arn, "AWSCURRENT").await;
    stack
        .login(
            server,
            scenario.user.name(),
            current["password"].as_str().unwrap(),
        )
        .await
        .unwrap();
    scenario.cleanup(stack).await;
}
