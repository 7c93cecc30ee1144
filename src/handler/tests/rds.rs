//! Alternating users with RDS: an RDS-managed master secret, and masters whose host differs from
//! the rotated secret's, against the in-memory RDS.

use super::*;
use crate::credentials::SslSetting;
use crate::rds::fake::instance;

pub(super) const ENDPOINT: &str = "db-1.abcdefghij.us-east-1.rds.amazonaws.com";
pub(super) const REPLICA: &str = "db-1-replica.abcdefghij.us-east-1.rds.amazonaws.com";
const STRANGER: &str = "other.abcdefghij.us-east-1.rds.amazonaws.com";
pub(super) const INSTANCE_TAG: &str = "aws:rds:primaryDBInstanceArn";
pub(super) const DB_1_ARN: &str = "arn:aws:rds:us-east-1:123456789012:db:db-1";

/// RDS with `db-1` (its master password in `MASTER`), its read replica, and an unrelated
/// instance.
pub(super) fn rds() -> FakeRds {
    let fake = FakeRds::default();
    let mut primary = instance("db-1");
    primary.master_secret = Some(MASTER.to_owned());
    let mut replica = instance("db-1-replica");
    replica.replica_source = Some("db-1".to_owned());
    fake.instances
        .borrow_mut()
        .extend([primary, replica, instance("other")]);
    fake
}

/// An alternating-users secret for `app` on `host`, verified as `db.tls.example`.
pub(super) fn secret_on(host: &str) -> Value {
    let mut secret = alternating_secret("app");
    secret["host"] = json!(host);
    secret["ssl"] = json!(true);
    secret["tls_server_name"] = json!("db.tls.example");
    secret
}

/// The store of `secret`, whose master secret is `master` described by `tags`.
pub(super) fn store_with_master(
    secret: &Value,
    master: Value,
    tags: &[(&str, &str)],
) -> FakeSecrets {
    let store = secrets(secret);
    store.add_master(master.to_string());
    store.edit(MASTER, |info| {
        info.description.tags = tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
    });
    store
}

/// A container over `store`, `db` and `rds`.
pub(super) fn rds_container(store: &FakeSecrets, db: &FakeDb, rds: FakeRds) -> TestApp {
    App::new(Config::default(), store.clone(), db.clone(), Rds::new(rds))
}

/// The master secret's value.
fn master_value(store: &FakeSecrets) -> String {
    store.version(MASTER, "m1").unwrap().value.unwrap()
}

/// The users of `app` served on `hosts` too.
pub(super) fn db_on(hosts: &[&str]) -> FakeDb {
    let db = alternating_db("app");
    db.other_hosts
        .borrow_mut()
        .extend(hosts.iter().map(|h| (*h).to_owned()));
    db
}

pub(super) fn managed_master() -> Value {
    json!({"username": "master", "password": "master-pw"})
}

pub(super) async fn step_with(app: &TestApp, name: &str) -> Result<(), Error> {
    invoke_with(&event(name), deadline(), app).await.0
}

/// The credentials the master logged in with.
fn master_logins(db: &FakeDb) -> Vec<Login> {
    db.connected
        .borrow()
        .iter()
        .filter(|c| c.username() == "master")
        .cloned()
        .collect()
}

#[tokio::test]
async fn an_rds_managed_master_acts_on_its_endpoint_with_verified_tls_in_its_own_database() {
    let db = db_on(&[ENDPOINT]);
    let mut secret = secret_on(ENDPOINT);
    // The application secret asks for plaintext: the master does not follow it.
    secret["ssl"] = json!(false);
    let store = store_with_master(&secret, managed_master(), &[(INSTANCE_TAG, DB_1_ARN)]);
    let app = rds_container(&store, &db, rds());
    // Two rounds: every generated password is the same here, so a third would find it set.
    for round in 0..2 {
        if round > 0 {
            next_rotation(&store, round);
        }
        let describes = store.calls.get().describe;
        for name in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
            step_with(&app, name)
                .await
                .unwrap_or_else(|e| panic!("round {round} {name}: {e}"));
        }
        let secret = store.value(TOKEN).unwrap();
        // The master's JSON gained nothing; the rotated secret only its user and password.
        assert_eq!(master_value(&store), managed_master().to_string());
        assert_eq!(secret["host"], ENDPOINT);
        // The tag was read once: the container remembers where the master is served.
        let describes = store.calls.get().describe - describes;
        assert_eq!(describes, if round == 0 { 5 } else { 4 }, "round {round}");
    }
    assert_eq!(*db.changes.borrow(), ["app_clone", "app"]);
    assert_eq!(
        app.rds.api().asked.borrow().as_slice(),
        [format!("instance:{DB_1_ARN}")]
    );
    let logins = master_logins(&db);
    assert_eq!(logins.len(), 2);
    for master in logins {
        // Engine, host and port from RDS; verified TLS to RDS's endpoint name, whatever the
        // rotated secret's `ssl` and `tls_server_name` say; the master's own database, never the
        // rotated one (docs/protocol.md 5.14).
        assert_eq!(master.engine(), crate::engine::Engine::Postgres);
        assert_eq!((master.host(), master.port()), (ENDPOINT, 5432));
        assert_eq!(master.ssl(), SslSetting::Require);
        assert_eq!(master.tls_server_name(), None);
        assert_eq!(master.dbname(), None);
    }
}

#[tokio::test]
async fn a_replica_host_is_accepted_and_the_master_acts_on_its_own_host() {
    for master in [
        managed_master(),
        json!({"engine": "postgres", "host": ENDPOINT, "username": "master", "password": "master-pw"}),
    ] {
        let rds = self::rds();
        let store = store_with_master(
            &secret_on(REPLICA),
            master.clone(),
            &[(INSTANCE_TAG, DB_1_ARN)],
        );
        let db = db_on(&[ENDPOINT, REPLICA]);
        let app = rds_container(&store, &db, rds);
        step_with(&app, "createSecret").await.unwrap();
        step_with(&app, "setSecret")
            .await
            .unwrap_or_else(|e| panic!("{master}: {e}"));
        assert_eq!(*db.changes.borrow(), ["app_clone"]);
        let logins = master_logins(&db);
        assert_eq!(logins.len(), 1);
        assert_eq!(
            logins[0].host(),
            ENDPOINT,
            "the master acts on the master's host"
        );
        // The replica was looked up (its endpoint and its source), nothing else.
        let asked = app.rds.api().asked.borrow().clone();
        assert_eq!(
            asked.last().map(String::as_str),
            Some("instance:db-1-replica")
        );
    }
}

#[tokio::test]
async fn a_host_in_no_such_relationship_is_refused_before_the_master_logs_in() {
    for (rotated_host, master) in [
        // An instance RDS knows, but no replica of the master's.
        (STRANGER, managed_master()),
        // The replica's identifier, another domain: RDS never gave that endpoint.
        (
            "db-1-replica.abcdefghij.us-east-1.rds.amazonaws.com.evil.example",
            managed_master(),
        ),
        // A master whose own host is no RDS endpoint proves nothing.
        (
            REPLICA,
            json!({"engine": "postgres", "host": "db-1.example.com", "username": "master", "password": "master-pw"}),
        ),
    ] {
        let rds = self::rds();
        let store = store_with_master(
            &secret_on(rotated_host),
            master,
            &[(INSTANCE_TAG, DB_1_ARN)],
        );
        let db = db_on(&[ENDPOINT, REPLICA, STRANGER, rotated_host]);
        let app = rds_container(&store, &db, rds);
        step_with(&app, "createSecret").await.unwrap();
        let before = store.snapshot();
        let err = step_with(&app, "setSecret").await.unwrap_err();
        assert_eq!(
            err.error_type(),
            "IdentityMismatch",
            "{rotated_host}: {err}"
        );
        let text = err.to_string();
        assert!(
            text.contains(rotated_host)
                && text.contains("or an RDS read replica or Aurora reader of it"),
            "{text}"
        );
        assert!(master_logins(&db).is_empty(), "{rotated_host}");
        assert!(db.changes.borrow().is_empty());
        assert_eq!(store.snapshot(), before);
    }
}

#[tokio::test]
async fn tags_on_the_rotated_secret_never_locate_the_master() {
    let rds = self::rds();
    // The rotated secret carries the tag; the master secret, holding no host, carries none.
    let store = store_with_master(&secret_on(ENDPOINT), managed_master(), &[]);
    store.edit(SECRET, |info| {
        info.description.tags = vec![(INSTANCE_TAG.into(), DB_1_ARN.into())];
    });
    let db = db_on(&[ENDPOINT]);
    let app = rds_container(&store, &db, rds);
    step_with(&app, "createSecret").await.unwrap();
    let err = step_with(&app, "setSecret").await.unwrap_err();
    assert_eq!(err.error_type(), "InvalidSecret");
    let text = err.to_string();
    assert!(
        text.contains(MASTER) && text.contains("host key is missing"),
        "{text}"
    );
    assert_eq!(app.rds.api().calls(), 0);
    assert!(master_logins(&db).is_empty());
}

#[tokio::test]
async fn a_master_rds_does_not_vouch_for_is_refused() {
    // The tag names an instance whose master password lives in another secret.
    let rds = self::rds();
    rds.instances.borrow_mut()[0].master_secret = Some(format!("{MASTER}-other"));
    let store = store_with_master(
        &secret_on(ENDPOINT),
        managed_master(),
        &[(INSTANCE_TAG, DB_1_ARN)],
    );
    let db = db_on(&[ENDPOINT]);
    let app = rds_container(&store, &db, rds);
    step_with(&app, "createSecret").await.unwrap();
    let err = step_with(&app, "setSecret").await.unwrap_err();
    assert_eq!(err.error_type(), "InvalidSecret");
    assert!(err.to_string().contains("MasterUserSecret"), "{err}");
    assert!(master_logins(&db).is_empty());

    // RDS refuses to answer: said so, nothing changed.
    let rds = self::rds();
    rds.denied.set(true);
    let app = rds_container(&store, &db, rds);
    let err = step_with(&app, "setSecret").await.unwrap_err();
    assert_eq!(err.error_type(), "RdsError", "{err}");
    assert!(err.to_string().contains(SECRET), "{err}");
    assert!(db.changes.borrow().is_empty());
}

#[tokio::test]
async fn a_master_that_no_longer_logs_in_is_located_again() {
    let rds = self::rds();
    let store = store_with_master(
        &secret_on(ENDPOINT),
        managed_master(),
        &[(INSTANCE_TAG, DB_1_ARN)],
    );
    let db = db_on(&[ENDPOINT]);
    db.users
        .borrow_mut()
        .insert("master".into(), "rotated-by-rds".into());
    let app = rds_container(&store, &db, rds);
    step_with(&app, "createSecret").await.unwrap();
    for _ in 0..2 {
        let err = step_with(&app, "setSecret").await.unwrap_err();
        assert_eq!(err.error_type(), "LoginFailed", "{err}");
    }
    // Each failed master login made the next attempt ask RDS afresh.
    assert_eq!(app.rds.api().calls(), 2);
}

#[tokio::test]
async fn single_user_rotations_never_ask_rds() {
    let rds = self::rds();
    let mut secret = current_secret();
    secret["host"] = json!(ENDPOINT);
    let store = secrets(&secret);
    store.edit(SECRET, |info| {
        info.description.tags = vec![(INSTANCE_TAG.into(), DB_1_ARN.into())];
    });
    let db = FakeDb::with_user("app", OLD_PASSWORD);
    db.other_hosts.borrow_mut().push(ENDPOINT.into());
    let app = rds_container(&store, &db, rds);
    for name in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        step_with(&app, name).await.unwrap();
    }
    assert_eq!(*db.changes.borrow(), ["app"]);
    assert_eq!(app.rds.api().calls(), 0);
}
