//! The local stack (`scripts/stack.sh env`): the Secrets Manager emulator and the database
//! servers, described once from the environment, with one policy for a missing stack.

use std::path::PathBuf;
use std::sync::OnceLock;

/// Addresses and admin credentials of every service of the local stack.
#[derive(Debug)]
pub struct Stack {
    /// `AWS_ENDPOINT_URL_SECRETS_MANAGER`: the emulator, which the SDK clients also read.
    pub secrets_manager: String,
    pub pg_host: String,
    /// The PostgreSQL server under test (TLS with the test CA, plaintext accepted too): cluster A
    /// (PostgreSQL 15), or the server `DSR_PG_SERVER` selects. Every PostgreSQL test uses it.
    pub pg_port: u16,
    /// Which server `pg_port` is.
    pub pg_server: PgServer,
    /// PostgreSQL cluster B: PostgreSQL 15, no TLS, whatever `DSR_PG_SERVER` says.
    pub pg_plain_port: u16,
    pub pg_admin_user: String,
    pub pg_admin_password: String,
    /// MariaDB: TLS with the test CA.
    pub mariadb_host: String,
    pub mariadb_port: u16,
    pub mariadb_admin_user: String,
    pub mariadb_admin_password: String,
    /// The CA that signed the servers' certificates.
    pub test_ca: PathBuf,
    /// A CA that signed nothing the servers present.
    pub other_ca: PathBuf,
    /// Redis, which a stack made before it joined lacks (its tests then say so, or fail in CI).
    pub redis: Option<RedisStack>,
}

/// The stack's Redis: one server, TLS on one port and plaintext on another, users from an ACL
/// file.
#[derive(Debug)]
pub struct RedisStack {
    pub host: String,
    /// TLS with the test CA.
    pub port: u16,
    /// Plaintext.
    pub plain_port: u16,
    pub admin_user: String,
    pub admin_password: String,
    /// The ACL file the server loads and `ACL SAVE` writes.
    pub acl_file: PathBuf,
}

/// The stack's PostgreSQL server that the PostgreSQL tests use over TLS, chosen by
/// `DSR_PG_SERVER` (a major version; 15 when unset). 15 is cluster A (`DSR_PG_PORT`), and each
/// newer major has its own server (`DSR_PG16_PORT`, …), which `scripts/stack.sh up` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgServer {
    pub major: u16,
    pub port: u16,
}

impl PgServer {
    /// The major version of cluster A, the default.
    pub const DEFAULT_MAJOR: u16 = 15;

    /// `DSR_PG_SERVER`, read once. A value that is not a major version stops the run in any case:
    /// a typo must not quietly test another server.
    fn selected_major() -> u16 {
        match std::env::var("DSR_PG_SERVER") {
            Err(_) => Self::DEFAULT_MAJOR,
            Ok(value) if value.is_empty() => Self::DEFAULT_MAJOR,
            Ok(value) => match value.parse() {
                Ok(major) if major >= Self::DEFAULT_MAJOR => major,
                _ => panic!(
                    "DSR_PG_SERVER={value:?} is not a PostgreSQL major version of the stack \
                     (15, 16, 17 or 18)"
                ),
            },
        }
    }

    /// The variable holding the port of the server of `major`.
    fn port_variable(major: u16) -> String {
        if major == Self::DEFAULT_MAJOR {
            "DSR_PG_PORT".to_owned()
        } else {
            format!("DSR_PG{major}_PORT")
        }
    }
}

/// The environment variable `name`, or why not.
fn var(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

/// The port in the environment variable `name`, or why not.
fn port(name: &str) -> Result<u16, String> {
    var(name)?
        .parse()
        .map_err(|_| format!("{name} is not a port"))
}

fn read_redis() -> Result<RedisStack, String> {
    Ok(RedisStack {
        host: var("DSR_REDIS_HOST")?,
        port: port("DSR_REDIS_PORT")?,
        plain_port: port("DSR_REDIS_PLAIN_PORT")?,
        admin_user: var("DSR_REDIS_ADMIN_USER")?,
        admin_password: var("DSR_REDIS_ADMIN_PASSWORD")?,
        acl_file: var("DSR_REDIS_ACL_FILE")?.into(),
    })
}

fn read_stack() -> Result<Stack, String> {
    let major = PgServer::selected_major();
    let pg_server = PgServer {
        major,
        port: port(&PgServer::port_variable(major)).map_err(|why| {
            if major == PgServer::DEFAULT_MAJOR {
                why
            } else {
                format!(
                    "{why}: DSR_PG_SERVER={major} selects a PostgreSQL {major} server the stack \
                     does not have (scripts/stack.sh up starts one)"
                )
            }
        })?,
    };
    Ok(Stack {
        secrets_manager: var("AWS_ENDPOINT_URL_SECRETS_MANAGER")?,
        pg_host: var("DSR_PG_HOST")?,
        pg_port: pg_server.port,
        pg_server,
        pg_plain_port: port("DSR_PG_PLAIN_PORT")?,
        pg_admin_user: var("DSR_PG_ADMIN_USER")?,
        pg_admin_password: var("DSR_PG_ADMIN_PASSWORD")?,
        mariadb_host: var("DSR_MARIADB_HOST")?,
        mariadb_port: port("DSR_MARIADB_PORT")?,
        mariadb_admin_user: var("DSR_MARIADB_ADMIN_USER")?,
        mariadb_admin_password: var("DSR_MARIADB_ADMIN_PASSWORD")?,
        test_ca: var("DSR_TEST_CA")?.into(),
        other_ca: var("DSR_OTHER_CA")?.into(),
        redis: read_redis().ok(),
    })
}

/// The stack, or `None` (test skipped) when its environment is incomplete, the PostgreSQL server
/// `DSR_PG_SERVER` selects included. Under `CI=true` a missing stack fails the run: a green CI
/// that ran no database test is worse than a red one.
#[allow(clippy::print_stderr, reason = "a skipped test says why")]
pub fn stack() -> Option<&'static Stack> {
    static STACK: OnceLock<Option<Stack>> = OnceLock::new();
    STACK
        .get_or_init(|| match read_stack() {
            Ok(stack) => Some(stack),
            Err(why) if ci() => {
                panic!("CI=true but the local stack is missing ({why}); run scripts/test.sh")
            }
            Err(why) => {
                eprintln!("skipping integration tests: {why} (eval \"$(scripts/stack.sh env)\")");
                None
            }
        })
        .as_ref()
}

/// Whether this is a CI run (`CI=true`), where a missing stack fails instead of skipping.
pub fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// The stack's Redis, or `None` (test skipped) when the stack has none; under `CI=true` a
/// missing Redis fails the run, as a missing stack does.
#[allow(clippy::print_stderr, reason = "a skipped test says why")]
pub fn redis_stack() -> Option<(&'static Stack, &'static RedisStack)> {
    let stack = stack()?;
    match &stack.redis {
        Some(redis) => Some((stack, redis)),
        None if ci() => panic!(
            "CI=true but the stack has no Redis (DSR_REDIS_* unset); run scripts/stack.sh up"
        ),
        None => {
            eprintln!(
                "skipping a Redis test: the stack has no Redis (scripts/stack.sh up adds it)"
            );
            None
        }
    }
}
