//! The configuration test as Secrets Manager runs it, the function behind a Secrets Manager proxy
//! that counts its calls, and read-only snapshots of what the databases hold for the accounts a
//! test watches (so that "nothing was written" is compared, not assumed).
//!
//! `RotateSecret` with `RotateImmediately=false` makes the service enable rotation, stage a copy
//! of the current value as `AWSPENDING` under a new token and invoke `testSecret` alone.
//! [`configuration_test`] does the same against the emulator: `RotateSecret` (the emulator then
//! fails to invoke the unknown function, which is expected) and `PutSecretValue` of the
//! `AWSCURRENT` JSON under the token, then the function's `testSecret`; afterwards it takes the
//! `AWSPENDING` label off the copy, so that a rotation may follow.

use aws_sdk_secretsmanager::Client;
use db_secret_rotator::Config;
use db_secret_rotator::Error;
use db_secret_rotator::rotators::{Engines, Rotator};
use mysql_async::prelude::Queryable;

use super::mariadb::my_admin;
use super::postgres::pg_admin;
use super::proxy::{SmProxy, WRITE_OPERATIONS};
use super::redis::acl;
use super::{Function, RedisStack, Stack, labels, raw_value, token};
use db_secret_rotator::rotators::mysql::account_sql;

/// The function whose Secrets Manager calls go through a counting proxy, trusting the stack's
/// CA; `cleartext` allows passwords over plaintext (the plain Redis port).
pub async fn counted_function(stack: &Stack, cleartext: bool) -> (Function, SmProxy) {
    let proxy = SmProxy::start(stack).await;
    let config = Config {
        tls_extra_ca_file: Some(stack.test_ca.clone()),
        allow_cleartext_passwords: cleartext,
        ..Config::default()
    };
    let rotators = Engines::new(&config).expect("trust roots");
    let function = Function::with_endpoint(config, rotators, Some(&proxy.url)).await;
    (function, proxy)
}

/// The writing operations the proxy saw after its first `since` requests (none, when nothing was
/// written).
pub fn sm_writes(proxy: &SmProxy, since: usize) -> Vec<String> {
    proxy
        .log()
        .into_iter()
        .skip(since)
        .map(|r| r.name)
        .filter(|name| WRITE_OPERATIONS.contains(&name.as_str()))
        .collect()
}

/// Enables rotation of `arn` as `RotateSecret` with `RotateImmediately=false` does, staging
/// `token`.
async fn rotate_secret_later(client: &Client, arn: &str, token: &str) {
    let _ = client
        .rotate_secret()
        .secret_id(arn)
        .client_request_token(token)
        .rotation_lambda_arn("arn:aws:lambda:us-east-1:123456789012:function:db-secret-rotator")
        .rotation_rules(
            aws_sdk_secretsmanager::types::RotationRulesType::builder()
                .automatically_after_days(30)
                .build(),
        )
        .rotate_immediately(false)
        .send()
        .await;
}

/// Takes `AWSPENDING` off every version that holds it.
pub async fn clear_pending(client: &Client, arn: &str) {
    for (version, stages) in labels(client, arn).await {
        if stages.iter().any(|s| s == "AWSPENDING") {
            client
                .update_secret_version_stage()
                .secret_id(arn)
                .version_stage("AWSPENDING")
                .remove_from_version_id(version)
                .send()
                .await
                .expect("removing AWSPENDING");
        }
    }
}

/// The configuration test of `arn` (see the module documentation): its `testSecret`'s result.
pub async fn configuration_test<R: Rotator>(
    function: &Function<R>,
    client: &Client,
    arn: &str,
) -> Result<(), Error> {
    clear_pending(client, arn).await;
    let token = token();
    rotate_secret_later(client, arn, &token).await;
    let current = raw_value(client, arn, "AWSCURRENT").await;
    client
        .put_secret_value()
        .secret_id(arn)
        .client_request_token(&token)
        .secret_string(current)
        .version_stages("AWSPENDING")
        .send()
        .await
        .expect("staging the copy of AWSCURRENT");
    let stages = labels(client, arn).await;
    assert_eq!(
        stages.get(&token).map(Vec::as_slice),
        Some(&["AWSPENDING".to_owned()][..]),
        "the copy is not staged AWSPENDING"
    );
    let result = function.invoke("testSecret", arn, &token).await;
    clear_pending(client, arn).await;
    result
}

/// The configuration test must fail with `PreflightFailed` whose message names every one of
/// `needles`; returns the message.
pub fn assert_preflight_failed(result: Result<(), Error>, needles: &[&str]) -> String {
    let err = result.expect_err("the configuration test passed");
    assert_eq!(err.error_type(), "PreflightFailed", "{err}");
    let text = err.to_string();
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} missing from: {text}");
    }
    text
}

/// What PostgreSQL holds for `roles`: their `pg_authid` rows, every membership naming one of
/// them (with its grantor and options) and their settings.
pub async fn pg_state(stack: &Stack, roles: &[&str]) -> Vec<String> {
    let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
    pg_admin(stack, stack.pg_port)
        .await
        .query(
            "SELECT 'role ' || row_to_json(a)::text FROM pg_authid a WHERE a.rolname = ANY($1) \
             UNION ALL \
             SELECT 'membership ' || row_to_json(m)::text FROM pg_auth_members m \
               WHERE EXISTS (SELECT 1 FROM pg_authid r WHERE r.rolname = ANY($1) \
                             AND r.oid IN (m.roleid, m.member, m.grantor)) \
             UNION ALL \
             SELECT 'setting ' || row_to_json(s)::text FROM pg_db_role_setting s \
               JOIN pg_authid r ON r.oid = s.setrole WHERE r.rolname = ANY($1) \
             ORDER BY 1",
            &[&roles],
        )
        .await
        .expect("pg_authid")
        .into_iter()
        .map(|row| row.get(0))
        .collect()
}

/// What MariaDB holds for `accounts` (`user`, `host`): `SHOW GRANTS` and `mysql.global_priv`,
/// or that the account does not exist.
pub async fn my_state(stack: &Stack, accounts: &[(&str, &str)]) -> Vec<String> {
    let mut admin = my_admin(stack).await;
    let mut state = Vec::new();
    for (user, host) in accounts {
        let privileges: Option<String> = admin
            .exec_first(
                "SELECT Priv FROM mysql.global_priv WHERE User = ? AND Host = ?",
                (user, host),
            )
            .await
            .expect("mysql.global_priv");
        let Some(privileges) = privileges else {
            state.push(format!("{user}@{host}: no such account"));
            continue;
        };
        state.push(format!("{user}@{host}: {privileges}"));
        let mut grants: Vec<String> = admin
            .query(format!("SHOW GRANTS FOR {}", account_sql(user, host)))
            .await
            .expect("SHOW GRANTS");
        grants.sort();
        state.extend(grants);
    }
    admin.disconnect().await.unwrap();
    state
}

/// What Redis holds for `users`: `ACL GETUSER` (flags, password hashes, rules, selectors) and
/// their lines in the ACL file.
pub async fn redis_state(stack: &Stack, redis: &RedisStack, users: &[&str]) -> Vec<String> {
    let file = std::fs::read_to_string(&redis.acl_file).expect("the ACL file");
    let mut state = Vec::new();
    for user in users {
        state.push(format!(
            "{user}: {:?}",
            acl(stack, redis, &["GETUSER", user]).await
        ));
        let prefix = format!("user {user} ");
        state.extend(
            file.lines()
                .filter(|line| line.starts_with(&prefix))
                .map(str::to_owned),
        );
    }
    state
}
