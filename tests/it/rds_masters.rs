//! Alternating users and dual passwords under masters shaped like RDS's (`support::masters`):
//! PostgreSQL's `CREATEROLE CREATEDB` member of an `rds_superuser`-like group, MariaDB's global
//! privileges without `SUPER` or `FILE`, `WITH GRANT OPTION`.
//!
//! On PostgreSQL 16 and later such a master holds `ADMIN OPTION` only on the roles it created:
//! on a role another administrator created, a rotation fails before changing anything, naming
//! `ADMIN OPTION` and the `GRANT` that gives it; once granted, it rotates. On PostgreSQL 15
//! `CREATEROLE` is enough. Every rotation checks that the new password logs in, that the one
//! before it still does (the other user, or the account's second password) while the one before
//! that is refused, and that the clone holds nothing its original lacks.

use serde_json::Value;

use crate::support::mariadb::{my_login, show_grants};
use crate::support::masters::{MyMaster, PgMaster};
use crate::support::setups::*;
use crate::support::*;

/// One rotation of `arn` with a new token; the new `AWSCURRENT`.
async fn rotate(function: &Function, arn: &str) -> Result<Value, db_secret_rotator::Error> {
    let client = sm_client().await;
    let token = token();
    start_rotation(&client, arn, &token).await;
    function.rotate(arn, &token).await?;
    Ok(value(&client, arn, "AWSCURRENT").await)
}

fn credential(secret: &Value) -> (String, String) {
    (
        secret["username"].as_str().unwrap().to_owned(),
        secret["password"].as_str().unwrap().to_owned(),
    )
}

/// Rotates `setup` `rounds` times, checking the logins after each, and the clone against its
/// original with `clone_holds_no_more`.
async fn rotations(
    stack: &Stack,
    function: &Function,
    setup: &Setup,
    rounds: usize,
    clone_holds_no_more: impl AsyncFn(&str, &str),
) {
    let client = sm_client().await;
    let mut history = vec![credential(&value(&client, &setup.arn, "AWSCURRENT").await)];
    for round in 1..=rounds {
        let current = rotate(function, &setup.arn)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let (user, password) = credential(&current);
        setup
            .login(stack, &user, &password)
            .await
            .unwrap_or_else(|e| panic!("round {round}: the new credential: {e}"));
        let (before_user, before_password) = history.last().unwrap();
        setup
            .login(stack, before_user, before_password)
            .await
            .unwrap_or_else(|e| panic!("round {round}: the credential before it: {e}"));
        if let Some((old_user, old_password)) = history.len().checked_sub(2).map(|i| &history[i]) {
            assert_eq!(old_user, &user, "round {round}");
            assert_eq!(
                setup.login(stack, old_user, old_password).await,
                Err(setup.refused().to_owned()),
                "round {round}: the password of two rotations ago"
            );
        }
        if setup.strategy == Strategy::AlternatingUsers {
            clone_holds_no_more(&setup.name, &format!("{}_clone", setup.name)).await;
        }
        history.push((user, password));
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/// The clone's attributes and memberships, against its original's: it is a member of the
/// original only (from PostgreSQL 16 possibly through one grant per master that made it),
/// without `ADMIN OPTION`, with no attribute the original lacks, and its default
/// role is the original.
async fn pg_clone_holds_no_more(stack: &Stack, original: &str, clone: &str) {
    let admin = pg_admin(stack, stack.pg_port).await;
    let attributes = |role: &str| {
        let role = role.to_owned();
        let admin = &admin;
        async move {
            let row = admin
                .query_one(
                    "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls \
                     FROM pg_roles WHERE rolname = $1",
                    &[&role],
                )
                .await
                .unwrap();
            (0..5).map(|i| row.get::<_, bool>(i)).collect::<Vec<_>>()
        }
    };
    let (o, c) = (attributes(original).await, attributes(clone).await);
    assert!(
        o.iter().zip(&c).all(|(o, c)| *o || !*c),
        "the clone has an attribute its original lacks: {c:?} > {o:?}"
    );
    let memberships: Vec<(String, bool)> = admin
        .query(
            "SELECT DISTINCT g.rolname::text, m.admin_option FROM pg_auth_members m \
             JOIN pg_roles u ON u.oid = m.member JOIN pg_roles g ON g.oid = m.roleid \
             WHERE u.rolname = $1",
            &[&clone],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(memberships, [(original.to_owned(), false)]);
    let settings: Vec<String> = admin
        .query(
            "SELECT unnest(s.setconfig) FROM pg_db_role_setting s \
             JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = $1",
            &[&clone],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(settings, [format!("role={original}")]);
}

/// A role the RDS-like master created: three rotations, the clone created, reused and handed
/// back each time.
#[tokio::test]
async fn pg_rds_like_master_rotates_a_role_it_created() {
    let stack = require_stack!();
    let client = sm_client().await;
    let master = PgMaster::rds_like(stack).await;
    let by = Some(&master);
    let setup = pg_setup(stack, &client, Strategy::AlternatingUsers, by, true).await;
    let table = stack.grant_table(Server::Postgres, &setup.name).await;
    let function = Function::new(stack).await;
    let holds_no_more = async |original: &str, clone: &str| {
        pg_clone_holds_no_more(stack, original, clone).await;
    };
    rotations(stack, &function, &setup, 3, holds_no_more).await;
    let (user, password) = credential(&value(&client, &setup.arn, "AWSCURRENT").await);
    stack
        .reads(Server::Postgres, &table, &user, &password)
        .await
        .unwrap();
    stack.drop_table(Server::Postgres, table).await;
    setup.drop(stack).await;
}

/// `ADMIN OPTION`, from PostgreSQL 16: implicit on a role the master created, absent on one
/// another administrator created, where the rotation fails before changing anything, naming the
/// grant, and succeeds once it is given. On 15 both rotate.
#[tokio::test]
async fn pg_rds_like_master_admin_option_implicit_for_its_roles_absent_for_others() {
    let stack = require_stack!();
    let client = sm_client().await;
    let master = PgMaster::rds_like(stack).await;
    let function = Function::new(stack).await;
    let own = pg_setup(
        stack,
        &client,
        Strategy::AlternatingUsers,
        Some(&master),
        true,
    )
    .await;
    let others = pg_setup(
        stack,
        &client,
        Strategy::AlternatingUsers,
        Some(&master),
        false,
    )
    .await;
    let admin = pg_admin(stack, stack.pg_port).await;
    let has_admin = async |role: &str| -> bool {
        admin
            .query_one(
                "SELECT pg_has_role($1, $2, 'MEMBER WITH ADMIN OPTION')",
                &[&master.name, &role],
            )
            .await
            .unwrap()
            .get(0)
    };
    let modern = stack.pg_server.major >= 16;
    assert_eq!(
        has_admin(&own.name).await,
        modern,
        "implicit on its own role"
    );
    if modern {
        assert!(!has_admin(&others.name).await);
    }
    rotations(stack, &function, &own, 1, async |o: &str, c: &str| {
        pg_clone_holds_no_more(stack, o, c).await
    })
    .await;
    if modern {
        let before = others.state(stack).await;
        let err = rotate(&function, &others.arn).await.unwrap_err();
        assert_eq!(err.error_type(), "DatabaseError", "{err}");
        let text = err.to_string();
        let fix = format!("GRANT {} TO {} WITH ADMIN OPTION", others.name, master.name);
        assert!(
            text.contains(&format!("ADMIN OPTION on role {}", others.name)) && text.contains(&fix),
            "{text}"
        );
        assert_eq!(
            others.state(stack).await,
            before,
            "the failed rotation changed roles"
        );
        // AWSCURRENT still logs in; the rotation left its version pending, as setSecret's failure
        // does.
        let (user, password) = credential(&others.secret);
        others.login(stack, &user, &password).await.unwrap();
        crate::support::preflight::clear_pending(&client, &others.arn).await;
        stack.admin_run(Server::Postgres, &fix).await;
    }
    rotations(stack, &function, &others, 2, async |o: &str, c: &str| {
        pg_clone_holds_no_more(stack, o, c).await
    })
    .await;
    // The master granted memberships in both: its own set-up, which drops it, goes last.
    let Accounts::Pg(roles) = &others.accounts else {
        unreachable!()
    };
    Accounts::Pg(roles[..2].to_vec()).drop(stack).await;
    own.drop(stack).await;
}

/// A clone left by an earlier rotation under another master (the superuser, before the switch to
/// an RDS-like master): from 16 the new master holds no `ADMIN OPTION` on it, which the rotation
/// names, then rotates once it is granted.
#[tokio::test]
async fn pg_rds_like_master_takes_over_a_clone_an_earlier_master_left() {
    let stack = require_stack!();
    let client = sm_client().await;
    let master = PgMaster::rds_like(stack).await;
    let setup = pg_setup(
        stack,
        &client,
        Strategy::AlternatingUsers,
        Some(&master),
        true,
    )
    .await;
    let function = Function::new(stack).await;
    // The earlier rotation, by the superuser master, made the clone.
    let superuser = create_secret(&client, &stack.master_secret(Server::Postgres)).await;
    let mut earlier = setup.secret.clone();
    earlier["masterarn"] = serde_json::json!(superuser);
    let earlier_arn = create_secret(&client, &earlier).await;
    rotate(&function, &earlier_arn).await.unwrap();
    let clone = format!("{}_clone", setup.name);
    pg_clone_holds_no_more(stack, &setup.name, &clone).await;
    // The secret mastered by the RDS-like master now hands the clone over.
    if stack.pg_server.major >= 16 {
        let before = setup.state(stack).await;
        let err = rotate(&function, &setup.arn).await.unwrap_err();
        let fix = format!("GRANT {} TO {} WITH ADMIN OPTION", clone, master.name);
        assert_eq!(err.error_type(), "DatabaseError", "{err}");
        assert!(err.to_string().contains(&fix), "{err}");
        assert_eq!(setup.state(stack).await, before);
        crate::support::preflight::clear_pending(&client, &setup.arn).await;
        stack.admin_run(Server::Postgres, &fix).await;
    }
    // The clone's password changes: the earlier secret's clone credential no longer logs in.
    let earlier_clone = credential(&value(&client, &earlier_arn, "AWSCURRENT").await);
    rotations(stack, &function, &setup, 2, async |o: &str, c: &str| {
        pg_clone_holds_no_more(stack, o, c).await
    })
    .await;
    assert_eq!(
        setup.login(stack, &earlier_clone.0, &earlier_clone.1).await,
        Err("28P01".to_owned())
    );
    setup.drop(stack).await;
}

// ---------------------------------------------------------------------------------------------
// MariaDB

/// `SHOW GRANTS` of `user@'%'` with the grantee written as `<account>` and the authentication
/// clause left out.
async fn my_grants_as_anyone(stack: &Stack, user: &str) -> Vec<String> {
    let grantee = format!("`{user}`@`%`");
    let mut grants: Vec<String> = show_grants(stack, user, "%")
        .await
        .into_iter()
        .map(|line| {
            let line = match line.find(" IDENTIFIED ") {
                Some(start) => {
                    let rest = &line[start..];
                    let end = [" REQUIRE ", " WITH "]
                        .iter()
                        .filter_map(|clause| rest.find(clause))
                        .min()
                        .unwrap_or(rest.len());
                    format!("{}{}", &line[..start], &rest[end..])
                }
                None => line,
            };
            line.replace(&grantee, "<account>")
        })
        .collect();
    grants.sort();
    grants
}

#[tokio::test]
async fn mariadb_rds_like_master_rotates_alternating_users() {
    let stack = require_stack!();
    let client = sm_client().await;
    let master = MyMaster::rds_like(stack).await;
    let grants = show_grants(stack, &master.user.name, "%").await;
    assert!(
        grants
            .iter()
            .all(|g| !g.contains("SUPER") && !g.contains("FILE") && !g.contains("ALL PRIVILEGES")),
        "{grants:?}"
    );
    let setup = my_setup(stack, &client, Strategy::AlternatingUsers, Some(&master)).await;
    let function = Function::new(stack).await;
    let holds_no_more = async |original: &str, clone: &str| {
        assert_eq!(
            my_grants_as_anyone(stack, clone).await,
            my_grants_as_anyone(stack, original).await,
            "the clone's grants"
        );
    };
    rotations(stack, &function, &setup, 3, holds_no_more).await;
    my_drop_database(stack, &setup).await;
    setup.drop(stack).await;
}

#[tokio::test]
async fn mariadb_rds_like_master_rotates_dual_passwords() {
    let stack = require_stack!();
    let client = sm_client().await;
    let master = MyMaster::rds_like(stack).await;
    let setup = my_setup(stack, &client, Strategy::DualPassword, Some(&master)).await;
    let grants = my_grants_as_anyone(stack, &setup.name).await;
    let function = Function::new(stack).await;
    rotations(stack, &function, &setup, 3, async |_: &str, _: &str| {}).await;
    assert_eq!(my_grants_as_anyone(stack, &setup.name).await, grants);
    // Still one account: no clone was made.
    let (user, password) = credential(&value(&client, &setup.arn, "AWSCURRENT").await);
    my_login(stack, &user, &password, true).await.unwrap();
    assert!(
        !stack
            .user_exists(Server::Mariadb, &format!("{}_clone", setup.name))
            .await
    );
    my_drop_database(stack, &setup).await;
    setup.drop(stack).await;
}
