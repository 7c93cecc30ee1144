//! The function and the doctor agree, on real servers: for each set-up, the doctor's `--login`
//! audit, the configuration test and createSecret plus setSecret of a real rotation reach the same
//! verdict, each in its own words (the unit-level twin is `src/handler/tests/agreement.rs`):
//!
//! | doctor | configuration test | setSecret (or createSecret) |
//! |---|---|---|
//! | healthy | passes | rotates |
//! | `invalid-secret` | `PreflightFailed` | `InvalidSecret` |
//! | `master-unreadable` | `PreflightFailed` | `SecretsManagerError`, `IdentityMismatch`, `LoginFailed` or `RdsError` |
//! | `master-lacks-privilege` | `PreflightFailed` naming the grant | `DatabaseError` naming the grant |
//! | `clone-drift` | `PreflightFailed` | `IdentityMismatch` |
//! | `cannot-change-password` | `PreflightFailed` | `DatabaseError` |

use db_secret_rotator::doctor::{Doctor, Options};
use db_secret_rotator::rotators::Rotator;
use serde_json::json;

use super::rotates;
use crate::support::masters::{MyMaster, PgMaster, mariadb_rds_privileges_without};
use crate::support::preflight::*;
use crate::support::proxy::{Answer, Rule, SmProxy, When};
use crate::support::redis::APP_RULES;
use crate::support::setups::*;
use crate::support::*;

/// What all three faces must say of a set-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Healthy,
    InvalidSecret,
    MasterUnreadable,
    /// Naming the grant.
    LacksPrivilege,
    CloneDrift,
    CannotChange,
}

impl Verdict {
    /// The doctor's problem code.
    fn code(self) -> Option<&'static str> {
        match self {
            Verdict::Healthy => None,
            Verdict::InvalidSecret => Some("invalid-secret"),
            Verdict::MasterUnreadable => Some("master-unreadable"),
            Verdict::LacksPrivilege => Some("master-lacks-privilege"),
            Verdict::CloneDrift => Some("clone-drift"),
            Verdict::CannotChange => Some("cannot-change-password"),
        }
    }

    /// The `errorType`s of the rotation's failing step.
    fn error_types(self) -> &'static [&'static str] {
        match self {
            Verdict::Healthy => &[],
            Verdict::InvalidSecret => &["InvalidSecret"],
            Verdict::MasterUnreadable => &[
                "SecretsManagerError",
                "IdentityMismatch",
                "LoginFailed",
                "RdsError",
            ],
            Verdict::LacksPrivilege | Verdict::CannotChange => &["DatabaseError"],
            Verdict::CloneDrift => &["IdentityMismatch"],
        }
    }
}

/// Runs the three faces on `setup` and requires `verdict` of each; `needle` must appear in the
/// doctor's finding and the configuration test's error, and, for a missing privilege, in
/// setSecret's error. A healthy set-up's rotation is completed and checked.
async fn faces_agree<R: Rotator>(
    stack: &Stack,
    function: &Function<R>,
    setup: &Setup,
    verdict: Verdict,
    needle: &str,
) {
    let client = sm_client().await;
    let case = format!("{} ({}, {verdict:?})", setup.arn, setup.strategy.name());
    // (i) the doctor's --login audit.
    let options = Options {
        secrets: vec![setup.arn.clone()],
        login: true,
        ..Options::default()
    };
    let report = Doctor::new(&function.app).run(&options).await;
    check_leaks(None);
    assert!(report.failures.is_empty(), "{case}: {:?}", report.failures);
    // Rotation is not configured yet: the audit says so, which is beside the point here.
    let problems: Vec<_> = report.secrets[0]
        .problems
        .iter()
        .filter(|p| !matches!(p.code.as_str(), "rotation-disabled" | "overdue"))
        .collect();
    let mut codes: Vec<&str> = problems.iter().map(|p| p.code.as_str()).collect();
    // One problem per missing privilege, of one code.
    codes.dedup();
    assert_eq!(
        codes,
        verdict.code().into_iter().collect::<Vec<_>>(),
        "{case}: the doctor: {problems:?}"
    );
    if let Some(problem) = problems.first() {
        assert!(
            problem.detail.contains(needle),
            "{case}: {needle:?} missing from the doctor's {}",
            problem.detail
        );
    }
    // (ii) the configuration test.
    let tested = configuration_test(function, &client, &setup.arn).await;
    match verdict {
        Verdict::Healthy => {
            tested.unwrap_or_else(|e| panic!("{case}: the configuration test: {e}"))
        }
        _ => {
            assert_preflight_failed(tested, &[needle]);
        }
    }
    // (iii) createSecret and setSecret of a real rotation.
    if verdict == Verdict::Healthy {
        rotates(stack, function, setup).await;
        return;
    }
    let token = token();
    start_rotation(&client, &setup.arn, &token).await;
    let mut result = function.invoke("createSecret", &setup.arn, &token).await;
    if result.is_ok() {
        result = function.invoke("setSecret", &setup.arn, &token).await;
    }
    let err = result.expect_err(&format!("{case}: the rotation went through"));
    assert!(
        verdict.error_types().contains(&err.error_type()),
        "{case}: {} {err}",
        err.error_type()
    );
    // setSecret runs the preflight's privilege check first and names the grant, nothing changed.
    if verdict == Verdict::LacksPrivilege {
        assert!(
            err.to_string().contains(needle),
            "{case}: {needle:?}: {err}"
        );
    }
    clear_pending(&client, &setup.arn).await;
}

/// PostgreSQL: each strategy, a missing `masterarn`, a master secret that does not exist.
#[tokio::test]
async fn postgres_strategies() {
    let stack = require_stack!();
    let client = sm_client().await;
    let (function, _proxy) = counted_function(stack, false).await;
    let master = PgMaster::rds_like(stack).await;
    let by_master = Some(&master);

    let single = pg_setup(stack, &client, Strategy::SingleUser, None, false).await;
    faces_agree(stack, &function, &single, Verdict::Healthy, "").await;
    single.drop(stack).await;

    let alternating = pg_setup(stack, &client, Strategy::AlternatingUsers, by_master, true).await;
    faces_agree(stack, &function, &alternating, Verdict::Healthy, "").await;
    alternating.drop(stack).await;

    let master = PgMaster::rds_like(stack).await;
    let by_master = Some(&master);
    let dual = pg_setup(stack, &client, Strategy::DualPassword, by_master, true).await;
    faces_agree(
        stack,
        &function,
        &dual,
        Verdict::InvalidSecret,
        "dual-password",
    )
    .await;

    let mut secret = dual.secret.clone();
    secret["rotation_strategy"] = json!("alternating-users");
    secret.as_object_mut().unwrap().remove("masterarn");
    let no_masterarn = Setup {
        arn: create_secret(&client, &secret).await,
        secret,
        strategy: Strategy::AlternatingUsers,
        name: dual.name.clone(),
        accounts: dual.accounts.clone(),
    };
    faces_agree(
        stack,
        &function,
        &no_masterarn,
        Verdict::InvalidSecret,
        "masterarn",
    )
    .await;

    let missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:dsr-no-such-master-AbCdEf";
    let mut secret = no_masterarn.secret.clone();
    secret["masterarn"] = json!(missing);
    let unreadable = Setup {
        arn: create_secret(&client, &secret).await,
        secret,
        ..no_masterarn
    };
    faces_agree(
        stack,
        &function,
        &unreadable,
        Verdict::MasterUnreadable,
        missing,
    )
    .await;
    unreadable.drop(stack).await;
}

/// PostgreSQL masters lacking a privilege, and a clone that holds more than its original.
#[tokio::test]
async fn postgres_master_shortfalls() {
    let stack = require_stack!();
    let client = sm_client().await;
    let (function, _proxy) = counted_function(stack, false).await;

    let no_createrole = PgMaster::with_attributes(stack, "CREATEDB").await;
    let setup = pg_setup(
        stack,
        &client,
        Strategy::AlternatingUsers,
        Some(&no_createrole),
        false,
    )
    .await;
    let fix = format!("ALTER ROLE {} CREATEROLE", no_createrole.name);
    faces_agree(stack, &function, &setup, Verdict::LacksPrivilege, &fix).await;
    setup.drop(stack).await;

    if stack.pg_server.major >= 16 {
        let master = PgMaster::rds_like(stack).await;
        let setup = pg_setup(
            stack,
            &client,
            Strategy::AlternatingUsers,
            Some(&master),
            false,
        )
        .await;
        let fix = format!("GRANT {} TO {} WITH ADMIN OPTION", setup.name, master.name);
        faces_agree(stack, &function, &setup, Verdict::LacksPrivilege, &fix).await;
        setup.drop(stack).await;
    }

    // A clone the master made, given CREATEDB behind the rotation's back.
    let master = PgMaster::rds_like(stack).await;
    let setup = pg_setup(
        stack,
        &client,
        Strategy::AlternatingUsers,
        Some(&master),
        true,
    )
    .await;
    let clone = format!("{}_clone", setup.name);
    master.create_role(stack, &clone, &fixture_password()).await;
    stack
        .admin_run(
            Server::Postgres,
            &format!("ALTER ROLE \"{clone}\" CREATEDB"),
        )
        .await;
    faces_agree(stack, &function, &setup, Verdict::CloneDrift, "CREATEDB").await;
    setup.drop(stack).await;
}

/// MariaDB: each strategy under an RDS-like master, and masters lacking a privilege.
#[tokio::test]
async fn mariadb_strategies_and_master_shortfalls() {
    let stack = require_stack!();
    let client = sm_client().await;
    let (function, _proxy) = counted_function(stack, false).await;
    let rds_like = MyMaster::rds_like(stack).await;
    let no_create = MyMaster::with_privileges(
        stack,
        &mariadb_rds_privileges_without(&["CREATE USER", "INSERT"]),
        true,
    )
    .await;
    let no_option = MyMaster::with_privileges(
        stack,
        crate::support::masters::MARIADB_RDS_PRIVILEGES,
        false,
    )
    .await;
    let no_alter = MyMaster::with_privileges(
        stack,
        &mariadb_rds_privileges_without(&["CREATE USER", "UPDATE"]),
        true,
    )
    .await;
    let create_user = |m: &MyMaster| format!("GRANT CREATE USER ON *.* TO {}@%", m.user.name);
    let cases = [
        (Strategy::SingleUser, None, Verdict::Healthy, String::new()),
        (
            Strategy::AlternatingUsers,
            Some(&rds_like),
            Verdict::Healthy,
            String::new(),
        ),
        (
            Strategy::DualPassword,
            Some(&rds_like),
            Verdict::Healthy,
            String::new(),
        ),
        (
            Strategy::AlternatingUsers,
            Some(&no_create),
            Verdict::LacksPrivilege,
            create_user(&no_create),
        ),
        (
            Strategy::AlternatingUsers,
            Some(&no_option),
            Verdict::LacksPrivilege,
            "WITH GRANT OPTION".to_owned(),
        ),
        (
            Strategy::DualPassword,
            Some(&no_alter),
            Verdict::LacksPrivilege,
            create_user(&no_alter),
        ),
    ];
    for (strategy, master, verdict, needle) in cases {
        let setup = my_setup(stack, &client, strategy, master).await;
        faces_agree(stack, &function, &setup, verdict, &needle).await;
        my_drop_database(stack, &setup).await;
        let mut accounts = setup.accounts.clone();
        if let (Accounts::My(users), Some(m)) = (&mut accounts, master) {
            users.retain(|u| *u != m.user.name);
        }
        accounts.drop(stack).await;
    }
    for master in [rds_like, no_create, no_option, no_alter] {
        master.drop(stack).await;
    }
}

/// Redis: single user with and without the right to change its own password, dual passwords,
/// and alternating users, which Redis is not served with.
#[tokio::test]
async fn redis_strategies() {
    let (stack, redis) = require_redis!();
    let client = sm_client().await;
    let (function, _proxy) = counted_function(stack, false).await;
    for (strategy, rules, verdict, needle) in [
        (Strategy::SingleUser, REDIS_SELF_RULES, Verdict::Healthy, ""),
        (Strategy::DualPassword, APP_RULES, Verdict::Healthy, ""),
        (
            Strategy::AlternatingUsers,
            APP_RULES,
            Verdict::InvalidSecret,
            "alternating-users",
        ),
        (
            Strategy::SingleUser,
            APP_RULES,
            Verdict::CannotChange,
            "ACL SETUSER",
        ),
    ] {
        let setup = redis_setup(stack, redis, &client, strategy, rules).await;
        faces_agree(stack, &function, &setup, verdict, needle).await;
        setup.drop(stack).await;
    }
}

/// RDS: an RDS-managed master, the master of a primary for a secret on its read replica, and a
/// function that may not describe the instance.
#[tokio::test]
async fn rds_managed_master_replica_and_denied_describe() {
    let stack = require_stack!();
    let client = sm_client().await;
    let primary = create_instance(stack, Server::Postgres, true).await;
    let replica = create_replica(stack, &primary).await;
    let masterarn = primary.master_secret.clone().unwrap();
    let denied = SmProxy::start(stack).await;
    denied.add(Rule::All {
        when: When::Before,
        answer: Answer::Denied,
    });
    for (host, rds, verdict, needle) in [
        (&primary.endpoint, None, Verdict::Healthy, ""),
        (&replica.endpoint, None, Verdict::Healthy, ""),
        (
            &primary.endpoint,
            Some(denied.url.as_str()),
            Verdict::MasterUnreadable,
            "DescribeDBInstances",
        ),
    ] {
        let name = unique("pfrds");
        let password = fixture_password();
        PgUser::create(stack, stack.pg_port, &name, &password).await;
        let mut secret = stack.alternating_secret(Server::Postgres, &name, &password, &masterarn);
        secret["host"] = json!(host);
        secret["port"] = json!(5432);
        secret["tls_server_name"] = json!("localhost");
        let setup = Setup {
            name: name.clone(),
            arn: create_secret(&client, &secret).await,
            secret,
            strategy: Strategy::AlternatingUsers,
            accounts: Accounts::Pg(vec![format!("{name}_clone"), name]),
        };
        let (function, _proxy) = counted_function(stack, false).await;
        let redirect = Redirect::new(function.app.rotators.clone())
            .route(&primary.endpoint, stack, Server::Postgres)
            .route(&replica.endpoint, stack, Server::Postgres);
        let mut function = function.with_rotators_of(redirect);
        if let Some(url) = rds {
            function.app.rds = rds_at(Some(url)).await;
        }
        faces_agree(stack, &function, &setup, verdict, needle).await;
        setup.drop(stack).await;
    }
}
