//! The protocol against a stateful in-memory secret store and database.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::rds::fake::FakeRds;
use crate::rotators::Account;

const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-AbCdEf";
const TOKEN: &str = "6f1c2a9e-3b7d-4c58-9e21-0d4a8b7c5e13";
const OLD_TOKEN: &str = "00000000-0000-4000-8000-000000000001";
const OLD_PASSWORD: &str = "SENTINEL-old-pw-'\\";
const NEW_PASSWORD: &str = "SENTINEL-new-pw-'\\";
const HOST: &str = "db.internal";

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Calls {
    describe: usize,
    get: usize,
    put: usize,
    promote: usize,
}

impl Calls {
    fn total(self) -> usize {
        self.describe + self.get + self.put + self.promote
    }
    fn writes(self) -> usize {
        self.put + self.promote
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Version {
    value: Option<String>,
    stages: Vec<String>,
}

/// Models the service: labels, "not found" for valueless versions, `VersionId`/`VersionStage`
/// agreement, `ResourceExistsException` for a token reused with other content, and `AWSPREVIOUS`
/// attached when `AWSCURRENT` moves.
#[derive(Debug)]
struct FakeStore {
    rotation_enabled: Cell<Option<bool>>,
    versions: RefCell<BTreeMap<String, Version>>,
    calls: Cell<Calls>,
    rotation_tokens: RefCell<Vec<Option<String>>>,
    /// AWSCURRENT values of other secrets (the master secret), by id.
    others: RefCell<HashMap<String, String>>,
    /// `DescribeSecret` of other secrets, by id (default: no tags).
    others_described: RefCell<HashMap<String, SecretDescription>>,
    /// The secret's own tags.
    tags: RefCell<Vec<(String, String)>>,
}

fn sm_error(operation: &'static str, code: &str) -> Error {
    Error::SecretsManager {
        secret_id: SECRET.into(),
        operation,
        code: Some(code.into()),
        detail: code.into(),
    }
}

/// Captures every log line of every test in this module, at every level, as JSON. Installed as the
/// global subscriber once: per-thread subscribers race with tracing's callsite interest cache.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

static CAPTURE: std::sync::OnceLock<Capture> = std::sync::OnceLock::new();

fn capture_logs() -> &'static Capture {
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .json()
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        capture
    })
}

fn captured_logs() -> String {
    String::from_utf8(capture_logs().0.lock().unwrap().clone()).unwrap()
}

impl FakeStore {
    /// A secret with one current version, rotation enabled, and the service's empty AWSPENDING
    /// version under `TOKEN`.
    fn new(current: &Value) -> Self {
        capture_logs();
        let store = FakeStore {
            rotation_enabled: Cell::new(Some(true)),
            versions: RefCell::new(BTreeMap::new()),
            calls: Cell::new(Calls::default()),
            rotation_tokens: RefCell::new(Vec::new()),
            others: RefCell::new(HashMap::new()),
            others_described: RefCell::new(HashMap::new()),
            tags: RefCell::new(Vec::new()),
        };
        store.insert(OLD_TOKEN, Some(current.to_string()), &["AWSCURRENT"]);
        store.insert(TOKEN, None, &["AWSPENDING"]);
        store
    }

    fn insert(&self, id: &str, value: Option<String>, stages: &[&str]) {
        self.versions.borrow_mut().insert(
            id.into(),
            Version {
                value,
                stages: stages.iter().map(|s| (*s).to_owned()).collect(),
            },
        );
    }

    fn count(&self, f: impl FnOnce(&mut Calls)) {
        let mut calls = self.calls.get();
        f(&mut calls);
        self.calls.set(calls);
    }

    fn value(&self, id: &str) -> Option<Value> {
        self.versions.borrow()[id]
            .value
            .as_deref()
            .map(|v| serde_json::from_str(v).unwrap())
    }

    fn stages(&self, id: &str) -> Vec<String> {
        self.versions.borrow()[id].stages.clone()
    }

    fn snapshot(&self) -> BTreeMap<String, Version> {
        self.versions.borrow().clone()
    }
}

impl SecretStore for FakeStore {
    async fn describe(&self, id: &str, _: &StepContext<'_>) -> Result<SecretDescription, Error> {
        self.count(|c| c.describe += 1);
        if id != SECRET {
            let described = self.others_described.borrow().get(id).cloned();
            return Ok(described.unwrap_or_default());
        }
        Ok(SecretDescription {
            rotation_enabled: self.rotation_enabled.get(),
            versions: self
                .versions
                .borrow()
                .iter()
                .filter(|(_, v)| !v.stages.is_empty())
                .map(|(k, v)| (k.clone(), v.stages.clone()))
                .collect(),
            arn: Some(SECRET.to_owned()),
            tags: self.tags.borrow().clone(),
        })
    }

    async fn get(
        &self,
        secret_id: &str,
        stage: Stage,
        version: Option<&str>,
        ctx: &StepContext<'_>,
    ) -> Result<String, Error> {
        let value = self.get_if_exists(secret_id, stage, version, ctx).await?;
        value.ok_or_else(|| Error::SecretsManager {
            secret_id: secret_id.into(),
            operation: "GetSecretValue",
            code: Some("ResourceNotFoundException".into()),
            detail: "ResourceNotFoundException: Secrets Manager can't find the specified secret"
                .into(),
        })
    }

    async fn get_if_exists(
        &self,
        secret_id: &str,
        stage: Stage,
        version: Option<&str>,
        _: &StepContext<'_>,
    ) -> Result<Option<String>, Error> {
        self.count(|c| c.get += 1);
        if secret_id != SECRET {
            assert_eq!((stage, version), (Stage::Current, None));
            return Ok(self.others.borrow().get(secret_id).cloned());
        }
        let versions = self.versions.borrow();
        let Some((id, found)) = versions
            .iter()
            .find(|(_, v)| v.stages.iter().any(|s| s == stage.as_str()))
        else {
            return Ok(None);
        };
        if version.is_some_and(|v| v != id) {
            return Err(sm_error("GetSecretValue", "InvalidRequestException"));
        }
        Ok(found.value.clone())
    }

    async fn put_pending(
        &self,
        _: &str,
        token: &str,
        value: &str,
        rotation_token: Option<&str>,
        _: &StepContext<'_>,
    ) -> Result<(), Error> {
        self.count(|c| c.put += 1);
        self.rotation_tokens
            .borrow_mut()
            .push(rotation_token.map(str::to_owned));
        let mut versions = self.versions.borrow_mut();
        if let Some(Version {
            value: Some(existing),
            ..
        }) = versions.get(token)
        {
            if existing != value {
                return Err(sm_error("PutSecretValue", "ResourceExistsException"));
            }
        }
        for v in versions.values_mut() {
            v.stages.retain(|s| s != "AWSPENDING");
        }
        let entry = versions.entry(token.into()).or_insert(Version {
            value: None,
            stages: vec![],
        });
        entry.value = Some(value.into());
        entry.stages.push("AWSPENDING".into());
        Ok(())
    }

    async fn promote(
        &self,
        _: &str,
        token: &str,
        from: &str,
        _: &StepContext<'_>,
    ) -> Result<(), Error> {
        self.count(|c| c.promote += 1);
        let mut versions = self.versions.borrow_mut();
        if !versions
            .get(from)
            .is_some_and(|v| v.stages.iter().any(|s| s == "AWSCURRENT"))
            || !versions.contains_key(token)
        {
            return Err(sm_error(
                "UpdateSecretVersionStage",
                "InvalidParameterException",
            ));
        }
        for v in versions.values_mut() {
            v.stages.retain(|s| s != "AWSCURRENT" && s != "AWSPREVIOUS");
        }
        versions
            .get_mut(from)
            .unwrap()
            .stages
            .push("AWSPREVIOUS".into());
        versions
            .get_mut(token)
            .unwrap()
            .stages
            .push("AWSCURRENT".into());
        Ok(())
    }
}

/// A database with users and passwords on one host, recording logins and password changes.
#[derive(Debug, Default)]
struct FakeDb {
    users: RefCell<HashMap<String, String>>,
    logins: RefCell<Vec<(String, bool)>>,
    changes: RefCell<Vec<String>>,
    fail_set: Cell<bool>,
    /// Models MySQL's `PASSWORD REQUIRE CURRENT`: a user changing its own password must name
    /// the password it has now (`REPLACE`), else error 3891.
    require_current: Cell<bool>,
    /// The password each own-password change named as the one it replaces.
    replaced: RefCell<Vec<String>>,
    /// Second passwords (dual-password strategy), by user.
    second: RefCell<HashMap<String, String>>,
    /// The account every login is authenticated as, when the server maps logins to another
    /// account (an anonymous or proxied one).
    authenticated_as: RefCell<Option<String>>,
    /// Hosts other than `HOST` that serve the same users (RDS replicas and readers).
    other_hosts: RefCell<Vec<String>>,
    /// Every credential a connection was attempted with.
    connected: RefCell<Vec<DbSecret>>,
    /// Ports of the served hosts where nothing answers as this database.
    closed_ports: RefCell<Vec<u16>>,
}

#[derive(Debug)]
struct FakeSession {
    user: String,
}

impl FakeDb {
    fn with_user(user: &str, password: &str) -> Self {
        let db = FakeDb::default();
        db.users.borrow_mut().insert(user.into(), password.into());
        db
    }

    fn password_of(&self, user: &str) -> Option<String> {
        self.users.borrow().get(user).cloned()
    }
}

impl Rotator for FakeDb {
    type Session = FakeSession;

    async fn connect(
        &self,
        creds: &DbSecret,
        _: &str,
        ctx: &StepContext<'_>,
    ) -> Result<FakeSession, Error> {
        ctx.deadline.connect_timeout(ctx.step, "login")?;
        self.connected.borrow_mut().push(creds.clone());
        let accepts = |passwords: &RefCell<HashMap<String, String>>| {
            passwords.borrow().get(creds.username()).map(String::as_str)
                == Some(creds.password().expose())
        };
        let served = (creds.host() == HOST
            || self.other_hosts.borrow().iter().any(|h| h == creds.host()))
            && !self.closed_ports.borrow().contains(&creds.port());
        let ok = served && (accepts(&self.users) || accepts(&self.second));
        self.logins.borrow_mut().push((creds.username().into(), ok));
        if ok {
            let mapped = self.authenticated_as.borrow().clone();
            Ok(FakeSession {
                user: mapped
                    .filter(|_| creds.username() != "master")
                    .unwrap_or_else(|| creds.username().into()),
            })
        } else {
            Err(Error::Database {
                engine: creds.engine(),
                action: "logging in",
                code: "SQLSTATE 28P01".into(),
            })
        }
    }

    async fn check(&self, _: &mut FakeSession, _: &StepContext<'_>) -> Result<(), Error> {
        Ok(())
    }

    async fn set_own_password(
        &self,
        session: &mut FakeSession,
        login: &DbSecret,
        new: &Password,
        _: &StepContext<'_>,
    ) -> Result<(), Error> {
        assert_eq!(
            session.user,
            login.username(),
            "a user may change only its own password"
        );
        let failure = |code: &str| Error::Database {
            engine: login.engine(),
            action: "setting the password",
            code: code.into(),
        };
        if self.fail_set.get() {
            return Err(failure("SQLSTATE 42501"));
        }
        let replaced = login.password().expose().to_owned();
        self.replaced.borrow_mut().push(replaced.clone());
        if self.require_current.get() && self.password_of(login.username()) != Some(replaced) {
            return Err(failure("error 3891 (HY000)"));
        }
        self.users
            .borrow_mut()
            .insert(login.username().into(), new.expose().into());
        self.changes.borrow_mut().push(login.username().into());
        Ok(())
    }

    fn account(&self, session: &FakeSession) -> Account {
        Account {
            user: session.user.clone(),
            host: Some("%".into()),
        }
    }

    async fn set_password_as_master(
        &self,
        master: &mut FakeSession,
        current: &Account,
        _: &DbSecret,
        pending: &DbSecret,
        _: &StepContext<'_>,
    ) -> Result<(), Error> {
        assert_eq!(
            master.user, "master",
            "only the master changes another user"
        );
        assert_eq!(current.host.as_deref(), Some("%"));
        self.users.borrow_mut().insert(
            pending.username().into(),
            pending.password().expose().into(),
        );
        self.changes.borrow_mut().push(pending.username().into());
        Ok(())
    }

    async fn add_own_password(
        &self,
        session: &mut FakeSession,
        current: &DbSecret,
        pending: &DbSecret,
        _: &StepContext<'_>,
    ) -> Result<(), Error> {
        assert_eq!(session.user, pending.username(), "only its own account");
        self.keep_both(current, pending);
        Ok(())
    }

    async fn add_password_as_master(
        &self,
        master: &mut FakeSession,
        account: &Account,
        current: &DbSecret,
        pending: &DbSecret,
        _: &StepContext<'_>,
    ) -> Result<(), Error> {
        assert_eq!(
            master.user, "master",
            "only the master writes both passwords"
        );
        assert_eq!(account.user, pending.username());
        self.keep_both(current, pending);
        Ok(())
    }

    async fn close(&self, _: FakeSession) {}
}

impl FakeDb {
    /// The pending password becomes the user's, current's is kept as the second one.
    fn keep_both(&self, current: &DbSecret, pending: &DbSecret) {
        let user = pending.username().to_owned();
        self.users
            .borrow_mut()
            .insert(user.clone(), pending.password().expose().into());
        self.second
            .borrow_mut()
            .insert(user.clone(), current.password().expose().into());
        self.changes.borrow_mut().push(user);
    }
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

/// Runs one invocation, returning its result and its metrics report. RDS knows nothing.
async fn invoke(
    payload: &Value,
    deadline: Deadline,
    store: &FakeStore,
    db: &FakeDb,
    config: &Config,
) -> (Result<(), Error>, Report) {
    let rds = Rds::new(FakeRds::default());
    let result = invoke_with(payload, deadline, store, db, &rds, config).await;
    assert_eq!(
        rds.api().calls(),
        0,
        "RDS is asked only where RDS may be involved"
    );
    result
}

/// [`invoke`] with a given RDS.
async fn invoke_with(
    payload: &Value,
    deadline: Deadline,
    store: &FakeStore,
    db: &FakeDb,
    rds: &Rds<FakeRds>,
    config: &Config,
) -> (Result<(), Error>, Report) {
    run_reporting(payload, deadline, store, db, rds, config, &new_password).await
}

/// `err` refuses an identity naming `needle`, and no password changed.
fn assert_refused_as_mismatch(err: &Error, needle: &str, db: &FakeDb) {
    assert_eq!(err.error_type(), "IdentityMismatch");
    assert!(err.to_string().contains(needle), "{err}");
    assert!(db.changes.borrow().is_empty());
}

async fn step(store: &FakeStore, db: &FakeDb, name: &str) -> Result<(), Error> {
    let deadline = Deadline::new(None, Duration::from_secs(5));
    invoke(&event(name), deadline, store, db, &Config::default())
        .await
        .0
}

async fn rotate(store: &FakeStore, db: &FakeDb) -> Result<(), Error> {
    for name in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        step(store, db, name).await?;
    }
    Ok(())
}

#[tokio::test]
async fn full_rotation_moves_labels_and_password_within_the_call_budget() {
    let store = FakeStore::new(&current_secret());
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    rotate(&store, &db).await.unwrap();

    assert_eq!(db.password_of("app").as_deref(), Some(NEW_PASSWORD));
    // AWSPENDING lingers on the new current version until the service clears it.
    assert_eq!(store.stages(TOKEN), ["AWSPENDING", "AWSCURRENT"]);
    assert_eq!(store.stages(OLD_TOKEN), ["AWSPREVIOUS"]);
    let mut expected = current_secret();
    expected["password"] = json!(NEW_PASSWORD);
    assert_eq!(store.value(TOKEN).unwrap(), expected);
    assert_eq!(
        store.versions.borrow()[TOKEN].value.as_deref().unwrap(),
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
            promote: 1
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
    let store = FakeStore::new(&current_secret());
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    for name in ["createSecret", "setSecret", "testSecret"] {
        step(&store, &db, name).await.unwrap();
        let (versions, password) = (store.snapshot(), db.password_of("app"));
        let writes = store.calls.get().writes();
        step(&store, &db, name).await.unwrap();
        assert_eq!(store.snapshot(), versions, "{name} replay");
        assert_eq!(db.password_of("app"), password, "{name} replay");
        assert_eq!(store.calls.get().writes(), writes, "{name} replay");
    }
    assert_eq!(db.changes.borrow().len(), 1);
    step(&store, &db, "finishSecret").await.unwrap();
    let writes = store.calls.get().writes();
    let before = store.calls.get().total();
    for name in [
        "createSecret",
        "setSecret",
        "testSecret",
        "finishSecret",
        "bogusStep",
    ] {
        step(&store, &db, name).await.unwrap();
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
    let store = FakeStore::new(&current_secret());
    let mut pending = current_secret();
    pending["password"] = json!("already-there");
    store.insert(TOKEN, Some(pending.to_string()), &["AWSPENDING"]);
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    step(&store, &db, "createSecret").await.unwrap();
    assert_eq!(store.calls.get().writes(), 0);
    assert_eq!(store.value(TOKEN).unwrap(), pending);
}

#[tokio::test]
async fn guard_branches_write_nothing() {
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    type Setup = Box<dyn Fn(&FakeStore)>;
    let cases: Vec<(Setup, &str, &str)> = vec![
        (
            Box::new(|s: &FakeStore| s.rotation_enabled.set(Some(false))),
            "createSecret",
            "RotationDisabled",
        ),
        (
            Box::new(|s: &FakeStore| {
                s.versions.borrow_mut().remove(TOKEN);
            }),
            "createSecret",
            "UnknownVersion",
        ),
        (
            Box::new(|s: &FakeStore| s.insert(TOKEN, None, &[])),
            "setSecret",
            "UnknownVersion",
        ),
        (
            Box::new(|s: &FakeStore| s.insert(TOKEN, None, &["AWSPREVIOUS"])),
            "testSecret",
            "NotPending",
        ),
        (Box::new(|_: &FakeStore| {}), "create_secret", "InvalidStep"),
        (Box::new(|_: &FakeStore| {}), "CreateSecret", "InvalidStep"),
    ];
    for (setup, name, error_type) in cases {
        let store = FakeStore::new(&current_secret());
        setup(&store);
        let before = store.snapshot();
        let err = step(&store, &db, name).await.unwrap_err();
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
    let store = FakeStore::new(&current_secret());
    store.rotation_enabled.set(None);
    step(&store, &db, "createSecret").await.unwrap();
}

#[tokio::test]
async fn invalid_events_make_no_call() {
    let store = FakeStore::new(&current_secret());
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    for payload in [
        json!({"SecretId": SECRET, "ClientRequestToken": TOKEN}),
        json!({"Step": "createSecret", "ClientRequestToken": TOKEN}),
        json!({"Step": "createSecret", "SecretId": SECRET, "ClientRequestToken": ""}),
        json!({"Step": "createSecret", "SecretId": SECRET, "ClientRequestToken": "tok\u{e9}n"}),
    ] {
        let deadline = Deadline::new(None, Duration::from_secs(5));
        let err = invoke(&payload, deadline, &store, &db, &Config::default())
            .await
            .0
            .unwrap_err();
        assert_eq!(err.error_type(), "InvalidEvent");
    }
    assert_eq!(store.calls.get(), Calls::default());
}

#[tokio::test]
async fn set_secret_accepts_a_pending_password_that_already_works() {
    let store = FakeStore::new(&current_secret());
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    step(&store, &db, "createSecret").await.unwrap();
    // The ALTER went through but the response was lost.
    db.users
        .borrow_mut()
        .insert("app".into(), NEW_PASSWORD.into());
    step(&store, &db, "setSecret").await.unwrap();
    assert!(db.changes.borrow().is_empty());
    assert_eq!(*db.logins.borrow(), [("app".to_owned(), true)]);
}

#[tokio::test]
async fn set_secret_falls_back_to_previous() {
    let store = FakeStore::new(&current_secret());
    let mut previous = current_secret();
    previous["password"] = json!("previous-pw");
    previous["ssl"] = json!(true);
    store.insert("prev", Some(previous.to_string()), &["AWSPREVIOUS"]);
    let db = FakeDb::with_user("app", "previous-pw");
    step(&store, &db, "createSecret").await.unwrap();
    step(&store, &db, "setSecret").await.unwrap();
    assert_eq!(db.password_of("app").as_deref(), Some(NEW_PASSWORD));
    let logins: Vec<bool> = db.logins.borrow().iter().map(|(_, ok)| *ok).collect();
    assert_eq!(logins, [false, false, true], "pending, current, previous");
}

#[tokio::test]
async fn the_password_replaced_is_that_of_the_credential_that_logged_in() {
    // Current logs in: its password is the one replaced.
    let store = FakeStore::new(&current_secret());
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    db.require_current.set(true);
    rotate(&store, &db).await.unwrap();
    assert_eq!(*db.replaced.borrow(), [OLD_PASSWORD]);
    assert_eq!(db.password_of("app").as_deref(), Some(NEW_PASSWORD));

    // Current no longer logs in, previous does: previous's password is the one replaced.
    let store = FakeStore::new(&current_secret());
    let mut previous = current_secret();
    previous["password"] = json!("previous-pw");
    store.insert("prev", Some(previous.to_string()), &["AWSPREVIOUS"]);
    let db = FakeDb::with_user("app", "previous-pw");
    db.require_current.set(true);
    rotate(&store, &db).await.unwrap();
    assert_eq!(*db.replaced.borrow(), ["previous-pw"]);
    assert_eq!(db.password_of("app").as_deref(), Some(NEW_PASSWORD));
}

#[tokio::test]
async fn set_secret_without_a_working_login_fails_and_changes_nothing() {
    let store = FakeStore::new(&current_secret());
    let db = FakeDb::with_user("app", "changed-by-hand");
    step(&store, &db, "createSecret").await.unwrap();
    let before = store.snapshot();
    let err = step(&store, &db, "setSecret").await.unwrap_err();
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
        let store = FakeStore::new(&current_secret());
        let mut pending = current_secret();
        pending["password"] = json!(NEW_PASSWORD);
        pending[key] = json!(value);
        store.insert(TOKEN, Some(pending.to_string()), &["AWSPENDING"]);
        let db = FakeDb::with_user("app", OLD_PASSWORD);
        db.users
            .borrow_mut()
            .insert("admin".into(), "admin-pw".into());
        let err = step(&store, &db, "setSecret").await.unwrap_err();
        assert_eq!(err.error_type(), "IdentityMismatch");
        let text = err.to_string();
        assert!(text.contains(what) && text.contains(value), "{text}");
        assert!(db.changes.borrow().is_empty());
        assert_eq!(db.password_of("admin").as_deref(), Some("admin-pw"));
        assert_eq!(
            db.logins.borrow().len(),
            1,
            "only the pending login was tried"
        );
    }
}

#[tokio::test]
async fn set_secret_refuses_a_previous_secret_for_another_user() {
    let store = FakeStore::new(&current_secret());
    let mut previous = current_secret();
    previous["username"] = json!("admin");
    previous["password"] = json!("admin-pw");
    store.insert("prev", Some(previous.to_string()), &["AWSPREVIOUS"]);
    let db = FakeDb::with_user("app", "changed-by-hand");
    db.users
        .borrow_mut()
        .insert("admin".into(), "admin-pw".into());
    step(&store, &db, "createSecret").await.unwrap();
    let err = step(&store, &db, "setSecret").await.unwrap_err();
    assert_refused_as_mismatch(&err, "previous valid user admin", &db);
}

#[tokio::test]
async fn set_secret_refuses_a_previous_secret_on_another_port() {
    // Someone who may write but not read the secret puts a current version pointing at a port
    // of the same host where they listen, which refuses the login: the function must not log in
    // to the real port with the previous version and then hand the new password to theirs.
    let mut redirected = current_secret();
    redirected["port"] = json!(6543);
    let store = FakeStore::new(&redirected);
    store.insert("prev", Some(current_secret().to_string()), &["AWSPREVIOUS"]);
    // The real server knows the previous (the real) password; nothing answers on 6543.
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    db.closed_ports.borrow_mut().push(6543);
    step(&store, &db, "createSecret").await.unwrap();
    let err = step(&store, &db, "setSecret").await.unwrap_err();
    assert_refused_as_mismatch(&err, "port 6543 other than previous host 5432", &db);
    assert_eq!(db.password_of("app").as_deref(), Some(OLD_PASSWORD));
}

#[tokio::test]
async fn a_master_outside_the_configured_masters_is_refused_before_it_is_read() {
    let store = FakeStore::new(&alternating_secret("app"));
    store
        .others
        .borrow_mut()
        .insert(MASTER.into(), master_secret("master-pw", HOST));
    let db = alternating_db("app");
    step(&store, &db, "createSecret").await.unwrap();
    let deadline = Deadline::new(None, Duration::from_secs(5));
    let config = Config {
        master_secret_arns: Some(vec![
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:ops-master-AbC".into(),
        ]),
        ..Config::default()
    };
    let gets = store.calls.get().get;
    let err = invoke(&event("setSecret"), deadline, &store, &db, &config)
        .await
        .0
        .unwrap_err();
    assert_refused_as_mismatch(&err, MASTER, &db);
    assert!(err.to_string().contains("MASTER_SECRET_ARNS"), "{err}");
    // Current and pending were read; the master never was.
    assert_eq!(store.calls.get().get, gets + 2);
    // Listed, it is used.
    let config = Config {
        master_secret_arns: Some(vec![MASTER.into()]),
        ..Config::default()
    };
    invoke(&event("setSecret"), deadline, &store, &db, &config)
        .await
        .0
        .unwrap();
    assert_eq!(*db.changes.borrow(), ["app_clone"]);
}

#[tokio::test]
async fn a_failing_password_statement_is_an_error_and_current_still_works() {
    let store = FakeStore::new(&current_secret());
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    db.fail_set.set(true);
    step(&store, &db, "createSecret").await.unwrap();
    let err = step(&store, &db, "setSecret").await.unwrap_err();
    assert_eq!(err.error_type(), "DatabaseError");
    assert_eq!(db.password_of("app").as_deref(), Some(OLD_PASSWORD));
    let err = step(&store, &db, "testSecret").await.unwrap_err();
    assert_eq!(err.error_type(), "LoginFailed");
    db.fail_set.set(false);
    rotate(&store, &db).await.unwrap();
    assert_eq!(db.password_of("app").as_deref(), Some(NEW_PASSWORD));
}

#[tokio::test]
async fn test_secret_alone_never_writes() {
    let store = FakeStore::new(&current_secret());
    // RotateImmediately=false: the service stages a copy of the current value and runs testSecret.
    store.insert(TOKEN, Some(current_secret().to_string()), &["AWSPENDING"]);
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    let before = store.snapshot();
    step(&store, &db, "testSecret").await.unwrap();
    assert_eq!(store.snapshot(), before);
    assert_eq!(store.calls.get().writes(), 0);
    assert!(db.changes.borrow().is_empty());

    // Without a pending value, not found is the service's answer, and not one testSecret expects.
    let store = FakeStore::new(&current_secret());
    let err = step(&store, &db, "testSecret").await.unwrap_err();
    assert_eq!(err.error_type(), "SecretsManagerError");
    let text = err.to_string();
    assert!(
        text.contains("ResourceNotFoundException") && text.contains(SECRET),
        "{text}"
    );
}

#[tokio::test]
async fn finish_secret_without_a_current_version_writes_nothing() {
    let store = FakeStore::new(&current_secret());
    store.insert(OLD_TOKEN, Some(current_secret().to_string()), &[]);
    let db = FakeDb::default();
    let err = step(&store, &db, "finishSecret").await.unwrap_err();
    assert_eq!(err.error_type(), "UnknownVersion");
    assert!(err.to_string().contains("AWSCURRENT"), "{err}");
    assert_eq!(store.calls.get().writes(), 0);
}

#[tokio::test]
async fn a_vanished_current_version_is_an_error_not_an_absence() {
    let store = FakeStore::new(&current_secret());
    store.insert(OLD_TOKEN, Some(current_secret().to_string()), &[]);
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    for name in ["createSecret", "setSecret"] {
        let before = store.snapshot();
        let err = step(&store, &db, name).await.unwrap_err();
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
    let store = FakeStore::new(&current_secret());
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    step(&store, &db, "createSecret").await.unwrap();
    let deadline = Deadline::new(Some(std::time::Instant::now()), Duration::from_secs(5));
    let err = invoke(
        &event("setSecret"),
        deadline,
        &store,
        &db,
        &Config::default(),
    )
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
    let store = FakeStore::new(&current);
    let db = FakeDb::default();
    let err = step(&store, &db, "createSecret").await.unwrap_err();
    assert_eq!(err.error_type(), "InvalidSecret");
    let text = err.to_string();
    assert!(
        text.contains("engine") && text.contains("AWSCURRENT") && text.contains(SECRET),
        "{text}"
    );
    assert!(!text.contains("SENTINEL"));
    assert_eq!(store.calls.get().writes(), 0);
}

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_password_reaches_logs_errors_or_debug() {
    let mut errors = Vec::new();
    // Happy path.
    let store = FakeStore::new(&current_secret());
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    rotate(&store, &db).await.unwrap();
    // Failing paths: no login, identity mismatch, failing statement, bad JSON.
    let store = FakeStore::new(&current_secret());
    let db = FakeDb::with_user("app", "changed-by-hand");
    step(&store, &db, "createSecret").await.unwrap();
    errors.push(step(&store, &db, "setSecret").await.unwrap_err());
    errors.push(step(&store, &db, "testSecret").await.unwrap_err());
    let store = FakeStore::new(&current_secret());
    let mut pending = current_secret();
    pending["username"] = json!("admin");
    pending["password"] = json!(NEW_PASSWORD);
    store.insert(TOKEN, Some(pending.to_string()), &["AWSPENDING"]);
    errors.push(
        step(&store, &FakeDb::default(), "setSecret")
            .await
            .unwrap_err(),
    );
    let store = FakeStore::new(&current_secret());
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    db.fail_set.set(true);
    step(&store, &db, "createSecret").await.unwrap();
    errors.push(step(&store, &db, "setSecret").await.unwrap_err());
    let store = FakeStore::new(&current_secret());
    store.insert(
        TOKEN,
        Some(format!("{{\"password\": \"{NEW_PASSWORD}\",")),
        &["AWSPENDING"],
    );
    errors.push(step(&store, &db, "testSecret").await.unwrap_err());

    let logs = captured_logs();
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

const MASTER: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:master-XyZ";

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
    let store = FakeStore::new(&alternating_secret("app"));
    store
        .others
        .borrow_mut()
        .insert(MASTER.into(), master_secret("master-pw", HOST));
    let db = alternating_db("app");
    rotate(&store, &db).await.unwrap();
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
    let store2 = FakeStore::new(&current);
    store2
        .others
        .borrow_mut()
        .insert(MASTER.into(), master_secret("master-pw", HOST));
    rotate(&store2, &db).await.unwrap();
    assert_eq!(store2.value(TOKEN).unwrap()["username"], "app");
    assert_eq!(*db.changes.borrow(), ["app_clone", "app"]);
}

#[tokio::test]
async fn strategy_comes_from_the_environment_unless_the_secret_overrides_it() {
    let mut secret = alternating_secret("app");
    secret.as_object_mut().unwrap().remove("rotation_strategy");
    let store = FakeStore::new(&secret);
    let db = alternating_db("app");
    let config = Config {
        strategy: Strategy::AlternatingUsers,
        ..Config::default()
    };
    let deadline = Deadline::new(None, Duration::from_secs(5));
    invoke(&event("createSecret"), deadline, &store, &db, &config)
        .await
        .0
        .unwrap();
    assert_eq!(store.value(TOKEN).unwrap()["username"], "app_clone");

    let mut secret = alternating_secret("app");
    secret["rotation_strategy"] = json!("single-user");
    let store = FakeStore::new(&secret);
    invoke(&event("createSecret"), deadline, &store, &db, &config)
        .await
        .0
        .unwrap();
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
        let store = FakeStore::new(&case.secret);
        if let Some(master) = &case.master {
            store
                .others
                .borrow_mut()
                .insert(MASTER.into(), master.clone());
        }
        let db = alternating_db(case.secret["username"].as_str().unwrap());
        if case.step == "setSecret" {
            step(&store, &db, "createSecret").await.unwrap();
        }
        let before = store.snapshot();
        let err = step(&store, &db, case.step).await.unwrap_err();
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
    let store = FakeStore::new(&alternating_secret("app"));
    store
        .others
        .borrow_mut()
        .insert(MASTER.into(), master_secret("master-pw", HOST));
    let db = alternating_db("app");
    step(&store, &db, "createSecret").await.unwrap();
    db.users.borrow_mut().insert("app".into(), "changed".into());
    let err = step(&store, &db, "setSecret").await.unwrap_err();
    assert_eq!(err.error_type(), "LoginFailed");
    assert!(err.to_string().contains("current"), "{err}");
    assert!(db.logins.borrow().iter().all(|(user, _)| user != "master"));
    assert!(db.changes.borrow().is_empty());

    // A pending user that is not current's clone is refused before any login but pending's.
    let store = FakeStore::new(&alternating_secret("app"));
    store
        .others
        .borrow_mut()
        .insert(MASTER.into(), master_secret("master-pw", HOST));
    let mut pending = alternating_secret("admin");
    pending["password"] = json!(NEW_PASSWORD);
    store.insert(TOKEN, Some(pending.to_string()), &["AWSPENDING"]);
    let db = alternating_db("app");
    let err = step(&store, &db, "setSecret").await.unwrap_err();
    assert_refused_as_mismatch(&err, "current user or clone app", &db);
}

#[tokio::test]
async fn each_invocation_reports_its_metrics() {
    let store = FakeStore::new(&current_secret());
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    let deadline = Deadline::new(None, Duration::from_secs(5));
    let mut reports = Vec::new();
    for name in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        let (result, report) =
            invoke(&event(name), deadline, &store, &db, &Config::default()).await;
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

    let (result, report) = invoke(&event("bogus"), deadline, &store, &db, &Config::default()).await;
    assert!(result.is_ok(), "already current");
    assert_eq!(
        report.step, "invalid",
        "an unknown step never becomes a dimension value"
    );
    let line = report.emf_line(&Config::default().metrics, 1);
    assert!(!line.contains("SENTINEL"));

    let (result, report) = invoke(
        &json!({"Step": "setSecret"}),
        deadline,
        &store,
        &db,
        &Config::default(),
    )
    .await;
    assert_eq!(result.unwrap_err().error_type(), "InvalidEvent");
    assert_eq!(report.error_type, Some("InvalidEvent"));
}

#[tokio::test]
async fn alternating_set_secret_checks_masterarn_before_any_login() {
    let mut secret = alternating_secret("app");
    secret.as_object_mut().unwrap().remove("masterarn");
    let store = FakeStore::new(&secret);
    let mut pending = secret.clone();
    pending["username"] = json!("app_clone");
    pending["password"] = json!(NEW_PASSWORD);
    store.insert(TOKEN, Some(pending.to_string()), &["AWSPENDING"]);
    let db = alternating_db("app");
    let err = step(&store, &db, "setSecret").await.unwrap_err();
    assert_eq!(err.error_type(), "InvalidSecret");
    assert!(
        err.to_string().contains("masterarn key is missing"),
        "{err}"
    );
    assert!(db.logins.borrow().is_empty(), "no database work");
}

#[tokio::test]
async fn an_rds_managed_master_secret_is_named_with_its_missing_host() {
    let store = FakeStore::new(&alternating_secret("app"));
    store.others.borrow_mut().insert(
        MASTER.into(),
        json!({"username": "master", "password": "master-pw"}).to_string(),
    );
    let db = alternating_db("app");
    step(&store, &db, "createSecret").await.unwrap();
    let err = step(&store, &db, "setSecret").await.unwrap_err();
    assert_eq!(err.error_type(), "InvalidSecret");
    let text = err.to_string();
    assert!(
        text.contains(MASTER) && text.contains("host key is missing"),
        "{text}"
    );
    assert!(db.changes.borrow().is_empty());
}

/// The dual-password strategy.
mod dual;
/// Alternating users with masters that RDS manages or places on other hosts.
mod rds;
