//! The attacks of docs/protocol.md 5.12 and 5.14, performed end to end against the real
//! servers by someone who controls one application database, one application secret (writing,
//! not reading), a login named like a clone, or a listener on the network. Each ends either with
//! the attack neutralised and the rotation complete, or with the step refused and nothing
//! changed: no privilege, no password changed or sent, and `AWSCURRENT` still logs in.

use std::sync::{Arc, Mutex};

use db_secret_rotator::Config;
use db_secret_rotator::config::TlsMode;
use db_secret_rotator::doctor::{Doctor, Options, Report};
use db_secret_rotator::rotators::mysql::{account_sql, quote_literal};
use db_secret_rotator::rotators::{CloneManagement, DualMaster, Session};
use mysql_async::prelude::Queryable;
use postgres_protocol::escape::{escape_identifier, escape_literal};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::mariadb::{
    MyUser, auth_string, ed25519_loaded, global_priv, mariadb_admin_secret, mariadb_secret,
    my_admin, my_admin_run, my_login, show_grants,
};
use crate::support::proxy::{SmProxy, TcpProxy};
use crate::support::*;

// ---------------------------------------------------------------------------------------------
// Fixtures

/// Runs `sql` as the PostgreSQL admin on the cluster under test.
async fn pg_run(stack: &Stack, sql: &str) {
    pg_admin(stack, stack.pg_port)
        .await
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// `role`'s attributes and memberships on the cluster under test, for before/after comparisons;
/// `None` when it does not exist.
async fn pg_role_state(stack: &Stack, role: &str) -> Option<String> {
    let row = pg_admin(stack, stack.pg_port)
        .await
        .query_opt(
            "SELECT r.rolpassword, r.rolsuper, r.rolcreaterole, r.rolcreatedb, \
             array(SELECT g.rolname::text FROM pg_auth_members m \
               JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid ORDER BY 1) \
             FROM pg_authid r WHERE r.rolname = $1",
            &[&role],
        )
        .await
        .unwrap()?;
    let password: Option<String> = row.get(0);
    let flags: Vec<bool> = (1..4).map(|i| row.get(i)).collect();
    let members: Vec<String> = row.get(4);
    Some(format!("{password:?} {flags:?} {members:?}"))
}

/// An alternating-users secret JSON for `user` on the cluster under test.
fn pg_alternating(stack: &Stack, user: &str, password: &str, masterarn: &str) -> Value {
    stack.alternating_secret(Server::Postgres, user, password, masterarn)
}

/// Runs createSecret then setSecret, which must fail with `IdentityMismatch` whose message holds
/// every `needle`; Secrets Manager must be as createSecret left it.
async fn set_secret_refused(function: &Function, arn: &str, needles: &[&str]) {
    let client = sm_client().await;
    let token = token();
    start_rotation(&client, arn, &token).await;
    function.invoke("createSecret", arn, &token).await.unwrap();
    let before = snapshot(&client, arn).await;
    let err = function.invoke("setSecret", arn, &token).await.unwrap_err();
    assert_eq!(err.error_type(), "IdentityMismatch", "{err}");
    let message = err.to_string();
    for needle in needles {
        assert!(message.contains(needle), "{needle}: {message}");
    }
    assert_eq!(snapshot(&client, arn).await, before, "{message}");
}

/// Starts a rotation of `arn` and runs its four steps.
async fn rotate(function: &Function, arn: &str) {
    let client = sm_client().await;
    let token = token();
    start_rotation(&client, arn, &token).await;
    function
        .rotate(arn, &token)
        .await
        .unwrap_or_else(|e| panic!("{arn}: {e}"));
}

/// `AWSCURRENT` of `arn` logs in on `server`.
async fn current_logs_in(stack: &Stack, server: Server, arn: &str) {
    let current = value(&sm_client().await, arn, "AWSCURRENT").await;
    stack
        .login(
            server,
            current["username"].as_str().unwrap(),
            current["password"].as_str().unwrap(),
        )
        .await
        .unwrap_or_else(|code| panic!("AWSCURRENT of {arn} does not log in: {code}"));
}

// ---------------------------------------------------------------------------------------------
// 1. A database's owner plants code in the master's session (PostgreSQL)

/// Plpgsql that, run by anyone, notes who ran it, writes a file on the server as that role
/// (only a superuser may) and makes `victim` a superuser (only a superuser may); errors are
/// swallowed, so that a read-only transaction does not hide the call.
fn trap_body(victim: &str, file: &str) -> String {
    format!(
        "BEGIN \
           BEGIN INSERT INTO trap.fired VALUES (current_user); EXCEPTION WHEN OTHERS THEN NULL; END; \
           BEGIN EXECUTE format('COPY (SELECT 1) TO %L', {file}); EXCEPTION WHEN OTHERS THEN NULL; END; \
           BEGIN EXECUTE format('ALTER ROLE %I SUPERUSER', {victim}); \
           EXCEPTION WHEN OTHERS THEN NULL; END;",
        file = escape_literal(file),
        victim = escape_literal(victim),
    )
}

/// The application role owns its database and plants functions for every unqualified call the
/// master's checks used to make: in a schema its database's `search_path` puts first (and the
/// master's own role setting, in the worst case), and `public.unnest(text[])`, whose exact type
/// beats `pg_catalog.unnest(anyarray)` under any path. Three rotations run every check of the
/// master's (the third adds the suffix onto an existing clone), then the doctor's read-only
/// audit. Nothing planted ever runs: the role is no superuser, no file is written.
#[tokio::test]
async fn a_database_owners_planted_functions_never_run_as_the_master() {
    let stack = require_stack!();
    let client = sm_client().await;
    let app = unique("own");
    let app_pw = fixture_password();
    let db = unique("ownerdb");
    let master = unique("own_master");
    let master_pw = fixture_password();
    let file = format!("/tmp/dsr-trap-{app}");
    let _ = std::fs::remove_file(&file);
    pg_run(
        stack,
        &format!(
            "CREATE ROLE {a} LOGIN PASSWORD {ap}; \
             CREATE ROLE {m} LOGIN SUPERUSER PASSWORD {mp}",
            a = escape_identifier(&app),
            ap = escape_literal(&app_pw),
            m = escape_identifier(&master),
            mp = escape_literal(&master_pw),
        ),
    )
    .await;
    pg_run(
        stack,
        &format!(
            "CREATE DATABASE {} OWNER {}",
            escape_identifier(&db),
            escape_identifier(&app)
        ),
    )
    .await;
    // As the application role, in its own database.
    let mut config = tokio_postgres::Config::new();
    config
        .host(&stack.pg_host)
        .port(stack.pg_port)
        .user(&app)
        .password(&app_pw)
        .dbname(&db);
    let (owner, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let body = trap_body(&app, &file);
    owner
        .batch_execute(&format!(
            "CREATE SCHEMA trap; \
             CREATE TABLE trap.fired (who text); GRANT ALL ON trap.fired TO PUBLIC; \
             GRANT USAGE ON SCHEMA trap TO PUBLIC; \
             CREATE FUNCTION trap.current_setting(text) RETURNS text LANGUAGE plpgsql AS $f$ \
               {body} RETURN pg_catalog.current_setting($1); END $f$; \
             CREATE FUNCTION trap.lower(text) RETURNS text LANGUAGE plpgsql AS $f$ \
               {body} RETURN pg_catalog.lower($1); END $f$; \
             CREATE FUNCTION trap.pg_has_role(oid, oid, text) RETURNS boolean LANGUAGE plpgsql \
               AS $f$ {body} RETURN pg_catalog.pg_has_role($1, $2, $3); END $f$; \
             CREATE FUNCTION trap.name_eq(name, name) RETURNS boolean LANGUAGE plpgsql AS $f$ \
               {body} RETURN $1::text OPERATOR(pg_catalog.=) $2::text; END $f$; \
             CREATE OPERATOR trap.= (LEFTARG = name, RIGHTARG = name, FUNCTION = trap.name_eq); \
             CREATE FUNCTION public.unnest(text[]) RETURNS SETOF text LANGUAGE plpgsql AS $f$ \
               {body} RETURN QUERY SELECT pg_catalog.unnest($1); END $f$; \
             GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA trap, public TO PUBLIC; \
             ALTER DATABASE {db} SET search_path = trap, pg_catalog, public; \
             ALTER DATABASE {db} SET default_transaction_read_only = on",
            db = escape_identifier(&db),
        ))
        .await
        .unwrap();
    // The master's own settings point there too, and its secret names that database: the
    // worst case, where the session cannot avoid the database.
    pg_run(
        stack,
        &format!(
            "ALTER ROLE {} SET search_path = trap, pg_catalog, public",
            escape_identifier(&master)
        ),
    )
    .await;
    let mut master_secret = stack.master_secret(Server::Postgres);
    master_secret["username"] = json!(master);
    master_secret["password"] = json!(master_pw);
    master_secret["dbname"] = json!(db);
    let masterarn = create_secret(&client, &master_secret).await;
    let mut secret = pg_alternating(stack, &app, &app_pw, &masterarn);
    secret["dbname"] = json!(db);
    let arn = create_secret(&client, &secret).await;
    let function = Function::new(stack).await;
    for _ in 0..3 {
        rotate(&function, &arn).await;
    }
    current_logs_in(stack, Server::Postgres, &arn).await;
    // The doctor's audit, read-only, runs the same checks as the master.
    let report = doctor_login_audit(&function, &arn).await;
    assert!(
        report.secrets[0].problems.is_empty(),
        "{:?}",
        report.secrets[0].problems
    );

    let fired: i64 = owner
        .query_one("SELECT count(*) FROM trap.fired", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(fired, 0, "a planted function ran");
    assert!(
        !pg_role_state(stack, &app).await.unwrap().contains("[true"),
        "the application role became superuser"
    );
    assert!(!std::path::Path::new(&file).exists(), "{file} was written");
    drop(owner);
    pg_run(
        stack,
        &format!("DROP DATABASE {} WITH (FORCE)", escape_identifier(&db)),
    )
    .await;
    for role in [format!("{app}_clone"), app, master] {
        pg_run(
            stack,
            &format!("DROP ROLE IF EXISTS {}", escape_identifier(&role)),
        )
        .await;
    }
}

/// The doctor's audit of `arn` with `--login`, in the test process.
async fn doctor_login_audit(function: &Function, arn: &str) -> Report {
    let options = Options {
        secrets: vec![arn.to_owned()],
        login: true,
        ..Options::default()
    };
    let report = Doctor::new(&function.app).run(&options).await;
    check_leaks(None);
    report
}

// ---------------------------------------------------------------------------------------------
// 2. "Same database" means the same host and port

/// A server of the same family that the attacker runs at the same host string on another port
/// (the stack's second PostgreSQL cluster) logs the secret's user in with the attacker's
/// password; the master is production's. Without the port, the master would create the clone
/// on production, a member of production's role.
#[tokio::test]
async fn a_master_is_never_aimed_at_production_from_another_port() {
    let stack = require_stack!();
    let client = sm_client().await;
    let name = unique("port");
    let production = PgUser::create(stack, stack.pg_port, &name, &fixture_password()).await;
    pg_run(
        stack,
        &format!("ALTER ROLE {} CREATEDB", escape_identifier(&name)),
    )
    .await;
    let attacker_pw = fixture_password();
    let lookalike = PgUser::create(stack, stack.pg_plain_port, &name, &attacker_pw).await;
    let masterarn = create_secret(&client, &stack.master_secret(Server::Postgres)).await;
    let mut secret = pg_alternating(stack, &name, &attacker_pw, &masterarn);
    secret["port"] = json!(stack.pg_plain_port);
    secret["ssl"] = json!(false);
    let arn = create_secret(&client, &secret).await;
    let before = pg_role_state(stack, &name).await;
    let function = Function::new(stack).await;
    set_secret_refused(
        &function,
        &arn,
        &[
            &format!(":{}", stack.pg_plain_port),
            &format!("master host {}:{}", stack.pg_host, stack.pg_port),
        ],
    )
    .await;
    assert_eq!(pg_role_state(stack, &name).await, before);
    assert_eq!(
        pg_role_state(stack, &format!("{name}_clone")).await,
        None,
        "no clone on production"
    );
    lookalike.drop(stack).await;
    production.drop(stack).await;
}

/// MariaDB, dual passwords: the secret reaches the account through another port (a proxy here),
/// the master the real one. Refused before the master rewrites the account's passwords.
#[tokio::test]
async fn a_dual_password_master_is_never_aimed_from_another_port() {
    let stack = require_stack!();
    let client = sm_client().await;
    let name = unique("dport");
    let password = fixture_password();
    let user = MyUser::create(stack, &name, "%", &password, "").await;
    let proxy = TcpProxy::start(&stack.mariadb_host, stack.mariadb_port).await;
    let masterarn = create_secret(&client, &stack.master_secret(Server::Mariadb)).await;
    let mut secret = stack.secret(Server::Mariadb, &name, &password);
    secret["port"] = json!(proxy.port);
    secret["ssl"] = json!(false);
    secret["masterarn"] = json!(masterarn);
    secret["rotation_strategy"] = json!("dual-password");
    let arn = create_secret(&client, &secret).await;
    let before = global_priv(stack, &name, "%").await;
    let function = Function::new(stack).await;
    set_secret_refused(&function, &arn, &[&format!(":{}", proxy.port)]).await;
    assert_eq!(global_priv(stack, &name, "%").await, before);
    user.drop(stack).await;
}

/// The master's own proof, beneath the handler's: on MariaDB the account it is about to change
/// must accept the current secret's password on the master's server, or the master refuses,
/// changing nothing (alternating users and dual passwords alike).
#[tokio::test]
async fn a_mariadb_master_acts_only_for_an_account_accepting_the_current_password() {
    let stack = require_stack!();
    let rotators = rotators_trusting(&stack.test_ca, TlsMode::VerifyFull);
    let name = unique("proof");
    let password = fixture_password();
    let user = MyUser::create(stack, &name, "%", &password, "").await;
    let account = db_secret_rotator::rotators::Account {
        user: name.clone(),
        host: Some("%".to_owned()),
    };
    // The current secret as a look-alike server would have accepted it.
    let elsewhere = db_secret(&mariadb_secret(stack, &name, "not-this-servers-password"));
    let pending = db_secret(&mariadb_secret(stack, &name, &fixture_password()));
    let clone = db_secret(&mariadb_secret(
        stack,
        &format!("{name}_clone"),
        &fixture_password(),
    ));
    let before = global_priv(stack, &name, "%").await;
    let mut master = connect(&rotators, &mariadb_admin_secret(stack), "arn:proof")
        .await
        .unwrap();
    let refusals = [
        master
            .add_password_as_master(
                &account,
                elsewhere.password(),
                pending.password(),
                &ctx("arn:proof"),
            )
            .await,
        master
            .set_password_as_master(
                &account,
                &elsewhere.login(),
                &clone.login(),
                &ctx("arn:proof"),
            )
            .await,
    ];
    master.close().await;
    for result in refusals {
        let err = result.unwrap_err();
        assert_eq!(err.error_type(), "IdentityMismatch", "{err}");
        assert!(err.to_string().contains("master's server"), "{err}");
    }
    assert_eq!(global_priv(stack, &name, "%").await, before);
    assert!(
        auth_string(stack, &format!("{name}_clone"), "%")
            .await
            .is_none()
    );
    user.drop(stack).await;
}

// ---------------------------------------------------------------------------------------------
// 3. A clone that somebody else controls is never handed the original's rights

/// A PostgreSQL role named like the clone, made by someone else: not a member of the original,
/// its password known to them, a session of theirs open. Adding the suffix would hand the
/// original's rights to that session at once. Refused; the session gains nothing.
#[tokio::test]
async fn an_existing_postgres_clone_made_by_someone_else_is_refused() {
    let stack = require_stack!();
    let client = sm_client().await;
    let name = unique("adopt");
    let password = fixture_password();
    let user = PgUser::create(stack, stack.pg_port, &name, &password).await;
    let table = stack.grant_table(Server::Postgres, &name).await;
    let clone = format!("{name}_clone");
    let theirs = fixture_password();
    let squatter = PgUser::create(stack, stack.pg_port, &clone, &theirs).await;
    let session = pg_client(stack, &clone, &theirs).await;
    let masterarn = create_secret(&client, &stack.master_secret(Server::Postgres)).await;
    let arn = create_secret(
        &client,
        &pg_alternating(stack, &name, &password, &masterarn),
    )
    .await;
    let before = (
        pg_role_state(stack, &name).await,
        pg_role_state(stack, &clone).await,
    );
    let function = Function::new(stack).await;
    set_secret_refused(
        &function,
        &arn,
        &[
            &clone,
            "this function did not make it",
            "membership in role",
        ],
    )
    .await;
    assert_eq!(
        (
            pg_role_state(stack, &name).await,
            pg_role_state(stack, &clone).await
        ),
        before
    );
    assert!(
        session
            .simple_query(&format!("SELECT * FROM {}", table.sql))
            .await
            .is_err(),
        "the squatter's session reads the original's table"
    );
    pg_login(stack, stack.pg_port, &clone, &theirs)
        .await
        .expect("the squatter's password is untouched");
    current_logs_in(stack, Server::Postgres, &arn).await;
    drop(session);
    stack.drop_table(Server::Postgres, table).await;
    squatter.drop(stack).await;
    user.drop(stack).await;
}

/// A clone this function made (a member of the original), but another role has been made a
/// member of it, or (PostgreSQL 16+) the `CREATEROLE` role that created it keeps `ADMIN OPTION`
/// on it: they can act as it or reset its password. Refused, naming them.
#[tokio::test]
async fn a_postgres_clone_with_other_members_or_admins_is_refused() {
    let stack = require_stack!();
    let client = sm_client().await;
    let masterarn = create_secret(&client, &stack.master_secret(Server::Postgres)).await;
    let function = Function::new(stack).await;

    // Another member.
    let name = unique("member");
    let password = fixture_password();
    let user = PgUser::create(stack, stack.pg_port, &name, &password).await;
    let arn = create_secret(
        &client,
        &pg_alternating(stack, &name, &password, &masterarn),
    )
    .await;
    rotate(&function, &arn).await;
    rotate(&function, &arn).await;
    let clone = format!("{name}_clone");
    let outsider = unique("outsider");
    let outsider_user = PgUser::create(stack, stack.pg_port, &outsider, &fixture_password()).await;
    pg_run(
        stack,
        &format!(
            "GRANT {} TO {}",
            escape_identifier(&clone),
            escape_identifier(&outsider)
        ),
    )
    .await;
    let before = pg_role_state(stack, &clone).await;
    set_secret_refused(
        &function,
        &arn,
        &[&format!("role {outsider} is a member of it")],
    )
    .await;
    assert_eq!(pg_role_state(stack, &clone).await, before);
    current_logs_in(stack, Server::Postgres, &arn).await;
    pg_run(
        stack,
        &format!(
            "REVOKE {} FROM {}",
            escape_identifier(&clone),
            escape_identifier(&outsider)
        ),
    )
    .await;
    rotate(&function, &arn).await;
    outsider_user.drop(stack).await;
    stack.drop_user(Server::Postgres, &clone).await;
    user.drop(stack).await;

    // A clone created by another CREATEROLE role, then made a member of the original.
    let name = unique("creator");
    let password = fixture_password();
    let user = PgUser::create(stack, stack.pg_port, &name, &password).await;
    let creator = unique("creator_admin");
    let creator_pw = fixture_password();
    pg_run(
        stack,
        &format!(
            "CREATE ROLE {} LOGIN CREATEROLE PASSWORD {}",
            escape_identifier(&creator),
            escape_literal(&creator_pw)
        ),
    )
    .await;
    let clone = format!("{name}_clone");
    pg_client(stack, &creator, &creator_pw)
        .await
        .batch_execute(&format!(
            "CREATE ROLE {} LOGIN PASSWORD 'known-to-the-creator'",
            escape_identifier(&clone)
        ))
        .await
        .unwrap();
    pg_run(
        stack,
        &format!(
            "GRANT {} TO {}",
            escape_identifier(&name),
            escape_identifier(&clone)
        ),
    )
    .await;
    let arn = create_secret(
        &client,
        &pg_alternating(stack, &name, &password, &masterarn),
    )
    .await;
    if stack.pg_server.major >= 16 {
        let before = pg_role_state(stack, &clone).await;
        set_secret_refused(
            &function,
            &arn,
            &[&format!("role {creator} holds ADMIN OPTION on it")],
        )
        .await;
        assert_eq!(pg_role_state(stack, &clone).await, before);
        current_logs_in(stack, Server::Postgres, &arn).await;
    } else {
        // Before 16 a creator keeps no membership: any CREATEROLE role may alter any
        // non-superuser role, the original included, so handing over the clone gives it
        // nothing it lacks.
        rotate(&function, &arn).await;
    }
    stack.drop_user(Server::Postgres, &clone).await;
    pg_run(stack, &format!("DROP ROLE {}", escape_identifier(&creator))).await;
    user.drop(stack).await;
}

/// MariaDB: an existing account named like the clone that lacks the original's grants (made by
/// someone else, whose session is open), one that holds exactly them but which another account
/// may proxy as, and one that owns a definer routine: each would give the original's rights to
/// someone else. Refused, naming the reason; nothing changed.
#[tokio::test]
async fn mariadb_clones_controlled_by_others_are_refused() {
    let stack = require_stack!();
    let client = sm_client().await;
    let masterarn = create_secret(&client, &stack.master_secret(Server::Mariadb)).await;
    let function = Function::new(stack).await;
    let name = unique("madopt");
    let password = fixture_password();
    let user = MyUser::create(stack, &name, "%", &password, "").await;
    let table = stack.grant_table(Server::Mariadb, &name).await;
    let clone = format!("{name}_clone");
    let clone_sql = account_sql(&clone, "%");
    let theirs = fixture_password();
    let squatter = MyUser::create(stack, &clone, "%", &theirs, "").await;
    let secret = stack.alternating_secret(Server::Mariadb, &name, &password, &masterarn);
    let arn = create_secret(&client, &secret).await;
    let state = async || {
        (
            global_priv(stack, &name, "%").await,
            global_priv(stack, &clone, "%").await,
            show_grants(stack, &clone, "%").await,
        )
    };

    // 1. It lacks the original's grant, and its owner holds a session.
    let mut session = mysql_async::Conn::new(
        mysql_async::OptsBuilder::default()
            .ip_or_hostname(stack.mariadb_host.clone())
            .tcp_port(stack.mariadb_port)
            .user(Some(clone.clone()))
            .pass(Some(theirs.clone()))
            .prefer_socket(false),
    )
    .await
    .unwrap();
    let before = state().await;
    set_secret_refused(&function, &arn, &[&clone, "it lacks SELECT ON"]).await;
    assert_eq!(state().await, before);
    assert!(
        session
            .query_drop(format!("SELECT * FROM {}", table.sql))
            .await
            .is_err(),
        "the squatter's session reads the original's table"
    );
    session.disconnect().await.unwrap();

    // 2. It holds exactly the original's grants, but another account may proxy as it.
    my_admin_run(
        stack,
        &format!("GRANT SELECT ON {} TO {clone_sql}", table.sql),
    )
    .await;
    let proxier = unique("proxier");
    let proxier_user = MyUser::create(stack, &proxier, "%", &fixture_password(), "").await;
    // What `GRANT PROXY ON clone TO proxier` stores (the stack's admin may not grant PROXY).
    let proxy_row = format!(
        "mysql.proxies_priv WHERE Host = '%' AND User = '{proxier}' AND Proxied_host = '%' \
         AND Proxied_user = '{clone}'"
    );
    my_admin_run(
        stack,
        &format!(
            "INSERT INTO mysql.proxies_priv (Host, User, Proxied_host, Proxied_user, With_grant) \
             VALUES ('%', '{proxier}', '%', '{clone}', 0)"
        ),
    )
    .await;
    my_admin_run(stack, "FLUSH PRIVILEGES").await;
    let before = state().await;
    set_secret_refused(
        &function,
        &arn,
        &[&format!("the account {proxier}@% may proxy as it")],
    )
    .await;
    assert_eq!(state().await, before);
    my_admin_run(stack, &format!("DELETE FROM {proxy_row}")).await;
    my_admin_run(stack, "FLUSH PRIVILEGES").await;

    // 3. A routine runs with its rights, callable by anyone it is granted to.
    let db = table.sql.split('.').next().unwrap().to_owned();
    my_admin_run(
        stack,
        &format!("CREATE DEFINER = {clone_sql} PROCEDURE {db}.dsr_definer() SELECT 1"),
    )
    .await;
    let before = state().await;
    set_secret_refused(
        &function,
        &arn,
        &["1 stored routine(s) run with its rights"],
    )
    .await;
    assert_eq!(state().await, before);
    my_admin_run(stack, &format!("DROP PROCEDURE {db}.dsr_definer")).await;

    // Uncontrolled and holding exactly the original's grants: it rotates, and the squatter's
    // password no longer logs in.
    rotate(&function, &arn).await;
    current_logs_in(stack, Server::Mariadb, &arn).await;
    assert_eq!(my_login(stack, &clone, &theirs, true).await, Err(1045));
    proxier_user.drop(stack).await;
    stack.drop_table(Server::Mariadb, table).await;
    squatter.drop(stack).await;
    user.drop(stack).await;
}

// ---------------------------------------------------------------------------------------------
// 5 and 6. The new password never reaches a listener the attacker runs

/// A listener speaking just enough of PostgreSQL's protocol to ask for the password in
/// cleartext, recording every byte a client sends after the request.
struct CleartextListener {
    port: u16,
    received: Arc<Mutex<Vec<u8>>>,
    asked: Arc<Mutex<usize>>,
}

impl CleartextListener {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let asked = Arc::new(Mutex::new(0));
        let (r, a) = (Arc::clone(&received), Arc::clone(&asked));
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (r, a) = (Arc::clone(&r), Arc::clone(&a));
                tokio::spawn(async move {
                    // Startup messages: an SSLRequest is refused ('N'), then the startup packet.
                    loop {
                        let mut len = [0u8; 4];
                        if socket.read_exact(&mut len).await.is_err() {
                            return;
                        }
                        let mut body = vec![0u8; u32::from_be_bytes(len) as usize - 4];
                        if socket.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        if body.starts_with(&80_877_103u32.to_be_bytes()) {
                            let _ = socket.write_all(b"N").await;
                            continue;
                        }
                        break;
                    }
                    // AuthenticationCleartextPassword.
                    let _ = socket.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]).await;
                    *a.lock().unwrap() += 1;
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = socket.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        r.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                });
            }
        });
        CleartextListener {
            port,
            received,
            asked,
        }
    }

    fn received(&self) -> Vec<u8> {
        self.received.lock().unwrap().clone()
    }

    fn asked(&self) -> usize {
        *self.asked.lock().unwrap()
    }
}

/// Someone who may write the secret, not read it, stores a current version naming another port
/// of the same host, where their listener refuses the login by asking for the password in
/// cleartext. The function must neither answer it nor fall back to the previous version on the
/// real port, which would set production's password and then hand the new one to the listener.
#[tokio::test]
async fn single_user_never_sets_production_for_a_version_on_another_port() {
    let stack = require_stack!();
    let client = sm_client().await;
    let name = unique("snd");
    let password = fixture_password();
    let user = PgUser::create(stack, stack.pg_port, &name, &password).await;
    let verifier = user.verifier(stack).await;
    let function = Function::new(stack).await;
    let forge = async |port: u16| {
        let arn = create_secret(&client, &pg_secret(stack, stack.pg_port, &name, &password)).await;
        let mut forged = pg_secret(stack, stack.pg_port, &name, "the-writer-does-not-know-it");
        forged["port"] = json!(port.to_string());
        forged["ssl"] = json!(false);
        client
            .put_secret_value()
            .secret_id(&arn)
            .secret_string(forged.to_string())
            .version_stages("AWSCURRENT")
            .send()
            .await
            .unwrap();
        arn
    };

    // The attacker's server refuses the login (another PostgreSQL, where the user has another
    // password): the function tries AWSPREVIOUS, which names production's port, and refuses it.
    let arn = forge(stack.pg_plain_port).await;
    set_secret_refused(
        &function,
        &arn,
        &[&format!(
            "port {} other than previous host",
            stack.pg_plain_port
        )],
    )
    .await;
    assert_eq!(user.verifier(stack).await, verifier, "production changed");

    // The attacker's server asks for the password in cleartext: nothing is sent, and a failure
    // that is not a refusal ends the step before any other version is tried.
    let listener = CleartextListener::start().await;
    let arn = forge(listener.port).await;
    let sm = sm_client().await;
    let token = token();
    start_rotation(&sm, &arn, &token).await;
    function.invoke("createSecret", &arn, &token).await.unwrap();
    let err = function
        .invoke("setSecret", &arn, &token)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "DatabaseError", "{err}");
    assert!(err.to_string().contains("cleartext"), "{err}");
    assert!(listener.asked() >= 1, "the listener was reached");
    assert!(listener.received().is_empty(), "a password was sent");
    assert_eq!(user.verifier(stack).await, verifier, "production changed");
    pg_login(stack, stack.pg_port, &name, &password)
        .await
        .unwrap();
    user.drop(stack).await;
}

/// A server (or an on-path attacker who refuses TLS under `TLS_MODE=prefer`) asks for the
/// password in cleartext: it is never sent, and the error says why. With the documented opt-in it
/// is.
#[tokio::test]
async fn a_cleartext_password_request_is_never_answered_without_the_opt_in() {
    let stack = require_stack!();
    let listener = CleartextListener::start().await;
    let password = format!("SENTINEL-cleartext-{}", rand::random::<u32>());
    register_password(&password);
    let mut secret = pg_secret(stack, listener.port, "app", &password);
    secret["ssl"] = json!(false);
    let refusing = rotators_trusting(&stack.test_ca, TlsMode::VerifyFull);
    let err = login(&refusing, &secret, "arn:cleartext")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cleartext"), "{err}");
    // TLS_MODE=prefer: the listener refuses TLS, the plaintext retry is refused the same way.
    secret.as_object_mut().unwrap().remove("ssl");
    let prefer = rotators_trusting(&stack.test_ca, TlsMode::Prefer);
    let err = login(&prefer, &secret, "arn:cleartext").await.unwrap_err();
    assert!(err.to_string().contains("cleartext"), "{err}");
    assert_eq!(listener.asked(), 2);
    assert!(listener.received().is_empty());

    let allowing = rotators_with(
        &stack.test_ca,
        Config {
            tls_mode: TlsMode::Prefer,
            allow_cleartext_passwords: true,
            ..Config::default()
        },
    );
    let _ = login(&allowing, &secret, "arn:cleartext").await;
    let sent = String::from_utf8_lossy(&listener.received()).into_owned();
    assert!(sent.contains(&password), "the opt-in sends it: {sent:?}");
}

// ---------------------------------------------------------------------------------------------
// 8. masterarn names only the deployment's masters

/// An application secret names another application's secret, which the function's role can
/// read, as its master. With `MASTER_SECRET_ARNS` it is refused before it is read.
#[tokio::test]
async fn a_masterarn_outside_the_configured_masters_is_refused() {
    let stack = require_stack!();
    let client = sm_client().await;
    let name = unique("notmaster");
    let password = fixture_password();
    let user = PgUser::create(stack, stack.pg_port, &name, &password).await;
    let other_app = create_secret(&client, &stack.master_secret(Server::Postgres)).await;
    let arn = create_secret(
        &client,
        &pg_alternating(stack, &name, &password, &other_app),
    )
    .await;
    let sm = SmProxy::start(stack).await;
    let config = Config {
        tls_extra_ca_file: Some(stack.test_ca.clone()),
        master_secret_arns: Some(vec![
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:ops/master-AbCdEf".into(),
        ]),
        ..Config::default()
    };
    let rotators = db_secret_rotator::rotators::Engines::new(&config).unwrap();
    let function = Function::with_endpoint(config, rotators, Some(&sm.url)).await;
    set_secret_refused(&function, &arn, &[&other_app, "MASTER_SECRET_ARNS"]).await;
    assert!(
        sm.log().iter().all(|r| r.secret_id != other_app),
        "the other secret was read"
    );
    assert_eq!(pg_role_state(stack, &format!("{name}_clone")).await, None);
    user.drop(stack).await;
}

// ---------------------------------------------------------------------------------------------
// 9. MariaDB single user sends a computed value

/// With the general log on, a single-user rotation of a `mysql_native_password` and of an
/// `ed25519` account leaves neither new password in it: the statement carries the value the
/// plugin stores.
#[tokio::test]
async fn mariadb_single_user_never_sends_the_password_in_sql() {
    let stack = require_stack!();
    let client = sm_client().await;
    let mut function = Function::new(stack).await;
    function.generate_every_punctuation();
    let mut users = Vec::new();
    let mut arns = Vec::new();
    for methods in [None, Some("ed25519")] {
        let name = unique("mlog");
        let password = fixture_password();
        let user = match methods {
            None => MyUser::create(stack, &name, "%", &password, "").await,
            Some(plugin) => {
                if !ed25519_loaded(stack).await {
                    continue;
                }
                MyUser::create_via(
                    stack,
                    &name,
                    "%",
                    &format!(
                        "VIA {plugin} USING PASSWORD({})",
                        quote_literal(&password, false)
                    ),
                )
                .await
            }
        };
        arns.push(create_secret(&client, &stack.secret(Server::Mariadb, &name, &password)).await);
        users.push(user);
    }
    let mut admin = my_admin(stack).await;
    admin
        .query_drop("SET GLOBAL log_output = 'TABLE'; SET GLOBAL general_log = ON")
        .await
        .unwrap();
    for arn in &arns {
        rotate(&function, arn).await;
    }
    admin
        .query_drop("SET GLOBAL general_log = OFF")
        .await
        .unwrap();
    let logged: Vec<String> = admin
        .query("SELECT CONVERT(argument USING utf8mb4) FROM mysql.general_log")
        .await
        .unwrap();
    for arn in &arns {
        let new = current_password(&client, arn).await;
        current_logs_in(stack, Server::Mariadb, arn).await;
        assert!(
            logged.iter().all(|line| !line.contains(&new)),
            "the new password is in the general log"
        );
        assert!(
            logged
                .iter()
                .any(|line| line.starts_with("SET PASSWORD = '")),
            "the statement was logged"
        );
    }
    admin
        .query_drop("TRUNCATE mysql.general_log")
        .await
        .unwrap();
    admin.disconnect().await.unwrap();
    for user in users {
        user.drop(stack).await;
    }
}
