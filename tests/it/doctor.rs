//! `db-secret-rotator doctor` against the emulator and the real servers: each state a rotation
//! can leave a secret in is staged, the doctor's answer checked, each repair made, and then a
//! full rotation must succeed. `cli` runs the built binary as a process (exit statuses, the JSON
//! document, the table, no secret value in any output) and the scheduled audit through the
//! Lambda Runtime API emulator.
//!
//! What the emulator does with the dates an audit reads (seen with moto 5): `RotateSecret` sets
//! `NextRotationDate` to the call's time plus `AutomaticallyAfterDays` and, when it cannot invoke
//! the function, leaves `LastRotatedDate` unset; `ListSecretVersionIds` reports every version as
//! created at the time of the call. So the tests never depend on those dates: the wait before a
//! label is removed is passed by running the doctor "two hours later" (`Doctor::at`), and
//! overdue rotations are unit tests.

mod cli;

use std::time::{Duration, SystemTime};

use db_secret_rotator::doctor::{Action, Doctor, Options, Report};
use serde_json::{Value, json};

use crate::support::*;

on_every_server!(
    a_healthy_secret,
    stuck_pending_where_current_logs_in,
    stuck_pending_where_only_pending_logs_in,
    a_drifted_clone,
);

/// Late enough that a stuck version may lose its label (the doctor waits an hour).
const LATER: Duration = Duration::from_secs(2 * 3_600);

/// The doctor's audit of `secrets`, as if run at `now`, with the function's rotators and
/// configuration; the leak check then scans its logs and everything the report can show.
async fn audit(
    function: &Function,
    secrets: &[&str],
    login: bool,
    repair: bool,
    now: SystemTime,
) -> Report {
    let options = Options {
        secrets: secrets.iter().map(|s| (*s).to_owned()).collect(),
        login,
        repair,
        ..Options::default()
    };
    audit_with(function, &options, now).await
}

/// [`audit`] with any options.
async fn audit_with(function: &Function, options: &Options, now: SystemTime) -> Report {
    let report = Doctor::new(&function.app).at(now).run(options).await;
    check_leaks(None);
    assert_no_password_in(&shown(&report), "the doctor's report");
    report
}

/// The JSON document, the table and the failures.
fn shown(report: &Report) -> String {
    let mut table = Vec::new();
    report.write_table(&mut table).unwrap();
    format!(
        "{}\n{}\n{:?}",
        report.to_json(),
        String::from_utf8(table).unwrap(),
        report.failures
    )
}

/// Each audited secret's problem codes.
fn codes(report: &Report) -> Vec<Vec<&'static str>> {
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    report
        .secrets
        .iter()
        .map(|s| s.problems.iter().map(|p| p.code.as_str()).collect())
        .collect()
}

/// The one repair of the one audited secret: its action and whether it was done.
fn repair(report: &Report) -> (Action, bool) {
    let repairs = &report.secrets[0].repairs;
    assert_eq!(repairs.len(), 1, "{repairs:?}");
    (repairs[0].action, repairs[0].done)
}

/// A user and its single-user secret, with rotation configured.
struct Case {
    user: TestUser,
    arn: String,
    client: aws_sdk_secretsmanager::Client,
    function: Function,
}

async fn case(stack: &Stack, server: Server, prefix: &str) -> Case {
    let name = unique(prefix);
    let password = fixture_password();
    let user = stack.create_user(server, &name, &password).await;
    let client = sm_client().await;
    let arn = create_secret(&client, &stack.secret(server, &name, &password)).await;
    Case {
        user,
        arn,
        client,
        function: Function::new(stack).await,
    }
}

impl Case {
    /// A rotation that stopped after `steps`: a new token staged, those steps run. Returns the
    /// token, whose version is now stuck.
    async fn stall(&self, steps: &[&str]) -> String {
        let token = token();
        start_rotation(&self.client, &self.arn, &token).await;
        for step in steps {
            self.function.invoke(step, &self.arn, &token).await.unwrap();
        }
        token
    }

    /// A full rotation with a new token: it succeeds, the new password logs in and the one
    /// before it no longer does.
    async fn rotates(&self, stack: &Stack, server: Server) {
        let before = value(&self.client, &self.arn, "AWSCURRENT").await;
        let token = token();
        start_rotation(&self.client, &self.arn, &token).await;
        self.function.rotate(&self.arn, &token).await.unwrap();
        let after = value(&self.client, &self.arn, "AWSCURRENT").await;
        let login = |secret: &Value| {
            let (user, password) = (
                secret["username"].as_str().unwrap().to_owned(),
                secret["password"].as_str().unwrap().to_owned(),
            );
            async move { stack.login(server, &user, &password).await }
        };
        login(&after).await.unwrap();
        assert_eq!(login(&before).await, Err(server.rejected().to_owned()));
    }
}

async fn a_healthy_secret(server: Server) {
    let stack = require_stack!();
    let case = case(stack, server, "dochealthy").await;
    // Rotation configured and one rotation done (AWSPENDING lingers on the new current version,
    // which is not stuck).
    let token = case.stall(&[]).await;
    case.function.rotate(&case.arn, &token).await.unwrap();
    let report = audit(&case.function, &[&case.arn], true, false, SystemTime::now()).await;
    assert_eq!(codes(&report), [Vec::<&str>::new()]);
    assert_eq!(report.exit_status(), 0);
    assert_eq!(report.to_json()["secrets"][0]["healthy"], json!(true));
    case.user.drop(stack).await;
}

async fn stuck_pending_where_current_logs_in(server: Server) {
    let stack = require_stack!();
    let case = case(stack, server, "docstale").await;
    // createSecret ran, then the rotation stopped: a value the database never took.
    let token = case.stall(&["createSecret"]).await;
    let report = audit(
        &case.function,
        &[&case.arn],
        false,
        false,
        SystemTime::now(),
    )
    .await;
    assert_eq!(codes(&report), [["stuck-pending"]]);
    assert!(
        report.secrets[0].repairs.is_empty(),
        "nothing planned without --login"
    );

    let before = snapshot(&case.client, &case.arn).await;
    let report = audit(&case.function, &[&case.arn], true, true, SystemTime::now()).await;
    assert_eq!(codes(&report), [["stuck-pending"]]);
    let detail = &report.secrets[0].problems[0].detail;
    assert!(
        detail.contains(&token) && detail.contains("AWSCURRENT logs in, AWSPENDING does not"),
        "{detail}"
    );
    assert_eq!(
        repair(&report),
        (Action::RemovedStalePending, false),
        "a version this young may belong to a running rotation"
    );
    assert_eq!(snapshot(&case.client, &case.arn).await, before);

    let later = SystemTime::now() + LATER;
    let report = audit(&case.function, &[&case.arn], true, true, later).await;
    assert_eq!(repair(&report), (Action::RemovedStalePending, true));
    assert_eq!(
        codes(&report),
        [Vec::<&str>::new()],
        "healthy after the repair"
    );
    assert_eq!(
        version_with(&case.client, &case.arn, "AWSPENDING").await,
        None
    );
    // Only the label moved: the values are the same.
    let after = snapshot(&case.client, &case.arn).await;
    assert_eq!(
        after.values().map(|(_, v)| v).collect::<Vec<_>>(),
        before.values().map(|(_, v)| v).collect::<Vec<_>>()
    );
    case.rotates(stack, server).await;
    case.user.drop(stack).await;
}

/// `--settled-after 10m`: eleven minutes after a rotation stopped, the stale label goes, where
/// the default hour keeps it.
#[tokio::test]
async fn a_shorter_settle_time() {
    let stack = require_stack!();
    let server = Server::Postgres;
    let case = case(stack, server, "docsettle").await;
    case.stall(&["createSecret"]).await;
    let eleven_minutes = SystemTime::now() + Duration::from_secs(11 * 60);
    let mut options = Options {
        secrets: vec![case.arn.clone()],
        repair: true,
        login: true,
        ..Options::default()
    };
    let report = audit_with(&case.function, &options, eleven_minutes).await;
    assert_eq!(repair(&report), (Action::RemovedStalePending, false));
    let detail = &report.secrets[0].repairs[0].detail;
    assert!(detail.contains("retry after"), "{detail}");

    options.settled_after = Duration::from_secs(10 * 60);
    let report = audit_with(&case.function, &options, eleven_minutes).await;
    assert_eq!(repair(&report), (Action::RemovedStalePending, true));
    assert_eq!(
        version_with(&case.client, &case.arn, "AWSPENDING").await,
        None
    );
    case.rotates(stack, server).await;
    case.user.drop(stack).await;
}

async fn stuck_pending_where_only_pending_logs_in(server: Server) {
    let stack = require_stack!();
    let case = case(stack, server, "docdone").await;
    // setSecret ran: the database has the pending password; testSecret and finishSecret did not.
    let token = case.stall(&["createSecret", "setSecret"]).await;
    let report = audit(&case.function, &[&case.arn], true, false, SystemTime::now()).await;
    assert_eq!(codes(&report), [["stuck-pending", "current-login-failed"]]);
    assert_eq!(repair(&report), (Action::CompletedRotation, false));
    let current = version_with(&case.client, &case.arn, "AWSCURRENT")
        .await
        .unwrap();

    // No wait: moving AWSCURRENT is what the rotation's own finishSecret would do.
    let report = audit(&case.function, &[&case.arn], true, true, SystemTime::now()).await;
    assert_eq!(repair(&report), (Action::CompletedRotation, true));
    assert_eq!(codes(&report), [Vec::<&str>::new()]);
    let labels = labels(&case.client, &case.arn).await;
    assert!(
        labels[&token].contains(&"AWSCURRENT".to_owned()),
        "{labels:?}"
    );
    assert_eq!(labels[&current], ["AWSPREVIOUS"], "{labels:?}");
    case.rotates(stack, server).await;
    case.user.drop(stack).await;
}

#[tokio::test]
async fn stuck_pending_where_neither_logs_in_changes_nothing() {
    let stack = require_stack!();
    let server = Server::Postgres;
    let case = case(stack, server, "docneither").await;
    case.stall(&["createSecret"]).await;
    // Someone changed the password by hand: neither version logs in.
    case.user.set_password(stack, &fixture_password()).await;
    let verifier = case.user.verifier(stack).await;
    let before = snapshot(&case.client, &case.arn).await;
    let later = SystemTime::now() + LATER;
    let report = audit(&case.function, &[&case.arn], true, true, later).await;
    assert_eq!(codes(&report), [["stuck-pending", "current-login-failed"]]);
    assert_eq!(repair(&report), (Action::None, false));
    assert_eq!(report.exit_status(), 1);
    assert_eq!(snapshot(&case.client, &case.arn).await, before);
    assert_eq!(case.user.verifier(stack).await, verifier);
    case.user.drop(stack).await;
}

#[tokio::test]
async fn unusable_secrets_name_the_field() {
    let stack = require_stack!();
    let client = sm_client().await;
    let password = fixture_password();
    let mut no_user = stack.secret(Server::Postgres, "docbad", &password);
    no_user.as_object_mut().unwrap().remove("username");
    let mut bad_port = stack.secret(Server::Mariadb, "docbad", &password);
    bad_port["port"] = json!("three thousand");
    let arns = [
        create_secret(&client, &no_user).await,
        create_secret(&client, &bad_port).await,
    ];
    let function = Function::new(stack).await;
    let report = audit(
        &function,
        &[&arns[0], &arns[1]],
        true,
        false,
        SystemTime::now(),
    )
    .await;
    assert_eq!(codes(&report), [["invalid-secret"], ["invalid-secret"]]);
    let detail = |i: usize| report.secrets[i].problems[0].detail.clone();
    assert!(
        detail(0).contains("username key is missing"),
        "{}",
        detail(0)
    );
    assert!(detail(1).contains("`port`"), "{}", detail(1));
}

#[tokio::test]
async fn disabled_rotation() {
    let stack = require_stack!();
    let case = case(stack, Server::Postgres, "docoff").await;
    let token = case.stall(&[]).await;
    // Rotation turned off, and the stuck version cleared by hand.
    case.client
        .update_secret_version_stage()
        .secret_id(&case.arn)
        .version_stage("AWSPENDING")
        .remove_from_version_id(&token)
        .send()
        .await
        .unwrap();
    case.client
        .cancel_rotate_secret()
        .secret_id(&case.arn)
        .send()
        .await
        .unwrap();
    let report = audit(&case.function, &[&case.arn], true, false, SystemTime::now()).await;
    assert_eq!(codes(&report), [["rotation-disabled"]]);
    assert!(
        report.secrets[0].problems[0]
            .detail
            .contains("rotate-secret --secret-id"),
        "{report:?}"
    );
    case.user.drop(stack).await;
}

#[tokio::test]
async fn a_missing_master() {
    let stack = require_stack!();
    let server = Server::Mariadb;
    let case = case(stack, server, "docnomaster").await;
    let absent =
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:dsr-test/absent-master-Zz9Yy8";
    let password = fixture_password();
    case.user.set_password(stack, &password).await;
    let arn = create_secret(
        &case.client,
        &stack.alternating_secret(server, case.user.name(), &password, absent),
    )
    .await;
    let mut wrong = stack.master_secret(server);
    wrong["password"] = json!(fixture_password());
    let wrong_arn = create_secret(&case.client, &wrong).await;
    let locked_out = create_secret(
        &case.client,
        &stack.alternating_secret(server, case.user.name(), &password, &wrong_arn),
    )
    .await;
    let report = audit(
        &case.function,
        &[&arn, &locked_out],
        true,
        false,
        SystemTime::now(),
    )
    .await;
    assert_eq!(
        codes(&report),
        [["master-unreadable"], ["master-unreadable"]]
    );
    let detail = |i: usize| report.secrets[i].problems[0].detail.clone();
    assert!(
        detail(0).contains(absent) && detail(0).contains("ResourceNotFoundException"),
        "{}",
        detail(0)
    );
    assert!(
        detail(1).contains("unable to log into the database with the master secret"),
        "{}",
        detail(1)
    );
    case.user.drop(stack).await;
}

async fn a_drifted_clone(server: Server) {
    let stack = require_stack!();
    let case = case(stack, server, "docdrift").await;
    let name = case.user.name().to_owned();
    let clone = format!("{name}_clone");
    let password = fixture_password();
    case.user.set_password(stack, &password).await;
    let master = create_secret(&case.client, &stack.master_secret(server)).await;
    let arn = create_secret(
        &case.client,
        &stack.alternating_secret(server, &name, &password, &master),
    )
    .await;
    // A clone that can do more than the user: the next rotation would refuse to hand it over.
    let clone_user = stack.create_user(server, &clone, &fixture_password()).await;
    let (grant, revoke, excess) = match server {
        Server::Postgres => (
            format!("ALTER ROLE \"{clone}\" CREATEDB"),
            format!("ALTER ROLE \"{clone}\" NOCREATEDB"),
            "CREATEDB",
        ),
        Server::Mariadb => (
            format!("GRANT PROCESS ON *.* TO '{clone}'@'%'"),
            format!("REVOKE PROCESS ON *.* FROM '{clone}'@'%'"),
            "PROCESS ON *.*",
        ),
    };
    stack.admin_run(server, &grant).await;
    let verifier = clone_user.verifier(stack).await;

    let report = audit(&case.function, &[&arn], false, false, SystemTime::now()).await;
    assert_eq!(
        codes(&report),
        [Vec::<&str>::new()],
        "the clone needs --login"
    );
    let report = audit(&case.function, &[&arn], true, true, SystemTime::now()).await;
    assert_eq!(codes(&report), [["clone-drift"]]);
    let detail = &report.secrets[0].problems[0].detail;
    assert!(
        detail.contains(&clone) && detail.contains(excess),
        "{detail}"
    );
    assert!(
        report.secrets[0].repairs.is_empty(),
        "clone drift is never repaired"
    );
    // Read-only: the clone is as it was.
    assert_eq!(clone_user.verifier(stack).await, verifier);
    let report = audit(&case.function, &[&arn], true, false, SystemTime::now()).await;
    assert_eq!(codes(&report), [["clone-drift"]], "still there");

    stack.admin_run(server, &revoke).await;
    if server == Server::Postgres {
        // A role this function did not make (not a member of the user) is still refused: whoever
        // controls it would get the user's rights.
        let report = audit(&case.function, &[&arn], true, false, SystemTime::now()).await;
        assert_eq!(codes(&report), [["clone-drift"]]);
        let detail = &report.secrets[0].problems[0].detail;
        assert!(detail.contains("membership in role"), "{detail}");
        stack
            .admin_run(server, &format!("GRANT \"{name}\" TO \"{clone}\""))
            .await;
    }
    let report = audit(&case.function, &[&arn], true, false, SystemTime::now()).await;
    assert_eq!(codes(&report), [Vec::<&str>::new()]);
    stack.drop_user(server, &clone).await;
    case.user.drop(stack).await;
}
