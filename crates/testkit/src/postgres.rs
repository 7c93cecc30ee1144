//! PostgreSQL fixtures: direct logins, admin sessions, users and secrets on the stack's clusters.
//!
//! The TLS server they use is the one `DSR_PG_SERVER` selects ([`super::stack::PgServer`]). The
//! first fixture of a test process asks that server its version, stops the run when it is another
//! major, and prints which server the process tests; the first fixture of each test prints the
//! same line into the test's captured output, so that a failure names its server.

use std::cell::Cell;
use std::sync::OnceLock;

use postgres_protocol::escape::{escape_identifier, escape_literal};
use serde_json::{Value, json};

use super::stack::ci;
use super::{FIXTURE_TIMEOUT, Stack, trusting};

/// One line naming the PostgreSQL server under test, its version as the server reports it, and
/// the plaintext cluster.
fn under_test(stack: &Stack) -> &'static str {
    static UNDER_TEST: OnceLock<String> = OnceLock::new();
    UNDER_TEST.get_or_init(|| {
        let wanted = stack.pg_server.major;
        let at = format!("{}:{}", stack.pg_host, stack.pg_port);
        let plain = format!(
            "plaintext tests use cluster B at {}:{}",
            stack.pg_host, stack.pg_plain_port
        );
        // The fixtures' own runtime may be a current-thread one, blocked in this call: the query
        // runs on a runtime of its own, on a thread of its own.
        let found = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime")
                        .block_on(server_version(stack))
                })
                .join()
                .expect("version query")
        });
        let line = match found {
            Ok((major, version)) if major == wanted => {
                format!(
                    "PostgreSQL tests use PostgreSQL {version} at {at} over TLS \
                     (DSR_PG_SERVER={wanted}); {plain}"
                )
            }
            Ok((_, version)) => panic!(
                "DSR_PG_SERVER={wanted}, but the server at {at} is PostgreSQL {version}: check \
                 the stack's ports"
            ),
            Err(why) if ci() => panic!(
                "CI=true but the selected PostgreSQL {wanted} at {at} does not answer ({why}); \
                 run scripts/stack.sh up"
            ),
            Err(why) => format!(
                "PostgreSQL tests use PostgreSQL {wanted} at {at} over TLS \
                 (DSR_PG_SERVER={wanted}), which does not answer ({why}); {plain}"
            ),
        };
        report_line(&line);
        line
    })
}

/// The server's major version and full version string.
async fn server_version(stack: &Stack) -> Result<(u16, String), String> {
    let client = admin_session(stack, stack.pg_port)
        .await
        .map_err(|e| chain(&e))?;
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int / 10000, \
             current_setting('server_version')",
            &[],
        )
        .await
        .map_err(|e| chain(&e))?;
    let major: i32 = row.get(0);
    Ok((u16::try_from(major).unwrap_or(0), row.get(1)))
}

/// An error and its causes, `: `-separated.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text = format!("{text}: {c}");
        cause = c.source();
    }
    text
}

/// Writes to the stderr file descriptor, past the test harness's capture: once per process.
fn report_line(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Names the server under test in the running test's captured output, once per test (a test
/// runs on a thread of its own). Every fixture calls it first.
#[allow(
    clippy::print_stderr,
    reason = "a failing test's output names its server"
)]
fn note(stack: &Stack) {
    thread_local! {
        static NOTED: Cell<bool> = const { Cell::new(false) };
    }
    let line = under_test(stack);
    if !NOTED.replace(true) {
        eprintln!("{line}");
    }
}

/// A rustls client config trusting only the stack's test CA, for direct logins in assertions.
fn test_tls(stack: &Stack) -> tokio_postgres_rustls::MakeRustlsConnect {
    tokio_postgres_rustls::MakeRustlsConnect::new(
        (*trusting(&stack.test_ca).client_config()).clone(),
    )
}

/// Logs in directly (verified TLS on the TLS port, plaintext on the plain port) and runs a query.
/// `Err` carries the SQLSTATE, or the driver's description when there is none.
pub async fn pg_login(stack: &Stack, port: u16, user: &str, password: &str) -> Result<(), String> {
    note(stack);
    let mut config = tokio_postgres::Config::new();
    config
        .host(&stack.pg_host)
        .port(port)
        .user(user)
        .password(password)
        .dbname("postgres")
        .connect_timeout(FIXTURE_TIMEOUT);
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
    note(stack);
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
    note(stack);
    admin_session(stack, port).await.expect("admin login")
}

async fn admin_session(
    stack: &Stack,
    port: u16,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&stack.pg_host)
        .port(port)
        .user(&stack.pg_admin_user)
        .password(&stack.pg_admin_password)
        .dbname("postgres")
        .connect_timeout(FIXTURE_TIMEOUT);
    if port == stack.pg_plain_port {
        let (client, conn) = config.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        Ok(client)
    } else {
        config.ssl_mode(tokio_postgres::config::SslMode::Require);
        let (client, conn) = config.connect(test_tls(stack)).await?;
        tokio::spawn(conn);
        Ok(client)
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

    /// Makes `member` a member of this role (`GRANT <role> TO <member>`), as a clone that
    /// inherits the original's privileges is.
    pub async fn grant_to(&self, stack: &Stack, member: &PgUser) {
        pg_admin(stack, self.port)
            .await
            .batch_execute(&format!(
                "GRANT {} TO {}",
                escape_identifier(&self.name),
                escape_identifier(&member.name)
            ))
            .await
            .expect("GRANT role");
    }
}

/// A secret JSON for `user` on the TLS cluster, with keys the function must keep verbatim.
pub fn pg_secret(stack: &Stack, port: u16, user: &str, password: &str) -> Value {
    note(stack);
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
