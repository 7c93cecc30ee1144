//! MariaDB fixtures: admin and login helpers, users, and secrets on the stack's MariaDB.
//!
//! The helpers write passwords through `PASSWORD(?)` with a bound parameter and then
//! `IDENTIFIED BY PASSWORD '<hash>'`, so fixtures never depend on the escaping under test.

use db_secret_rotator::rotators::mysql::{account_sql, ssl_opts};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use serde_json::{Value, json};

use super::{FIXTURE_TIMEOUT, Stack, trusting};

/// Connection options for `user` on the stack; `tls`: verified TLS trusting only the test CA.
fn opts(stack: &Stack, user: &str, password: &str, tls: bool) -> OptsBuilder {
    let opts = OptsBuilder::default()
        .ip_or_hostname(stack.mariadb_host.as_str())
        .tcp_port(stack.mariadb_port)
        .user(Some(user))
        .pass(Some(password))
        .prefer_socket(false);
    if tls {
        opts.ssl_opts(ssl_opts(&trusting(&stack.test_ca)))
    } else {
        opts
    }
}

/// The admin session: verified TLS with the test CA.
pub async fn my_admin(stack: &Stack) -> Conn {
    tokio::time::timeout(
        FIXTURE_TIMEOUT,
        Conn::new(opts(
            stack,
            &stack.mariadb_admin_user,
            &stack.mariadb_admin_password,
            true,
        )),
    )
    .await
    .expect("admin login timed out")
    .expect("admin login")
}

/// Runs one admin statement.
pub async fn my_admin_run(stack: &Stack, statement: &str) {
    let mut admin = my_admin(stack).await;
    admin
        .query_drop(statement)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
    admin.disconnect().await.unwrap();
}

/// Logs in as `user` and runs `SELECT 1`; `Err` is the server's error number (1045 for a wrong
/// password or a plaintext login to a `REQUIRE SSL` account). Other failures panic.
///
/// A second authentication switch counts as 1045. MariaDB sends one when a login fails an
/// account's first method and the account has another that needs a different exchange (`VIA
/// unix_socket OR …`, two ed25519 methods). It does so for unknown users too: it fakes their
/// authentication with an existing account picked by a hash of the name, so a login as a user
/// that does not exist yet (a clone) meets such an account whenever one exists. mysql_async
/// cannot follow a second switch; every client-side login that needs one is refused here.
pub async fn my_login(stack: &Stack, user: &str, password: &str, tls: bool) -> Result<(), u16> {
    let login = async {
        let mut conn = Conn::new(opts(stack, user, password, tls)).await?;
        conn.query_drop("SELECT 1").await?;
        conn.disconnect().await
    };
    match tokio::time::timeout(FIXTURE_TIMEOUT, login).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(mysql_async::Error::Server(e))) => Err(e.code),
        Ok(Err(mysql_async::Error::Driver(mysql_async::DriverError::UnexpectedPacket {
            payload,
        }))) if payload.first() == Some(&0xfe) => Err(1045),
        Ok(Err(e)) => panic!("login as {user} failed outside the server: {e}"),
        Err(_) => panic!("login as {user} timed out"),
    }
}

/// Logs in as `user` (verified TLS) and runs `statement`; `Err` is the server's error number.
pub async fn my_run_as(
    stack: &Stack,
    user: &str,
    password: &str,
    statement: &str,
) -> Result<(), u16> {
    let mut conn = Conn::new(opts(stack, user, password, true))
        .await
        .expect("login");
    let result = conn.query_drop(statement).await;
    let _ = conn.disconnect().await;
    match result {
        Ok(()) => Ok(()),
        Err(mysql_async::Error::Server(e)) => Err(e.code),
        Err(e) => panic!("{e}"),
    }
}

/// A MariaDB account, dropped by [`MyUser::drop`].
pub struct MyUser {
    pub name: String,
    pub host: String,
}

impl MyUser {
    /// Creates `name@host` (any characters) with `password`, plus `extra` clauses such as
    /// `REQUIRE SSL`.
    pub async fn create(
        stack: &Stack,
        name: &str,
        host: &str,
        password: &str,
        extra: &str,
    ) -> Self {
        let mut admin = my_admin(stack).await;
        let hash = password_hash(&mut admin, password).await;
        let statement = format!(
            "CREATE USER {} IDENTIFIED BY PASSWORD '{hash}' {extra}",
            account_sql(name, host)
        );
        admin
            .query_drop(&statement)
            .await
            .unwrap_or_else(|e| panic!("CREATE USER {name}@{host}: {e}"));
        admin.disconnect().await.unwrap();
        MyUser {
            name: name.to_owned(),
            host: host.to_owned(),
        }
    }

    /// `` `name`@`host` ``.
    pub fn sql(&self) -> String {
        account_sql(&self.name, &self.host)
    }

    /// Sets the password behind the function's back.
    pub async fn set_password(&self, stack: &Stack, password: &str) {
        let mut admin = my_admin(stack).await;
        let hash = password_hash(&mut admin, password).await;
        admin
            .query_drop(format!(
                "ALTER USER {} IDENTIFIED BY PASSWORD '{hash}'",
                self.sql()
            ))
            .await
            .expect("ALTER USER");
        admin.disconnect().await.unwrap();
    }

    /// The stored hash: unchanged means no password statement ran.
    pub async fn auth_string(&self, stack: &Stack) -> String {
        auth_string(stack, &self.name, &self.host)
            .await
            .expect("the account exists")
    }

    pub async fn drop(self, stack: &Stack) {
        drop_user(stack, &self.name, &self.host).await;
    }
}

/// The stored hash of `user@host`, `None` when there is no such account.
pub async fn auth_string(stack: &Stack, user: &str, host: &str) -> Option<String> {
    account_column(stack, "authentication_string", "mysql.user", user, host).await
}

/// `column` of `table` for the account `user@host`, read by the admin; `None` when there is no
/// such account.
async fn account_column(
    stack: &Stack,
    column: &str,
    table: &str,
    user: &str,
    host: &str,
) -> Option<String> {
    let mut admin = my_admin(stack).await;
    let value: Option<String> = admin
        .exec_first(
            format!("SELECT {column} FROM {table} WHERE User = ? AND Host = ?"),
            (user, host),
        )
        .await
        .expect(table);
    admin.disconnect().await.unwrap();
    value
}

/// `DROP USER IF EXISTS user@host`.
pub async fn drop_user(stack: &Stack, user: &str, host: &str) {
    my_admin_run(
        stack,
        &format!("DROP USER IF EXISTS {}", account_sql(user, host)),
    )
    .await;
}

/// The `mysql_native_password` hash of `password`, computed by the server from a bound parameter.
async fn password_hash(admin: &mut Conn, password: &str) -> String {
    let hash: Option<String> = admin
        .exec_first("SELECT PASSWORD(?)", (password,))
        .await
        .expect("PASSWORD(?)");
    let hash = hash.expect("a hash");
    assert!(hash.chars().all(|c| c == '*' || c.is_ascii_hexdigit()));
    hash
}

/// A secret JSON for `user` on the stack's MariaDB, with a key the function must keep verbatim.
pub fn mariadb_secret(stack: &Stack, user: &str, password: &str) -> Value {
    json!({
        "engine": "mariadb",
        "host": stack.mariadb_host,
        "port": stack.mariadb_port,
        "username": user,
        "password": password,
        "note": "kept verbatim",
    })
}

/// The admin account's secret.
pub fn mariadb_admin_secret(stack: &Stack) -> Value {
    mariadb_secret(
        stack,
        &stack.mariadb_admin_user,
        &stack.mariadb_admin_password,
    )
}

/// `SHOW GRANTS` of `user@host`, sorted.
pub async fn show_grants(stack: &Stack, user: &str, host: &str) -> Vec<String> {
    let mut admin = my_admin(stack).await;
    let mut grants: Vec<String> = admin
        .query(format!("SHOW GRANTS FOR {}", account_sql(user, host)))
        .await
        .expect("SHOW GRANTS");
    admin.disconnect().await.unwrap();
    grants.sort();
    grants
}

/// The account's `mysql.global_priv` JSON: its authentication methods, `REQUIRE`, limits, locks.
pub async fn global_priv(stack: &Stack, user: &str, host: &str) -> Value {
    let text = account_column(stack, "Priv", "mysql.global_priv", user, host).await;
    serde_json::from_str(&text.expect("the account exists")).unwrap()
}

/// The plugins of the account's authentication methods, in order (`auth_or` lists them, an empty
/// object standing for the top-level method).
pub fn auth_plugins(privileges: &Value) -> Vec<String> {
    let top = privileges["plugin"].as_str().unwrap().to_owned();
    match privileges["auth_or"].as_array() {
        None => vec![top],
        Some(methods) => methods
            .iter()
            .map(|m| {
                m["plugin"]
                    .as_str()
                    .map_or_else(|| top.clone(), str::to_owned)
            })
            .collect(),
    }
}

/// Whether the server has the ed25519 authentication plugin (scripts/stack.sh installs it).
pub async fn ed25519_loaded(stack: &Stack) -> bool {
    let mut admin = my_admin(stack).await;
    let status: Option<String> = admin
        .query_first(
            "SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'ed25519'",
        )
        .await
        .unwrap();
    admin.disconnect().await.unwrap();
    status.as_deref() == Some("ACTIVE")
}

impl MyUser {
    /// Creates `name@host` authenticated by `methods` (`VIA ed25519 USING PASSWORD('…')`, …).
    pub async fn create_via(stack: &Stack, name: &str, host: &str, methods: &str) -> Self {
        drop_user(stack, name, host).await;
        my_admin_run(
            stack,
            &format!(
                "CREATE USER {} IDENTIFIED {methods}",
                account_sql(name, host)
            ),
        )
        .await;
        MyUser {
            name: name.to_owned(),
            host: host.to_owned(),
        }
    }
}
