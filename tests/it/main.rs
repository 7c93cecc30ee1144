//! Integration tests against the local stack: the moto Secrets Manager emulator and real database
//! servers started by `scripts/stack.sh`. One binary, a module per area; every test creates its own
//! uniquely named users and secrets, so tests run in parallel.

// Fixtures fail the test by panicking, helpers included.
#![allow(clippy::unwrap_used, missing_docs)]

mod alternating;
mod guard;
mod mariadb;
mod mysql_support;
mod server;
mod single_user;
mod support;
mod tls;
