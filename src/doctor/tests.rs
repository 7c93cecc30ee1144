//! The doctor against the in-memory Secrets Manager and database: what the integration tests
//! cannot stage against the emulator (old versions, overdue rotations, failing calls) is staged
//! here.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::*;
use crate::app::App;
use crate::config::Config;
use crate::deadline::StepContext;
use crate::error::Error;
use crate::rds::Rds;
use crate::rds::fake::FakeRds;
use crate::rotation::Scope;
use crate::rotators::fake::{FakeDb, HOST};
use crate::secrets::SecretInventory;
use crate::secrets::SecretStore;
use crate::secrets::fake::{FakeSecrets, day as epoch};

const SENTINEL: &str = "Sentinel-'\"\\-pw-0f3c";
const PENDING_SENTINEL: &str = "Sentinel-pending-77aa";
const FUNCTION: &str = "arn:aws:lambda:us-east-1:123456789012:function:rotator";
const HOUR: Duration = Duration::from_secs(3_600);

/// The doctor's fixtures in the fake service.
trait Fixtures {
    /// Adds the secret `name`, rotated by `FUNCTION`, with its current value; returns its ARN.
    fn add_secret(&self, name: &str, current: &Value) -> String;
    /// Stages version `v2` as `AWSPENDING`, created at `created`, with `value` (or none).
    fn stick(&self, arn: &str, value: Option<&Value>, created: SystemTime);
}

impl Fixtures for FakeSecrets {
    fn add_secret(&self, name: &str, current: &Value) -> String {
        let arn = self.add(name, &current.to_string());
        self.edit(&arn, |info| {
            info.rotation_function = Some(FUNCTION.to_owned())
        });
        arn
    }

    fn stick(&self, arn: &str, value: Option<&Value>, created: SystemTime) {
        let value = value.map(Value::to_string);
        self.insert(arn, "v2", value.as_deref(), &["AWSPENDING"], created);
    }
}

/// The container the doctor runs in: clients over `store` and `db`.
fn container(store: &FakeSecrets, db: &FakeDb) -> App<FakeSecrets, FakeDb, FakeRds> {
    App::new(
        Config::default(),
        store.clone(),
        db.clone(),
        Rds::new(FakeRds::default()),
    )
}

fn secret(user: &str, password: &str) -> Value {
    json!({"engine": "postgres", "host": HOST, "username": user, "password": password})
}

fn options(secrets: &[&str], login: bool, repair: bool) -> Options {
    Options {
        secrets: secrets.iter().map(|s| (*s).to_owned()).collect(),
        login,
        repair,
        ..Options::default()
    }
}

async fn audit(store: &FakeSecrets, db: &FakeDb, now: SystemTime, options: &Options) -> Report {
    Doctor::new(&container(store, db))
        .at(now)
        .run(options)
        .await
}

fn codes(report: &Report) -> Vec<Vec<&'static str>> {
    report
        .secrets
        .iter()
        .map(|s| s.problems.iter().map(|p| p.code.as_str()).collect())
        .collect()
}

/// Every text the report can show: JSON, table, and the failures' `Debug`.
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

fn assert_no_secret_value(report: &Report) {
    let text = shown(report);
    for value in [SENTINEL, PENDING_SENTINEL, "Sentinel"] {
        assert!(!text.contains(value), "{value} in {text}");
    }
}

#[tokio::test]
async fn a_healthy_secret() {
    let (store, db) = (FakeSecrets::default(), FakeDb::default());
    let arn = store.add_secret("app", &secret("app", SENTINEL));
    db.accepts("app", SENTINEL);
    let report = audit(&store, &db, epoch(1), &options(&["app"], true, true)).await;
    assert_eq!(codes(&report), [Vec::<&str>::new()]);
    assert_eq!(report.exit_status(), EXIT_HEALTHY);
    assert_eq!(
        report.to_json(),
        json!({"secrets": [{"secret": arn, "name": "app", "healthy": true, "problems": [], "repairs": []}],
               "healthy": 1, "unhealthy": 0})
    );
    assert_eq!(store.calls.get().writes(), 0);
}

#[tokio::test]
async fn a_deprecated_plugin_is_advice_on_a_healthy_secret() {
    let (store, db) = (FakeSecrets::default(), FakeDb::default());
    store.add_secret("app", &secret("app", SENTINEL));
    db.accepts("app", SENTINEL);
    db.shortfalls.borrow_mut().push(crate::error::Shortfall {
        kind: crate::error::ShortfallKind::Deprecated,
        account: "app@%".into(),
        missing: "mysql_native_password is deprecated".into(),
        hint: Some("ALTER USER … IDENTIFIED WITH caching_sha2_password".into()),
    });
    let report = audit(&store, &db, epoch(1), &options(&["app"], true, false)).await;
    assert_eq!(codes(&report), [["deprecated-plugin"]]);
    assert_eq!(report.exit_status(), EXIT_HEALTHY);
    assert_eq!(report.to_json()["healthy"], 1);
    let text = shown(&report);
    assert!(
        text.contains("healthy    deprecated-plugin") && text.contains("caching_sha2_password"),
        "{text}"
    );
}

#[tokio::test]
async fn stuck_pending_where_current_logs_in_is_cleared_once_settled() {
    let (store, db) = (FakeSecrets::default(), FakeDb::default());
    let arn = store.add_secret("app", &secret("app", SENTINEL));
    db.accepts("app", SENTINEL);
    store.stick(&arn, Some(&secret("app", PENDING_SENTINEL)), epoch(0));

    // Without --login: the problem, and how to learn more.
    let report = audit(&store, &db, epoch(3), &options(&["app"], false, false)).await;
    assert_eq!(codes(&report), [["stuck-pending"]]);
    let detail = &report.secrets[0].problems[0].detail;
    assert!(
        detail.contains("version v2")
            && detail.contains("3 days ago")
            && detail.contains("--login"),
        "{detail}"
    );
    assert!(report.secrets[0].repairs.is_empty());

    // With --login, before --repair: what it would do.
    let report = audit(&store, &db, epoch(3), &options(&["app"], true, false)).await;
    let repair = &report.secrets[0].repairs[0];
    assert_eq!(
        (repair.action, repair.done),
        (Action::RemovedStalePending, false)
    );
    assert!(
        repair.detail.contains("run again with --repair"),
        "{repair:?}"
    );
    assert!(
        report.secrets[0].problems[0]
            .detail
            .contains("AWSCURRENT logs in, AWSPENDING does not log in"),
        "{report:?}"
    );
    assert_eq!(store.calls.get().writes(), 0, "read-only without --repair");

    let report = audit(&store, &db, epoch(3), &options(&["app"], true, true)).await;
    let repair = &report.secrets[0].repairs[0];
    assert_eq!(
        (repair.action, repair.done),
        (Action::RemovedStalePending, true)
    );
    assert_eq!(
        codes(&report),
        [Vec::<&str>::new()],
        "healthy after the repair"
    );
    assert_eq!(report.exit_status(), EXIT_HEALTHY);
    assert_eq!(store.labels(&arn)["v2"], Vec::<String>::new());
    assert_eq!(store.labels(&arn)["v1"], ["AWSCURRENT"]);
    assert_no_secret_value(&report);
}

#[tokio::test]
async fn a_young_stuck_version_keeps_its_label() {
    let (store, db) = (FakeSecrets::default(), FakeDb::default());
    let arn = store.add_secret("app", &secret("app", SENTINEL));
    db.accepts("app", SENTINEL);
    store.stick(&arn, None, epoch(3));
    let now = epoch(3) + Duration::from_secs(600);
    let report = audit(&store, &db, now, &options(&["app"], true, true)).await;
    let repair = &report.secrets[0].repairs[0];
    assert_eq!(
        (repair.action, repair.done),
        (Action::RemovedStalePending, false)
    );
    assert!(repair.detail.contains("10 minutes ago"), "{repair:?}");
    assert_eq!(codes(&report), [["stuck-pending"]]);
    assert_eq!(report.exit_status(), EXIT_PROBLEM);
    assert_eq!(store.calls.get().writes(), 0);
    // An hour later it is removed.
    let report = audit(&store, &db, now + HOUR, &options(&["app"], true, true)).await;
    assert!(report.secrets[0].repairs[0].done);
    assert_eq!(store.calls.get().writes(), 1);
}

#[tokio::test]
async fn stuck_pending_where_only_pending_logs_in_completes_the_rotation() {
    let (store, db) = (FakeSecrets::default(), FakeDb::default());
    let arn = store.add_secret("app", &secret("app", SENTINEL));
    // setSecret ran: the database has the pending password; finishSecret did not.
    db.accepts("app", PENDING_SENTINEL);
    store.stick(&arn, Some(&secret("app", PENDING_SENTINEL)), epoch(3));

    let dry = audit(&store, &db, epoch(3), &options(&["app"], true, false)).await;
    assert_eq!(codes(&dry), [["stuck-pending", "current-login-failed"]]);
    assert_eq!(dry.secrets[0].repairs[0].action, Action::CompletedRotation);
    assert!(!dry.secrets[0].repairs[0].done);

    // No wait is needed: a running rotation's finishSecret would do the same.
    let report = audit(&store, &db, epoch(3), &options(&["app"], true, true)).await;
    let repair = &report.secrets[0].repairs[0];
    assert_eq!(
        (repair.action, repair.done),
        (Action::CompletedRotation, true)
    );
    assert_eq!(codes(&report), [Vec::<&str>::new()]);
    let labels = store.labels(&arn);
    assert_eq!(labels["v1"], ["AWSPREVIOUS"]);
    assert_eq!(labels["v2"], ["AWSPENDING", "AWSCURRENT"]);
    assert_no_secret_value(&report);
}

#[tokio::test]
async fn a_hand_made_pending_version_is_never_promoted() {
    let (store, db) = (FakeSecrets::default(), FakeDb::default());
    let arn = store.add_secret("app", &secret("app", SENTINEL));
    // Someone staged another account's working credential as AWSPENDING, and AWSCURRENT no
    // longer logs in: promoting it would give the secret's readers that account.
    db.accepts("admin", PENDING_SENTINEL);
    store.stick(&arn, Some(&secret("admin", PENDING_SENTINEL)), epoch(0));
    let report = audit(&store, &db, epoch(3), &options(&["app"], true, true)).await;
    let repair = &report.secrets[0].repairs[0];
    assert_eq!(
        (repair.action, repair.done),
        (Action::CompletedRotation, false)
    );
    assert!(repair.detail.contains("user admin"), "{}", repair.detail);
    assert_eq!(store.calls.get().writes(), 0);
    // The same for another port of the same host.
    let (store, db) = (FakeSecrets::default(), FakeDb::default());
    let arn = store.add_secret("app", &secret("app", SENTINEL));
    db.accepts("app", PENDING_SENTINEL);
    let elsewhere = secret("app", PENDING_SENTINEL).tap(|v| v["port"] = json!(6543));
    store.stick(&arn, Some(&elsewhere), epoch(0));
    let report = audit(&store, &db, epoch(3), &options(&["app"], true, true)).await;
    assert!(!report.secrets[0].repairs[0].done);
    assert!(report.secrets[0].repairs[0].detail.contains(":6543"));
    assert_eq!(store.calls.get().writes(), 0);
}

#[tokio::test]
async fn a_promotion_that_does_not_log_in_afterwards_is_undone() {
    let (store, db) = (FakeSecrets::default(), FakeDb::default());
    let arn = store.add_secret("app", &secret("app", SENTINEL));
    db.accepts("app", PENDING_SENTINEL);
    // The examination and the re-check log in; then the password changes again.
    db.logins_left.borrow_mut().insert("app".into(), 2);
    store.stick(&arn, Some(&secret("app", PENDING_SENTINEL)), epoch(0));
    let report = audit(&store, &db, epoch(3), &options(&["app"], true, true)).await;
    let repair = &report.secrets[0].repairs[0];
    assert_eq!(
        (repair.action, repair.done),
        (Action::CompletedRotation, false)
    );
    assert!(repair.detail.contains("moved back"), "{}", repair.detail);
    let labels = store.labels(&arn);
    assert_eq!(labels["v1"], ["AWSCURRENT"]);
    // Moving AWSCURRENT back, the service labels the version it leaves AWSPREVIOUS.
    assert_eq!(labels["v2"], ["AWSPENDING", "AWSPREVIOUS"]);
}

#[tokio::test]
async fn a_repair_rechecks_the_labels_it_acts_on() {
    // A rotation finished between the examination and the repair: the version became current.
    let (store, db) = (FakeSecrets::default(), FakeDb::default());
    let arn = store.add_secret("app", &secret("app", SENTINEL));
    db.accepts("app", PENDING_SENTINEL);
    store.stick(&arn, Some(&secret("app", PENDING_SENTINEL)), epoch(0));
    let app = container(&store, &db);
    let ctx_tally = crate::deadline::CallTally::default();
    let ctx = StepContext {
        secret_id: &arn,
        step: &crate::protocol::Step::Audit,
        deadline: crate::deadline::Deadline::new(None, Duration::from_secs(5)),
        tally: &ctx_tally,
    };
    let examiner = examine::Examiner {
        scope: Scope { app: &app, ctx },
        now: epoch(3),
        login: true,
    };
    let info = store.inspect(&arn, &ctx).await.unwrap();
    let stuck = examiner.examine(&info).await.unwrap().stuck.unwrap();
    // Meanwhile finishSecret ran.
    store.promote(&arn, "v2", "v1", &ctx).await.unwrap();
    let writes = store.calls.get().writes();
    let (action, settled) = (Action::CompletedRotation, repair::SETTLED);
    let repair = repair::make(&examiner, &arn, action, &stuck, epoch(3), settled)
        .await
        .unwrap();
    assert!(!repair.done);
    assert!(
        repair.detail.contains("labels changed"),
        "{}",
        repair.detail
    );
    assert_eq!(store.calls.get().writes(), writes);
}

#[tokio::test]
async fn when_neither_logs_in_nothing_changes() {
    let (store, db) = (FakeSecrets::default(), FakeDb::default());
    let arn = store.add_secret("app", &secret("app", SENTINEL));
    store.stick(&arn, Some(&secret("app", PENDING_SENTINEL)), epoch(0));
    let report = audit(&store, &db, epoch(3), &options(&["app"], true, true)).await;
    let repair = &report.secrets[0].repairs[0];
    assert_eq!((repair.action, repair.done), (Action::None, false));
    assert_eq!(
        report.to_json()["secrets"][0]["repairs"],
        json!([{"action": "none", "done": false}])
    );
    assert_eq!(codes(&report), [["stuck-pending", "current-login-failed"]]);
    assert_eq!(store.calls.get().writes(), 0);
    assert_eq!(report.exit_status(), EXIT_PROBLEM);
    assert_no_secret_value(&report);
}

#[tokio::test]
async fn unusable_values_name_the_field_never_the_value() {
    let (store, db) = (FakeSecrets::default(), FakeDb::default());
    store.add_secret(
        "bad-port",
        &json!({"engine": "postgres", "host": "h", "username": "u", "password": SENTINEL, "port": "x"}),
    );
    store.add_secret(
        "bad-engine",
        &secret("u", SENTINEL).tap(|v| v["engine"] = json!("Postgres")),
    );
    let arn = store.add_secret("not-json", &json!(null));
    // Cut short.
    let cut = format!("{{\"password\": \"{SENTINEL}\"");
    store.insert(&arn, "v1", Some(&cut), &["AWSCURRENT"], epoch(0));
    let report = audit(
        &store,
        &db,
        epoch(1),
        &options(&["bad-port", "bad-engine", "not-json"], true, false),
    )
    .await;
    assert_eq!(codes(&report), [["invalid-secret"]; 3]);
    let details: Vec<&str> = report
        .secrets
        .iter()
        .map(|s| s.problems[0].detail.as_str())
        .collect();
    assert!(details[0].contains("`port`"), "{details:?}");
    assert!(details[1].contains("`engine`"), "{details:?}");
    assert!(details[2].contains("not valid JSON"), "{details:?}");
    assert_no_secret_value(&report);
}

#[tokio::test]
async fn rotation_turned_off_or_late() {
    let (store, db) = (FakeSecrets::default(), FakeDb::default());
    let off = store.add_secret("off", &secret("a", SENTINEL));
    store.edit(&off, |i| i.description.rotation_enabled = Some(false));
    let late = store.add_secret("late", &secret("a", SENTINEL));
    store.edit(&late, |i| i.next_rotation = Some(epoch(10)));
    let report = audit(
        &store,
        &db,
        epoch(20),
        &options(&["off", "late"], false, false),
    )
    .await;
    assert_eq!(codes(&report), [["rotation-disabled"], ["overdue"]]);
    assert!(report.secrets[1].problems[0].detail.contains("10 days ago"));
}

#[tokio::test]
async fn alternating_users_master_and_clone() {
    let (store, db) = (FakeSecrets::default(), FakeDb::default());
    let alternating = |masterarn: &str| {
        secret("app", SENTINEL).tap(|v| {
            v["rotation_strategy"] = json!("alternating-users");
            v["masterarn"] = json!(masterarn);
        })
    };
    let master = store.add_secret("master", &secret("master", "master-password-1"));
    let far = store.add_secret(
        "far",
        &secret("master", "master-password-1").tap(|v| v["host"] = json!("elsewhere")),
    );
    store.add_secret(
        "missing-master",
        &alternating("arn:aws:secretsmanager:us-east-1:123456789012:secret:gone"),
    );
    store.add_secret("far-master", &alternating(&far));
    store.add_secret("drifted", &alternating(&master));
    store.add_secret(
        "no-masterarn",
        &secret("app", SENTINEL).tap(|v| v["rotation_strategy"] = json!("alternating-users")),
    );
    db.accepts("app", SENTINEL);
    db.accepts("master", "master-password-1");
    db.drift.borrow_mut().excess = (0..10).map(|i| format!("SELECT ON t{i}")).collect();
    let secrets = ["missing-master", "far-master", "drifted", "no-masterarn"];
    let report = audit(&store, &db, epoch(1), &options(&secrets, true, false)).await;
    assert_eq!(
        codes(&report),
        [
            vec!["master-unreadable"],
            vec!["master-unreadable"],
            vec!["clone-drift"],
            vec!["invalid-secret"],
        ]
    );
    let detail = |i: usize| report.secrets[i].problems[0].detail.as_str();
    assert!(
        detail(0).contains("ResourceNotFoundException"),
        "{}",
        detail(0)
    );
    assert!(
        detail(1).contains("master host elsewhere:5432"),
        "{}",
        detail(1)
    );
    assert!(
        detail(2).contains("app_clone") && detail(2).contains("SELECT ON t7; and 2 more"),
        "{}",
        detail(2)
    );
    assert!(detail(3).contains("masterarn"), "{}", detail(3));
    // Without --login the clone is not looked at.
    let report = audit(&store, &db, epoch(1), &options(&["drifted"], false, false)).await;
    assert_eq!(codes(&report), [Vec::<&str>::new()]);
    assert!(!shown(&report).contains("master-password-1"));
}

#[tokio::test]
async fn failed_calls_make_the_audit_incomplete() {
    let (store, db) = (FakeSecrets::default(), FakeDb::default());
    store.add_secret("fine", &secret("a", SENTINEL));
    store.denied.borrow_mut().insert("denied".to_owned());
    let report = audit(
        &store,
        &db,
        epoch(1),
        &options(&["fine", "denied", "absent"], false, false),
    )
    .await;
    assert_eq!(report.secrets.len(), 1);
    assert_eq!(report.failures.len(), 2);
    assert_eq!(report.exit_status(), EXIT_INCOMPLETE);
    let text = shown(&report);
    assert!(
        text.contains("NOT AUDITED denied") && text.contains("AccessDeniedException"),
        "{text}"
    );
    assert!(
        text.contains("NOT AUDITED absent")
            && text.contains("1 healthy, 0 unhealthy, 2 not audited"),
        "{text}"
    );
    // JSON carries only the audited secrets.
    assert_eq!(report.to_json()["secrets"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn listing_selects_configured_secrets_of_the_function() {
    let (store, db) = (FakeSecrets::default(), FakeDb::default());
    store.add_secret("b-mine", &secret("a", SENTINEL));
    store.add_secret("a-mine", &secret("a", SENTINEL));
    let other = store.add_secret("theirs", &secret("a", SENTINEL));
    store.edit(&other, |i| {
        i.rotation_function = Some(format!("{FUNCTION}-other"))
    });
    let plain = store.add_secret("unrotated", &secret("a", SENTINEL));
    store.edit(&plain, |i| i.rotation_function = None);
    let names = |report: &Report| -> Vec<String> {
        report.secrets.iter().map(|s| s.name.clone()).collect()
    };
    let all = Options {
        all: true,
        ..Options::default()
    };
    let report = audit(&store, &db, epoch(1), &all).await;
    assert_eq!(names(&report), ["a-mine", "b-mine", "theirs"]);
    let mine = Options {
        function: Some("rotator".into()),
        ..Options::default()
    };
    let report = audit(&store, &db, epoch(1), &mine).await;
    assert_eq!(names(&report), ["a-mine", "b-mine"]);
    // Named secrets first, once each, and narrowed by --function too.
    let named = Options {
        secrets: vec!["b-mine".into(), "theirs".into()],
        function: Some(FUNCTION.into()),
        all: true,
        ..Options::default()
    };
    let report = audit(&store, &db, epoch(1), &named).await;
    assert_eq!(names(&report), ["b-mine", "a-mine"]);
}

#[test]
fn the_table_reads_one_line_per_secret_then_its_details() {
    let report = Report {
        secrets: vec![
            SecretReport {
                arn: "arn:1".into(),
                name: "prod/app".into(),
                problems: Vec::new(),
                repairs: Vec::new(),
            },
            SecretReport {
                arn: "arn:2".into(),
                name: "prod/orders".into(),
                problems: vec![
                    Problem::new(Code::StuckPending, "AWSPENDING is on version v2"),
                    Problem::new(Code::CurrentLoginFailed, "AWSCURRENT does not log in"),
                ],
                repairs: vec![Repair {
                    action: Action::CompletedRotation,
                    done: false,
                    detail: "would move AWSCURRENT to version v2".into(),
                }],
            },
        ],
        failures: Vec::new(),
    };
    let mut table = Vec::new();
    report.write_table(&mut table).unwrap();
    assert_eq!(
        String::from_utf8(table).unwrap(),
        "\
SECRET       STATUS     PROBLEMS
prod/app     healthy    -
prod/orders  UNHEALTHY  stuck-pending, current-login-failed
    stuck-pending: AWSPENDING is on version v2
    current-login-failed: AWSCURRENT does not log in
    repair not done: completed-rotation: would move AWSCURRENT to version v2

1 healthy, 1 unhealthy
"
    );
}

#[test]
fn the_table_escapes_what_secrets_and_databases_say() {
    // A user name with a newline and an escape sequence would forge a healthy row and write
    // control sequences to the operator's terminal.
    let forged = "app\nprod/payments  healthy    -\u{1b}[2K";
    let report = Report {
        secrets: vec![SecretReport {
            arn: "arn:1".into(),
            name: format!("prod/{forged}"),
            problems: vec![Problem::new(
                Code::CurrentLoginFailed,
                format!("AWSCURRENT (user {forged}) does not log in"),
            )],
            repairs: vec![Repair {
                action: Action::None,
                done: false,
                detail: forged.into(),
            }],
        }],
        failures: vec![Failure {
            secret: forged.into(),
            error: Error::Config {
                variable: "X",
                problem: forged.into(),
            },
        }],
    };
    let mut table = Vec::new();
    report.write_table(&mut table).unwrap();
    let table = String::from_utf8(table).unwrap();
    assert!(!table.contains('\u{1b}'), "{table:?}");
    assert!(
        !table.lines().any(|line| line.starts_with("prod/payments")),
        "{table}"
    );
    assert!(table.contains("app\\nprod/payments"), "{table}");
    assert!(table.contains("\\u{1b}[2K"), "{table}");
}

/// `value.tap(|v| …)`: a changed copy, for fixtures.
trait Tap: Sized {
    fn tap(self, f: impl FnOnce(&mut Self)) -> Self;
}

impl Tap for Value {
    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}

#[tokio::test(start_paused = true)]
async fn cache_users_are_audited_through_their_api() {
    use crate::cache_user::Service;
    use crate::cache_user::fake::{FakeUser, arn};
    let (store, db) = (FakeSecrets::default(), FakeDb::default());
    let secret = |id: &str, name: &str| json!({"user_arn": arn(Service::ElastiCache, id), "username": name, "password": SENTINEL});
    store.add_secret("healthy", &secret("app-user", "app"));
    store.add_secret("renamed", &secret("app-user", "someone"));
    let stuck = store.add_secret("stuck", &secret("busy-user", "busy"));
    store.stick(&stuck, Some(&secret("busy-user", "busy")), epoch(0));
    store.add_secret("gone", &secret("gone-user", "gone"));
    db.cache_users.users.borrow_mut().extend([
        FakeUser::new(Service::ElastiCache, "app-user", "app", &[SENTINEL]),
        FakeUser::new(Service::ElastiCache, "busy-user", "busy", &[SENTINEL]).modifying_for(1_000),
    ]);
    let names = ["healthy", "renamed", "stuck", "gone"];
    let report = audit(&store, &db, epoch(1), &options(&names, true, false)).await;
    assert_eq!(
        codes(&report),
        [
            vec![],
            vec!["invalid-secret"],
            vec!["stuck-pending", "user-not-ready"],
            vec!["invalid-secret"],
        ]
    );
    let detail = |i: usize, j: usize| report.secrets[i].problems[j].detail.clone();
    assert!(
        detail(2, 1).contains("modifying for at least"),
        "{}",
        detail(2, 1)
    );
    assert!(detail(3, 0).contains("does not exist"), "{}", detail(3, 0));
    assert_eq!(store.calls.get().writes(), 0);
    assert_no_secret_value(&report);
    // Without --login the API is not asked.
    let calls = db.cache_users.calls.borrow().len();
    audit(&store, &db, epoch(1), &options(&names, false, false)).await;
    assert_eq!(db.cache_users.calls.borrow().len(), calls);
}
