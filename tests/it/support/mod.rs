//! The integration tests' one support home. The infrastructure lives in the `testkit` crate
//! (`crates/testkit`: the stack, the database fixtures, the log capture and leak check, the
//! function and the rotators as tests drive them, RDS, the fault proxies, the Lambda Runtime API
//! emulator and the fault scenario); this module re-exports it, so that test modules take what
//! they need from here with `use crate::support::*` (or `crate::support::proxy::…`), and adds
//! what only a test binary can know: where Cargo put its files and the function's binary, the
//! macros that skip a test without a stack, and the figures' reports. Beside the kit, four
//! modules only this binary's tests use: the ElastiCache and MemoryDB API emulator (`cache_api`),
//! masters shaped like RDS's (`masters`), set-ups on every engine and strategy (`setups`) and the
//! configuration test with snapshots of what the databases hold (`preflight`). Test modules
//! export nothing to each other.

pub mod cache_api;
pub mod masters;
pub mod preflight;
pub mod setups;

// The surface test modules have always had here: whatever this binary's tests use today or not.
pub use testkit::function::*;
pub use testkit::logs::*;
pub use testkit::postgres::{PgUser, pg_admin, pg_client, pg_login, pg_secret};
pub use testkit::rds::*;
pub use testkit::secrets::*;
pub use testkit::server::{Server, TestUser};
pub use testkit::stack::{RedisStack, Stack};
#[allow(unused_imports, reason = "the support surface, whichever test uses it")]
pub use testkit::{
    FIXTURE_TIMEOUT, mariadb, postgres, proxy, redis, runtime_api, scenario, server, token, unique,
};

/// Tells the kit where Cargo put this binary's files and the function: known here, at compile
/// time, and nowhere else.
fn register_paths() {
    testkit::paths::register(
        env!("CARGO_TARGET_TMPDIR"),
        env!("CARGO_BIN_EXE_db-secret-rotator"),
    );
}

/// The stack, or `None` (test skipped) when its environment is incomplete; under `CI=true` a
/// missing stack fails the run ([`testkit::stack()`]).
pub fn stack() -> Option<&'static Stack> {
    register_paths();
    testkit::stack()
}

/// The stack's Redis, or `None` (test skipped) when the stack has none; under `CI=true` a
/// missing Redis fails the run ([`testkit::redis_stack()`]).
pub fn redis_stack() -> Option<(&'static Stack, &'static RedisStack)> {
    register_paths();
    testkit::redis_stack()
}

/// The stack and its Redis, or returns from the test when either is missing (outside CI).
macro_rules! require_redis {
    () => {
        match $crate::support::redis_stack() {
            Some(found) => found,
            None => return,
        }
    };
}
pub(crate) use require_redis;

/// The stack, or returns from the test when it is missing (outside CI).
macro_rules! require_stack {
    () => {
        match $crate::support::stack() {
            Some(stack) => stack,
            None => return,
        }
    };
}
pub(crate) use require_stack;

/// Runs a test body `async fn name(server: Server)` once per server, as `name::postgres` and
/// `name::mariadb`. Attributes before a name apply to both tests (`#[ignore = "…"]`).
macro_rules! on_every_server {
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                $(#[$attr])*
                async fn postgres() {
                    super::$name($crate::support::Server::Postgres).await
                }
                #[tokio::test]
                $(#[$attr])*
                async fn mariadb() {
                    super::$name($crate::support::Server::Mariadb).await
                }
            }
        )*
    };
}
pub(crate) use on_every_server;

/// Writes `text` to `target/tmp/<name>` and to the process's stderr. The write goes to the file
/// descriptor, not through `eprintln!`, which the test harness captures: the figures appear in
/// every test run's output, `--nocapture` or not.
pub fn report(name: &str, text: &str) {
    use std::io::Write;
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, text).unwrap();
    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "\n{text}(written to {})\n", path.display());
}
