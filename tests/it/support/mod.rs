//! The integration tests' one support home: the stack, described once ([`Stack`], with one
//! policy for a missing stack), the log capture and leak check, the emulator, the function and the
//! rotators as tests drive them, RDS (`rds`: the emulator's, and connections to its endpoints
//! redirected to the stack's servers), the database servers, the test servers (fault proxies, the Lambda
//! Runtime API emulator) and the fault scenario. Test modules take what they need from here with
//! `use crate::support::*`, and export nothing to each other.

mod function;
mod http;
mod logs;
pub mod mariadb;
pub mod postgres;
pub mod proxy;
mod rds;
pub mod redis;
pub mod runtime_api;
pub mod scenario;
mod secrets;
pub mod server;
mod stack;

use std::sync::atomic::{AtomicUsize, Ordering};

pub use function::*;
pub use logs::*;
pub use postgres::{PgUser, pg_admin, pg_client, pg_login, pg_secret};
pub use rds::*;
pub use secrets::*;
pub(crate) use server::on_every_server;
pub use server::{Server, TestUser};
pub use stack::{RedisStack, Stack, redis_stack, stack};
pub(crate) use stack::{require_redis, require_stack};

/// How long a fixture (an admin session, a direct login that checks a credential) waits for a
/// server: a guard against a hang, never a judgment of the function, so far beyond what a
/// loaded machine needs.
pub const FIXTURE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A name no other test (or earlier run) uses: prefix, process id and a counter.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh version token (the service sends a UUID).
pub fn token() -> String {
    let n: u128 = rand::random();
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

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
