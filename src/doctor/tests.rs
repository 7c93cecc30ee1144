//! The doctor against in-memory fakes: a secret store that models labels, values and version
//! dates, and a database that knows which passwords log in. What the integration tests cannot
//! stage against the emulator (old versions, overdue rotations, failing calls) is staged here.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::*;
use crate::config::Config;
use crate::credentials::DbSecret;
use crate::deadline::StepContext;
use crate::error::{CloneFindings, Error};
use crate::protocol::Stage;
use crate::rotators::Account;
use crate::secrets::{SecretDescription, SecretInfo, SecretInventory, SecretStore};

const SENTINEL: &str = "Sentinel-'\"\\-pw-0f3c";
const PENDING_SENTINEL: &str = "Sentinel-pending-77aa";
const FUNCTION: &str = "arn:aws:lambda:us-east-1:123456789012:function:rotator";
const HOUR: Duration = Duration::from_secs(3_600);

fn epoch(days: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(20_000 * 86_400 + days * 86_400)
}

struct Version {
    stages: Vec<String>,
    value: Option<String>,
    created: SystemTime,
}

/// A secret's description and its versions by id.
type Stored = (SecretInfo, BTreeMap<String, Version>);

/// Secrets by ARN; each version with its labels, value and creation date.
#[derive(Default)]
struct FakeStore {
    secrets: RefCell<BTreeMap<String, Stored>>,
    /// Names or ARNs whose calls fail (access denied).
    denied: BTreeSet<String>,
    writes: Cell<usize>,
}

fn not_found(id: &str, operation: &'static str) -> Error {
    Error::SecretsManager {
        secret_id: id.to_owned(),
        operation,
        code: Some("ResourceNotFoundException".into()),
        detail: "ResourceNotFoundException: Secrets Manager can't find the specified secret".into(),
    }
}

impl FakeStore {
    /// Adds a secret with rotation on, its current value, and returns its ARN.
    fn add(&self, name: &str, current: &Value) -> String {
        let arn = format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-AbCdEf");
        let info = SecretInfo {
            arn: arn.clone(),
            name: name.to_owned(),
            rotation_function: Some(FUNCTION.to_owned()),
            description: SecretDescription {
                rotation_enabled: Some(true),
                ..SecretDescription::default()
            },
            ..SecretInfo::default()
        };
        let mut versions = BTreeMap::new();
        versions.insert(
            "v1".to_owned(),
            Version {
                stages: vec!["AWSCURRENT".into()],
                value: Some(current.to_string()),
                created: epoch(0),
            },
        );
        self.secrets
            .borrow_mut()
            .insert(arn.clone(), (info, versions));
        arn
    }

    /// Stages version `v2` as `AWSPENDING`, created at `created`, with `value` (or none).
    fn stick(&self, arn: &str, value: Option<&Value>, created: SystemTime) {
        self.secrets.borrow_mut().get_mut(arn).unwrap().1.insert(
            "v2".to_owned(),
            Version {
                stages: vec!["AWSPENDING".into()],
                value: value.map(Value::to_string),
                created,
            },
        );
    }

    fn edit(&self, arn: &str, edit: impl FnOnce(&mut SecretInfo)) {
        edit(&mut self.secrets.borrow_mut().get_mut(arn).unwrap().0);
    }

    fn labels(&self, arn: &str) -> BTreeMap<String, Vec<String>> {
        self.secrets.borrow()[arn]
            .1
            .iter()
            .map(|(id, v)| (id.clone(), v.stages.clone()))
            .collect()
    }

    fn arn_of(&self, id: &str, operation: &'static str) -> Result<String, Error> {
        if self.denied.contains(id) {
            return Err(Error::SecretsManager {
                secret_id: id.to_owned(),
                operation,
                code: Some("AccessDeniedException".into()),
                detail: "AccessDeniedException: not authorized".into(),
            });
        }
        self.secrets
            .borrow()
            .iter()
            .find(|(arn, (info, _))| *arn == id || info.name == id)
            .map(|(arn, _)| arn.clone())
            .ok_or_else(|| not_found(id, operation))
    }

    fn info(&self, arn: &str) -> SecretInfo {
        let secrets = self.secrets.borrow();
        let (info, versions) = &secrets[arn];
        let mut info = info.clone();
        info.description.versions = versions
            .iter()
            .map(|(id, v)| (id.clone(), v.stages.clone()))
            .collect();
        info
    }
}

impl SecretStore for FakeStore {
    async fn describe(
        &self,
        secret_id: &str,
        _: &StepContext<'_>,
    ) -> Result<SecretDescription, Error> {
        Ok(self
            .info(&self.arn_of(secret_id, "DescribeSecret")?)
            .description)
    }

    async fn get(
        &self,
        secret_id: &str,
        stage: Stage,
        version: Option<&str>,
        ctx: &StepContext<'_>,
    ) -> Result<String, Error> {
        self.get_if_exists(secret_id, stage, version, ctx)
            .await?
            .ok_or_else(|| not_found(secret_id, "GetSecretValue"))
    }

    async fn get_if_exists(
        &self,
        secret_id: &str,
        stage: Stage,
        version: Option<&str>,
        _: &StepContext<'_>,
    ) -> Result<Option<String>, Error> {
        let arn = self.arn_of(secret_id, "GetSecretValue")?;
        let secrets = self.secrets.borrow();
        Ok(secrets[&arn]
            .1
            .iter()
            .find(|(id, v)| {
                v.stages.iter().any(|s| s == stage.as_str())
                    && version.is_none_or(|wanted| wanted == id.as_str())
            })
            .and_then(|(_, v)| v.value.clone()))
    }

    async fn put_pending(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: Option<&str>,
        _: &StepContext<'_>,
    ) -> Result<(), Error> {
        panic!("the doctor never writes a value")
    }

    async fn promote(
        &self,
        secret_id: &str,
        token: &str,
        from_version: &str,
        _: &StepContext<'_>,
    ) -> Result<(), Error> {
        let arn = self.arn_of(secret_id, "UpdateSecretVersionStage")?;
        self.writes.set(self.writes.get() + 1);
        let mut secrets = self.secrets.borrow_mut();
        for (id, version) in &mut secrets.get_mut(&arn).unwrap().1 {
            version
                .stages
                .retain(|s| s != "AWSCURRENT" && s != "AWSPREVIOUS");
            if id == token {
                version.stages.push("AWSCURRENT".into());
            } else if id == from_version {
                version.stages.push("AWSPREVIOUS".into());
            }
        }
        Ok(())
    }
}

impl SecretInventory for FakeStore {
    async fn list(&self, _: i32, _: &StepContext<'_>) -> Result<Vec<SecretInfo>, Error> {
        let arns: Vec<String> = self.secrets.borrow().keys().cloned().collect();
        Ok(arns.iter().map(|arn| self.info(arn)).collect())
    }

    async fn inspect(&self, secret_id: &str, _: &StepContext<'_>) -> Result<SecretInfo, Error> {
        Ok(self.info(&self.arn_of(secret_id, "DescribeSecret")?))
    }

    async fn version_dates(
        &self,
        secret_id: &str,
        _: &StepContext<'_>,
    ) -> Result<BTreeMap<String, SystemTime>, Error> {
        let arn = self.arn_of(secret_id, "ListSecretVersionIds")?;
        Ok(self.secrets.borrow()[&arn]
            .1
            .iter()
            .map(|(id, v)| (id.clone(), v.created))
            .collect())
    }

    async fn remove_stage(
        &self,
        secret_id: &str,
        stage: Stage,
        version: &str,
        _: &StepContext<'_>,
    ) -> Result<(), Error> {
        let arn = self.arn_of(secret_id, "UpdateSecretVersionStage")?;
        self.writes.set(self.writes.get() + 1);
        let mut secrets = self.secrets.borrow_mut();
        let stages = &mut secrets
            .get_mut(&arn)
            .unwrap()
            .1
            .get_mut(version)
            .unwrap()
            .stages;
        stages.retain(|s| s != stage.as_str());
        Ok(())
    }
}

/// A database: the (user, password) pairs that log in, and what the alternate account holds
/// beyond the current one.
#[derive(Default)]
struct FakeDatabase {
    logins: RefCell<BTreeSet<(String, String)>>,
    drift: CloneFindings,
    /// Users that stop logging in after so many more successful logins.
    logins_left: RefCell<BTreeMap<String, usize>>,
}

impl FakeDatabase {
    fn accepts(&self, user: &str, password: &str) {
        self.logins
            .borrow_mut()
            .insert((user.to_owned(), password.to_owned()));
    }
}

impl Probe for FakeDatabase {
    type Session = String;

    async fn connect(
        &self,
        creds: &DbSecret,
        _: &str,
        _: &StepContext<'_>,
    ) -> Result<String, Error> {
        let pair = (
            creds.username().to_owned(),
            creds.password().expose().to_owned(),
        );
        let left = self.logins_left.borrow().get(&pair.0).copied();
        if self.logins.borrow().contains(&pair) && left != Some(0) {
            if let Some(left) = left {
                self.logins_left
                    .borrow_mut()
                    .insert(pair.0.clone(), left - 1);
            }
            Ok(pair.0)
        } else {
            Err(Error::Database {
                engine: creds.engine(),
                action: "logging in",
                code: "SQLSTATE 28P01".into(),
            })
        }
    }

    fn account(&self, session: &String) -> Account {
        Account {
            user: session.clone(),
            host: None,
        }
    }

    async fn close(&self, _: String) {}

    async fn audit_clone(
        &self,
        _: &mut String,
        _: &Account,
        _: &str,
        _: &StepContext<'_>,
    ) -> Result<CloneFindings, Error> {
        Ok(self.drift.clone())
    }
}

fn secret(user: &str, password: &str) -> Value {
    json!({"engine": "postgres", "host": "db.example", "username": user, "password": password})
}

fn options(secrets: &[&str], login: bool, repair: bool) -> Options {
    Options {
        secrets: secrets.iter().map(|s| (*s).to_owned()).collect(),
        login,
        repair,
        ..Options::default()
    }
}

async fn audit(store: &FakeStore, db: &FakeDatabase, now: SystemTime, options: &Options) -> Report {
    let config = Config::default();
    Doctor::new(store, db, &config).at(now).run(options).await
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
    let (store, db) = (FakeStore::default(), FakeDatabase::default());
    let arn = store.add("app", &secret("app", SENTINEL));
    db.accepts("app", SENTINEL);
    let report = audit(&store, &db, epoch(1), &options(&["app"], true, true)).await;
    assert_eq!(codes(&report), [Vec::<&str>::new()]);
    assert_eq!(report.exit_status(), EXIT_HEALTHY);
    assert_eq!(
        report.to_json(),
        json!({"secrets": [{"secret": arn, "name": "app", "healthy": true, "problems": [], "repairs": []}],
               "healthy": 1, "unhealthy": 0})
    );
    assert_eq!(store.writes.get(), 0);
}

#[tokio::test]
async fn stuck_pending_where_current_logs_in_is_cleared_once_settled() {
    let (store, db) = (FakeStore::default(), FakeDatabase::default());
    let arn = store.add("app", &secret("app", SENTINEL));
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
    assert_eq!(store.writes.get(), 0, "read-only without --repair");

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
    let (store, db) = (FakeStore::default(), FakeDatabase::default());
    let arn = store.add("app", &secret("app", SENTINEL));
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
    assert_eq!(store.writes.get(), 0);
    // An hour later it is removed.
    let report = audit(&store, &db, now + HOUR, &options(&["app"], true, true)).await;
    assert!(report.secrets[0].repairs[0].done);
    assert_eq!(store.writes.get(), 1);
}

#[tokio::test]
async fn stuck_pending_where_only_pending_logs_in_completes_the_rotation() {
    let (store, db) = (FakeStore::default(), FakeDatabase::default());
    let arn = store.add("app", &secret("app", SENTINEL));
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
    let (store, db) = (FakeStore::default(), FakeDatabase::default());
    let arn = store.add("app", &secret("app", SENTINEL));
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
    assert_eq!(store.writes.get(), 0);
    // The same for another port of the same host.
    let (store, db) = (FakeStore::default(), FakeDatabase::default());
    let arn = store.add("app", &secret("app", SENTINEL));
    db.accepts("app", PENDING_SENTINEL);
    let elsewhere = secret("app", PENDING_SENTINEL).tap(|v| v["port"] = json!(6543));
    store.stick(&arn, Some(&elsewhere), epoch(0));
    let report = audit(&store, &db, epoch(3), &options(&["app"], true, true)).await;
    assert!(!report.secrets[0].repairs[0].done);
    assert!(report.secrets[0].repairs[0].detail.contains(":6543"));
    assert_eq!(store.writes.get(), 0);
}

#[tokio::test]
async fn a_promotion_that_does_not_log_in_afterwards_is_undone() {
    let (store, db) = (FakeStore::default(), FakeDatabase::default());
    let arn = store.add("app", &secret("app", SENTINEL));
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
    let (store, db) = (FakeStore::default(), FakeDatabase::default());
    let arn = store.add("app", &secret("app", SENTINEL));
    db.accepts("app", PENDING_SENTINEL);
    store.stick(&arn, Some(&secret("app", PENDING_SENTINEL)), epoch(0));
    let examiner_store = &store;
    let ctx_tally = crate::deadline::CallTally::default();
    let ctx = StepContext {
        secret_id: "doctor",
        step: &crate::protocol::Step::Other("doctor".into()),
        deadline: crate::deadline::Deadline::new(None, Duration::from_secs(5)),
        tally: &ctx_tally,
    };
    let config = Config::default();
    let examiner = examine::Examiner {
        store: examiner_store,
        rotator: &db,
        config: &config,
        ctx: &ctx,
        now: epoch(3),
        login: true,
    };
    let info = store.inspect(&arn, &ctx).await.unwrap();
    let stuck = examiner.examine(&info).await.unwrap().stuck.unwrap();
    // Meanwhile finishSecret ran.
    store.promote(&arn, "v2", "v1", &ctx).await.unwrap();
    let writes = store.writes.get();
    let repair = repair::make(&examiner, &arn, Action::CompletedRotation, &stuck, epoch(3))
        .await
        .unwrap();
    assert!(!repair.done);
    assert!(
        repair.detail.contains("labels changed"),
        "{}",
        repair.detail
    );
    assert_eq!(store.writes.get(), writes);
}

#[tokio::test]
async fn when_neither_logs_in_nothing_changes() {
    let (store, db) = (FakeStore::default(), FakeDatabase::default());
    let arn = store.add("app", &secret("app", SENTINEL));
    store.stick(&arn, Some(&secret("app", PENDING_SENTINEL)), epoch(0));
    let report = audit(&store, &db, epoch(3), &options(&["app"], true, true)).await;
    let repair = &report.secrets[0].repairs[0];
    assert_eq!((repair.action, repair.done), (Action::None, false));
    assert_eq!(
        report.to_json()["secrets"][0]["repairs"],
        json!([{"action": "none", "done": false}])
    );
    assert_eq!(codes(&report), [["stuck-pending", "current-login-failed"]]);
    assert_eq!(store.writes.get(), 0);
    assert_eq!(report.exit_status(), EXIT_PROBLEM);
    assert_no_secret_value(&report);
}

#[tokio::test]
async fn unusable_values_name_the_field_never_the_value() {
    let (store, db) = (FakeStore::default(), FakeDatabase::default());
    store.add(
        "bad-port",
        &json!({"engine": "postgres", "host": "h", "username": "u", "password": SENTINEL, "port": "x"}),
    );
    store.add(
        "bad-engine",
        &secret("u", SENTINEL).tap(|v| v["engine"] = json!("Postgres")),
    );
    let arn = store.add("not-json", &json!(null));
    store
        .secrets
        .borrow_mut()
        .get_mut(&arn)
        .unwrap()
        .1
        .get_mut("v1")
        .unwrap()
        .value = Some(format!("{{\"password\": \"{SENTINEL}\"")); // cut short
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
    let (store, db) = (FakeStore::default(), FakeDatabase::default());
    let off = store.add("off", &secret("a", SENTINEL));
    store.edit(&off, |i| i.description.rotation_enabled = Some(false));
    let late = store.add("late", &secret("a", SENTINEL));
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
    let (store, mut db) = (FakeStore::default(), FakeDatabase::default());
    let alternating = |masterarn: &str| {
        secret("app", SENTINEL).tap(|v| {
            v["rotation_strategy"] = json!("alternating-users");
            v["masterarn"] = json!(masterarn);
        })
    };
    let master = store.add("master", &secret("admin", "master-password-1"));
    let far = store.add(
        "far",
        &secret("admin", "master-password-1").tap(|v| v["host"] = json!("elsewhere")),
    );
    store.add(
        "missing-master",
        &alternating("arn:aws:secretsmanager:us-east-1:123456789012:secret:gone"),
    );
    store.add("far-master", &alternating(&far));
    store.add("drifted", &alternating(&master));
    store.add(
        "no-masterarn",
        &secret("app", SENTINEL).tap(|v| v["rotation_strategy"] = json!("alternating-users")),
    );
    db.accepts("app", SENTINEL);
    db.accepts("admin", "master-password-1");
    db.drift.excess = (0..10).map(|i| format!("SELECT ON t{i}")).collect();
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
    assert!(detail(1).contains("for elsewhere:5432"), "{}", detail(1));
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
    let (mut store, db) = (FakeStore::default(), FakeDatabase::default());
    store.add("fine", &secret("a", SENTINEL));
    store.denied.insert("denied".to_owned());
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
    let (store, db) = (FakeStore::default(), FakeDatabase::default());
    store.add("b-mine", &secret("a", SENTINEL));
    store.add("a-mine", &secret("a", SENTINEL));
    let other = store.add("theirs", &secret("a", SENTINEL));
    store.edit(&other, |i| {
        i.rotation_function = Some(format!("{FUNCTION}-other"))
    });
    let plain = store.add("unrotated", &secret("a", SENTINEL));
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
