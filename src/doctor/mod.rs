//! The operator's tool: `db-secret-rotator doctor` audits the rotation of secrets and repairs a
//! stuck `AWSPENDING`, from the command line or on a schedule inside the function
//! (docs/protocol.md 8; docs/deployment.md, "Auditing rotations").
//!
//! For each secret it reports, by stable code: a stuck `AWSPENDING` (`stuck-pending`), rotation
//! turned off (`rotation-disabled`) or late (`overdue`), an unusable `AWSCURRENT`
//! (`invalid-secret`) and, with `--login`, a current credential that does not log in
//! (`current-login-failed`); for alternating users, a master secret that cannot be used
//! (`master-unreadable`) and an alternate account the next rotation's privilege check would
//! refuse (`clone-drift`). It reads what the function reads and parses it the same way, with the
//! same TLS roots and timeouts, so what it finds is what the next rotation would meet.
//!
//! It changes nothing but staging labels, and only with `--repair` (the `repair` module says
//! which label moves when, and when that is safe). It never logs, prints or returns a secret
//! value: its texts are built from names, versions, dates and the crate's errors, which carry
//! identifiers only.
//!
//! # Layout
//!
//! - `args`: the command line (split by lexopt), its one table of options, the usage text and
//!   the shells' completion scripts;
//! - `report`: problem codes, repair actions, the report as JSON or a table, the exit status;
//! - `when`: dates and ages in words;
//! - `rotation`: rotation turned off, rotation overdue (from `DescribeSecret` alone);
//! - `examine`: one secret's value, plan, stuck version and master, and with `--login` the
//!   rotation's own preflight, all by the rotation's domain ([`crate::rotation`]);
//! - `repair`: what fixes a stuck `AWSPENDING`, and when it is safe;
//! - `audit`: [`Doctor`], which selects the secrets and runs the rest for each;
//! - `cli` and `schedule`: the command line's output and exit status; the scheduled audit's
//!   event and metrics.

mod args;
mod audit;
pub mod cli;
mod examine;
mod repair;
mod report;
mod rotation;
pub mod schedule;
mod when;

pub use args::{Command, HELP, Options, UsageError, parse};
pub use audit::{Doctor, PER_SECRET};
pub use report::{
    Action, Code, EXIT_HEALTHY, EXIT_INCOMPLETE, EXIT_PROBLEM, EXIT_USAGE, Failure, Problem,
    Repair, Report, SecretReport,
};

#[cfg(test)]
mod tests;
