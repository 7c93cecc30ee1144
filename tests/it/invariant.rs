//! The privilege invariant of alternating users (docs/protocol.md 5.12), on every engine: no
//! rotation hands the holder of a secret an account that can do more than the secret's current
//! one. A login merely named `X_clone` does not get `X`'s password; an existing clone holding more
//! than `X` is not adopted; a clone lagging behind `X` is refused when removing the suffix, and
//! caught up when adding it. Refused means nothing changed: passwords, grants, memberships.

use db_secret_rotator::Error;
use db_secret_rotator::rotators::mysql::account_sql;
use mysql_async::prelude::Queryable;
use postgres_protocol::escape::escape_identifier;
use serde_json::json;

use crate::support::mariadb::my_admin;
use crate::support::server::Table;
use crate::support::*;

on_every_server!(
    a_login_named_like_a_clone_does_not_get_the_original,
    an_over_privileged_clone_is_not_adopted,
    a_lagging_clone_is_refused_then_caught_up
);

/// An account as `GRANT … TO` names it.
fn grantee(server: Server, user: &str) -> String {
    match server {
        Server::Postgres => escape_identifier(user),
        Server::Mariadb => account_sql(user, "%"),
    }
}

/// Everything the invariant protects about `user`: its stored password, attributes, memberships,
/// role settings (PostgreSQL) or grants (MariaDB). `None` when it does not exist.
async fn state(stack: &Stack, server: Server, user: &str) -> Option<String> {
    match server {
        Server::Postgres => {
            let row = pg_admin(stack, stack.pg_port)
                .await
                .query_opt(
                    "SELECT r.rolpassword, r.rolsuper, r.rolcreaterole, r.rolcreatedb, \
                     r.rolreplication, r.rolbypassrls, r.rolcanlogin, \
                     array(SELECT g.rolname::text || CASE WHEN m.admin_option THEN '+admin' ELSE '' END \
                       FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid \
                       WHERE m.member = r.oid ORDER BY 1), \
                     array(SELECT unnest(s.setconfig) FROM pg_db_role_setting s \
                       WHERE s.setrole = r.oid ORDER BY 1) \
                     FROM pg_authid r WHERE r.rolname = $1",
                    &[&user],
                )
                .await
                .unwrap()?;
            let password: Option<String> = row.get(0);
            let flags: Vec<bool> = (1..7).map(|i| row.get(i)).collect();
            let members: Vec<String> = row.get(7);
            let settings: Vec<String> = row.get(8);
            Some(format!("{password:?} {flags:?} {members:?} {settings:?}"))
        }
        Server::Mariadb => {
            let mut admin = my_admin(stack).await;
            let hash: Option<String> = admin
                .exec_first(
                    "SELECT authentication_string FROM mysql.user WHERE User = ? AND Host = '%'",
                    (user,),
                )
                .await
                .unwrap();
            let hash = hash?;
            let grants: Vec<String> = admin
                .query(format!("SHOW GRANTS FOR {}", account_sql(user, "%")))
                .await
                .unwrap();
            admin.disconnect().await.unwrap();
            Some(format!("{hash} {grants:?}"))
        }
    }
}

/// Creates an alternating-users secret for `user`, with the server's master secret; its ARN.
async fn alternating_arn(stack: &Stack, server: Server, user: &str, password: &str) -> String {
    let client = sm_client().await;
    let mut secret = stack.secret(server, user, password);
    secret["masterarn"] = json!(create_secret(&client, &stack.master_secret(server)).await);
    secret["rotation_strategy"] = json!("alternating-users");
    create_secret(&client, &secret).await
}

/// createSecret, then setSecret, which must be refused as a privilege mismatch naming both
/// accounts and `needle`, writing nothing to Secrets Manager and changing neither account.
async fn refused(
    stack: &Stack,
    server: Server,
    function: &Function,
    arn: &str,
    accounts: [&str; 2],
    needle: &str,
) -> Error {
    let client = sm_client().await;
    let token = token();
    start_rotation(&client, arn, &token).await;
    function.invoke("createSecret", arn, &token).await.unwrap();
    let before = (
        snapshot(&client, arn).await,
        state(stack, server, accounts[0]).await,
        state(stack, server, accounts[1]).await,
    );
    let err = function.invoke("setSecret", arn, &token).await.unwrap_err();
    assert_eq!(err.error_type(), "IdentityMismatch", "{err}");
    let message = err.to_string();
    for name in accounts.into_iter().chain([needle, "nothing was changed"]) {
        assert!(message.contains(name), "{name}: {message}");
    }
    let after = (
        snapshot(&client, arn).await,
        state(stack, server, accounts[0]).await,
        state(stack, server, accounts[1]).await,
    );
    assert_eq!(after, before, "{message}");
    // The pending credential was never made to work (MariaDB answers 1698 for a user that
    // does not exist).
    let pending = value(&client, arn, "AWSPENDING").await;
    let (user, password) = (
        pending["username"].as_str().unwrap(),
        pending["password"].as_str().unwrap(),
    );
    let login = stack.login(server, user, password).await;
    assert!(
        matches!(&login, Err(code) if code == server.rejected() || code == "1698"),
        "{login:?}"
    );
    err
}

/// The reference's hole: someone's own low-privilege login named `X_clone` (not made by this
/// function) in a secret attached to the function would make the master reset `X`, and hand
/// over its password.
async fn a_login_named_like_a_clone_does_not_get_the_original(server: Server) {
    let stack = require_stack!();
    let name = unique("victim");
    let clone = format!("{name}_clone");
    let victim_password = fixture_password();
    let victim = stack.create_user(server, &name, &victim_password).await;
    let table = stack.grant_table(server, &name).await;
    let attacker_password = fixture_password();
    let attacker = stack.create_user(server, &clone, &attacker_password).await;
    let arn = alternating_arn(stack, server, &clone, &attacker_password).await;
    let function = Function::new(stack).await;
    let needle = match server {
        Server::Postgres => "not a member",
        Server::Mariadb => "SELECT ON",
    };
    refused(stack, server, &function, &arn, [&name, &clone], needle).await;
    stack.login(server, &name, &victim_password).await.unwrap();
    stack
        .login(server, &clone, &attacker_password)
        .await
        .unwrap();
    assert!(
        stack
            .reads(server, &table, &clone, &attacker_password)
            .await
            .is_err()
    );

    // Removing the suffix onto an account that does not exist is refused too.
    let lone = unique("lone");
    let lone_clone = format!("{lone}_clone");
    let lone_password = fixture_password();
    let lone_user = stack.create_user(server, &lone_clone, &lone_password).await;
    let arn = alternating_arn(stack, server, &lone_clone, &lone_password).await;
    refused(
        stack,
        server,
        &function,
        &arn,
        [&lone, &lone_clone],
        "does not exist",
    )
    .await;
    assert!(!stack.user_exists(server, &lone).await);

    lone_user.drop(stack).await;
    stack.drop_table(server, table).await;
    attacker.drop(stack).await;
    victim.drop(stack).await;
}

/// One over-privileged clone: how to make it so, and what the error names.
struct Excess {
    case: &'static str,
    /// Statements run as the admin; `{clone}` and `{user}` are the clone and the original as
    /// `GRANT` names them, `{table}` a table the original may read.
    grant: &'static str,
    needle: &'static str,
}

fn excesses(server: Server) -> Vec<Excess> {
    let excess = |case, grant, needle| Excess {
        case,
        grant,
        needle,
    };
    match server {
        Server::Postgres => vec![
            excess(
                "role attribute",
                "ALTER ROLE {clone} CREATEDB CREATEROLE",
                "role attribute CREATEDB",
            ),
            excess(
                "membership",
                "GRANT pg_read_all_data TO {clone}",
                "membership in role pg_read_all_data",
            ),
            excess(
                "admin option on the original",
                "GRANT {user} TO {clone} WITH ADMIN OPTION",
                "ADMIN OPTION on role",
            ),
            excess(
                "direct privilege",
                "GRANT INSERT ON {table} TO {clone}",
                "privileges granted directly on 1 object",
            ),
            excess(
                "ownership",
                "ALTER TABLE {table} OWNER TO {clone}",
                "ownership of 1 object",
            ),
        ],
        Server::Mariadb => vec![
            excess(
                "table privilege",
                "GRANT INSERT ON {table} TO {clone}",
                "INSERT ON",
            ),
            excess(
                "global privilege",
                "GRANT PROCESS ON *.* TO {clone}",
                "PROCESS ON *.*",
            ),
            excess(
                "grant option",
                "GRANT SELECT ON {table} TO {clone} WITH GRANT OPTION",
                "GRANT OPTION ON",
            ),
        ],
    }
}

/// An existing `X_clone` holding more than `X` (made by anyone) would go to the holder of `X`'s
/// secret with its new password.
async fn an_over_privileged_clone_is_not_adopted(server: Server) {
    let stack = require_stack!();
    let function = Function::new(stack).await;
    for excess in excesses(server) {
        let name = unique("owner");
        let clone = format!("{name}_clone");
        let password = fixture_password();
        let user = stack.create_user(server, &name, &password).await;
        let clone_user = stack.create_user(server, &clone, &fixture_password()).await;
        let table = stack.grant_table(server, &name).await;
        let grant = excess
            .grant
            .replace("{clone}", &grantee(server, &clone))
            .replace("{user}", &grantee(server, &name))
            .replace("{table}", &table.sql);
        stack.admin_run(server, &grant).await;
        let arn = alternating_arn(stack, server, &name, &password).await;
        let err = refused(
            stack,
            server,
            &function,
            &arn,
            [&name, &clone],
            excess.needle,
        )
        .await;
        assert!(
            err.to_string().contains(excess.needle),
            "{}: {err}",
            excess.case
        );
        stack.login(server, &name, &password).await.unwrap();
        stack.drop_table(server, table).await;
        clone_user.drop(stack).await;
        user.drop(stack).await;
    }
    if server == Server::Mariadb {
        // A role the original lacks.
        let name = unique("owner");
        let clone = format!("{name}_clone");
        let role = unique("role");
        let password = fixture_password();
        let user = stack.create_user(server, &name, &password).await;
        let clone_user = stack.create_user(server, &clone, &fixture_password()).await;
        stack
            .admin_run(
                server,
                &format!(
                    "CREATE ROLE `{role}`; GRANT `{role}` TO {}",
                    grantee(server, &clone)
                ),
            )
            .await;
        let arn = alternating_arn(stack, server, &name, &password).await;
        refused(
            stack,
            server,
            &function,
            &arn,
            [&name, &clone],
            &format!("role `{role}`"),
        )
        .await;
        stack
            .admin_run(server, &format!("DROP ROLE `{role}`"))
            .await;
        clone_user.drop(stack).await;
        user.drop(stack).await;
    }
}

/// Rotates once with a fresh token; the result of the last step.
async fn rotate(function: &Function, arn: &str) -> Result<(), Error> {
    let token = token();
    start_rotation(&sm_client().await, arn, &token).await;
    function.rotate(arn, &token).await
}

/// The cycle with drift in between: a grant added to `X` after the clone was made leaves the
/// clone behind. Removing the suffix then is refused until the operator catches the clone up;
/// adding it onto a MariaDB clone lacking a grant of `X` is refused too (docs/protocol.md 5.12:
/// nobody but the rotation controls the clone), and on PostgreSQL the grant reaches the clone
/// through its membership.
async fn a_lagging_clone_is_refused_then_caught_up(server: Server) {
    let stack = require_stack!();
    let client = sm_client().await;
    let function = Function::new(stack).await;
    let name = unique("lag");
    let clone = format!("{name}_clone");
    let password = fixture_password();
    let user = stack.create_user(server, &name, &password).await;
    let first = stack.grant_table(server, &name).await;
    let arn = alternating_arn(stack, server, &name, &password).await;

    // 1: adding the suffix creates the clone.
    rotate(&function, &arn).await.unwrap();
    // X moves ahead of the clone: on PostgreSQL the clone loses its membership, on MariaDB X
    // gets a grant the clone lacks.
    let second = stack.grant_table(server, &name).await;
    if server == Server::Postgres {
        stack
            .admin_run(
                server,
                &format!(
                    "REVOKE {} FROM {}",
                    grantee(server, &name),
                    grantee(server, &clone)
                ),
            )
            .await;
    }
    // 2: removing the suffix is refused: the clone does not hold everything X holds.
    let needle = match server {
        Server::Postgres => "not a member",
        Server::Mariadb => "SELECT ON",
    };
    let token = token();
    start_rotation(&client, &arn, &token).await;
    function.invoke("createSecret", &arn, &token).await.unwrap();
    let err = function
        .invoke("setSecret", &arn, &token)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "IdentityMismatch", "{err}");
    assert!(err.to_string().contains(needle), "{err}");
    // The operator's repair (docs/deployment.md): give the clone what X has, then the retry
    // of the same rotation succeeds.
    let repair = match server {
        Server::Postgres => format!(
            "GRANT {} TO {}",
            grantee(server, &name),
            grantee(server, &clone)
        ),
        Server::Mariadb => format!(
            "GRANT SELECT ON {} TO {}",
            second.sql,
            grantee(server, &clone)
        ),
    };
    stack.admin_run(server, &repair).await;
    for step in ["setSecret", "testSecret", "finishSecret"] {
        function.invoke(step, &arn, &token).await.unwrap();
    }
    let current = value(&client, &arn, "AWSCURRENT").await;
    assert_eq!(current["username"], name.as_str());

    // 3: a grant added to X since. On PostgreSQL it reaches the clone through its membership.
    // On MariaDB the existing clone lacks it, and adding the suffix would hand X's rights to
    // whoever else controls that clone: refused, naming the grant, until the operator grants it
    // the same; then the retry of the same rotation completes.
    let third = stack.grant_table(server, &name).await;
    let token = crate::support::token();
    start_rotation(&client, &arn, &token).await;
    function.invoke("createSecret", &arn, &token).await.unwrap();
    if server == Server::Mariadb {
        let err = function
            .invoke("setSecret", &arn, &token)
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "IdentityMismatch", "{err}");
        assert!(err.to_string().contains("it lacks SELECT ON"), "{err}");
        stack
            .admin_run(
                server,
                &format!(
                    "GRANT SELECT ON {} TO {}",
                    third.sql,
                    grantee(server, &clone)
                ),
            )
            .await;
    }
    for step in ["setSecret", "testSecret", "finishSecret"] {
        function.invoke(step, &arn, &token).await.unwrap();
    }
    let current = value(&client, &arn, "AWSCURRENT").await;
    let (user_now, password_now) = (
        current["username"].as_str().unwrap(),
        current["password"].as_str().unwrap(),
    );
    assert_eq!(user_now, clone);
    for table in [&first, &second, &third] {
        read(stack, server, table, user_now, password_now).await;
    }
    for table in [first, second, third] {
        stack.drop_table(server, table).await;
    }
    stack.drop_user(server, &clone).await;
    user.drop(stack).await;
}

async fn read(stack: &Stack, server: Server, table: &Table, user: &str, password: &str) {
    stack
        .reads(server, table, user, password)
        .await
        .unwrap_or_else(|code| panic!("{user} cannot read {}: {code}", table.sql));
}
