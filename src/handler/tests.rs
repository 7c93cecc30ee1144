//! The protocol against the in-memory Secrets Manager and database.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::config::Config;
use crate::credentials::{Login, Password};
use crate::logging::capture;
use crate::metrics::SecretKinds;
use crate::protocol::Strategy;
use crate::rds::Rds;
use crate::rds::fake::FakeRds;
use crate::rotators::fake::{FakeDb, HOST};
use crate::secrets::fake::{Calls, FakeSecrets, Version, day};

const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-AbCdEf";
const MASTER: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:master-XyZ";
const TOKEN: &str = "6f1c2a9e-3b7d-4c58-9e21-0d4a8b7c5e13";
const OLD_TOKEN: &str = "00000000-0000-4000-8000-000000000001";
const OLD_PASSWORD: &str = "SENTINEL-old-pw-'\\";
const NEW_PASSWORD: &str = "SENTINEL-new-pw-'\\";

type TestApp = App<FakeSecrets, FakeDb, FakeRds>;

/// The rotated secret `SECRET`, as the tests see it in the fake service.
trait TheSecret {
    /// Adds or replaces its version `id`.
    fn set_version(&self, id: &str, value: Option<String>, stages: &[&str]);
    /// The value of its version `id`, parsed.
    fn value(&self, id: &str) -> Option<Value>;
    /// The labels of its version `id`.
    fn stages(&self, id: &str) -> Vec<String>;
    /// Its versions, for before/after comparisons.
    fn snapshot(&self) -> BTreeMap<String, Version>;
    /// Adds (or replaces) the master secret `MASTER` with the value `master`.
    fn add_master(&self, master: String);
}

impl TheSecret for FakeSecrets {
    fn set_version(&self, id: &str, value: Option<String>, stages: &[&str]) {
        self.insert(SECRET, id, value.as_deref(), stages, day(0));
    }

    fn value(&self, id: &str) -> Option<Value> {
        let version = self.version(SECRET, id)?;
        version.value.map(|v| serde_json::from_str(&v).unwrap())
    }

    fn stages(&self, id: &str) -> Vec<String> {
        self.version(SECRET, id).unwrap().stages
    }

    fn snapshot(&self) -> BTreeMap<String, Version> {
        self.versions(SECRET)
    }

    fn add_master(&self, master: String) {
        self.add_as(MASTER, "master", "m1", &master);
    }
}

/// The service holding `SECRET` with `current` as its current version (rotation on), and the
/// service's empty `AWSPENDING` version under `TOKEN`.
fn secrets(current: &Value) -> FakeSecrets {
    capture::install();
    let store = FakeSecrets::default();
    store.add_as(SECRET, "app", OLD_TOKEN, &current.to_string());
    store.set_version(TOKEN, None, &["AWSPENDING"]);
    store
}

/// A container over `store` and `db`, with the configuration of an unset environment.
fn container(store: &FakeSecrets, db: &FakeDb) -> TestApp {
    container_with(store, db, Config::default())
}

/// [`container`] with `config`.
fn container_with(store: &FakeSecrets, db: &FakeDb, config: Config) -> TestApp {
    App::new(
        config,
        store.clone(),
        db.clone(),
        Rds::new(FakeRds::default()),
    )
}

fn current_secret() -> Value {
    json!({
        "engine": "postgres",
        "host": HOST,
        "port": "5432",
        "username": "app",
        "password": OLD_PASSWORD,
        "dbname": "orders",
        "custom": {"keep": [1, 2]},
    })
}

fn event(step: &str) -> Value {
    json!({"Step": step, "SecretId": SECRET, "ClientRequestToken": TOKEN, "RotationToken": "rot-token"})
}

fn new_password(_: Family) -> Password {
    Password::new(NEW_PASSWORD)
}

fn deadline() -> Deadline {
    Deadline::new(None, Duration::from_secs(5))
}

/// Runs one invocation in `app`, returning its result and its metrics report. RDS knows nothing.
async fn invoke(payload: &Value, deadline: Deadline, app: &TestApp) -> (Result<(), Error>, Report) {
    let result = invoke_with(payload, deadline, app).await;
    assert_eq!(
        app.rds.api().calls(),
        0,
        "RDS is asked only where RDS may be involved"
    );
    result
}

/// [`invoke`], where RDS may be asked.
async fn invoke_with(
    payload: &Value,
    deadline: Deadline,
    app: &TestApp,
) -> (Result<(), Error>, Report) {
    run_reporting(payload, deadline, app, &new_password).await
}

/// `err` refuses an identity naming `needle`, and no password changed.
fn assert_refused_as_mismatch(err: &Error, needle: &str, db: &FakeDb) {
    assert_eq!(err.error_type(), "IdentityMismatch");
    assert!(err.to_string().contains(needle), "{err}");
    assert!(db.changes.borrow().is_empty());
}

/// Starts rotation `round` under `TOKEN`, as the service does once the last one finished: the
/// last rotation's version keeps its id under another name, without `AWSPENDING`.
fn next_rotation(store: &FakeSecrets, round: usize) {
    let mut secrets = store.secrets.borrow_mut();
    let versions = &mut secrets.get_mut(SECRET).unwrap().versions;
    let mut last = versions.remove(TOKEN).expect("the last rotation's version");
    last.stages.retain(|stage| stage != "AWSPENDING");
    versions.insert(format!("11111111-0000-4000-8000-{round:012}"), last);
    drop(secrets);
    store.set_version(TOKEN, None, &["AWSPENDING"]);
}

async fn step(app: &TestApp, name: &str) -> Result<(), Error> {
    invoke(&event(name), deadline(), app).await.0
}

async fn rotate(app: &TestApp) -> Result<(), Error> {
    for name in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        step(app, name).await?;
    }
    Ok(())
}

#[tokio::test]
async fn full_rotation_moves_labels_and_password_within_the_call_budget() {
    let store = secrets(&current_secret());
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    let app = container(&store, &db);
    rotate(&app).await.unwrap();

    assert_eq!(db.password_of("app").as_deref(), Some(NEW_PASSWORD));
    // AWSPENDING lingers on the new current version until the service clears it.
    assert_eq!(store.stages(TOKEN), ["AWSPENDING", "AWSCURRENT"]);
    assert_eq!(store.stages(OLD_TOKEN), ["AWSPREVIOUS"]);
    let mut expected = current_secret();
    expected["password"] = json!(NEW_PASSWORD);
    assert_eq!(store.value(TOKEN).unwrap(), expected);
    assert_eq!(
        store.version(SECRET, TOKEN).unwrap().value.unwrap(),
        expected.to_string(),
        "key order and types are preserved"
    );
    let calls = store.calls.get();
    assert_eq!(
        calls,
        Calls {
            describe: 4,
            get: 5,
            put: 1,
            promote: 1,
            ..Calls::default()
        },
        "the single-user rotation budget is 11 calls"
    );
    assert!(calls.total() <= 11);
    assert_eq!(
        *store.rotation_tokens.borrow(),
        [Some("rot-token".to_owned())]
    );
}

#[tokio::test]
async fn every_step_replayed_changes_nothing() {
    let store = secrets(&current_secret());
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    let app = container(&store, &db);
    for name in ["createSecret", "setSecret", "testSecret"] {
        step(&app, name).await.unwrap();
        let (versions, password) = (store.snapshot(), db.password_of("app"));
        let writes = store.calls.get().writes();
        step(&app, name).await.unwrap();
        assert_eq!(store.snapshot(), versions, "{name} replay");
        assert_eq!(db.password_of("app"), password, "{name} replay");
        assert_eq!(store.calls.get().writes(), writes, "{name} replay");
    }
    assert_eq!(db.changes.borrow().len(), 1);
    step(&app, "finishSecret").await.unwrap();
    let writes = store.calls.get().writes();
    let before = store.calls.get().total();
    for name in [
        "createSecret",
        "setSecret",
        "testSecret",
        "finishSecret",
        "bogusStep",
    ] {
        step(&app, name).await.unwrap();
    }
    assert_eq!(store.calls.get().writes(), writes);
    assert_eq!(
        store.calls.get().total(),
        before + 5,
        "only DescribeSecret once the token is current"
    );
    assert_eq!(db.changes.borrow().len(), 1);
}

#[tokio::test]
async fn create_secret_keeps_an_existing_pending_value() {
    let store = secrets(&current_secret());
    let mut pending = current_secret();
    pending["password"] = json!("already-there");
    store.set_version(TOKEN, Some(pending.to_string()), &["AWSPENDING"]);
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    let app = container(&store, &db);
    step(&app, "createSecret").await.unwrap();
    assert_eq!(store.calls.get().writes(), 0);
    assert_eq!(store.value(TOKEN).unwrap(), pending);
}

#[tokio::test]
async fn guard_branches_write_nothing() {
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    type Setup = Box<dyn Fn(&FakeSecrets)>;
    let cases: Vec<(Setup, &str, &str)> = vec![
        (
            Box::new(|s: &FakeSecrets| {
                s.edit(SECRET, |i| i.description.rotation_enabled = Some(false))
            }),
            "createSecret",
            "RotationDisabled",
        ),
        (
            Box::new(|s: &FakeSecrets| {
                s.secrets
                    .borrow_mut()
                    .get_mut(SECRET)
                    .unwrap()
                    .versions
                    .remove(TOKEN);
            }),
            "createSecret",
            "UnknownVersion",
        ),
        (
            Box::new(|s: &FakeSecrets| s.set_version(TOKEN, None, &[])),
            "setSecret",
            "UnknownVersion",
        ),
        (
            Box::new(|s: &FakeSecrets| s.set_version(TOKEN, None, &["AWSPREVIOUS"])),
            "testSecret",
            "NotPending",
        ),
        (
            Box::new(|_: &FakeSecrets| {}),
            "create_secret",
            "InvalidStep",
        ),
        (
            Box::new(|_: &FakeSecrets| {}),
            "CreateSecret",
            "InvalidStep",
        ),
    ];
    for (setup, name, error_type) in cases {
        let store = secrets(&current_secret());
        setup(&store);
        let before = store.snapshot();
        let app = container(&store, &db);
        let err = step(&app, name).await.unwrap_err();
        assert_eq!(err.error_type(), error_type, "{name}: {err}");
        assert!(err.to_string().contains(SECRET), "{err}");
        assert_eq!(store.snapshot(), before);
        assert_eq!(
            store.calls.get(),
            Calls {
                describe: 1,
                ..Calls::default()
            },
            "{name}"
        );
    }
    assert!(db.logins.borrow().is_empty());

    // A missing RotationEnabled is tolerated.
    let store = secrets(&current_secret());
    store.edit(SECRET, |i| i.description.rotation_enabled = None);
    let app = container(&store, &db);
    step(&app, "createSecret").await.unwrap();
}

#[tokio::test]
async fn invalid_events_make_no_call() {
    let store = secrets(&current_secret());
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    for payload in [
        json!({"SecretId": SECRET, "ClientRequestToken": TOKEN}),
        json!({"Step": "createSecret", "ClientRequestToken": TOKEN}),
        json!({"Step": "createSecret", "SecretId": SECRET, "ClientRequestToken": ""}),
        json!({"Step": "createSecret", "SecretId": SECRET, "ClientRequestToken": "tok\u{e9}n"}),
    ] {
        let app = container(&store, &db);
        let err = invoke(&payload, deadline(), &app).await.0.unwrap_err();
        assert_eq!(err.error_type(), "InvalidEvent");
    }
    assert_eq!(store.calls.get(), Calls::default());
}

#[tokio::test]
async fn set_secret_accepts_a_pending_password_that_already_works() {
    let store = secrets(&current_secret());
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    let app = container(&store, &db);
    step(&app, "createSecret").await.unwrap();
    // The ALTER went through but the response was lost.
    db.users
        .borrow_mut()
        .insert("app".into(), NEW_PASSWORD.into());
    step(&app, "setSecret").await.unwrap();
    assert!(db.changes.borrow().is_empty());
    assert_eq!(
        *db.logins.borrow(),
        [("app".to_owned(), false), ("app".to_owned(), true)],
        "current is refused, pending logs in"
    );
}

#[tokio::test]
async fn set_secret_falls_back_to_previous() {
    let store = secrets(&current_secret());
    let mut previous = current_secret();
    previous["password"] = json!("previous-pw");
    previous["ssl"] = json!(true);
    store.set_version("prev", Some(previous.to_string()), &["AWSPREVIOUS"]);
    let db = FakeDb::with_user("app", "previous-pw");
    let app = container(&store, &db);
    step(&app, "createSecret").await.unwrap();
    step(&app, "setSecret").await.unwrap();
    assert_eq!(db.password_of("app").as_deref(), Some(NEW_PASSWORD));
    let logins: Vec<bool> = db.logins.borrow().iter().map(|(_, ok)| *ok).collect();
    assert_eq!(logins, [false, false, true], "current, pending, previous");
}

#[tokio::test]
async fn the_password_replaced_is_that_of_the_credential_that_logged_in() {
    // Current logs in: its password is the one replaced.
    let store = secrets(&current_secret());
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    db.require_current.set(true);
    let app = container(&store, &db);
    rotate(&app).await.unwrap();
    assert_eq!(*db.replaced.borrow(), [OLD_PASSWORD]);
    assert_eq!(db.password_of("app").as_deref(), Some(NEW_PASSWORD));

    // Current no longer logs in, previous does: previous's password is the one replaced.
    let store = secrets(&current_secret());
    let mut previous = current_secret();
    previous["password"] = json!("previous-pw");
    store.set_version("prev", Some(previous.to_string()), &["AWSPREVIOUS"]);
    let db = FakeDb::with_user("app", "previous-pw");
    db.require_current.set(true);
    let app = container(&store, &db);
    rotate(&app).await.unwrap();
    assert_eq!(*db.replaced.borrow(), ["previous-pw"]);
    assert_eq!(db.password_of("app").as_deref(), Some(NEW_PASSWORD));
}

#[tokio::test]
async fn set_secret_without_a_working_login_fails_and_changes_nothing() {
    let store = secrets(&current_secret());
    let db = FakeDb::with_user("app", "changed-by-hand");
    let app = container(&store, &db);
    step(&app, "createSecret").await.unwrap();
    let before = store.snapshot();
    let err = step(&app, "setSecret").await.unwrap_err();
    assert_eq!(err.error_type(), "LoginFailed");
    assert!(
        err.to_string().contains("previous, current, or pending"),
        "{err}"
    );
    assert_eq!(db.password_of("app").as_deref(), Some("changed-by-hand"));
    assert_eq!(store.snapshot(), before);
}

#[tokio::test]
async fn set_secret_refuses_a_pending_secret_for_another_user_or_host() {
    for (key, value, what) in [
        ("username", "admin", "user"),
        ("host", "other.internal", "host"),
    ] {
        let store = secrets(&current_secret());
        let mut pending = current_secret();
        pending["password"] = json!(NEW_PASSWORD);
        pending[key] = json!(value);
        store.set_version(TOKEN, Some(pending.to_string()), &["AWSPENDING"]);
        let db = FakeDb::with_user("app", OLD_PASSWORD);
        db.users
            .borrow_mut()
            .insert("admin".into(), "admin-pw".into());
        let app = container(&store, &db);
        let err = step(&app, "setSecret").await.unwrap_err();
        assert_eq!(err.error_type(), "IdentityMismatch");
        let text = err.to_string();
        assert!(text.contains(what) && text.contains(value), "{text}");
        assert!(db.changes.borrow().is_empty());
        assert_eq!(db.password_of("admin").as_deref(), Some("admin-pw"));
        assert!(db.logins.borrow().is_empty(), "refused before any login");
    }
}

#[tokio::test]
async fn set_secret_refuses_a_previous_secret_for_another_user() {
    let store = secrets(&current_secret());
    let mut previous = current_secret();
    previous["username"] = json!("admin");
    previous["password"] = json!("admin-pw");
    store.set_version("prev", Some(previous.to_string()), &["AWSPREVIOUS"]);
    let db = FakeDb::with_user("app", "changed-by-hand");
    db.users
        .borrow_mut()
        .insert("admin".into(), "admin-pw".into());
    let app = container(&store, &db);
    step(&app, "createSecret").await.unwrap();
    let err = step(&app, "setSecret").await.unwrap_err();
    assert_refused_as_mismatch(&err, "previous valid user admin", &db);
}

#[tokio::test]
async fn set_secret_refuses_a_previous_secret_on_another_port() {
    // Someone who may write but not read the secret puts a current version pointing at a port
    // of the same host where they listen, which refuses the login: the function must not log in
    // to the real port with the previous version and then hand the new password to theirs.
    let mut redirected = current_secret();
    redirected["port"] = json!(6543);
    let store = secrets(&redirected);
    store.set_version("prev", Some(current_secret().to_string()), &["AWSPREVIOUS"]);
    // The real server knows the previous (the real) password; nothing answers on 6543.
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    db.closed_ports.borrow_mut().push(6543);
    let app = container(&store, &db);
    step(&app, "createSecret").await.unwrap();
    let err = step(&app, "setSecret").await.unwrap_err();
    assert_refused_as_mismatch(&err, "port 6543 other than previous host 5432", &db);
    assert_eq!(db.password_of("app").as_deref(), Some(OLD_PASSWORD));
}

#[tokio::test]
async fn a_master_outside_the_configured_masters_is_refused_before_it_is_read() {
    let store = secrets(&alternating_secret("app"));
    store.add_master(master_secret("master-pw", HOST));
    let db = alternating_db("app");
    let app = container(&store, &db);
    step(&app, "createSecret").await.unwrap();
    let config = Config {
        master_secret_arns: Some(vec![
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:ops-master-AbC".into(),
        ]),
        ..Config::default()
    };
    let gets = store.calls.get().get;
    let app = container_with(&store, &db, config);
    let err = step(&app, "setSecret").await.unwrap_err();
    assert_refused_as_mismatch(&err, MASTER, &db);
    assert!(err.to_string().contains("MASTER_SECRET_ARNS"), "{err}");
    // Current and pending were read; the master never was.
    assert_eq!(store.calls.get().get, gets + 2);
    // Listed, it is used.
    let config = Config {
        master_secret_arns: Some(vec![MASTER.into()]),
        ..Config::default()
    };
    let app = container_with(&store, &db, config);
    step(&app, "setSecret").await.unwrap();
    assert_eq!(*db.changes.borrow(), ["app_clone"]);
}

#[tokio::test]
async fn a_failing_password_statement_is_an_error_and_current_still_works() {
    let store = secrets(&current_secret());
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    db.fail_set.set(true);
    let app = container(&store, &db);
    step(&app, "createSecret").await.unwrap();
    let err = step(&app, "setSecret").await.unwrap_err();
    assert_eq!(err.error_type(), "DatabaseError");
    assert_eq!(db.password_of("app").as_deref(), Some(OLD_PASSWORD));
    let err = step(&app, "testSecret").await.unwrap_err();
    assert_eq!(err.error_type(), "LoginFailed");
    db.fail_set.set(false);
    rotate(&app).await.unwrap();
    assert_eq!(db.password_of("app").as_deref(), Some(NEW_PASSWORD));
}

#[tokio::test]
async fn test_secret_alone_never_writes() {
    let store = secrets(&current_secret());
    // RotateImmediately=false: the service stages a copy of the current value and runs testSecret.
    store.set_version(TOKEN, Some(current_secret().to_string()), &["AWSPENDING"]);
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    let before = store.snapshot();
    let app = container(&store, &db);
    step(&app, "testSecret").await.unwrap();
    assert_eq!(store.snapshot(), before);
    assert_eq!(store.calls.get().writes(), 0);
    assert!(db.changes.borrow().is_empty());

    // Without a pending value, not found is the service's answer, and not one testSecret expects.
    let store = secrets(&current_secret());
    let app = container(&store, &db);
    let err = step(&app, "testSecret").await.unwrap_err();
    assert_eq!(err.error_type(), "SecretsManagerError");
    let text = err.to_string();
    assert!(
        text.contains("ResourceNotFoundException") && text.contains(SECRET),
        "{text}"
    );
}

#[tokio::test]
async fn finish_secret_without_a_current_version_writes_nothing() {
    let store = secrets(&current_secret());
    store.set_version(OLD_TOKEN, Some(current_secret().to_string()), &[]);
    let db = FakeDb::default();
    let app = container(&store, &db);
    let err = step(&app, "finishSecret").await.unwrap_err();
    assert_eq!(err.error_type(), "UnknownVersion");
    assert!(err.to_string().contains("AWSCURRENT"), "{err}");
    assert_eq!(store.calls.get().writes(), 0);
}

#[tokio::test]
async fn a_vanished_current_version_is_an_error_not_an_absence() {
    let store = secrets(&current_secret());
    store.set_version(OLD_TOKEN, Some(current_secret().to_string()), &[]);
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    for name in ["createSecret", "setSecret"] {
        let before = store.snapshot();
        let app = container(&store, &db);
        let err = step(&app, name).await.unwrap_err();
        assert_eq!(err.error_type(), "SecretsManagerError", "{name}: {err}");
        let text = err.to_string();
        assert!(
            text.contains("GetSecretValue") && text.contains(SECRET),
            "{text}"
        );
        assert_eq!(store.snapshot(), before);
    }
    assert_eq!(store.calls.get().writes(), 0);
    assert!(db.logins.borrow().is_empty());
}

#[tokio::test]
async fn an_exhausted_deadline_stops_before_the_login() {
    let store = secrets(&current_secret());
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    let app = container(&store, &db);
    step(&app, "createSecret").await.unwrap();
    let deadline = Deadline::new(Some(std::time::Instant::now()), Duration::from_secs(5));
    let err = invoke(&event("setSecret"), deadline, &app)
        .await
        .0
        .unwrap_err();
    assert_eq!(err.error_type(), "DeadlineExceeded");
    assert!(err.to_string().contains("setSecret"), "{err}");
    assert!(db.logins.borrow().is_empty());
}

#[tokio::test]
async fn invalid_secrets_fail_naming_the_stage_and_field() {
    let mut current = current_secret();
    current["engine"] = json!("Postgres");
    let store = secrets(&current);
    let db = FakeDb::default();
    let app = container(&store, &db);
    let err = step(&app, "createSecret").await.unwrap_err();
    assert_eq!(err.error_type(), "InvalidSecret");
    let text = err.to_string();
    assert!(
        text.contains("engine") && text.contains("AWSCURRENT") && text.contains(SECRET),
        "{text}"
    );
    assert!(!text.contains("SENTINEL"));
    assert_eq!(store.calls.get().writes(), 0);
}

#[tokio::test]
async fn no_password_reaches_logs_errors_or_debug() {
    let mut errors = Vec::new();
    // Happy path.
    let store = secrets(&current_secret());
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    let app = container(&store, &db);
    rotate(&app).await.unwrap();
    // Failing paths: no login, identity mismatch, failing statement, bad JSON.
    let store = secrets(&current_secret());
    let db = FakeDb::with_user("app", "changed-by-hand");
    let app = container(&store, &db);
    step(&app, "createSecret").await.unwrap();
    errors.push(step(&app, "setSecret").await.unwrap_err());
    errors.push(step(&app, "testSecret").await.unwrap_err());
    let store = secrets(&current_secret());
    let mut pending = current_secret();
    pending["username"] = json!("admin");
    pending["password"] = json!(NEW_PASSWORD);
    store.set_version(TOKEN, Some(pending.to_string()), &["AWSPENDING"]);
    let app = container(&store, &FakeDb::default());
    errors.push(step(&app, "setSecret").await.unwrap_err());
    let store = secrets(&current_secret());
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    db.fail_set.set(true);
    let app = container(&store, &db);
    step(&app, "createSecret").await.unwrap();
    errors.push(step(&app, "setSecret").await.unwrap_err());
    let store = secrets(&current_secret());
    store.set_version(
        TOKEN,
        Some(format!("{{\"password\": \"{NEW_PASSWORD}\",")),
        &["AWSPENDING"],
    );
    let app = container(&store, &db);
    errors.push(step(&app, "testSecret").await.unwrap_err());

    let logs = capture::logs();
    assert!(logs.contains("password set"), "the capture works: {logs}");
    assert!(
        logs.contains(SECRET) && logs.contains(TOKEN),
        "lines carry secret and token"
    );
    assert!(!logs.contains("rot-token"), "RotationToken is never logged");
    for error in errors {
        let mut shown = format!("{error} {error:?}");
        let diagnostic: lambda_runtime::Diagnostic = error.into();
        shown.push_str(&format!("{diagnostic:?}"));
        assert!(!shown.contains("SENTINEL"), "{shown}");
    }
    assert!(!logs.contains("SENTINEL"), "a password reached the logs");
}

fn alternating_secret(user: &str) -> Value {
    let mut secret = current_secret();
    secret["username"] = json!(user);
    secret["masterarn"] = json!(MASTER);
    secret["rotation_strategy"] = json!("alternating-users");
    secret
}

fn master_secret(password: &str, host: &str) -> String {
    json!({"engine": "postgres", "host": host, "username": "master", "password": password})
        .to_string()
}

fn alternating_db(user: &str) -> FakeDb {
    let db = FakeDb::with_user(user, OLD_PASSWORD);
    db.users
        .borrow_mut()
        .insert("master".into(), "master-pw".into());
    db
}

#[tokio::test]
async fn alternating_users_rotate_the_clone_then_the_original() {
    let store = secrets(&alternating_secret("app"));
    store.add_master(master_secret("master-pw", HOST));
    let db = alternating_db("app");
    let app = container(&store, &db);
    rotate(&app).await.unwrap();
    let current = store.value(TOKEN).unwrap();
    assert_eq!(current["username"], "app_clone");
    assert_eq!(current["password"], NEW_PASSWORD);
    assert_eq!(db.password_of("app_clone").as_deref(), Some(NEW_PASSWORD));
    assert_eq!(
        db.password_of("app").as_deref(),
        Some(OLD_PASSWORD),
        "the previous user still works"
    );
    assert_eq!(*db.changes.borrow(), ["app_clone"]);

    // Second rotation flips back to the original.
    let store2 = secrets(&current);
    store2.add_master(master_secret("master-pw", HOST));
    rotate(&container(&store2, &db)).await.unwrap();
    assert_eq!(store2.value(TOKEN).unwrap()["username"], "app");
    assert_eq!(*db.changes.borrow(), ["app_clone", "app"]);
}

#[tokio::test]
async fn strategy_comes_from_the_environment_unless_the_secret_overrides_it() {
    let mut secret = alternating_secret("app");
    secret.as_object_mut().unwrap().remove("rotation_strategy");
    let store = secrets(&secret);
    let db = alternating_db("app");
    let config = Config {
        strategy: Strategy::AlternatingUsers,
        ..Config::default()
    };
    let app = container_with(&store, &db, config.clone());
    step(&app, "createSecret").await.unwrap();
    assert_eq!(store.value(TOKEN).unwrap()["username"], "app_clone");

    let mut secret = alternating_secret("app");
    secret["rotation_strategy"] = json!("single-user");
    let store = secrets(&secret);
    let app = container_with(&store, &db, config);
    step(&app, "createSecret").await.unwrap();
    assert_eq!(store.value(TOKEN).unwrap()["username"], "app");
}

#[tokio::test]
async fn alternating_users_refusals_change_nothing() {
    struct Case {
        name: &'static str,
        secret: Value,
        master: Option<String>,
        step: &'static str,
        error_type: &'static str,
        needle: &'static str,
    }
    let mut no_master = alternating_secret("app");
    no_master.as_object_mut().unwrap().remove("masterarn");
    let long = "x".repeat(58);
    let cases = [
        Case {
            name: "masterarn missing",
            secret: no_master.clone(),
            master: None,
            step: "createSecret",
            error_type: "InvalidSecret",
            needle: "masterarn key is missing",
        },
        Case {
            name: "clone too long",
            secret: alternating_secret(&long),
            master: None,
            step: "createSecret",
            error_type: "InvalidSecret",
            needle: "exceed 63 bytes",
        },
        Case {
            name: "master password wrong",
            secret: alternating_secret("app"),
            master: Some(master_secret("wrong", HOST)),
            step: "setSecret",
            error_type: "LoginFailed",
            needle: MASTER,
        },
        Case {
            name: "master on another host",
            secret: alternating_secret("app"),
            master: Some(master_secret("master-pw", "other.internal")),
            step: "setSecret",
            error_type: "IdentityMismatch",
            needle: "master host other.internal",
        },
        Case {
            name: "master on the same host at another port",
            secret: alternating_secret("app"),
            master: Some(
                json!({"engine": "postgres", "host": HOST, "port": 5433, "username": "master",
                       "password": "master-pw"})
                .to_string(),
            ),
            step: "setSecret",
            error_type: "IdentityMismatch",
            needle: "host db.internal:5432 other than master host db.internal:5433",
        },
        Case {
            name: "master secret missing",
            secret: alternating_secret("app"),
            master: None,
            step: "setSecret",
            error_type: "SecretsManagerError",
            needle: MASTER,
        },
    ];
    for case in cases {
        let store = secrets(&case.secret);
        if let Some(master) = &case.master {
            store.add_master(master.clone());
        }
        let db = alternating_db(case.secret["username"].as_str().unwrap());
        let app = container(&store, &db);
        if case.step == "setSecret" {
            step(&app, "createSecret").await.unwrap();
        }
        let before = store.snapshot();
        let err = step(&app, case.step).await.unwrap_err();
        assert_eq!(err.error_type(), case.error_type, "{}: {err}", case.name);
        assert!(
            err.to_string().contains(case.needle),
            "{}: {err}",
            case.name
        );
        assert_eq!(store.snapshot(), before, "{}", case.name);
        assert!(db.changes.borrow().is_empty(), "{}", case.name);
    }
}

#[tokio::test]
async fn alternating_users_require_a_working_current_credential_and_the_clone_name() {
    // Current credential invalid: the master is never used.
    let store = secrets(&alternating_secret("app"));
    store.add_master(master_secret("master-pw", HOST));
    let db = alternating_db("app");
    let app = container(&store, &db);
    step(&app, "createSecret").await.unwrap();
    db.users.borrow_mut().insert("app".into(), "changed".into());
    let err = step(&app, "setSecret").await.unwrap_err();
    assert_eq!(err.error_type(), "LoginFailed");
    assert!(err.to_string().contains("current"), "{err}");
    assert!(db.logins.borrow().iter().all(|(user, _)| user != "master"));
    assert!(db.changes.borrow().is_empty());

    // A pending user that is not current's clone is refused before any login but pending's.
    let store = secrets(&alternating_secret("app"));
    store.add_master(master_secret("master-pw", HOST));
    let mut pending = alternating_secret("admin");
    pending["password"] = json!(NEW_PASSWORD);
    store.set_version(TOKEN, Some(pending.to_string()), &["AWSPENDING"]);
    let db = alternating_db("app");
    let app = container(&store, &db);
    let err = step(&app, "setSecret").await.unwrap_err();
    assert_refused_as_mismatch(&err, "current user or clone app", &db);
}

#[tokio::test]
async fn each_invocation_reports_its_metrics() {
    let store = secrets(&current_secret());
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    let deadline = deadline();
    let app = container(&store, &db);
    let mut reports = Vec::new();
    for name in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        let (result, report) = invoke(&event(name), deadline, &app).await;
        result.unwrap();
        reports.push(report);
    }
    for report in &reports[..3] {
        assert_eq!(report.engine, Some(crate::engine::Engine::Postgres));
        assert_eq!(report.strategy, Some(Strategy::SingleUser));
        assert_eq!(report.error_type, None);
        assert_eq!(report.secret_id.as_deref(), Some(SECRET));
    }
    assert_eq!(reports[3].step, "finishSecret");
    assert_eq!(reports[3].engine, None, "finishSecret reads no secret");
    // The container remembers what the earlier steps read, as `handle` does.
    let kinds = SecretKinds::new(8);
    for report in &mut reports {
        kinds.complete(report);
    }
    assert_eq!(
        (reports[3].engine, reports[3].strategy),
        (
            Some(crate::engine::Engine::Postgres),
            Some(Strategy::SingleUser)
        )
    );
    assert!(reports.iter().all(|r| r.retries == 0 && r.throttled == 0));

    let (result, report) = invoke(&event("bogus"), deadline, &app).await;
    assert!(result.is_ok(), "already current");
    assert_eq!(
        report.step, "invalid",
        "an unknown step never becomes a dimension value"
    );
    let line = report.emf_line(&Config::default().metrics, 1);
    assert!(!line.contains("SENTINEL"));

    let (result, report) = invoke(&json!({"Step": "setSecret"}), deadline, &app).await;
    assert_eq!(result.unwrap_err().error_type(), "InvalidEvent");
    assert_eq!(report.error_type, Some("InvalidEvent"));
}

#[tokio::test]
async fn alternating_set_secret_checks_masterarn_before_any_login() {
    let mut secret = alternating_secret("app");
    secret.as_object_mut().unwrap().remove("masterarn");
    let store = secrets(&secret);
    let mut pending = secret.clone();
    pending["username"] = json!("app_clone");
    pending["password"] = json!(NEW_PASSWORD);
    store.set_version(TOKEN, Some(pending.to_string()), &["AWSPENDING"]);
    let db = alternating_db("app");
    let app = container(&store, &db);
    let err = step(&app, "setSecret").await.unwrap_err();
    assert_eq!(err.error_type(), "InvalidSecret");
    assert!(
        err.to_string().contains("masterarn key is missing"),
        "{err}"
    );
    assert!(db.logins.borrow().is_empty(), "no database work");
}

#[tokio::test]
async fn an_rds_managed_master_secret_is_named_with_its_missing_host() {
    let store = secrets(&alternating_secret("app"));
    store.add_master(json!({"username": "master", "password": "master-pw"}).to_string());
    let db = alternating_db("app");
    let app = container(&store, &db);
    step(&app, "createSecret").await.unwrap();
    let err = step(&app, "setSecret").await.unwrap_err();
    assert_eq!(err.error_type(), "InvalidSecret");
    let text = err.to_string();
    assert!(
        text.contains(MASTER) && text.contains("host key is missing"),
        "{text}"
    );
    assert!(db.changes.borrow().is_empty());
}

/// setSecret, the configuration test and the doctor on the same situations.
mod agreement;
/// The dual-password strategy.
mod dual;
/// Alternating users with masters that RDS manages or places on other hosts.
mod rds;
