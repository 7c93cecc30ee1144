//! PostgreSQL fixtures: direct logins, admin sessions, users and secrets on the stack's clusters.

use std::time::Duration;

use postgres_protocol::escape::{escape_identifier, escape_literal};
use serde_json::{Value, json};

use super::{Stack, trusting};

/// A rustls client config trusting only the stack's test CA, for direct logins in assertions.
fn test_tls(stack: &Stack) -> tokio_postgres_rustls::MakeRustlsConnect {
    tokio_postgres_rustls::MakeRustlsConnect::new(
        (*trusting(&stack.test_ca).client_config()).clone(),
    )
}

/// Logs in directly (verified TLS on the TLS port, plaintext on the plain port) and runs a query.
/// `Err` carries the SQLSTATE, or the driver's description when there is none.
pub async fn pg_login(stack: &Stack, port: u16, user: &str, password: &str) -> Result<(), String> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&stack.pg_host)
        .port(port)
        .user(user)
        .password(password)
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(5));
    let client = if port == stack.pg_plain_port {
        let (client, conn) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(pg_code)?;
        tokio::spawn(conn);
        client
    } else {
        config.ssl_mode(tokio_postgres::config::SslMode::Require);
        let (client, conn) = config.connect(test_tls(stack)).await.map_err(pg_code)?;
        tokio::spawn(conn);
        client
    };
    client.simple_query("SELECT 1").await.map_err(pg_code)?;
    Ok(())
}

fn pg_code(e: tokio_postgres::Error) -> String {
    match e.code() {
        Some(code) => code.code().to_owned(),
        None => e.to_string(),
    }
}

/// A session on cluster A (verified TLS) as `user`.
pub async fn pg_client(stack: &Stack, user: &str, password: &str) -> tokio_postgres::Client {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&stack.pg_host)
        .port(stack.pg_port)
        .user(user)
        .password(password)
        .dbname("postgres")
        .ssl_mode(tokio_postgres::config::SslMode::Require);
    let (client, conn) = config.connect(test_tls(stack)).await.expect("login");
    tokio::spawn(conn);
    client
}

/// The admin session on the cluster at `port`.
pub async fn pg_admin(stack: &Stack, port: u16) -> tokio_postgres::Client {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&stack.pg_host)
        .port(port)
        .user(&stack.pg_admin_user)
        .password(&stack.pg_admin_password)
        .dbname("postgres");
    if port == stack.pg_plain_port {
        let (client, conn) = config
            .connect(tokio_postgres::NoTls)
            .await
            .expect("admin login");
        tokio::spawn(conn);
        client
    } else {
        config.ssl_mode(tokio_postgres::config::SslMode::Require);
        let (client, conn) = config.connect(test_tls(stack)).await.expect("admin login");
        tokio::spawn(conn);
        client
    }
}

/// A login role with a password, dropped by [`PgUser::drop`].
pub struct PgUser {
    pub name: String,
    pub port: u16,
}

impl PgUser {
    /// Creates `name` (any characters) with `password` on the cluster at `port`.
    pub async fn create(stack: &Stack, port: u16, name: &str, password: &str) -> Self {
        pg_admin(stack, port)
            .await
            .batch_execute(&format!(
                "CREATE ROLE {} LOGIN PASSWORD {}",
                escape_identifier(name),
                escape_literal(password)
            ))
            .await
            .expect("CREATE ROLE");
        PgUser {
            name: name.to_owned(),
            port,
        }
    }

    /// Sets the password behind the function's back.
    pub async fn set_password(&self, stack: &Stack, password: &str) {
        pg_admin(stack, self.port)
            .await
            .batch_execute(&format!(
                "ALTER ROLE {} PASSWORD {}",
                escape_identifier(&self.name),
                escape_literal(password)
            ))
            .await
            .expect("ALTER ROLE");
    }

    /// The stored verifier: unchanged means no password statement ran.
    pub async fn verifier(&self, stack: &Stack) -> String {
        pg_admin(stack, self.port)
            .await
            .query_one(
                "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
                &[&self.name],
            )
            .await
            .expect("pg_authid")
            .get(0)
    }

    pub async fn drop(self, stack: &Stack) {
        let _ = pg_admin(stack, self.port)
            .await
            .batch_execute(&format!(
                "DROP ROLE IF EXISTS {}",
                escape_identifier(&self.name)
            ))
            .await;
    }
}

/// A secret JSON for `user` on the TLS cluster, with keys the function must keep verbatim.
pub fn pg_secret(stack: &Stack, port: u16, user: &str, password: &str) -> Value {
    json!({
        "engine": "postgres",
        "host": stack.pg_host,
        "port": port.to_string(),
        "username": user,
        "password": password,
        "dbname": "postgres",
        "note": "kept verbatim",
        "nested": {"list": [1, "two", null], "flag": true},
    })
}
