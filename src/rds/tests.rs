//! The RDS lookups against an in-memory RDS: what is proven, what is refused, what is asked.

use std::time::Duration;

use super::fake::{FakeRds, cluster, cluster_arn, instance};
use super::*;
use crate::deadline::{CallTally, Deadline};
use crate::engine::Engine;
use crate::protocol::Step;
use crate::secrets::fake::FakeSecrets;

const MASTER: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-1-AbCdEf";

/// The master secret, RDS's, tagged `key` = `value`; its `DescribeSecret` calls are counted.
fn tagged(key: &str, value: &str) -> FakeSecrets {
    let store = FakeSecrets::default();
    store.add_as(MASTER, "rds!db-1", "v1", r#"{"username": "master"}"#);
    store.edit(MASTER, |info| {
        info.description.tags = vec![
            ("aws:secretsmanager:owningService".into(), "rds".into()),
            (key.to_owned(), value.to_owned()),
        ];
    });
    store
}

/// The `DescribeSecret` calls made of the master secret.
fn described(store: &FakeSecrets) -> usize {
    let calls = store.calls.get();
    assert_eq!(
        calls.total(),
        calls.describe,
        "the lookups read nothing else"
    );
    calls.describe
}

fn ctx(tally: &CallTally) -> StepContext<'_> {
    static STEP: Step = Step::SetSecret;
    StepContext {
        secret_id: "arn:rotated",
        step: &STEP,
        deadline: Deadline::new(None, Duration::from_secs(5)),
        tally,
    }
}

/// An RDS with the primary `db-1` (managed by `MASTER`), its replica `db-1-replica`, an
/// unrelated `other` and a replica of it, and the cluster `app` with its instance `app-1`.
fn topology() -> Rds<FakeRds> {
    let fake = FakeRds::default();
    let mut primary = instance("db-1");
    primary.master_secret = Some(MASTER.to_owned());
    let mut replica = instance("db-1-replica");
    replica.replica_source = Some("db-1".to_owned());
    let mut other_replica = instance("other-replica");
    other_replica.replica_source = Some("other".to_owned());
    let mut member = instance("app-1");
    member.cluster = Some("app".to_owned());
    let mut app = cluster("app");
    app.master_secret = Some(MASTER.to_owned());
    fake.instances.borrow_mut().extend([
        primary,
        replica,
        instance("other"),
        other_replica,
        member,
    ]);
    fake.clusters.borrow_mut().push(app);
    Rds::new(fake)
}

fn host(id: &str) -> String {
    format!("{id}.abcdefghij.us-east-1.rds.amazonaws.com")
}

#[tokio::test]
async fn an_instance_master_is_located_once_per_container() {
    let rds = topology();
    let tally = CallTally::default();
    let store = tagged(INSTANCE_TAG, "arn:aws:rds:us-east-1:123456789012:db:db-1");
    let master = rds
        .managed_master(&store, MASTER, &ctx(&tally))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(master.endpoint.engine, Engine::Postgres);
    assert_eq!(master.endpoint.host, host("db-1"));
    assert_eq!(master.endpoint.port, 5432);
    assert!(matches!(&master.database, Database::Instance { id, .. } if id == "db-1"));
    assert_eq!((described(&store), rds.api().calls()), (1, 1));
    // Remembered: no DescribeSecret, no RDS call.
    let again = rds.managed_master(&store, MASTER, &ctx(&tally)).await;
    assert_eq!(again.unwrap(), Some(master));
    assert_eq!((described(&store), rds.api().calls()), (1, 1));
    // Forgotten (say its master did not log in): asked again.
    rds.forget(MASTER);
    rds.managed_master(&store, MASTER, &ctx(&tally))
        .await
        .unwrap();
    assert_eq!((described(&store), rds.api().calls()), (2, 2));
}

#[tokio::test]
async fn a_cluster_master_acts_on_the_writer_endpoint() {
    let rds = topology();
    let tally = CallTally::default();
    // Tag keys are matched ignoring case, as AWS's functions do.
    let store = tagged("AWS:RDS:PRIMARYDBCLUSTERARN", &cluster_arn("app"));
    let master = rds
        .managed_master(&store, MASTER, &ctx(&tally))
        .await
        .unwrap()
        .unwrap();
    let app = cluster("app");
    assert_eq!(master.endpoint.engine, Engine::AuroraPostgres);
    assert_eq!(Some(master.endpoint.host.clone()), app.writer);
    assert_eq!(
        master.database,
        Database::Cluster {
            id: "app".into(),
            writer: app.writer.unwrap(),
            reader: app.reader,
            port: Some(5432),
        }
    );
    assert_eq!(
        rds.api().asked.borrow().as_slice(),
        [format!("cluster:{}", cluster_arn("app"))]
    );
}

#[tokio::test]
async fn an_untagged_master_is_no_rds_master() {
    let rds = topology();
    let tally = CallTally::default();
    let store = tagged("team", "payments");
    let found = rds.managed_master(&store, MASTER, &ctx(&tally)).await;
    assert_eq!(found.unwrap(), None);
    assert_eq!(rds.api().calls(), 0);
}

#[tokio::test]
async fn a_master_that_rds_does_not_vouch_for_is_refused() {
    let tally = CallTally::default();
    let located = async |store: FakeSecrets, rds: Rds<FakeRds>| {
        let err = rds
            .managed_master(&store, MASTER, &ctx(&tally))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "InvalidSecret", "{err}");
        // Nothing remembered: the next rotation asks again.
        let _ = rds.managed_master(&store, MASTER, &ctx(&tally)).await;
        assert_eq!(described(&store), 2);
        err.to_string()
    };
    // The instance no longer exists (deleted, or renamed).
    let gone = "arn:aws:rds:us-east-1:123456789012:db:db-0";
    let message = located(tagged(INSTANCE_TAG, gone), topology()).await;
    assert!(
        message.contains(MASTER) && message.contains(INSTANCE_TAG),
        "{message}"
    );
    assert!(
        message.contains(gone) && message.contains("does not know"),
        "{message}"
    );
    // The instance exists, but keeps its password in another secret.
    let other = "arn:aws:rds:us-east-1:123456789012:db:other";
    let message = located(tagged(INSTANCE_TAG, other), topology()).await;
    assert!(
        message.contains("DB instance other") && message.contains("MasterUserSecret"),
        "{message}"
    );
    // A description without the secret's ARN cannot be matched either.
    let anonymous = tagged(INSTANCE_TAG, "db-1");
    anonymous.edit(MASTER, |info| info.description.arn = None);
    let message = located(anonymous, topology()).await;
    assert!(message.contains("MasterUserSecret"), "{message}");
    // An engine this function does not rotate, and an instance still being created.
    let rds = topology();
    rds.api().instances.borrow_mut()[0].engine = Some("oracle-ee".into());
    let message = located(tagged(INSTANCE_TAG, "db-1"), rds).await;
    assert!(message.contains("runs engine `oracle-ee`"), "{message}");
    let rds = topology();
    rds.api().instances.borrow_mut()[0].address = None;
    let message = located(tagged(INSTANCE_TAG, "db-1"), rds).await;
    assert!(message.contains("no endpoint yet"), "{message}");
    let cluster_gone = cluster_arn("nope");
    let message = located(tagged(CLUSTER_TAG, &cluster_gone), topology()).await;
    assert!(
        message.contains(CLUSTER_TAG) && message.contains(&cluster_gone),
        "{message}"
    );
}

#[tokio::test]
async fn relations_are_proven_by_rds_alone() {
    let rds = topology();
    let tally = CallTally::default();
    let ctx = ctx(&tally);
    let db_1 = rds
        .database_at(&host("db-1"), 5432, &ctx)
        .await
        .unwrap()
        .unwrap();
    let app = rds
        .database_at(&cluster("app").writer.unwrap(), 5432, &ctx)
        .await
        .unwrap()
        .unwrap();
    let relation =
        async |h: &str, master: &Database| rds.relation(h, 5432, master, &ctx).await.unwrap();

    // The master's own endpoint, as a DNS name: no call.
    let before = rds.api().calls();
    let shouting = format!("{}.", host("db-1").to_uppercase());
    assert_eq!(
        relation(&shouting, &db_1).await,
        Some(Relation::SameEndpoint)
    );
    assert_eq!(rds.api().calls(), before);
    // A read replica of the master's instance; not a replica of another instance.
    assert_eq!(
        relation(&host("db-1-replica"), &db_1).await,
        Some(Relation::ReadReplica)
    );
    assert_eq!(relation(&host("other-replica"), &db_1).await, None);
    // The same names at another port than RDS gives them: another server.
    for (h, master) in [
        (host("db-1"), &db_1),
        (host("db-1-replica"), &db_1),
        (cluster("app").reader.unwrap(), &app),
        (host("app-1"), &app),
    ] {
        assert_eq!(
            rds.relation(&h, 5433, master, &ctx).await.unwrap(),
            None,
            "{h}:5433"
        );
    }
    assert_eq!(relation(&host("other"), &db_1).await, None);
    // Spoofs: the replica's identifier under another domain or hash, or another's instance.
    for spoof in [
        "db-1-replica.abcdefghij.us-east-1.rds.amazonaws.com.evil.example",
        "db-1-replica.zzzzzzzzzz.us-east-1.rds.amazonaws.com",
        "db-1-replica.abcdefghij.us-east-1.rds.evil.example",
        "db-1-replica",
        "10.0.0.7",
    ] {
        assert_eq!(relation(spoof, &db_1).await, None, "{spoof}");
    }
    // Aurora: the reader endpoint and the cluster's instances; not another cluster's endpoints.
    let reader = cluster("app").reader.unwrap();
    assert_eq!(relation(&reader, &app).await, Some(Relation::ClusterReader));
    assert_eq!(
        relation(&host("app-1"), &app).await,
        Some(Relation::ClusterInstance)
    );
    assert_eq!(relation(&host("db-1-replica"), &app).await, None);
    let before = rds.api().calls();
    let custom = "app.cluster-custom-abcdefghij.us-east-1.rds.amazonaws.com";
    assert_eq!(relation(custom, &app).await, None);
    assert_eq!(relation(&reader, &db_1).await, None);
    assert_eq!(
        rds.api().calls(),
        before,
        "cluster endpoints are never looked up as instances"
    );
}

#[tokio::test]
async fn a_masters_host_is_an_rds_database_only_as_rds_says() {
    let rds = topology();
    let tally = CallTally::default();
    let ctx = ctx(&tally);
    let at = async |h: &str| rds.database_at(h, 5432, &ctx).await.unwrap();
    assert!(matches!(at(&host("db-1")).await, Some(Database::Instance { id, .. }) if id == "db-1"));
    // Its name at another port is not the instance.
    assert_eq!(
        rds.database_at(&host("db-1"), 6432, &ctx).await.unwrap(),
        None
    );
    assert_eq!(
        rds.database_at(&cluster("app").writer.unwrap(), 6432, &ctx)
            .await
            .unwrap(),
        None
    );
    // A reader endpoint is no place for the master; neither is a name RDS did not give.
    assert_eq!(at(&cluster("app").reader.unwrap()).await, None);
    assert_eq!(
        at("db-1.zzzzzzzzzz.us-east-1.rds.amazonaws.com").await,
        None
    );
    assert_eq!(
        at("missing.abcdefghij.us-east-1.rds.amazonaws.com").await,
        None
    );
    let before = rds.api().calls();
    assert_eq!(at("db.internal").await, None);
    assert_eq!(at("127.0.0.1").await, None);
    assert_eq!(rds.api().calls(), before, "non-RDS names are not looked up");
}

#[tokio::test]
async fn api_failures_are_errors_not_refusals() {
    let rds = topology();
    rds.api().denied.set(true);
    let tally = CallTally::default();
    let ctx = ctx(&tally);
    let err = rds
        .database_at(&host("db-1"), 5432, &ctx)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "RdsError");
    let master = Database::Instance {
        id: "db-1".into(),
        arn: None,
        endpoint: host("db-1"),
        port: Some(5432),
        cluster: None,
    };
    let err = rds
        .relation(&host("db-1-replica"), 5432, &master, &ctx)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "RdsError");
    let store = tagged(INSTANCE_TAG, "db-1");
    let err = rds.managed_master(&store, MASTER, &ctx).await.unwrap_err();
    assert_eq!(err.error_type(), "RdsError");
}
