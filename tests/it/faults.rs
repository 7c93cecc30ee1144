//! The fault matrix: for each engine and strategy, a fault at every point of a rotation (before
//! and after each Secrets Manager call, counted through the [`SmProxy`]; before and after the
//! password statement and the test query, and the database down or silent for a whole step,
//! through the [`TcpProxy`]; and between steps), then the whole rotation re-driven with the same
//! token, as the service does.
//!
//! After the fault: single user, the `AWSCURRENT` or the `AWSPENDING` credential logs in;
//! alternating users and dual passwords, `AWSCURRENT` logs in. After the retry: the rotation
//! completed, exactly one new version exists, the new credential logs in, and the old one is
//! rejected (single user) or still logs in as `AWSPREVIOUS` (alternating users, whose new
//! credential must also still read the original user's table; dual passwords, for the same user,
//! and on Redis saved in the ACL file). Dual passwords run on MariaDB and on Redis, whose
//! transaction (`MULTI`, `ACL SETUSER`, `ACL SAVE`, `EXEC`) is cut at each command.
//!
//! The databases are reached in plaintext (`"ssl": false`) so that the proxy can recognise the
//! statements it cuts around; TLS through the proxy is covered in `retries.rs`. The matrix is
//! printed to stderr and written to `target/tmp/fault-matrix-<engine>-<strategy>.txt`. By default
//! Secrets Manager faults are the non-retryable kind plus a few retried kinds (HTTP 500, cut,
//! throttling) on the writing calls; `DSR_FULL_MATRIX=1` adds the retried kinds on every call. A
//! retried kind at every attempt of a call is retried until the invocation's deadline
//! ([`RETRIED_FAULT_DEADLINE`]), where the step stops with `DeadlineExceeded`.
//!
//! Every timing a row depends on comes from the scenario: healthy steps run without an invocation
//! deadline and with a patient connect timeout ([`scenario::PATIENT`]); a silenced server meets
//! the short one the row sets ([`scenario::SILENCE`]); a retried Secrets Manager fault meets the
//! deadline the row sets. A loaded machine makes a matrix slower, never a row red.
//!
//! The full matrices (`matrix_*`, some 270 rotations) belong to the load profile
//! (`scripts/test.sh --load`); by default the `sample_*` tests run [`SAMPLE`], the same kinds of
//! fault at the same kinds of point, on every engine and strategy.

use std::time::{Duration, Instant};

use db_secret_rotator::protocol::Strategy;
use futures_util::StreamExt;

use crate::support::proxy::{Answer, Fault, Rule, Trigger, TriggerAction, When};
use crate::support::scenario::{self, STEPS, Scenario, Target};
use crate::support::*;

/// A database fault.
#[derive(Debug, Clone, Copy)]
pub enum DbFault {
    /// Connections refused (reset) for the whole step: the server is down.
    Down,
    /// Connections accepted and never answered for the whole step.
    Silent,
    /// The connection dies just before the statement containing the pattern reaches the server.
    CutBefore(&'static str, &'static str),
    /// The statement containing the pattern runs; its reply is lost and the connection dies.
    ReplyLost(&'static str, &'static str),
}

/// Where the fault strikes.
#[derive(Debug, Clone)]
pub enum Point {
    /// Every attempt of the `op`th Secrets Manager operation of the rotation.
    Sm {
        op: usize,
        name: String,
        step: &'static str,
        when: When,
        answer: Answer,
    },
    /// A database fault during `step`.
    Db { step: &'static str, fault: DbFault },
    /// The rotation stops after `after` succeeded (the next invocation is lost).
    Between { after: &'static str },
}

impl Point {
    fn label(&self) -> String {
        match self {
            Point::Sm {
                op,
                name,
                step,
                when,
                answer,
            } => format!(
                "SM #{op:02} {step} {name}: {} ({})",
                match when {
                    When::Before => "before",
                    When::After => "after",
                },
                answer.name()
            ),
            Point::Db { step, fault } => match fault {
                DbFault::Down => format!("DB {step}: server down"),
                DbFault::Silent => format!("DB {step}: server silent"),
                DbFault::CutBefore(label, _) => format!("DB {step}: cut before {label}"),
                DbFault::ReplyLost(label, _) => format!("DB {step}: {label} ran, reply lost"),
            },
            Point::Between { after } => format!("between steps: after {after}"),
        }
    }
}

/// One row of the matrix.
pub struct Row {
    pub point: String,
    pub failed: String,
    pub after_fault: String,
    pub after_retry: String,
    pub ok: bool,
}

/// The statements a fault can be aimed at, per engine and strategy: (label, pattern).
fn statements(target: Target, strategy: Strategy) -> Vec<(&'static str, &'static str)> {
    let Target::Sql(server) = target else {
        return match strategy {
            // MULTI, the queued commands and EXEC each travel alone.
            Strategy::DualPassword => vec![
                ("ACL GETUSER", "GETUSER"),
                ("CONFIG GET aclfile", "aclfile"),
                ("MULTI", "MULTI"),
                ("ACL SETUSER (queued)", "SETUSER"),
                ("ACL SAVE (queued)", "SAVE"),
                ("EXEC", "EXEC"),
            ],
            _ => unreachable!("Redis matrices rotate with dual passwords"),
        };
    };
    match (server, strategy) {
        (Server::Postgres, Strategy::SingleUser) => vec![("ALTER ROLE", "ALTER ROLE")],
        (Server::Mariadb, Strategy::SingleUser) => vec![
            ("SHOW CREATE USER", "SHOW CREATE USER"),
            ("SET PASSWORD", "SET PASSWORD"),
        ],
        (Server::Postgres, Strategy::AlternatingUsers) => vec![
            ("CREATE ROLE … PASSWORD", "WITH LOGIN PASSWORD"),
            ("GRANT (repair)", "GRANT "),
            ("COMMIT", "COMMIT"),
        ],
        (Server::Mariadb, Strategy::AlternatingUsers) => vec![
            ("CREATE USER … ACCOUNT LOCK", "ACCOUNT LOCK"),
            ("SHOW GRANTS", "SHOW GRANTS"),
            ("GRANT (replay)", "GRANT SELECT"),
            ("ALTER USER … REQUIRE", "REQUIRE"),
            ("ALTER USER … ACCOUNT UNLOCK", "ACCOUNT UNLOCK"),
        ],
        (Server::Mariadb, Strategy::DualPassword) => vec![
            ("SELECT … global_priv", "global_priv"),
            ("ALTER USER … VIA … OR", "IDENTIFIED VIA"),
        ],
        (Server::Postgres, Strategy::DualPassword) => unreachable!("refused before any work"),
    }
}

fn full_matrix() -> bool {
    std::env::var("DSR_FULL_MATRIX").is_ok_and(|v| v == "1")
}

/// Every fault point of a rotation, from a clean calibration run's Secrets Manager operations.
fn points(target: Target, strategy: Strategy, ops: &[(usize, String, &'static str)]) -> Vec<Point> {
    let mut points = Vec::new();
    for (op, name, step) in ops {
        let writes =
            name.starts_with("PutSecretValue") || name.starts_with("UpdateSecretVersionStage");
        let mut kinds = vec![
            (When::Before, Answer::Invalid),
            (When::After, Answer::Invalid),
        ];
        if writes || full_matrix() {
            kinds.extend([
                (When::After, Answer::ServerError),
                (When::After, Answer::Cut),
                (When::Before, Answer::Throttle),
            ]);
        }
        for (when, answer) in kinds {
            points.push(Point::Sm {
                op: *op,
                name: name.clone(),
                step,
                when,
                answer,
            });
        }
    }
    let mut set = vec![DbFault::Down, DbFault::Silent];
    for (label, pattern) in statements(target, strategy) {
        set.push(DbFault::CutBefore(label, pattern));
        set.push(DbFault::ReplyLost(label, pattern));
    }
    for fault in set {
        points.push(Point::Db {
            step: "setSecret",
            fault,
        });
    }
    let test = match target {
        Target::Sql(Server::Postgres) => "SELECT pg_catalog.now()",
        Target::Sql(Server::Mariadb) => "SELECT NOW()",
        Target::Redis => "PING",
    };
    for fault in [
        DbFault::Down,
        DbFault::Silent,
        DbFault::CutBefore(test, test),
        DbFault::ReplyLost(test, test),
    ] {
        points.push(Point::Db {
            step: "testSecret",
            fault,
        });
    }
    for after in ["createSecret", "setSecret", "testSecret"] {
        points.push(Point::Between { after });
    }
    points
}

/// A clean rotation through the proxies: the Secrets Manager operations and their steps.
async fn calibrate(
    stack: &Stack,
    target: Target,
    strategy: Strategy,
) -> Vec<(usize, String, &'static str)> {
    let scenario = Scenario::new(stack, target, strategy, "fmcal").await;
    let mut ops = Vec::new();
    for step in STEPS {
        let before = scenario.sm.operations();
        scenario
            .function
            .invoke(step, &scenario.arn, &scenario.token)
            .await
            .unwrap_or_else(|e| panic!("calibration {step}: {e}"));
        let log = scenario.sm.log();
        for op in before + 1..=scenario.sm.operations() {
            let record = log.iter().find(|r| r.op == op).unwrap();
            let name = match &record.stage {
                Some(stage) if record.secret_id != scenario.arn => {
                    format!("{} {stage} of the master", record.name)
                }
                Some(stage) => format!("{} {stage}", record.name),
                None => record.name.clone(),
            };
            ops.push((op, name, step));
        }
    }
    scenario
        .check_rotated(stack)
        .await
        .unwrap_or_else(|e| panic!("calibration: {e}"));
    scenario.cleanup(stack).await;
    ops
}

/// Runs the rotation with the fault at `point`, checks the state, re-drives it, checks again.
async fn run_point(stack: &Stack, target: Target, strategy: Strategy, point: Point) -> Row {
    let mut scenario = Scenario::new(stack, target, strategy, "fm").await;
    if let Point::Sm {
        op, when, answer, ..
    } = &point
    {
        scenario.sm.add(Rule::Operation {
            n: *op,
            when: *when,
            answer: *answer,
        });
        // A retried kind at every attempt is retried until the deadline: keep it short.
        if *answer != Answer::Invalid {
            scenario.function.deadline = Some(RETRIED_FAULT_DEADLINE);
        }
    }
    let mut failed = "no step failed".to_owned();
    let mut reached = matches!(point, Point::Between { .. });
    for step in STEPS {
        if let Point::Db { step: at, fault } = &point {
            if *at == step {
                match fault {
                    DbFault::Down => scenario.db.set(Fault::Refuse),
                    DbFault::Silent => {
                        scenario.db.set(Fault::Blackhole);
                        scenario.set_connect_timeout(scenario::SILENCE);
                    }
                    DbFault::CutBefore(_, pattern) => scenario.db.arm(Trigger {
                        pattern: pattern.as_bytes().to_vec(),
                        action: TriggerAction::DropBefore,
                    }),
                    DbFault::ReplyLost(_, pattern) => scenario.db.arm(Trigger {
                        pattern: pattern.as_bytes().to_vec(),
                        action: TriggerAction::LoseReply,
                    }),
                }
            }
        }
        let result = scenario
            .function
            .invoke(step, &scenario.arn, &scenario.token)
            .await;
        if let Point::Db { step: at, fault } = &point {
            if *at == step {
                scenario.db.set(Fault::Pass);
                scenario.heal();
                let fired = scenario.db.disarm();
                reached = match fault {
                    DbFault::Down | DbFault::Silent => true,
                    _ => fired,
                };
            }
        }
        if let Err(e) = &result {
            failed = format!("{step}: {}", e.error_type());
            break;
        }
        if matches!(&point, Point::Between { after } if *after == step) {
            failed = format!("stopped after {step}");
            break;
        }
    }
    scenario.sm.clear();
    if let Point::Sm { op, .. } = &point {
        reached = scenario
            .sm
            .log()
            .iter()
            .any(|r| r.op == *op && r.fault.is_some());
    }

    let current = scenario.logs_in(stack, "AWSCURRENT").await;
    let pending = scenario.logs_in(stack, "AWSPENDING").await;
    let after_fault = match (current, pending) {
        (true, true) => "AWSCURRENT, AWSPENDING",
        (true, false) => "AWSCURRENT",
        (false, true) => "AWSPENDING",
        (false, false) => "NOTHING",
    };
    let fault_ok = match strategy {
        Strategy::SingleUser => current || pending,
        Strategy::AlternatingUsers | Strategy::DualPassword => current,
    };
    scenario.heal();
    let retry = scenario
        .function
        .rotate(&scenario.arn, &scenario.token)
        .await;
    let after_retry = match retry {
        Ok(()) => scenario.check_rotated(stack).await,
        Err(e) => Err(format!("retry failed: {} ({e})", e.error_type())),
    };
    let ok = reached && fault_ok && after_retry.is_ok();
    let row = Row {
        point: point.label(),
        failed: if reached {
            failed
        } else {
            format!("NOT REACHED ({failed})")
        },
        after_fault: after_fault.to_owned(),
        after_retry: match after_retry {
            Ok(text) => text,
            Err(text) => format!("FAILED: {text}"),
        },
        ok,
    };
    scenario.cleanup(stack).await;
    row
}

/// Formats the matrix as an aligned table.
pub fn format_matrix(title: &str, rows: &[Row], elapsed: Duration) -> String {
    let header = (
        "fault point",
        "step failed (errorType)",
        "logs in after the fault",
        "after the same-token retry",
    );
    let w0 = rows
        .iter()
        .map(|r| r.point.chars().count())
        .max()
        .unwrap_or(0)
        .max(header.0.len());
    let w1 = rows
        .iter()
        .map(|r| r.failed.chars().count())
        .max()
        .unwrap_or(0)
        .max(header.1.len());
    let w2 = rows
        .iter()
        .map(|r| r.after_fault.chars().count())
        .max()
        .unwrap_or(0)
        .max(header.2.len());
    let pad = |s: &str, w: usize| format!("{s}{}", " ".repeat(w.saturating_sub(s.chars().count())));
    let mut out = format!(
        "== fault matrix: {title} ({} points, {} ok, {:.1} s) ==\n",
        rows.len(),
        rows.iter().filter(|r| r.ok).count(),
        elapsed.as_secs_f64()
    );
    out.push_str(&format!(
        "   {} | {} | {} | {}\n",
        pad(header.0, w0),
        pad(header.1, w1),
        pad(header.2, w2),
        header.3
    ));
    for row in rows {
        out.push_str(&format!(
            "{} {} | {} | {} | {}\n",
            if row.ok { "ok" } else { "!!" },
            pad(&row.point, w0),
            pad(&row.failed, w1),
            pad(&row.after_fault, w2),
            row.after_retry
        ));
    }
    out
}

/// How many fault points run at once.
const PARALLEL: usize = 6;

/// The invocation deadline when every attempt of a Secrets Manager call gets a retried fault
/// (throttling, HTTP 500, a cut connection): the step retries until it, then stops. The calls
/// before the faulted one are healthy and take milliseconds; 9 s (the deadline less the margin)
/// leaves them room on any machine, so that the row never ends before its fault is reached.
const RETRIED_FAULT_DEADLINE: Duration = Duration::from_secs(10);

/// How much of the matrix a test runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coverage {
    /// Every point.
    Full,
    /// The points whose labels contain one of [`SAMPLE`].
    Sample,
}

/// The default run's points, on every engine and strategy: a write whose answer is lost after
/// the service acted, a write refused by throttling until the deadline, the server silent, then
/// down, a statement that ran and whose reply was lost (the last one of setSecret: the change
/// itself), and an invocation lost between steps.
const SAMPLE: &[&str] = &[
    "PutSecretValue: after (non-retryable 400)",
    "UpdateSecretVersionStage AWSCURRENT: before (throttled)",
    "DB setSecret: server silent",
    "DB testSecret: server down",
    "ran, reply lost",
    "between steps: after setSecret",
];

/// The points of `coverage`: for [`Coverage::Sample`], those matching [`SAMPLE`], of the
/// statements only the last one of setSecret.
fn covered(points: Vec<Point>, coverage: Coverage) -> Vec<Point> {
    if coverage == Coverage::Full {
        return points;
    }
    let last_statement = points
        .iter()
        .rev()
        .find(|p| {
            matches!(
                p,
                Point::Db {
                    step: "setSecret",
                    fault: DbFault::ReplyLost(..)
                }
            )
        })
        .map(Point::label);
    points
        .into_iter()
        .filter(|p| {
            let label = p.label();
            if label.ends_with("ran, reply lost") {
                return Some(&label) == last_statement.as_ref();
            }
            SAMPLE.iter().any(|s| label.contains(s))
        })
        .collect()
}

async fn matrix(target: Target, strategy: Strategy, coverage: Coverage) {
    let stack = require_stack!();
    if target == Target::Redis && redis_stack().is_none() {
        return;
    }
    let started = Instant::now();
    let ops = calibrate(stack, target, strategy).await;
    let points = covered(points(target, strategy, &ops), coverage);
    assert!(!points.is_empty(), "no fault point covered");
    let stacks_ref = stack;
    let mut rows: Vec<(usize, Row)> = futures_util::stream::iter(points.into_iter().enumerate())
        .map(|(i, point)| async move { (i, run_point(stacks_ref, target, strategy, point).await) })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    rows.sort_by_key(|(i, _)| *i);
    let rows: Vec<Row> = rows.into_iter().map(|(_, row)| row).collect();
    let title = format!("{} {}", target.name(), strategy.as_str());
    let (title, file) = match coverage {
        Coverage::Full => (
            title.clone(),
            format!("fault-matrix-{}.txt", title.replace(' ', "-")),
        ),
        Coverage::Sample => (
            format!("{title} (sample)"),
            format!("fault-sample-{}.txt", title.replace(' ', "-")),
        ),
    };
    let text = format_matrix(&title, &rows, started.elapsed());
    report(&file, &text);
    let failures = rows.iter().filter(|r| !r.ok).count();
    assert_eq!(failures, 0, "{failures} fault points failed:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_postgres_single_user() {
    matrix(
        Server::Postgres.into(),
        Strategy::SingleUser,
        Coverage::Sample,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_mariadb_single_user() {
    matrix(
        Server::Mariadb.into(),
        Strategy::SingleUser,
        Coverage::Sample,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_postgres_alternating_users() {
    matrix(
        Server::Postgres.into(),
        Strategy::AlternatingUsers,
        Coverage::Sample,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_mariadb_alternating_users() {
    matrix(
        Server::Mariadb.into(),
        Strategy::AlternatingUsers,
        Coverage::Sample,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_mariadb_dual_password() {
    matrix(
        Server::Mariadb.into(),
        Strategy::DualPassword,
        Coverage::Sample,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_redis_dual_password() {
    matrix(Target::Redis, Strategy::DualPassword, Coverage::Sample).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load profile: scripts/test.sh --load"]
async fn matrix_postgres_single_user() {
    matrix(
        Server::Postgres.into(),
        Strategy::SingleUser,
        Coverage::Full,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load profile: scripts/test.sh --load"]
async fn matrix_mariadb_single_user() {
    matrix(Server::Mariadb.into(), Strategy::SingleUser, Coverage::Full).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load profile: scripts/test.sh --load"]
async fn matrix_postgres_alternating_users() {
    matrix(
        Server::Postgres.into(),
        Strategy::AlternatingUsers,
        Coverage::Full,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load profile: scripts/test.sh --load"]
async fn matrix_mariadb_alternating_users() {
    matrix(
        Server::Mariadb.into(),
        Strategy::AlternatingUsers,
        Coverage::Full,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load profile: scripts/test.sh --load"]
async fn matrix_mariadb_dual_password() {
    matrix(
        Server::Mariadb.into(),
        Strategy::DualPassword,
        Coverage::Full,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load profile: scripts/test.sh --load"]
async fn matrix_redis_dual_password() {
    matrix(Target::Redis, Strategy::DualPassword, Coverage::Full).await;
}
