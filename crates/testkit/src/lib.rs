//! The test infrastructure of db-secret-rotator, shared by the integration suite (`tests/it`,
//! which re-exports it from `tests/it/support`) and the bench harness (`bench/harness.rs`):
//!
//! - the local stack (`scripts/stack.sh env`), described once, with one policy for a missing
//!   stack ([`stack()`], [`Stack`]), and where Cargo put the test's files ([`paths`]);
//! - database fixtures: users, secrets, direct logins and admin sessions on PostgreSQL
//!   ([`postgres`]), MariaDB ([`mariadb`]) and Redis ([`redis`]), one face for the SQL servers
//!   ([`server`]);
//! - Secrets Manager ([`secrets`]: the SDK client, secret creation, versions and labels) and RDS
//!   (`rds`: the emulator's, and connections to its endpoints redirected to the stack's servers);
//! - the log capture and leak check ([`logs`]);
//! - the function as Secrets Manager drives it, in process ([`function`]);
//! - the test servers: an HTTP/1.1 skeleton ([`http`]), the fault proxies ([`proxy`]: TCP for
//!   the databases, HTTP for Secrets Manager), a Lambda Runtime API emulator driving the built
//!   binary ([`runtime_api`]), and the fault scenario ([`scenario`]).
//!
//! Fixtures fail the test by panicking. Nothing here is part of the Lambda.

#![allow(clippy::unwrap_used, missing_docs)]

pub mod function;
pub mod http;
pub mod logs;
pub mod mariadb;
pub mod paths;
pub mod postgres;
pub mod proxy;
pub mod rds;
pub mod redis;
pub mod runtime_api;
pub mod scenario;
pub mod secrets;
pub mod server;
pub mod stack;

use std::sync::atomic::{AtomicUsize, Ordering};

pub use function::*;
pub use logs::*;
pub use postgres::{PgUser, pg_admin, pg_client, pg_login, pg_secret};
pub use rds::*;
pub use secrets::*;
pub use server::{Server, TestUser};
pub use stack::{RedisStack, Stack, redis_stack, stack};

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
