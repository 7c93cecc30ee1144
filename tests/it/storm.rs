//! A storm of rotations against the regional write quota: many secrets rotate at once, each
//! through its own function process (the built binary under the Runtime API emulator, as Lambda
//! scales out), while a proxy in front of the emulator lets the writing operations through at a
//! fixed rate and answers `ThrottlingException` beyond it. Every invocation must succeed within
//! its deadline, and nothing may be lost: each secret's new password logs in, its old one is
//! rejected, and exactly one new version exists.
//!
//! Sized by the environment, so that `scripts/bench.sh storm` runs the same test larger:
//!
//! - `DSR_STORM_SECRETS`: secrets, alternately PostgreSQL and MariaDB (default 60);
//! - `DSR_STORM_TPS`: the write quota, writes a second, with bursts of one second's worth
//!   (default 10, so that 60 secrets need 12 s of quota: far more than the quota allows at once);
//! - `DSR_STORM_PROCESSES`: function processes (default one per secret); with fewer, rotation
//!   `i` waits for process `i mod n`, as invocations wait for reserved concurrency;
//! - `DSR_STORM_TIMEOUT_SECS`: each invocation's deadline (default 30, the template's `Timeout`);
//! - `DSR_STORM_LOG_LEVEL`: the functions' `AWS_LAMBDA_LOG_LEVEL` (default DEBUG, where each
//!   retry is logged; the retry lines are then checked against the metrics).
//!
//! The figures go to `target/tmp/storm.txt`: wall time against the quota-bound minimum
//! (`2 × secrets / TPS`: two writes per rotation), throttled answers, failures, and the p50/p99
//! step durations.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::support::proxy::SmProxy;
use crate::support::runtime_api::{FunctionProcess, Outcome};
use crate::support::scenario::STEPS;
use crate::support::*;

/// The storm's size, from the environment.
#[derive(Debug, Clone, Copy)]
struct Size {
    secrets: usize,
    tps: f64,
    processes: usize,
    timeout: Duration,
}

fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a valid value")),
        Err(_) => default,
    }
}

impl Size {
    fn from_env() -> Self {
        let secrets = setting("DSR_STORM_SECRETS", 60usize).max(1);
        Size {
            secrets,
            tps: setting("DSR_STORM_TPS", 10.0f64),
            processes: setting("DSR_STORM_PROCESSES", secrets).clamp(1, secrets),
            timeout: Duration::from_secs(setting("DSR_STORM_TIMEOUT_SECS", 30u64)),
        }
    }

    /// The least wall time the quota allows: two writes per rotation.
    fn minimum(&self) -> Duration {
        Duration::from_secs_f64(2.0 * self.secrets as f64 / self.tps)
    }
}

/// One secret of the storm.
struct Subject {
    server: Server,
    user: TestUser,
    password: String,
    arn: String,
    token: String,
}

/// One invocation as the emulator saw it.
struct Invocation {
    step: &'static str,
    elapsed: Duration,
    outcome: Outcome,
}

async fn subjects(stack: &Stack, count: usize) -> Vec<Subject> {
    let client = sm_client().await;
    futures_util::stream::iter(0..count)
        .map(|i| {
            let client = &client;
            async move {
                let server = Server::ALL[i % Server::ALL.len()];
                let name = unique("storm");
                let password = fixture_password();
                let user = stack.create_user(server, &name, &password).await;
                let arn = create_secret(client, &stack.secret(server, &name, &password)).await;
                let token = token();
                start_rotation(client, &arn, &token).await;
                Subject {
                    server,
                    user,
                    password,
                    arn,
                    token,
                }
            }
        })
        .buffer_unordered(8)
        .collect()
        .await
}

/// Spawns the function processes, all pointed at `proxy`, and waits until each polls.
async fn processes(stack: &Stack, size: Size, proxy: &SmProxy) -> Vec<FunctionProcess> {
    let level = setting("DSR_STORM_LOG_LEVEL", "DEBUG".to_owned());
    let mut processes = Vec::with_capacity(size.processes);
    for i in 0..size.processes {
        let env = [
            ("SECRETS_MANAGER_ENDPOINT", proxy.url.as_str()),
            ("AWS_LAMBDA_LOG_LEVEL", level.as_str()),
        ];
        processes.push(FunctionProcess::spawn(stack, &format!("storm-{i}"), &env).await);
    }
    for process in &processes {
        process.api.ready(Duration::from_secs(60)).await;
    }
    processes
}

/// Drives one rotation's four steps through its process, as the service does: each step right
/// after the previous one succeeded.
async fn rotate(
    subject: &Subject,
    process: &FunctionProcess,
    slot: &tokio::sync::Mutex<()>,
    timeout: Duration,
) -> Vec<Invocation> {
    let mut invocations = Vec::new();
    for step in STEPS {
        let event = json!({
            "Step": step,
            "SecretId": subject.arn,
            "ClientRequestToken": subject.token,
            "RotationToken": "storm-rotation-token",
        });
        let _slot = slot.lock().await;
        let started = Instant::now();
        let outcome = process.api.invoke_json(&event, timeout).await;
        let failed = !matches!(outcome, Outcome::Response(_));
        invocations.push(Invocation {
            step,
            elapsed: started.elapsed(),
            outcome,
        });
        if failed {
            break;
        }
    }
    invocations
}

/// The `p`th percentile (nearest rank) of `values`, sorted in place.
fn percentile(values: &mut [Duration], p: f64) -> Duration {
    values.sort();
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// What the functions' logs say: their metrics lines and their retry lines.
#[derive(Debug, Default)]
struct Logs {
    retries: u64,
    throttles: u64,
    retry_lines: u64,
    finish_lines: Vec<Value>,
}

fn read_logs(processes: &[FunctionProcess]) -> Logs {
    let mut logs = Logs::default();
    for process in processes {
        let text = process.logs();
        assert_no_password_in(&text, "a function's log stream");
        assert!(
            !text.contains("storm-rotation-token"),
            "RotationToken logged"
        );
        for line in text.lines() {
            let Ok(value) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if value.get("_aws").is_some() {
                logs.retries += value["SecretsManagerRetries"].as_u64().unwrap();
                logs.throttles += value["SecretsManagerThrottles"].as_u64().unwrap();
                if value["Step"] == "finishSecret" {
                    logs.finish_lines.push(value);
                }
            } else if value["fields"]["message"] == "Secrets Manager call failed; retrying" {
                let fields = &value["fields"];
                for key in ["operation", "attempt", "delay_ms", "error_code"] {
                    assert!(!fields[key].is_null(), "retry line without {key}: {line}");
                }
                logs.retry_lines += 1;
            }
        }
    }
    logs
}

/// The state every rotation of the storm must reach; `Err` says what is wrong.
async fn check(
    stack: &Stack,
    client: &aws_sdk_secretsmanager::Client,
    subject: &Subject,
) -> Result<(), String> {
    let labels = labels(client, &subject.arn).await;
    if labels.len() != 2 {
        return Err(format!("{} versions, expected 2: {labels:?}", labels.len()));
    }
    if !labels
        .get(&subject.token)
        .is_some_and(|s| s.iter().any(|l| l == "AWSCURRENT"))
    {
        return Err(format!("AWSCURRENT not on the token: {labels:?}"));
    }
    let current = value(client, &subject.arn, "AWSCURRENT").await;
    let name = subject.user.name();
    stack
        .login(subject.server, name, current["password"].as_str().unwrap())
        .await
        .map_err(|e| format!("{name}: the new password does not log in ({e})"))?;
    match stack.login(subject.server, name, &subject.password).await {
        Err(code) if code == subject.server.rejected() => Ok(()),
        other => Err(format!(
            "{name}: the old password is not rejected ({other:?})"
        )),
    }
}

fn figures(
    size: Size,
    wall: Duration,
    proxy: &SmProxy,
    runs: &[Vec<Invocation>],
    logs: &Logs,
) -> String {
    let minimum = size.minimum();
    let quota = proxy.quota_count();
    let failures = runs
        .iter()
        .filter(|r| {
            r.len() < STEPS.len() || r.iter().any(|i| !matches!(i.outcome, Outcome::Response(_)))
        })
        .count();
    let mut text = format!(
        "== storm: {} secrets, {} function processes, write quota {} per second (bursts of {}), \
         invocation timeout {} s ==\n\
         wall {:.1} s; quota-bound minimum 2 x {} / {} = {:.1} s; ratio {:.2} (goal <= 1.5)\n\
         writes admitted {} ({:.2} per rotation), throttled answers {} ({:.1} per rotation)\n\
         failed rotations {failures}\n\
         function metrics: SecretsManagerThrottles {}, SecretsManagerRetries {}, retry lines at DEBUG {}\n\
         step durations, as the Runtime API emulator saw them (ms): p50 / p99 / max\n",
        size.secrets,
        size.processes,
        size.tps,
        size.tps,
        size.timeout.as_secs(),
        wall.as_secs_f64(),
        size.secrets,
        size.tps,
        minimum.as_secs_f64(),
        wall.as_secs_f64() / minimum.as_secs_f64(),
        quota.admitted,
        quota.admitted as f64 / size.secrets as f64,
        quota.throttled,
        quota.throttled as f64 / size.secrets as f64,
        logs.throttles,
        logs.retries,
        logs.retry_lines,
    );
    for step in STEPS.iter().copied().chain(["all steps"]) {
        let mut times: Vec<Duration> = runs
            .iter()
            .flatten()
            .filter(|i| i.step == step || step == "all steps")
            .map(|i| i.elapsed)
            .collect();
        if times.is_empty() {
            continue;
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let (p50, p99) = (percentile(&mut times, 50.0), percentile(&mut times, 99.0));
        text.push_str(&format!(
            "  {step:<13} {:>8.1} {:>8.1} {:>8.1}\n",
            ms(p50),
            ms(p99),
            ms(*times.last().unwrap())
        ));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load profile: scripts/test.sh --load"]
async fn a_storm_of_rotations_rides_out_the_write_quota() {
    let stack = require_stack!();
    let size = Size::from_env();
    let client = sm_client().await;
    let subjects = subjects(stack, size.secrets).await;
    let proxy = SmProxy::start(stack).await;
    proxy.limit_writes(size.tps, size.tps);
    let processes = processes(stack, size, &proxy).await;
    let slots: Vec<tokio::sync::Mutex<()>> = (0..size.processes)
        .map(|_| tokio::sync::Mutex::new(()))
        .collect();

    let started = Instant::now();
    let runs = futures_util::future::join_all(subjects.iter().enumerate().map(|(i, subject)| {
        let n = i % size.processes;
        rotate(subject, &processes[n], &slots[n], size.timeout)
    }))
    .await;
    let wall = started.elapsed();

    let logs = read_logs(&processes);
    let text = figures(size, wall, &proxy, &runs, &logs);
    report("storm.txt", &text);
    for (subject, run) in subjects.iter().zip(&runs) {
        for invocation in run {
            assert!(
                matches!(invocation.outcome, Outcome::Response(_)),
                "{} {}: {:?} after {:?}\n{text}",
                subject.arn,
                invocation.step,
                invocation.outcome,
                invocation.elapsed
            );
        }
        assert_eq!(run.len(), STEPS.len());
        check(stack, &client, subject)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
    }
    let quota = proxy.quota_count();
    assert!(quota.throttled > 0, "the quota never bound:\n{text}");
    assert!(quota.admitted >= 2 * size.secrets, "{text}");
    // What the functions counted is what the proxy answered, and each retry was logged.
    assert_eq!(logs.throttles, quota.throttled as u64, "{text}");
    if setting("DSR_STORM_LOG_LEVEL", "DEBUG".to_owned()).eq_ignore_ascii_case("debug") {
        assert_eq!(logs.retry_lines, logs.retries, "{text}");
    }
    // finishSecret reads no secret; its line still names the engine its process saw earlier.
    assert_eq!(logs.finish_lines.len(), size.secrets);
    if size.processes == size.secrets {
        for line in &logs.finish_lines {
            assert!(
                line["Engine"].is_string() && line["Strategy"] == "single-user",
                "{line}"
            );
        }
    }

    let log_files: Vec<_> = processes.iter().map(|p| p.log.clone()).collect();
    drop(processes);
    for path in log_files {
        let _ = std::fs::remove_file(path);
    }
    for subject in subjects {
        subject.user.drop(stack).await;
    }
}
