//! What an audit found, and how it is shown: the problem codes and repair actions (stable names:
//! scripts and monitoring rely on them), the JSON document, the table, the exit status.
//!
//! Every text here is built from names, labels, versions, dates and the crate's error messages,
//! which carry identifiers and never a secret value.

use std::io::{self, Write};

use serde_json::{Value, json};

use crate::error::Error;
use crate::logging::escaped;

/// A problem's stable code, in the order the report lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    /// `AWSPENDING` is on a version other than `AWSCURRENT`'s: new rotations are refused.
    StuckPending,
    /// Rotation is configured but turned off.
    RotationDisabled,
    /// The next rotation is more than a day late, or the last one is older than the schedule.
    Overdue,
    /// The `AWSCURRENT` value is unusable for its engine (the field is named).
    InvalidSecret,
    /// The `AWSCURRENT` credential does not log in.
    CurrentLoginFailed,
    /// The user cannot change its own password the way the strategy needs.
    CannotChangePassword,
    /// The `masterarn` secret cannot be read, parsed or used.
    MasterUnreadable,
    /// The master lacks a privilege the change needs.
    MasterLacksPrivilege,
    /// The alternate account would be refused by the next rotation's privilege check.
    CloneDrift,
    /// The account uses something its vendor deprecated (MySQL's `mysql_native_password`).
    DeprecatedPlugin,
}

impl Code {
    /// Whether the code is advice that leaves the secret healthy: rotation still works.
    pub fn is_advice(self) -> bool {
        self == Code::DeprecatedPlugin
    }

    /// The code as the report spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::StuckPending => "stuck-pending",
            Code::RotationDisabled => "rotation-disabled",
            Code::Overdue => "overdue",
            Code::InvalidSecret => "invalid-secret",
            Code::CurrentLoginFailed => "current-login-failed",
            Code::CannotChangePassword => "cannot-change-password",
            Code::MasterUnreadable => "master-unreadable",
            Code::MasterLacksPrivilege => "master-lacks-privilege",
            Code::CloneDrift => "clone-drift",
            Code::DeprecatedPlugin => "deprecated-plugin",
        }
    }
}

/// One problem of a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Its code.
    pub code: Code,
    /// What was found and what to do next, in words.
    pub detail: String,
}

impl Problem {
    /// A problem with `code`.
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        Problem {
            code,
            detail: detail.into(),
        }
    }
}

/// A repair of a stuck `AWSPENDING`. None of them touches a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `AWSCURRENT` still logs in: `AWSPENDING` is removed from the stuck version.
    RemovedStalePending,
    /// Only the stuck version logs in: `AWSCURRENT` moves to it, as finishSecret would.
    CompletedRotation,
    /// Neither logs in: nothing is changed.
    None,
}

impl Action {
    /// The action as the report spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::RemovedStalePending => "removed-stale-pending",
            Action::CompletedRotation => "completed-rotation",
            Action::None => "none",
        }
    }
}

/// A repair made, or one that would be made, or one that could not be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// What it is.
    pub action: Action,
    /// Whether it was done.
    pub done: bool,
    /// What it changed, or would change, or why it was not done (the table shows it).
    pub detail: String,
}

/// One audited secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretReport {
    /// Its ARN.
    pub arn: String,
    /// Its name.
    pub name: String,
    /// What remains wrong (after repairs, with `--repair`), in [`Code`] order.
    pub problems: Vec<Problem>,
    /// Repairs made, planned, or refused.
    pub repairs: Vec<Repair>,
}

impl SecretReport {
    /// Healthy: nothing but advice remains (a deprecated plugin).
    pub fn healthy(&self) -> bool {
        self.problems.iter().all(|p| p.code.is_advice())
    }
}

/// A secret that could not be audited (or repaired) because a call failed.
#[derive(Debug)]
pub struct Failure {
    /// The secret as it was named (or its ARN).
    pub secret: String,
    /// Why.
    pub error: Error,
}

/// The outcome of an audit.
#[derive(Debug, Default)]
pub struct Report {
    /// The audited secrets, in the order they were asked for (listed ones by name).
    pub secrets: Vec<SecretReport>,
    /// The secrets whose audit or repair failed.
    pub failures: Vec<Failure>,
}

/// The exit status of `doctor`: every audited secret healthy.
pub const EXIT_HEALTHY: u8 = 0;
/// A problem remains.
pub const EXIT_PROBLEM: u8 = 1;
/// The command line or the configuration is unusable.
pub const EXIT_USAGE: u8 = 2;
/// A Secrets Manager call failed for some secret: the audit is incomplete.
pub const EXIT_INCOMPLETE: u8 = 3;

impl Report {
    /// How many audited secrets are healthy, and how many are not.
    pub fn counts(&self) -> (usize, usize) {
        let healthy = self.secrets.iter().filter(|s| s.healthy()).count();
        (healthy, self.secrets.len() - healthy)
    }

    /// [`EXIT_INCOMPLETE`] when anything failed, else [`EXIT_PROBLEM`] when a problem remains,
    /// else [`EXIT_HEALTHY`].
    pub fn exit_status(&self) -> u8 {
        if !self.failures.is_empty() {
            EXIT_INCOMPLETE
        } else if self.secrets.iter().any(|s| !s.healthy()) {
            EXIT_PROBLEM
        } else {
            EXIT_HEALTHY
        }
    }

    /// The JSON document of `--json` (failures are on stderr, not in it).
    pub fn to_json(&self) -> Value {
        let (healthy, unhealthy) = self.counts();
        let secrets: Vec<Value> = self
            .secrets
            .iter()
            .map(|s| {
                json!({
                    "secret": s.arn,
                    "name": s.name,
                    "healthy": s.healthy(),
                    "problems": s.problems.iter()
                        .map(|p| json!({"code": p.code.as_str(), "detail": p.detail}))
                        .collect::<Vec<_>>(),
                    "repairs": s.repairs.iter()
                        .map(|r| json!({"action": r.action.as_str(), "done": r.done}))
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({"secrets": secrets, "healthy": healthy, "unhealthy": unhealthy})
    }

    /// The readable table: one line per secret with its problem codes, then, under an
    /// unhealthy one, a line per problem and per repair; the secrets that could not be audited;
    /// a summary.
    pub fn write_table(&self, out: &mut dyn Write) -> io::Result<()> {
        let width = self
            .secrets
            .iter()
            .map(|s| escaped(&s.name).chars().count())
            .chain([6])
            .max()
            .unwrap_or(6);
        writeln!(out, "{:width$}  {:9}  PROBLEMS", "SECRET", "STATUS")?;
        for secret in &self.secrets {
            let codes: Vec<&str> = secret.problems.iter().map(|p| p.code.as_str()).collect();
            let (status, codes) = if secret.problems.is_empty() {
                ("healthy", "-".to_owned())
            } else if secret.healthy() {
                ("healthy", codes.join(", "))
            } else {
                ("UNHEALTHY", codes.join(", "))
            };
            writeln!(out, "{:width$}  {status:9}  {codes}", escaped(&secret.name))?;
            for problem in &secret.problems {
                writeln!(
                    out,
                    "    {}: {}",
                    problem.code.as_str(),
                    escaped(&problem.detail)
                )?;
            }
            for repair in &secret.repairs {
                let verb = match (repair.done, repair.action) {
                    (true, _) => "repaired",
                    (false, Action::None) => "no repair",
                    (false, _) => "repair not done",
                };
                writeln!(
                    out,
                    "    {verb}: {}: {}",
                    repair.action.as_str(),
                    escaped(&repair.detail)
                )?;
            }
        }
        for failure in &self.failures {
            writeln!(
                out,
                "NOT AUDITED {}: {}",
                escaped(&failure.secret),
                escaped(&failure.error.to_string())
            )?;
        }
        let (healthy, unhealthy) = self.counts();
        write!(out, "\n{healthy} healthy, {unhealthy} unhealthy")?;
        if !self.failures.is_empty() {
            write!(out, ", {} not audited", self.failures.len())?;
        }
        writeln!(out)
    }
}
