//! The built binary as an operator runs it, `db-secret-rotator doctor …`, and as the scheduled
//! audit inside the function: exit statuses, the JSON document's shape, the table, and no
//! password in anything it prints or logs (at TRACE); with no arguments outside Lambda; its
//! completion scripts; and the line it prints while an endpoint keeps it waiting.

use std::io::BufRead;
use std::time::Duration;

use serde_json::{Value, json};

use super::case;
use crate::support::proxy::{Fault, TcpProxy};
use crate::support::runtime_api::{FunctionProcess, Outcome};
use crate::support::*;

/// What one run of the binary printed.
struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", self.stdout))
    }
}

/// Runs the binary with `arguments`, the stack's environment, the test CA, logs at TRACE and
/// `env`; the leak check scans both streams.
fn run(stack: &Stack, arguments: &[&str], env: &[(&str, &str)]) -> Run {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_db-secret-rotator"))
        .args(arguments)
        .env("TLS_EXTRA_CA_FILE", &stack.test_ca)
        .env("RUST_LOG", "trace")
        .env_remove("AWS_LAMBDA_LOG_LEVEL")
        .envs(env.iter().copied())
        .output()
        .expect("running the binary");
    let run = Run {
        status: output.status.code().expect("an exit status"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    };
    assert_no_password_in(&run.stdout, "doctor's stdout");
    assert_no_password_in(&run.stderr, "doctor's stderr");
    run
}

/// The keys of a JSON object, in order.
fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// The document has exactly the documented shape.
fn assert_shape(document: &Value) {
    assert_eq!(keys(document), ["secrets", "healthy", "unhealthy"]);
    for secret in document["secrets"].as_array().unwrap() {
        assert_eq!(
            keys(secret),
            ["secret", "name", "healthy", "problems", "repairs"]
        );
        assert!(secret["secret"].as_str().unwrap().starts_with("arn:"));
        assert!(secret["healthy"].is_boolean());
        for problem in secret["problems"].as_array().unwrap() {
            assert_eq!(keys(problem), ["code", "detail"]);
        }
        for repair in secret["repairs"].as_array().unwrap() {
            assert_eq!(keys(repair), ["action", "done"]);
        }
    }
}

#[test]
fn help_and_usage_errors() {
    let binary = env!("CARGO_BIN_EXE_db-secret-rotator");
    let output = std::process::Command::new(binary)
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(
        help.contains("db-secret-rotator doctor [--secret ID]... [--all]"),
        "{help}"
    );
    for (arguments, expected) in [
        (&["doctor"][..], "doctor needs secrets to audit"),
        (&["doctor", "--secret"], "--secret needs"),
        (
            &["doctor", "--all", "--verbose"],
            "unknown option \"--verbose\"",
        ),
        (&["rotate"], "unknown command \"rotate\""),
    ] {
        let output = std::process::Command::new(binary)
            .args(arguments)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{arguments:?}");
        assert!(output.stdout.is_empty(), "{arguments:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains(expected), "{arguments:?}: {stderr}");
    }
}

/// Run by hand with no arguments and no Lambda around it, the binary says what it is and how to
/// run the doctor, and exits with 2: no panic.
#[test]
fn no_arguments_outside_lambda() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_db-secret-rotator"))
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env_remove("AWS_LAMBDA_FUNCTION_NAME")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr).unwrap();
    for expected in [
        "AWS Lambda function",
        "AWS_LAMBDA_RUNTIME_API is not set",
        "db-secret-rotator doctor --secret",
        "db-secret-rotator --help",
    ] {
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `completions SHELL` prints the script for that shell, which names every option.
#[test]
fn completion_scripts() {
    let binary = env!("CARGO_BIN_EXE_db-secret-rotator");
    for (shell, first) in [
        ("bash", "# bash completion"),
        ("zsh", "#compdef db-secret-rotator"),
        ("fish", "# fish completion"),
    ] {
        let output = std::process::Command::new(binary)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{shell}");
        let script = String::from_utf8(output.stdout).unwrap();
        assert!(script.starts_with(first), "{shell}: {script}");
        assert!(script.contains("settled-after"), "{shell}");
    }
    let output = std::process::Command::new(binary)
        .args(["completions", "powershell"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

/// A Secrets Manager endpoint that accepts connections and never answers: within seconds the
/// command line says on stderr what it is waiting for, instead of retrying silently for a
/// minute.
#[tokio::test]
async fn a_silent_endpoint_is_announced() {
    let silent = TcpProxy::start("127.0.0.1", 9).await;
    silent.set(Fault::Blackhole);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_db-secret-rotator"))
        .args(["doctor", "--secret", "dsr/silent-endpoint"])
        .env(
            "AWS_ENDPOINT_URL_SECRETS_MANAGER",
            format!("http://127.0.0.1:{}", silent.port),
        )
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local-test-not-aws")
        .env("AWS_SECRET_ACCESS_KEY", "local-test-not-aws")
        .env_remove("SECRETS_MANAGER_ENDPOINT")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let started = std::time::Instant::now();
    let mut seen = Vec::new();
    let announced = loop {
        let left = Duration::from_secs(30).saturating_sub(started.elapsed());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("waiting for Secrets Manager") => break Some(line),
            Ok(line) => seen.push(line),
            Err(_) => break None,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let line = announced.unwrap_or_else(|| panic!("no waiting line within 30 s: {seen:?}"));
    assert!(
        line.contains("DescribeSecret of secret dsr/silent-endpoint")
            && line.contains("retrying")
            && !line.contains("  "),
        "{line}"
    );
    assert!(started.elapsed() < Duration::from_secs(15), "{line}");
}

#[tokio::test]
async fn exit_statuses_json_table_and_no_secret_value() {
    let stack = require_stack!();
    let server = Server::Postgres;
    let healthy = case(stack, server, "clihealthy").await;
    let stuck = case(stack, server, "clistuck").await;
    stuck.stall(&["createSecret"]).await;
    let (h, s) = (healthy.arn.as_str(), stuck.arn.as_str());

    let ok = run(stack, &["doctor", "--secret", h, "--login", "--json"], &[]);
    assert_eq!(ok.status, 0, "{}", ok.stderr);
    let document = ok.json();
    assert_shape(&document);
    assert_eq!(
        (&document["healthy"], &document["unhealthy"]),
        (&json!(1), &json!(0))
    );

    let before = snapshot(&stuck.client, s).await;
    let unhealthy = run(
        stack,
        &["doctor", "--secret", h, "--secret", s, "--login", "--json"],
        &[],
    );
    assert_eq!(unhealthy.status, 1, "{}", unhealthy.stderr);
    let document = unhealthy.json();
    assert_shape(&document);
    assert_eq!(
        (&document["healthy"], &document["unhealthy"]),
        (&json!(1), &json!(1))
    );
    let second = &document["secrets"][1];
    assert_eq!(second["secret"], json!(s));
    assert_eq!(second["healthy"], json!(false));
    assert_eq!(second["problems"][0]["code"], json!("stuck-pending"));
    assert_eq!(
        second["repairs"],
        json!([{"action": "removed-stale-pending", "done": false}])
    );

    // --repair on a version this young changes nothing, and says why.
    let repair = run(stack, &["doctor", "--secret", s, "--repair"], &[]);
    assert_eq!(repair.status, 1, "{}", repair.stderr);
    assert!(
        repair.stdout.contains("UNHEALTHY")
            && repair
                .stdout
                .contains("repair not done: removed-stale-pending")
            && repair.stdout.contains("a rotation may still be running"),
        "{}",
        repair.stdout
    );
    assert_eq!(snapshot(&stuck.client, s).await, before, "nothing changed");

    let table = run(
        stack,
        &["doctor", "--secret", h, "--secret", s, "--login"],
        &[],
    );
    assert_eq!(table.status, 1);
    assert!(table.stdout.starts_with("SECRET"), "{}", table.stdout);
    assert!(table.stdout.contains("  healthy  "), "{}", table.stdout);
    assert!(
        table.stdout.contains("would remove AWSPENDING"),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.ends_with("1 healthy, 1 unhealthy\n"),
        "{}",
        table.stdout
    );

    let absent = "dsr-test/no-such-secret";
    let incomplete = run(
        stack,
        &["doctor", "--secret", h, "--secret", absent, "--json"],
        &[],
    );
    assert_eq!(incomplete.status, 3);
    assert!(
        incomplete.stderr.contains(absent)
            && incomplete.stderr.contains("ResourceNotFoundException"),
        "{}",
        incomplete.stderr
    );
    assert_eq!(incomplete.json()["secrets"].as_array().unwrap().len(), 1);

    let misconfigured = run(
        stack,
        &["doctor", "--secret", h],
        &[("TLS_MODE", "sometimes")],
    );
    assert_eq!(misconfigured.status, 2);
    assert!(misconfigured.stdout.is_empty());
    assert!(
        misconfigured.stderr.contains("TLS_MODE"),
        "{}",
        misconfigured.stderr
    );

    healthy.user.drop(stack).await;
    stuck.user.drop(stack).await;
}

/// Secrets per `ListSecrets` page the doctor asks for.
const PAGE: usize = 100;

/// Makes sure the emulator holds more than one page of secrets, so that secrets created next are
/// listed after the first page (the emulator lists in creation order).
async fn more_than_a_page(client: &aws_sdk_secretsmanager::Client) {
    let first = client
        .list_secrets()
        .max_results(PAGE as i32)
        .send()
        .await
        .unwrap();
    if first.next_token().is_some_and(|t| !t.is_empty()) {
        return;
    }
    for _ in first.secret_list().len()..=PAGE {
        create_secret(client, &json!({"note": unique("filler")})).await;
    }
}

#[tokio::test]
async fn the_secrets_of_a_function_over_every_page() {
    let stack = require_stack!();
    let client = sm_client().await;
    let function = format!(
        "arn:aws:lambda:us-east-1:123456789012:function:{}",
        unique("doctor-list")
    );
    more_than_a_page(&client).await;
    let mut mine = Vec::new();
    for (i, rotated_by) in [&function, &function, &format!("{function}-other")]
        .into_iter()
        .enumerate()
    {
        let arn = create_secret(
            &client,
            &json!({"engine": "postgres", "host": "db.invalid", "username": format!("u{i}"), "password": fixture_password()}),
        )
        .await;
        // The emulator configures rotation, then fails to invoke the unknown function; the
        // stuck version it leaves is cleared.
        let token = token();
        start_rotation_by(&client, &arn, &token, rotated_by).await;
        client
            .update_secret_version_stage()
            .secret_id(&arn)
            .version_stage("AWSPENDING")
            .remove_from_version_id(token)
            .send()
            .await
            .unwrap();
        if rotated_by == &function {
            mine.push(arn);
        }
    }
    let first_page = client
        .list_secrets()
        .max_results(PAGE as i32)
        .send()
        .await
        .unwrap();
    let first_page: Vec<&str> = first_page
        .secret_list()
        .iter()
        .filter_map(|s| s.arn())
        .collect();
    assert!(
        mine.iter().all(|arn| !first_page.contains(&arn.as_str())),
        "the fixture needs the function's secrets past the first page"
    );
    let listed = run(stack, &["doctor", "--function", &function, "--json"], &[]);
    assert_eq!(listed.status, 0, "{}", listed.stderr);
    let document = listed.json();
    let found: Vec<&str> = document["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["secret"].as_str().unwrap())
        .collect();
    let mut expected: Vec<&str> = mine.iter().map(String::as_str).collect();
    expected.sort_by_key(|arn| arn.rsplit(':').next().map(str::to_owned));
    assert_eq!(found, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_audit_in_the_function() {
    let stack = require_stack!();
    let stuck = case(stack, Server::Mariadb, "schedstuck").await;
    stuck.stall(&["createSecret"]).await;
    let process = FunctionProcess::spawn(
        stack,
        &unique("scheduled"),
        &[("AWS_LAMBDA_LOG_LEVEL", "TRACE"), ("AUDIT_EVENTS", "audit")],
    )
    .await;
    let event = json!({"Command": "doctor", "Arguments": ["--secret", stuck.arn, "--login"]});
    let outcome = process
        .api
        .invoke_json(&event, Duration::from_secs(30))
        .await;
    let Outcome::Response(body) = outcome else {
        panic!("{outcome:?}\n{}", process.logs());
    };
    let document: Value = serde_json::from_slice(&body).unwrap();
    assert_shape(&document);
    assert_eq!(document["unhealthy"], json!(1));
    assert_eq!(
        document["secrets"][0]["problems"][0]["code"],
        json!("stuck-pending")
    );

    let logs = process.logs();
    let metric: Value = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line.get("UnhealthySecrets").is_some())
        .unwrap_or_else(|| panic!("no metric line: {logs}"));
    assert_eq!(metric["SecretId"], json!(stuck.arn));
    assert_eq!(metric["Problems"], json!(["stuck-pending"]));
    assert_eq!(
        metric["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([["FunctionName"]])
    );

    let refused = process
        .api
        .invoke_json(
            &json!({"Command": "doctor", "Arguments": ["--everything"]}),
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(refused.error_type(), Some("InvalidEvent"), "{refused:?}");

    // A repair is more than this deployment allows events (AUDIT_EVENTS=audit): refused before
    // anything is read or moved, although the secret is stuck.
    let labels_before = labels(&stuck.client, &stuck.arn).await;
    let repair = json!({"Command": "doctor", "Arguments": ["--secret", stuck.arn, "--repair"]});
    let refused = process
        .api
        .invoke_json(&repair, Duration::from_secs(30))
        .await;
    assert_eq!(refused.error_type(), Some("InvalidEvent"), "{refused:?}");
    assert!(
        format!("{refused:?}").contains("AUDIT_EVENTS"),
        "{refused:?}"
    );
    assert_eq!(labels(&stuck.client, &stuck.arn).await, labels_before);
    assert_no_password_in(&process.logs(), "the function's log");

    // By default an event may not audit at all.
    let default = FunctionProcess::spawn(stack, &unique("noaudit"), &[]).await;
    let refused = default
        .api
        .invoke_json(&event, Duration::from_secs(30))
        .await;
    assert_eq!(refused.error_type(), Some("InvalidEvent"), "{refused:?}");
    assert!(
        format!("{refused:?}").contains("AUDIT_EVENTS=off"),
        "{refused:?}"
    );
    stuck.user.drop(stack).await;
}
