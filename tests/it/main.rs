//! Integration tests against the local stack: the moto Secrets Manager emulator and real database
//! servers started by `scripts/stack.sh`. One binary, a module per area; every test creates its own
//! uniquely named users and secrets, so tests run in parallel.
//!
//! # Leak check
//!
//! Every password a test creates or reads is registered (`support::register_password`):
//! fixtures, the function's generated passwords, every `password` of a secret the tests create
//! or read from the emulator, and the stack's admin passwords. After every `Function::invoke`,
//! the log lines captured since the last scan (all tests', at every level, as JSON) and the
//! returned error are scanned for every registered password, raw and JSON-escaped; a hit fails
//! the test that made the call. Tests that run the binary scan its log stream the same way.
//!
//! # Robustness suites
//!
//! Tests that exist to put load on the function are marked `#[ignore = "load profile: …"]`: the
//! full fault matrices, the storm, the soak and 50 secrets at once. `scripts/test.sh --load` (CI)
//! runs them, and `cargo test --test it -- --ignored` alone (docs/testing.md).
//!
//! - `support::proxy`: the fault proxies (TCP for the databases, HTTP for Secrets Manager); "server
//!   down" is the proxy refusing, since the stack's servers are shared by parallel tests.
//! - `faults`: the fault matrix, printed and written to `target/tmp/fault-matrix-*.txt`; by default
//!   a sample of it (`fault-sample-*.txt`), every point in the load profile.
//!   `DSR_FULL_MATRIX=1` adds the retried fault kinds (HTTP 500, cut, throttling) to every
//!   Secrets Manager call, not only the writing ones.
//! - `retries`, `concurrency`, `hostile`: retries and deadlines, duplicate delivery and 50 secrets
//!   at once, malformed input and injection; figures in `target/tmp/*.txt`.
//! - `storm`: many secrets rotated at once, each through its own function process, against a
//!   write quota enforced by the Secrets Manager proxy (`DSR_STORM_SECRETS`, `DSR_STORM_TPS`, …;
//!   `scripts/bench.sh storm` runs it larger); figures in `target/tmp/storm.txt`.
//! - `not_found`: "not found" from Secrets Manager where the protocol does not expect absence.
//! - `soak` (with `support::runtime_api`, a Lambda Runtime API emulator driving the built binary):
//!   `DSR_SOAK_ROTATIONS` rotations in one warm process (default 200), its Secrets Manager writes
//!   throttled by the proxy so that the retry path runs throughout.
//!
//! # Trust
//!
//! - `attacks`: the attacks of docs/protocol.md 5.12 and 5.14 performed end to end: planted
//!   functions in the master's session, another port on the same host, clones others control, a
//!   listener asking for the password in cleartext, a foreign `masterarn`, MariaDB's general log.
//! - `invariant`: alternating users never hand over an account that can do more than the current
//!   one (docs/protocol.md 5.12).
//! - `logging`: the built binary's log stream under every directive that could print the raw
//!   event, and a rotation at TRACE, searched for sentinels (5.10).
//! - `rds`: alternating users whose master is RDS-managed or on another host than the rotated
//!   secret's; only the RDS API may prove such a host serves the master's database.
//!
//! - `rds_masters`: alternating users and dual passwords under masters shaped like RDS's
//!   (`support::masters`): PostgreSQL's `CREATEROLE` member of an `rds_superuser`-like group and
//!   its `ADMIN OPTION` from 16, MariaDB's global privileges without `SUPER` or `FILE`.
//!
//! # The preflight
//!
//! - `preflight`: the configuration test (`testSecret` on a copy of the current value) on every
//!   engine and strategy: healthy set-ups pass, each missing privilege is named with its grant,
//!   nothing is written (the accounts compared, Secrets Manager's writes counted at the proxy),
//!   and a rotation follows; `preflight::agreement`, the doctor's `--login` audit, the
//!   configuration test and a real rotation reach the same verdict.
//!
//! # ElastiCache and MemoryDB users
//!
//! - `cache_users`: engines `elasticache` and `memorydb`, the function's SDK clients against the
//!   user API emulator (`support::cache_api`), whose password changes reach the stack's Redis:
//!   rotations, waits past the deadline, throttling, refusals, faults at every step re-driven,
//!   the configuration test and the doctor; and the same clients against moto's own MemoryDB.
//!
//! # Release packages
//!
//! - `release`: the zips of `scripts/release.sh` (`DSR_RELEASE_DIR`), their checksums and
//!   manifest, and each `bootstrap` rotating a secret under the Runtime API emulator.
//!
//! # The doctor
//!
//! - `doctor`: each state a rotation can leave a secret in, the audit's answer, each repair and
//!   a full rotation after it; `doctor::cli`, the binary as the operator and the scheduled audit
//!   run it.

// Fixtures fail the test by panicking, helpers included.
#![allow(clippy::unwrap_used, missing_docs)]

mod alternating;
mod attacks;
mod cache_users;
mod concurrency;
mod doctor;
mod dual;
mod faults;
mod guard;
mod hostile;
mod invariant;
mod logging;
mod mariadb;
mod not_found;
mod preflight;
mod rds;
mod rds_masters;
mod redis;
mod release;
mod retries;
mod single_user;
mod soak;
mod storm;
mod support;
mod tls;
