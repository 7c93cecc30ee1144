//! The dual-password strategy against the in-memory store and database: rotations that keep the
//! user name and both passwords, which engine writes them, and the refusals.

use std::cell::RefCell;
use std::collections::HashMap;

use super::*;

const PASSWORDS: [&str; 4] = [
    "SENTINEL-dual-0-'\\",
    "SENTINEL-dual-1-'\\",
    "SENTINEL-dual-2-'\\",
    "SENTINEL-dual-3-'\\",
];

fn dual_secret(engine: &str) -> Value {
    let mut secret = current_secret();
    secret["engine"] = json!(engine);
    secret["port"] = json!(6379);
    secret["masterarn"] = json!(MASTER);
    secret["rotation_strategy"] = json!("dual-password");
    secret["password"] = json!(PASSWORDS[0]);
    secret
}

fn master_of(engine: &str, host: &str) -> String {
    // The master is for the same endpoint as the rotated secret: host and port.
    json!({"engine": engine, "host": host, "port": 6379, "username": "master", "password": "master-pw"})
        .to_string()
}

/// A store and a database for `engine`: the user with its first password, the master known to
/// both.
fn dual_setup(engine: &str) -> (FakeSecrets, FakeDb) {
    let store = secrets(&dual_secret(engine));
    store.add_master(master_of(engine, HOST));
    let db = FakeDb::with_user("app", PASSWORDS[0]);
    db.users
        .borrow_mut()
        .insert("master".into(), "master-pw".into());
    (store, db)
}

fn logs_in(db: &FakeDb, password: &str) -> bool {
    let users = |map: &RefCell<HashMap<String, String>>| {
        map.borrow().get("app").map(String::as_str) == Some(password)
    };
    users(&db.users) || users(&db.second)
}

/// Runs the steps `names` in order, each new password being `PASSWORDS[round]`.
async fn steps(store: &FakeSecrets, db: &FakeDb, names: &[&str], round: usize) {
    let password = |_: Family| Password::new(PASSWORDS[round]);
    let app = container(store, db);
    for name in names {
        run(&event(name), deadline(), &app, &password)
            .await
            .unwrap_or_else(|e| panic!("round {round} {name}: {e}"));
    }
}

const ROTATION: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];

async fn three_rotations(engine: &str) -> (FakeSecrets, FakeDb) {
    let (store, db) = dual_setup(engine);
    for round in 1..=3 {
        if round > 1 {
            next_rotation(&store, round);
        }
        steps(&store, &db, &ROTATION, round).await;
        let current = store.value(TOKEN).unwrap();
        assert_eq!(current["username"], "app", "the user name never changes");
        assert_eq!(current["password"], PASSWORDS[round]);
        assert!(logs_in(&db, PASSWORDS[round]), "{engine} {round}: current");
        assert!(
            logs_in(&db, PASSWORDS[round - 1]),
            "{engine} {round}: previous"
        );
        if round > 1 {
            assert!(
                !logs_in(&db, PASSWORDS[round - 2]),
                "{engine} {round}: the one before"
            );
        }
        let mut expected = dual_secret(engine);
        expected["password"] = json!(PASSWORDS[round]);
        assert_eq!(current, expected, "only the password changed");
    }
    assert_eq!(db.changes.borrow().len(), 3);
    assert!(!db.users.borrow().contains_key("app_clone"));
    (store, db)
}

#[tokio::test]
async fn mariadb_and_redis_rotate_through_the_master_keeping_current() {
    for engine in ["mariadb", "redis"] {
        let (_, db) = three_rotations(engine).await;
        assert!(
            db.logins
                .borrow()
                .iter()
                .any(|(user, ok)| user == "master" && *ok),
            "{engine}: the master wrote the passwords"
        );
    }
}

#[tokio::test]
async fn mysql_users_keep_their_own_second_password_without_a_master() {
    let (store, db) = dual_setup("mysql");
    store.secrets.borrow_mut().remove(MASTER);
    let mut secret = dual_secret("mysql");
    secret.as_object_mut().unwrap().remove("masterarn");
    store.set_version(OLD_TOKEN, Some(secret.to_string()), &["AWSCURRENT"]);
    steps(&store, &db, &ROTATION, 1).await;
    assert!(logs_in(&db, PASSWORDS[0]) && logs_in(&db, PASSWORDS[1]));
    assert!(!db.logins.borrow().iter().any(|(user, _)| user == "master"));
    // 4 descriptions, 2 + 2 + 1 reads, 1 write each way: no master secret read.
    assert_eq!(store.calls.get().total(), 11);
}

#[tokio::test]
async fn a_retried_set_secret_leaves_both_passwords_working() {
    // Through the master, the retry writes the same pair again: nothing to tell apart first.
    let (store, db) = dual_setup("mariadb");
    steps(&store, &db, &["createSecret", "setSecret", "setSecret"], 1).await;
    assert_eq!(db.changes.borrow().len(), 2, "the same pair, twice");
    assert!(logs_in(&db, PASSWORDS[0]) && logs_in(&db, PASSWORDS[1]));

    // By the user itself, the compare-and-set finds current no longer primary, and pending
    // logging in shows the change was made: nothing changes.
    let (store, db) = dual_setup("mysql");
    steps(&store, &db, &["createSecret", "setSecret", "setSecret"], 1).await;
    assert_eq!(db.changes.borrow().len(), 1, "written once");
    assert!(logs_in(&db, PASSWORDS[0]) && logs_in(&db, PASSWORDS[1]));
    let logins: Vec<bool> = db.logins.borrow().iter().map(|(_, ok)| *ok).collect();
    assert_eq!(
        logins,
        [true, true, true],
        "current, then current and pending"
    );
}

/// `engine` with `strategy` (from the secret, or the environment when `from_env`) is refused at
/// createSecret with `needle`, before anything is written.
async fn refused_at_create(engine: &str, strategy: &str, from_env: bool, needle: &str) {
    let mut secret = dual_secret(engine);
    let mut config = Config::default();
    if from_env {
        secret.as_object_mut().unwrap().remove("rotation_strategy");
        config.strategy = Strategy::parse(strategy).unwrap();
    } else {
        secret["rotation_strategy"] = json!(strategy);
    }
    let store = secrets(&secret);
    let db = FakeDb::with_user("app", PASSWORDS[0]);
    let before = store.snapshot();
    let app = container_with(&store, &db, config);
    let err = step(&app, "createSecret").await.unwrap_err();
    assert_eq!(err.error_type(), "InvalidSecret", "{err}");
    assert!(err.to_string().contains(needle), "{err}");
    assert!(err.to_string().contains(SECRET), "{err}");
    assert_eq!(store.snapshot(), before, "nothing written");
    assert!(db.logins.borrow().is_empty(), "no database work");
}

#[tokio::test]
async fn engines_refuse_the_strategies_they_do_not_serve() {
    for (engine, strategy, from_env, needle) in [
        ("postgres", "dual-password", false, "use alternating-users"),
        (
            "aurora-postgresql",
            "dual-password",
            true,
            "(from ROTATION_STRATEGY)",
        ),
        ("redis", "alternating-users", false, "use dual-password"),
        ("redis", "alternating-users", true, "engine redis"),
    ] {
        refused_at_create(engine, strategy, from_env, needle).await;
    }
}

#[tokio::test]
async fn set_secret_refuses_before_any_login_too() {
    // A pending version written before the strategy changed: setSecret refuses on its own.
    let mut secret = dual_secret("postgres");
    secret["port"] = json!(5432);
    let store = secrets(&secret);
    let mut pending = secret.clone();
    pending["password"] = json!(PASSWORDS[1]);
    store.set_version(TOKEN, Some(pending.to_string()), &["AWSPENDING"]);
    let db = FakeDb::with_user("app", PASSWORDS[0]);
    let err = step(&container(&store, &db), "setSecret")
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "InvalidSecret");
    assert!(err.to_string().contains("alternating-users"), "{err}");
    assert!(db.logins.borrow().is_empty() && db.changes.borrow().is_empty());
}

#[tokio::test]
async fn a_master_engine_without_masterarn_is_refused_at_create() {
    let mut secret = dual_secret("mariadb");
    secret.as_object_mut().unwrap().remove("masterarn");
    let store = secrets(&secret);
    let before = store.snapshot();
    let err = step(&container(&store, &FakeDb::default()), "createSecret")
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "InvalidSecret");
    assert!(
        err.to_string().contains(
            "masterarn key is missing from secret JSON (required by the dual-password strategy)"
        ),
        "{err}"
    );
    assert_eq!(store.snapshot(), before);
}

/// setSecret after createSecret, with `tamper` applied to the pending version and `db` as
/// `prepare` leaves it: refused with `error_type` naming `needle`, and nothing changed.
async fn refused_at_set(
    tamper: impl Fn(&mut Value),
    prepare: impl Fn(&FakeSecrets, &FakeDb),
    error_type: &str,
    needle: &str,
) {
    let (store, db) = dual_setup("mariadb");
    let app = container(&store, &db);
    step(&app, "createSecret").await.unwrap();
    let mut pending = store.value(TOKEN).unwrap();
    tamper(&mut pending);
    store.set_version(TOKEN, Some(pending.to_string()), &["AWSPENDING"]);
    prepare(&store, &db);
    let before = db.password_of("app");
    let err = step(&app, "setSecret").await.unwrap_err();
    assert_eq!(err.error_type(), error_type, "{err}");
    assert!(err.to_string().contains(needle), "{err}");
    assert!(db.changes.borrow().is_empty(), "{needle}: nothing changed");
    assert_eq!(db.password_of("app"), before);
    assert!(db.second.borrow().is_empty());
}

#[tokio::test]
async fn the_master_acts_only_for_the_secrets_own_proven_account() {
    let keep = |_: &mut Value| {};
    let nothing = |_: &FakeSecrets, _: &FakeDb| {};
    // A forged pending version aimed at another account, or another host.
    refused_at_set(
        |p| p["username"] = json!("admin"),
        nothing,
        "IdentityMismatch",
        "user admin",
    )
    .await;
    refused_at_set(
        |p| p["host"] = json!("other.internal"),
        nothing,
        "IdentityMismatch",
        "host other.internal",
    )
    .await;
    // The current credential does not log in: the master is never asked.
    refused_at_set(
        keep,
        |_, db| {
            db.users.borrow_mut().insert("app".into(), "changed".into());
        },
        "LoginFailed",
        "current",
    )
    .await;
    // The server authenticated current as another account (anonymous, proxied).
    refused_at_set(
        keep,
        |_, db| {
            *db.authenticated_as.borrow_mut() = Some(String::new());
        },
        "IdentityMismatch",
        "current user app",
    )
    .await;
    // The master secret is for another host.
    refused_at_set(
        keep,
        |store, _| {
            store.add_master(master_of("mariadb", "other.internal"));
        },
        "IdentityMismatch",
        "master host other.internal",
    )
    .await;
    // The master does not log in.
    refused_at_set(
        keep,
        |_, db| {
            db.users
                .borrow_mut()
                .insert("master".into(), "rotated".into());
        },
        "LoginFailed",
        "master",
    )
    .await;
}

#[tokio::test]
async fn no_dual_password_reaches_logs_or_errors() {
    let (store, db) = three_rotations("redis").await;
    let mut secret = dual_secret("postgres");
    secret["port"] = json!(5432);
    let refused = secrets(&secret);
    let err = step(&container(&refused, &db), "createSecret")
        .await
        .unwrap_err();
    let diagnostic: lambda_runtime::Diagnostic = err.into();
    let shown = format!("{diagnostic:?} {:?}", store.snapshot().len());
    assert!(!shown.contains("SENTINEL"), "{shown}");
    assert!(
        !capture::logs().contains("SENTINEL-dual"),
        "a password reached the logs"
    );
}
