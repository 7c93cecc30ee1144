//! The configuration test on real servers (docs/protocol.md 5.15): `RotateSecret` with
//! `RotateImmediately=false` stages a copy of the current value and invokes `testSecret` alone;
//! the function then runs the preflight.
//!
//! - A healthy set-up passes, on every engine and strategy the function serves.
//! - Each shortfall fails it with `PreflightFailed` naming the privilege and how to grant it.
//! - Either way nothing is written: the accounts, grants and ACLs involved are as they were, and
//!   the Secrets Manager proxy in front of the function saw no writing call.
//! - A real rotation afterwards (once what was missing is granted) behaves as before.
//!
//! `agreement` runs the doctor's `--login` audit, the configuration test and a real rotation on
//! the same set-ups and requires the same verdict from all three.
//!
//! PostgreSQL tests that need a master carry `master` in their names, so that the PostgreSQL 16
//! and 17 runs of the suite include them (`ADMIN OPTION` exists from 16).

mod agreement;

use std::time::Duration;

use db_secret_rotator::rotators::Rotator;
use serde_json::{Value, json};

use crate::support::masters::{
    MARIADB_RDS_PRIVILEGES, MyMaster, PgMaster, mariadb_rds_privileges_without,
};
use crate::support::preflight::*;
use crate::support::proxy::{Answer, Rule, SmProxy, When};
use crate::support::redis::APP_RULES;
use crate::support::runtime_api::{FunctionProcess, Outcome};
use crate::support::setups::*;
use crate::support::*;

/// The configuration test of `setup`, which must leave the database and the secret as they were:
/// the accounts' state compared before and after, no writing call at the Secrets Manager proxy.
async fn configuration_test_writing_nothing<R: Rotator>(
    stack: &Stack,
    function: &Function<R>,
    proxy: &SmProxy,
    setup: &Setup,
) -> Result<(), db_secret_rotator::Error> {
    let client = sm_client().await;
    let before = setup.state(stack).await;
    let seen = proxy.log().len();
    let result = configuration_test(function, &client, &setup.arn).await;
    assert_eq!(
        setup.state(stack).await,
        before,
        "the configuration test changed the database ({result:?})"
    );
    assert!(proxy.log().len() > seen, "the function bypassed the proxy");
    assert_eq!(
        sm_writes(proxy, seen),
        Vec::<String>::new(),
        "Secrets Manager saw a write"
    );
    result
}

/// A full rotation of `setup` with a new token: it succeeds; the new credential logs in, and the
/// one before it still does (alternating users, dual passwords) or no longer does (single user).
/// Returns the new `AWSCURRENT`.
async fn rotates<R: Rotator>(stack: &Stack, function: &Function<R>, setup: &Setup) -> Value {
    let client = sm_client().await;
    let before = value(&client, &setup.arn, "AWSCURRENT").await;
    let token = token();
    start_rotation(&client, &setup.arn, &token).await;
    function
        .rotate(&setup.arn, &token)
        .await
        .unwrap_or_else(|e| panic!("the rotation after the configuration test: {e}"));
    let after = value(&client, &setup.arn, "AWSCURRENT").await;
    let credential = |v: &Value| {
        (
            v["username"].as_str().unwrap().to_owned(),
            v["password"].as_str().unwrap().to_owned(),
        )
    };
    let (user, password) = credential(&after);
    let (old_user, old_password) = credential(&before);
    setup
        .login(stack, &user, &password)
        .await
        .unwrap_or_else(|e| panic!("the new credential: {e}"));
    let old = setup.login(stack, &old_user, &old_password).await;
    match setup.strategy {
        Strategy::SingleUser => {
            assert_eq!(old, Err(setup.refused().to_owned()), "the old password");
            assert_eq!(user, old_user);
        }
        Strategy::AlternatingUsers => {
            old.unwrap_or_else(|e| panic!("the previous user: {e}"));
            assert_eq!(user, format!("{old_user}_clone"));
        }
        Strategy::DualPassword => {
            old.unwrap_or_else(|e| panic!("the previous password: {e}"));
            assert_eq!(user, old_user);
        }
    }
    after
}

/// A healthy set-up passes the configuration test, writing nothing, and then rotates.
async fn passes_then_rotates<R: Rotator>(
    stack: &Stack,
    function: &Function<R>,
    proxy: &SmProxy,
    setup: &Setup,
) {
    configuration_test_writing_nothing(stack, function, proxy, setup)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", setup.strategy.name()));
    rotates(stack, function, setup).await;
}

// ---------------------------------------------------------------------------------------------
// Healthy set-ups

#[tokio::test]
async fn postgres_single_user_passes_and_writes_nothing() {
    let stack = require_stack!();
    let client = sm_client().await;
    let (function, proxy) = counted_function(stack, false).await;
    let setup = pg_setup(stack, &client, Strategy::SingleUser, None, false).await;
    passes_then_rotates(stack, &function, &proxy, &setup).await;
    setup.drop(stack).await;
}

#[tokio::test]
async fn postgres_alternating_users_with_an_rds_like_master_passes_and_writes_nothing() {
    let stack = require_stack!();
    let client = sm_client().await;
    let (function, proxy) = counted_function(stack, false).await;
    let master = PgMaster::rds_like(stack).await;
    let setup = pg_setup(
        stack,
        &client,
        Strategy::AlternatingUsers,
        Some(&master),
        true,
    )
    .await;
    passes_then_rotates(stack, &function, &proxy, &setup).await;
    // The clone exists now: the configuration test passes again, still writing nothing.
    configuration_test_writing_nothing(stack, &function, &proxy, &setup)
        .await
        .unwrap();
    setup.drop(stack).await;
}

#[tokio::test]
async fn mariadb_every_strategy_passes_and_writes_nothing() {
    let stack = require_stack!();
    let client = sm_client().await;
    let (function, proxy) = counted_function(stack, false).await;
    let master = MyMaster::rds_like(stack).await;
    for strategy in [
        Strategy::SingleUser,
        Strategy::AlternatingUsers,
        Strategy::DualPassword,
    ] {
        let by = (strategy != Strategy::SingleUser).then_some(&master);
        let setup = my_setup(stack, &client, strategy, by).await;
        passes_then_rotates(stack, &function, &proxy, &setup).await;
        my_drop_database(stack, &setup).await;
        let mut accounts = setup.accounts.clone();
        if let Accounts::My(users) = &mut accounts {
            users.retain(|u| *u != master.user.name);
        }
        accounts.drop(stack).await;
    }
    master.drop(stack).await;
}

/// The server lets a master without `CREATE USER` create and alter accounts through `INSERT` and
/// `UPDATE` on the `mysql` schema, which RDS's master holds on `*.*`: the preflight agrees.
#[tokio::test]
async fn mariadb_master_creating_users_through_the_mysql_schema_passes() {
    let stack = require_stack!();
    let client = sm_client().await;
    let (function, proxy) = counted_function(stack, false).await;
    let master = MyMaster::with_privileges(
        stack,
        &mariadb_rds_privileges_without(&["CREATE USER"]),
        true,
    )
    .await;
    let setup = my_setup(stack, &client, Strategy::AlternatingUsers, Some(&master)).await;
    passes_then_rotates(stack, &function, &proxy, &setup).await;
    my_drop_database(stack, &setup).await;
    setup.drop(stack).await;
}

#[tokio::test]
async fn redis_single_user_and_dual_password_pass_and_write_nothing() {
    let (stack, redis) = require_redis!();
    let client = sm_client().await;
    let (function, proxy) = counted_function(stack, false).await;
    for (strategy, rules) in [
        (Strategy::SingleUser, REDIS_SELF_RULES),
        (Strategy::DualPassword, APP_RULES),
    ] {
        let setup = redis_setup(stack, redis, &client, strategy, rules).await;
        passes_then_rotates(stack, &function, &proxy, &setup).await;
        setup.drop(stack).await;
    }
}

/// A Redis dual-password master allowed only what docs/deployment.md lists for it (no `ACL
/// DRYRUN`, so the preflight asks with a discarded transaction).
#[tokio::test]
async fn redis_dual_password_master_with_only_the_documented_rules_passes() {
    let (stack, redis) = require_redis!();
    let client = sm_client().await;
    let (function, proxy) = counted_function(stack, false).await;
    let master = unique("pfmaster");
    let master_password = fixture_password();
    let rules = [
        "-@all",
        "+acl|getuser",
        "+acl|setuser",
        "+acl|save",
        "+config|get",
        "+multi",
        "+exec",
    ];
    redis::RedisUser::create(stack, redis, &master, &master_password, &rules).await;
    let masterarn = create_secret(
        &client,
        &redis::redis_secret(redis, &master, &master_password),
    )
    .await;
    let name = unique("pf");
    let password = fixture_password();
    redis::RedisUser::create(stack, redis, &name, &password, APP_RULES).await;
    redis::acl(stack, redis, &["SAVE"]).await;
    let mut secret = redis::redis_secret(redis, &name, &password);
    secret["masterarn"] = json!(masterarn);
    secret["rotation_strategy"] = json!("dual-password");
    let setup = Setup {
        name: name.clone(),
        arn: create_secret(&client, &secret).await,
        secret,
        strategy: Strategy::DualPassword,
        accounts: Accounts::Redis(vec![name, master]),
    };
    passes_then_rotates(stack, &function, &proxy, &setup).await;
    setup.drop(stack).await;
}

// ---------------------------------------------------------------------------------------------
// Shortfalls

/// (a) A Redis user that may not change its own password, under single user.
#[tokio::test]
async fn redis_single_user_without_acl_setuser_fails_naming_it() {
    let (stack, redis) = require_redis!();
    let client = sm_client().await;
    let (function, proxy) = counted_function(stack, false).await;
    let setup = redis_setup(stack, redis, &client, Strategy::SingleUser, APP_RULES).await;
    let result = configuration_test_writing_nothing(stack, &function, &proxy, &setup).await;
    assert_preflight_failed(result, &[&setup.name, "ACL SETUSER", "ACL SAVE"]);
    let mut grant = vec!["SETUSER", setup.name.as_str()];
    grant.extend_from_slice(&REDIS_SELF_RULES[3..]);
    redis::acl(stack, redis, &grant).await;
    redis::acl(stack, redis, &["SAVE"]).await;
    configuration_test_writing_nothing(stack, &function, &proxy, &setup)
        .await
        .unwrap();
    rotates(stack, &function, &setup).await;
    setup.drop(stack).await;
}

/// (b) A PostgreSQL alternating-users master without `CREATEROLE`.
#[tokio::test]
async fn postgres_master_without_createrole_fails_naming_it() {
    let stack = require_stack!();
    let client = sm_client().await;
    let (function, proxy) = counted_function(stack, false).await;
    let master = PgMaster::with_attributes(stack, "CREATEDB").await;
    let setup = pg_setup(
        stack,
        &client,
        Strategy::AlternatingUsers,
        Some(&master),
        false,
    )
    .await;
    let result = configuration_test_writing_nothing(stack, &function, &proxy, &setup).await;
    let fix = format!("ALTER ROLE {} CREATEROLE", master.name);
    let text = assert_preflight_failed(result, &[&master.name, "CREATEROLE", &fix]);
    let admin_option = format!("GRANT {} TO {} WITH ADMIN OPTION", setup.name, master.name);
    let mut grants = fix.clone();
    if stack.pg_server.major >= 16 {
        // A role the master did not create: from 16 it needs ADMIN OPTION on it too.
        assert!(text.contains(&admin_option), "{text}");
        grants = format!("{grants}; {admin_option}");
    }
    stack.admin_run(Server::Postgres, &grants).await;
    configuration_test_writing_nothing(stack, &function, &proxy, &setup)
        .await
        .unwrap();
    rotates(stack, &function, &setup).await;
    setup.drop(stack).await;
}

/// (c) From PostgreSQL 16, a `CREATEROLE` master lacks `ADMIN OPTION` on a role another
/// administrator created.
#[tokio::test]
#[allow(clippy::print_stderr, reason = "a skipped case says why")]
async fn postgres_master_without_admin_option_fails_on_16_and_later() {
    let stack = require_stack!();
    if stack.pg_server.major < 16 {
        eprintln!(
            "PostgreSQL {}: CREATEROLE alone manages every role before 16, nothing to check \
             (DSR_PG_SERVER=16 or later runs this case)",
            stack.pg_server.major
        );
        return;
    }
    let client = sm_client().await;
    let (function, proxy) = counted_function(stack, false).await;
    let master = PgMaster::rds_like(stack).await;
    let setup = pg_setup(
        stack,
        &client,
        Strategy::AlternatingUsers,
        Some(&master),
        false,
    )
    .await;
    let result = configuration_test_writing_nothing(stack, &function, &proxy, &setup).await;
    let fix = format!("GRANT {} TO {} WITH ADMIN OPTION", setup.name, master.name);
    let missing = format!("ADMIN OPTION on role {}", setup.name);
    let text = assert_preflight_failed(result, &[&missing, &fix]);
    assert!(!text.contains("CREATEROLE"), "{text}");
    stack.admin_run(Server::Postgres, &fix).await;
    configuration_test_writing_nothing(stack, &function, &proxy, &setup)
        .await
        .unwrap();
    rotates(stack, &function, &setup).await;
    setup.drop(stack).await;
}

/// (d) A MariaDB alternating-users master that may not create users, and one without the grant
/// option on what the clone must receive.
#[tokio::test]
async fn mariadb_master_without_create_user_or_grant_option_fails_naming_it() {
    let stack = require_stack!();
    let client = sm_client().await;
    let (function, proxy) = counted_function(stack, false).await;
    // Neither CREATE USER nor INSERT on the mysql schema, which the server accepts instead.
    let no_create = MyMaster::with_privileges(
        stack,
        &mariadb_rds_privileges_without(&["CREATE USER", "INSERT"]),
        true,
    )
    .await;
    let no_option = MyMaster::with_privileges(stack, MARIADB_RDS_PRIVILEGES, false).await;
    for (master, needles, grant) in [
        (
            &no_create,
            vec![format!(
                "GRANT CREATE USER ON *.* TO {}@%",
                no_create.user.name
            )],
            format!("GRANT CREATE USER ON *.* TO {}", no_create.sql()),
        ),
        (
            &no_option,
            vec!["SELECT".to_owned(), "WITH GRANT OPTION".to_owned()],
            format!(
                "GRANT USAGE ON *.* TO {} WITH GRANT OPTION",
                no_option.sql()
            ),
        ),
    ] {
        let setup = my_setup(stack, &client, Strategy::AlternatingUsers, Some(master)).await;
        let result = configuration_test_writing_nothing(stack, &function, &proxy, &setup).await;
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        assert_preflight_failed(result, &needles);
        stack.admin_run(Server::Mariadb, &grant).await;
        configuration_test_writing_nothing(stack, &function, &proxy, &setup)
            .await
            .unwrap();
        rotates(stack, &function, &setup).await;
        my_drop_database(stack, &setup).await;
        setup.drop(stack).await;
    }
}

/// (e) A MariaDB dual-password master that may not `ALTER USER` the account.
#[tokio::test]
async fn mariadb_dual_password_master_without_alter_user_fails_naming_it() {
    let stack = require_stack!();
    let client = sm_client().await;
    let (function, proxy) = counted_function(stack, false).await;
    let master = MyMaster::with_privileges(
        stack,
        &mariadb_rds_privileges_without(&["CREATE USER", "UPDATE"]),
        true,
    )
    .await;
    let setup = my_setup(stack, &client, Strategy::DualPassword, Some(&master)).await;
    let result = configuration_test_writing_nothing(stack, &function, &proxy, &setup).await;
    let hint = format!("GRANT CREATE USER ON *.* TO {}@%", master.user.name);
    assert_preflight_failed(result, &["ALTER USER", &hint]);
    let grant = format!("GRANT CREATE USER ON *.* TO {}", master.sql());
    stack.admin_run(Server::Mariadb, &grant).await;
    configuration_test_writing_nothing(stack, &function, &proxy, &setup)
        .await
        .unwrap();
    rotates(stack, &function, &setup).await;
    my_drop_database(stack, &setup).await;
    setup.drop(stack).await;
}

/// (f) The function's role may not call `rds:DescribeDBInstances`, which an RDS-managed master
/// needs: the RDS endpoint answers `AccessDenied` (the emulator enforces no IAM).
#[tokio::test]
async fn rds_managed_master_without_describe_permission_fails_naming_it() {
    let stack = require_stack!();
    let client = sm_client().await;
    let instance = create_instance(stack, Server::Postgres, true).await;
    let masterarn = instance.master_secret.clone().unwrap();
    let name = unique("pfrds");
    let password = fixture_password();
    PgUser::create(stack, stack.pg_port, &name, &password).await;
    let mut secret = stack.alternating_secret(Server::Postgres, &name, &password, &masterarn);
    secret["host"] = json!(instance.endpoint);
    secret["port"] = json!(5432);
    secret["tls_server_name"] = json!("localhost");
    let arn = create_secret(&client, &secret).await;
    let setup = Setup {
        name: name.clone(),
        arn,
        secret,
        strategy: Strategy::AlternatingUsers,
        accounts: Accounts::Pg(vec![format!("{name}_clone"), name]),
    };
    let denied = SmProxy::start(stack).await;
    denied.add(Rule::All {
        when: When::Before,
        answer: Answer::Denied,
    });
    let (function, proxy) = counted_function(stack, false).await;
    let redirect = Redirect::new(function.app.rotators.clone()).route(
        &instance.endpoint,
        stack,
        Server::Postgres,
    );
    let mut function = function.with_rotators_of(redirect);
    function.app.rds = rds_at(Some(&denied.url)).await;
    let result = configuration_test_writing_nothing(stack, &function, &proxy, &setup).await;
    assert_preflight_failed(
        result,
        &[&masterarn, "RDS DescribeDBInstances", "AccessDenied"],
    );
    assert!(
        denied.log().iter().all(|r| r.name == "DescribeDBInstances"),
        "{:?}",
        denied.log()
    );
    // setSecret meets the same refusal.
    let token = token();
    start_rotation(&client, &setup.arn, &token).await;
    function
        .invoke("createSecret", &setup.arn, &token)
        .await
        .unwrap();
    let err = function
        .invoke("setSecret", &setup.arn, &token)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "RdsError", "{err}");
    assert!(err.to_string().contains("DescribeDBInstances"), "{err}");
    clear_pending(&client, &setup.arn).await;
    // The permission granted: RDS answers.
    function.app.rds = rds_at(Some(&stack.secrets_manager)).await;
    configuration_test_writing_nothing(stack, &function, &proxy, &setup)
        .await
        .unwrap();
    rotates(stack, &function, &setup).await;
    setup.drop(stack).await;
}

/// The preflight on demand, through the function's binary: `{"Command": "preflight",
/// "SecretId"}` fails with `PreflightFailed` naming what the next rotation would lack, answers
/// the report once it is granted, writes nothing either way, and is refused unless the
/// deployment lets events audit (`AUDIT_EVENTS`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preflight_on_demand_in_the_function() {
    let (stack, redis) = require_redis!();
    let client = sm_client().await;
    let setup = redis_setup(stack, redis, &client, Strategy::SingleUser, APP_RULES).await;
    let event = json!({"Command": "preflight", "SecretId": setup.arn});
    let process =
        FunctionProcess::spawn(stack, &unique("preflight"), &[("AUDIT_EVENTS", "audit")]).await;
    let labels_before = labels(&client, &setup.arn).await;
    let before = setup.state(stack).await;
    let failed = process
        .api
        .invoke_json(&event, Duration::from_secs(30))
        .await;
    assert_eq!(
        failed.error_type(),
        Some("PreflightFailed"),
        "{failed:?}\n{}",
        process.logs()
    );
    let text = format!("{failed:?}");
    assert!(
        text.contains(&setup.arn) && text.contains("cannot-change-password"),
        "{text}"
    );
    assert_eq!(setup.state(stack).await, before);

    let mut grant = vec!["SETUSER", setup.name.as_str()];
    grant.extend_from_slice(&REDIS_SELF_RULES[3..]);
    redis::acl(stack, redis, &grant).await;
    redis::acl(stack, redis, &["SAVE"]).await;
    let granted = setup.state(stack).await;
    let passed = process
        .api
        .invoke_json(&event, Duration::from_secs(30))
        .await;
    let Outcome::Response(body) = passed else {
        panic!("{passed:?}\n{}", process.logs());
    };
    let document: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(document["healthy"], json!(1), "{document}");
    assert_eq!(
        document["secrets"][0]["secret"],
        json!(setup.arn),
        "{document}"
    );
    assert_eq!(setup.state(stack).await, granted);
    assert_eq!(labels(&client, &setup.arn).await, labels_before);
    assert_no_password_in(&process.logs(), "the function's log");

    // By default an event may not ask for it.
    let default = FunctionProcess::spawn(stack, &unique("nopreflight"), &[]).await;
    let refused = default
        .api
        .invoke_json(&event, Duration::from_secs(30))
        .await;
    assert_eq!(refused.error_type(), Some("InvalidEvent"), "{refused:?}");
    setup.drop(stack).await;
}
