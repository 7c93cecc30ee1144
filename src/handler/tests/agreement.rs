//! One domain, three faces: for the same secret and database, setSecret, the configuration test
//! (`testSecret` on a copy of the current value) and the doctor's `--login` audit reach the same
//! verdict, each in its own words.

use super::rds::{
    DB_1_ARN, ENDPOINT, INSTANCE_TAG, REPLICA, db_on, managed_master, rds, rds_container,
    secret_on, step_with, store_with_master,
};
use super::*;
use crate::doctor::{Doctor, Options};
use crate::error::{CloneFindings, Shortfall, ShortfallKind};

/// A situation, and what each face must say of it: setSecret's `errorType` and the doctor's
/// code (`None`: healthy).
struct Case {
    name: &'static str,
    secret: Value,
    master: Option<Value>,
    /// Tags on the master secret (RDS-managed masters).
    tags: &'static [(&'static str, &'static str)],
    prepare: fn(&FakeDb),
    set_secret: Option<&'static str>,
    doctor: Option<&'static str>,
}

fn master_at(host: &str, password: &str) -> Value {
    json!({"engine": "postgres", "host": host, "username": "master", "password": password})
}

fn shortfall(kind: ShortfallKind, missing: &str, hint: &str) -> Shortfall {
    Shortfall {
        kind,
        account: "master".to_owned(),
        missing: missing.to_owned(),
        hint: Some(hint.to_owned()),
    }
}

fn cases() -> Vec<Case> {
    let nothing: fn(&FakeDb) = |_| {};
    let secret = secret_on(ENDPOINT);
    let mut no_masterarn = secret.clone();
    no_masterarn.as_object_mut().unwrap().remove("masterarn");
    let mut dual_on_postgres = secret.clone();
    dual_on_postgres["rotation_strategy"] = json!("dual-password");
    let mut single = secret.clone();
    single["rotation_strategy"] = json!("single-user");
    let healthy = |name, secret: &Value, master: Value, tags| Case {
        name,
        secret: secret.clone(),
        master: Some(master),
        tags,
        prepare: nothing,
        set_secret: None,
        doctor: None,
    };
    vec![
        healthy(
            "a master on the same endpoint",
            &secret,
            master_at(ENDPOINT, "master-pw"),
            &[],
        ),
        healthy(
            "an RDS-managed master",
            &secret,
            managed_master(),
            &[(INSTANCE_TAG, DB_1_ARN)],
        ),
        healthy(
            "a replica's secret, its primary's master",
            &secret_on(REPLICA),
            master_at(ENDPOINT, "master-pw"),
            &[],
        ),
        healthy(
            "single user",
            &single,
            master_at(ENDPOINT, "master-pw"),
            &[],
        ),
        Case {
            name: "masterarn missing",
            secret: no_masterarn,
            master: None,
            tags: &[],
            prepare: nothing,
            set_secret: Some("InvalidSecret"),
            doctor: Some("invalid-secret"),
        },
        Case {
            name: "a strategy the engine does not serve",
            secret: dual_on_postgres,
            master: Some(master_at(ENDPOINT, "master-pw")),
            tags: &[],
            prepare: nothing,
            set_secret: Some("InvalidSecret"),
            doctor: Some("invalid-secret"),
        },
        Case {
            name: "the master secret missing",
            secret: secret.clone(),
            master: None,
            tags: &[],
            prepare: nothing,
            set_secret: Some("SecretsManagerError"),
            doctor: Some("master-unreadable"),
        },
        Case {
            name: "a master for another server",
            secret: secret.clone(),
            master: Some(master_at("elsewhere.internal", "master-pw")),
            tags: &[],
            prepare: nothing,
            set_secret: Some("IdentityMismatch"),
            doctor: Some("master-unreadable"),
        },
        Case {
            name: "a master that does not log in",
            secret: secret.clone(),
            master: Some(master_at(ENDPOINT, "rotated-elsewhere")),
            tags: &[],
            prepare: nothing,
            set_secret: Some("LoginFailed"),
            doctor: Some("master-unreadable"),
        },
        Case {
            name: "a current secret that does not log in",
            secret: secret.clone(),
            master: Some(master_at(ENDPOINT, "master-pw")),
            tags: &[],
            prepare: |db| db.accepts("app", "changed-by-hand"),
            set_secret: Some("LoginFailed"),
            doctor: Some("current-login-failed"),
        },
        Case {
            name: "a master without the privilege",
            secret: secret.clone(),
            master: Some(master_at(ENDPOINT, "master-pw")),
            tags: &[],
            prepare: |db| {
                db.shortfalls.borrow_mut().push(shortfall(
                    ShortfallKind::MasterPrivilege,
                    "ADMIN OPTION on role app_clone",
                    "GRANT app_clone TO master WITH ADMIN OPTION",
                ));
            },
            set_secret: Some("DatabaseError"),
            doctor: Some("master-lacks-privilege"),
        },
        Case {
            name: "a clone that can do more than the user",
            secret: secret.clone(),
            master: Some(master_at(ENDPOINT, "master-pw")),
            tags: &[],
            prepare: |db| {
                *db.drift.borrow_mut() = CloneFindings {
                    excess: vec!["CREATEDB".to_owned()],
                    ..CloneFindings::default()
                };
            },
            set_secret: Some("IdentityMismatch"),
            doctor: Some("clone-drift"),
        },
        Case {
            name: "a user that may not change its own password",
            secret: single,
            master: None,
            tags: &[],
            prepare: |db| {
                db.shortfalls.borrow_mut().push(Shortfall {
                    account: "app".to_owned(),
                    ..shortfall(
                        ShortfallKind::OwnPassword,
                        "the right to change its own password",
                        "ALTER ROLE app PASSWORD is refused",
                    )
                });
            },
            set_secret: Some("DatabaseError"),
            doctor: Some("cannot-change-password"),
        },
    ]
}

/// The case's secret, master and database, in a container that knows RDS.
fn staged(case: &Case) -> (FakeSecrets, FakeDb, TestApp) {
    let store = match &case.master {
        Some(master) => store_with_master(&case.secret, master.clone(), case.tags),
        None => secrets(&case.secret),
    };
    let db = db_on(&[ENDPOINT, REPLICA]);
    (case.prepare)(&db);
    let app = rds_container(&store, &db, rds());
    (store, db, app)
}

/// The doctor's codes for `SECRET`, audited with `--login` before any rotation began.
async fn doctor_codes(app: &TestApp, store: &FakeSecrets) -> Vec<&'static str> {
    let pending = store.version(SECRET, TOKEN);
    store
        .secrets
        .borrow_mut()
        .get_mut(SECRET)
        .unwrap()
        .versions
        .remove(TOKEN);
    let options = Options {
        secrets: vec![SECRET.to_owned()],
        login: true,
        ..Options::default()
    };
    let report = Doctor::new(app).run(&options).await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let pending = pending.unwrap();
    store.set_version(TOKEN, pending.value, &["AWSPENDING"]);
    report.secrets[0]
        .problems
        .iter()
        .map(|p| p.code.as_str())
        .collect()
}

#[tokio::test]
async fn set_secret_the_configuration_test_and_the_doctor_agree() {
    for case in cases() {
        let name = case.name;
        // The doctor, read-only.
        let (store, db, app) = staged(&case);
        let codes = doctor_codes(&app, &store).await;
        assert_eq!(codes.first().copied(), case.doctor, "{name}: {codes:?}");
        assert!(
            db.changes.borrow().is_empty(),
            "{name}: the doctor changed nothing"
        );

        // The configuration test: testSecret on a copy of the current value.
        let (store, db, app) = staged(&case);
        store.set_version(TOKEN, Some(case.secret.to_string()), &["AWSPENDING"]);
        let before = store.snapshot();
        let tested = step_with(&app, "testSecret").await;
        assert_eq!(
            store.snapshot(),
            before,
            "{name}: the configuration test wrote"
        );
        assert_eq!(store.calls.get().writes(), 0, "{name}");
        assert!(db.changes.borrow().is_empty(), "{name}");
        match (case.doctor, tested) {
            (None, Ok(())) => {}
            (Some(_), Err(e)) => {
                // A current secret that does not log in fails the login of pending itself.
                let expected = if case.doctor == Some("current-login-failed") {
                    "LoginFailed"
                } else {
                    "PreflightFailed"
                };
                assert_eq!(e.error_type(), expected, "{name}: {e}");
            }
            (expected, tested) => {
                panic!("{name}: doctor {expected:?}, configuration test {tested:?}")
            }
        }

        // The rotation itself.
        let (store, db, app) = staged(&case);
        let created = step_with(&app, "createSecret").await;
        let set = match created {
            Ok(()) => step_with(&app, "setSecret").await,
            Err(e) => Err(e),
        };
        match (case.set_secret, set) {
            (None, Ok(())) => assert_eq!(db.changes.borrow().len(), 1, "{name}"),
            (Some(error_type), Err(e)) => {
                assert_eq!(e.error_type(), error_type, "{name}: {e}");
                assert!(db.changes.borrow().is_empty(), "{name}");
            }
            (expected, set) => panic!("{name}: expected {expected:?}, setSecret {set:?}"),
        }
        drop(store);
    }
}

#[tokio::test]
async fn a_rotation_s_test_secret_never_runs_the_preflight() {
    // What the preflight would find does not fail a rotation's testSecret: its pending version
    // holds a new password, whichever container wrote it.
    let store = secrets(&current_secret());
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    let app = container(&store, &db);
    step(&app, "createSecret").await.unwrap();
    step(&app, "setSecret").await.unwrap();
    db.shortfalls.borrow_mut().push(Shortfall {
        kind: ShortfallKind::OwnPassword,
        account: "app".to_owned(),
        missing: "anything".to_owned(),
        hint: None,
    });
    let gets = store.calls.get().get;
    step(&app, "testSecret").await.unwrap();
    assert_eq!(
        store.calls.get().get,
        gets + 1,
        "the container knew the version"
    );
    // Another container reads AWSCURRENT once to tell.
    let gets = store.calls.get().get;
    step(&container(&store, &db), "testSecret").await.unwrap();
    assert_eq!(store.calls.get().get, gets + 2);
}

#[tokio::test]
async fn the_configuration_test_names_what_is_missing_and_only_advises_on_the_deprecated() {
    let store = secrets(&current_secret());
    store.set_version(TOKEN, Some(current_secret().to_string()), &["AWSPENDING"]);
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    db.shortfalls.borrow_mut().push(Shortfall {
        kind: ShortfallKind::Deprecated,
        account: "app@%".to_owned(),
        missing: "mysql_native_password is deprecated".to_owned(),
        hint: Some("ALTER USER … IDENTIFIED WITH caching_sha2_password".to_owned()),
    });
    let app = container(&store, &db);
    step(&app, "testSecret").await.unwrap();
    assert!(capture::logs().contains("deprecated, still working"));

    db.shortfalls.borrow_mut().push(Shortfall {
        kind: ShortfallKind::OwnPassword,
        account: "app@%".to_owned(),
        missing: "APPLICATION_PASSWORD_ADMIN".to_owned(),
        hint: Some("GRANT APPLICATION_PASSWORD_ADMIN ON *.* TO app".to_owned()),
    });
    let err = step(&app, "testSecret").await.unwrap_err();
    assert_eq!(err.error_type(), "PreflightFailed");
    let text = err.to_string();
    assert!(
        text.contains(SECRET)
            && text.contains("APPLICATION_PASSWORD_ADMIN")
            && text.contains("GRANT APPLICATION_PASSWORD_ADMIN")
            && !text.contains("mysql_native_password"),
        "{text}"
    );
    assert!(!text.contains("SENTINEL"), "{text}");
    assert_eq!(store.calls.get().writes(), 0);
    assert!(db.changes.borrow().is_empty());
}

#[tokio::test]
async fn a_server_that_does_not_answer_is_a_timeout_not_a_reason_to_try_other_versions() {
    let store = secrets(&current_secret());
    let mut previous = current_secret();
    previous["password"] = json!("previous-pw");
    store.set_version("prev", Some(previous.to_string()), &["AWSPREVIOUS"]);
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    db.silent_hosts.borrow_mut().push(HOST.to_owned());
    let app = container(&store, &db);
    step(&app, "createSecret").await.unwrap();
    let gets = store.calls.get().get;
    let err = step(&app, "setSecret").await.unwrap_err();
    assert_eq!(err.error_type(), "DatabaseTimeout", "{err}");
    assert!(
        err.to_string()
            .contains(&format!("setSecret of secret {SECRET}, at {HOST}:5432")),
        "{err}"
    );
    assert_eq!(db.connected.borrow().len(), 1, "one attempt, with current");
    assert_eq!(store.calls.get().get, gets + 2, "AWSPREVIOUS never read");
    assert!(db.changes.borrow().is_empty());
}

/// A server left unanswered for less than its connect timeout, because the invocation's deadline
/// came first, was not given its connect timeout: the deadline ended the attempt, and the error
/// says so (`DeadlineExceeded`, which tells the operator to raise the function's timeout), not
/// `DatabaseTimeout` (which sends them to the network).
#[tokio::test]
async fn a_silence_cut_short_by_the_deadline_is_the_deadline_not_the_server() {
    let store = secrets(&current_secret());
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    db.silent_hosts.borrow_mut().push(HOST.to_owned());
    let app = container(&store, &db);
    step(&app, "createSecret").await.unwrap();
    // 3 s left, less the 1 s margin: 2 s for an attempt whose connect timeout is 5 s.
    let short = Deadline::new(
        Some(std::time::Instant::now() + Duration::from_secs(3)),
        Duration::from_secs(5),
    );
    let err = invoke(&event("setSecret"), short, &app)
        .await
        .0
        .unwrap_err();
    assert_eq!(err.error_type(), "DeadlineExceeded", "{err}");
    let text = err.to_string();
    assert!(
        text.contains("setSecret") && text.contains("login") && text.contains("connecting"),
        "{text}"
    );
    assert_eq!(db.connected.borrow().len(), 1, "one attempt, with current");
    // With the whole connect timeout inside the deadline, the silence is the server's.
    let long = Deadline::new(
        Some(std::time::Instant::now() + Duration::from_secs(60)),
        Duration::from_secs(5),
    );
    let err = invoke(&event("setSecret"), long, &app).await.0.unwrap_err();
    assert_eq!(err.error_type(), "DatabaseTimeout", "{err}");
    assert!(db.changes.borrow().is_empty());
}
