//! The fault matrix: for each engine and strategy, a fault at every point of a rotation (before
//! and after each Secrets Manager call, counted through the [`SmProxy`]; before and after the
//! password statement and the test query, and the database down or silent for a whole step,
//! through the [`TcpProxy`]; and between steps), then the whole rotation re-driven with the same
//! token, as the service does.
//!
//! After the fault: single user, the `AWSCURRENT` or the `AWSPENDING` credential logs in;
//! alternating users, `AWSCURRENT` logs in. After the retry: the rotation completed, exactly one
//! new version exists, the new credential logs in, and the old one is rejected (single user) or
//! still logs in as `AWSPREVIOUS` (alternating users, whose new credential must also still read
//! the original user's table).
//!
//! The databases are reached in plaintext (`"ssl": false`) so that the proxy can recognise the
//! statements it cuts around; TLS through the proxy is covered in `retries.rs`. The matrix is
//! printed to stderr and written to `target/tmp/fault-matrix-<engine>-<strategy>.txt`. By default
//! Secrets Manager faults are the non-retryable kind plus a few retried kinds (HTTP 500, cut,
//! throttling) on the writing calls; `DSR_FULL_MATRIX=1` adds the retried kinds on every call.

use std::time::{Duration, Instant};

use db_secret_rotator::Config;
use db_secret_rotator::rotators::Rotators;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::proxy::{Answer, Fault, Rule, SmProxy, TcpProxy, Trigger, TriggerAction, When};
use crate::server::{Server, Stacks, Table, TestUser};
use crate::support::*;

/// The four steps, in order.
pub const STEPS: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Single,
    Alternating,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Single => "single-user",
            Strategy::Alternating => "alternating-users",
        }
    }
}

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

/// One secret on a server behind a database proxy, driven by a function behind a Secrets
/// Manager proxy.
pub struct Scenario {
    pub server: Server,
    pub strategy: Strategy,
    pub user: TestUser,
    pub password: String,
    pub clone: Option<String>,
    pub table: Option<Table>,
    pub arn: String,
    pub token: String,
    pub old_version: String,
    pub client: aws_sdk_secretsmanager::Client,
    pub db: TcpProxy,
    pub sm: SmProxy,
    pub function: Function,
}

/// The configuration of the function under fault: short connection attempts, so that a silent
/// server costs seconds, not the default 5 s per attempt.
pub fn fault_config(stacks: &Stacks) -> Config {
    Config {
        tls_extra_ca_file: Some(stacks.common.test_ca.clone()),
        connect_timeout: Duration::from_millis(1500),
        ..Config::default()
    }
}

/// The server's real address.
pub fn server_address(stacks: &Stacks, server: Server) -> (String, u16) {
    match server {
        Server::Postgres => (stacks.common.pg_host.clone(), stacks.common.pg_port),
        Server::Mariadb => {
            let my = stacks.my.expect("a MariaDB stack");
            (my.host.clone(), my.port)
        }
    }
}

impl Scenario {
    /// A user with its secret pointing at a fresh database proxy, its rotation staged.
    pub async fn new(stacks: &Stacks, server: Server, strategy: Strategy, prefix: &str) -> Self {
        let name = unique(prefix);
        let password = fixture_password();
        let user = stacks.create_user(server, &name, &password).await;
        let (host, port) = server_address(stacks, server);
        let db = TcpProxy::start(&host, port).await;
        let client = sm_client().await;
        let mut secret = stacks.secret(server, &name, &password);
        secret["host"] = json!("127.0.0.1");
        secret["port"] = json!(db.port.to_string());
        secret["ssl"] = json!(false);
        let (mut clone, mut table) = (None, None);
        if strategy == Strategy::Alternating {
            let mut master = stacks.master_secret(server);
            master["host"] = json!("127.0.0.1");
            master["port"] = json!(db.port);
            master["ssl"] = json!(false);
            let master_arn = create_secret(&client, &master).await;
            secret["masterarn"] = json!(master_arn);
            secret["rotation_strategy"] = json!("alternating-users");
            clone = Some(format!("{name}_clone"));
            table = Some(stacks.grant_table(server, &name).await);
        }
        let arn = create_secret(&client, &secret).await;
        let old_version = version_with(&client, &arn, "AWSCURRENT").await.unwrap();
        let token = token();
        start_rotation(&client, &arn, &token).await;
        let sm = SmProxy::start().await;
        let config = fault_config(stacks);
        let rotators = Rotators::new(&config).expect("trust roots");
        let mut function = Function::with_endpoint(config, rotators, Some(&sm.url)).await;
        function.deadline = Some(Duration::from_secs(20));
        Scenario {
            server,
            strategy,
            user,
            password,
            clone,
            table,
            arn,
            token,
            old_version,
            client,
            db,
            sm,
            function,
        }
    }

    /// Drops the users (and the clone, and the table) this scenario created.
    pub async fn cleanup(self, stacks: &Stacks) {
        if let Some(table) = self.table {
            stacks.drop_table(self.server, table).await;
        }
        if let Some(clone) = &self.clone {
            stacks.drop_user(self.server, clone).await;
        }
        self.user.drop(stacks).await;
    }

    /// The credential at `stage` (`None`: no value), read directly from the emulator.
    pub async fn credential(&self, stage: &str) -> Option<(String, String)> {
        let mut request = self
            .client
            .get_secret_value()
            .secret_id(&self.arn)
            .version_stage(stage);
        if stage == "AWSPENDING" {
            request = request.version_id(&self.token);
        }
        let text = request.send().await.ok()?.secret_string?;
        register_secret(&text);
        let value: Value = serde_json::from_str(&text).ok()?;
        Some((
            value["username"].as_str()?.to_owned(),
            value["password"].as_str()?.to_owned(),
        ))
    }

    /// Whether the credential at `stage` logs in directly (verified TLS, no proxy).
    pub async fn logs_in(&self, stacks: &Stacks, stage: &str) -> bool {
        match self.credential(stage).await {
            Some((user, password)) => stacks.login(self.server, &user, &password).await.is_ok(),
            None => false,
        }
    }

    /// The state every completed rotation must reach; `Err` says what is wrong.
    pub async fn check_rotated(&self, stacks: &Stacks) -> Result<String, String> {
        let versions = snapshot(&self.client, &self.arn).await;
        if versions.len() != 2 {
            return Err(format!("{} versions, expected 2", versions.len()));
        }
        let labels = labels(&self.client, &self.arn).await;
        if !labels
            .get(&self.token)
            .is_some_and(|s| s.iter().any(|l| l == "AWSCURRENT"))
        {
            return Err(format!("AWSCURRENT not on the token: {labels:?}"));
        }
        if labels.get(&self.old_version).map(Vec::as_slice) != Some(&["AWSPREVIOUS".to_owned()][..])
        {
            return Err(format!("the old version is not AWSPREVIOUS: {labels:?}"));
        }
        let (user, password) = self
            .credential("AWSCURRENT")
            .await
            .ok_or("no AWSCURRENT value")?;
        if password == self.password {
            return Err("the password did not change".into());
        }
        stacks
            .login(self.server, &user, &password)
            .await
            .map_err(|e| format!("the new credential does not log in: {e}"))?;
        match self.strategy {
            Strategy::Single => {
                match stacks
                    .login(self.server, self.user.name(), &self.password)
                    .await
                {
                    Err(code) if code == self.server.rejected() => {}
                    other => return Err(format!("the old password is not rejected: {other:?}")),
                }
                Ok("rotated; old password rejected".into())
            }
            Strategy::Alternating => {
                stacks
                    .login(self.server, self.user.name(), &self.password)
                    .await
                    .map_err(|e| format!("AWSPREVIOUS no longer logs in: {e}"))?;
                if Some(&user) != self.clone.as_ref() {
                    return Err(format!("AWSCURRENT is {user}, not the clone"));
                }
                let table = self.table.as_ref().expect("a table");
                stacks
                    .reads(self.server, table, &user, &password)
                    .await
                    .map_err(|e| format!("the clone lacks the original's privileges ({e})"))?;
                Ok("rotated; AWSPREVIOUS logs in; clone has the grants".into())
            }
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
fn statements(server: Server, strategy: Strategy) -> Vec<(&'static str, &'static str)> {
    match (server, strategy) {
        (Server::Postgres, Strategy::Single) => vec![("ALTER ROLE", "ALTER ROLE")],
        (Server::Mariadb, Strategy::Single) => vec![("SET PASSWORD", "SET PASSWORD")],
        (Server::Postgres, Strategy::Alternating) => vec![
            ("CREATE ROLE … PASSWORD", "WITH LOGIN PASSWORD"),
            ("GRANT (repair)", "GRANT "),
            ("COMMIT", "COMMIT"),
        ],
        (Server::Mariadb, Strategy::Alternating) => vec![
            ("CREATE USER … IDENTIFIED BY", "IDENTIFIED BY"),
            ("SHOW GRANTS", "SHOW GRANTS"),
            ("GRANT (replay)", "GRANT SELECT"),
            ("ALTER USER … REQUIRE", "REQUIRE"),
        ],
    }
}

fn full_matrix() -> bool {
    std::env::var("DSR_FULL_MATRIX").is_ok_and(|v| v == "1")
}

/// Every fault point of a rotation, from a clean calibration run's Secrets Manager operations.
fn points(server: Server, strategy: Strategy, ops: &[(usize, String, &'static str)]) -> Vec<Point> {
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
    for (label, pattern) in statements(server, strategy) {
        set.push(DbFault::CutBefore(label, pattern));
        set.push(DbFault::ReplyLost(label, pattern));
    }
    for fault in set {
        points.push(Point::Db {
            step: "setSecret",
            fault,
        });
    }
    for fault in [
        DbFault::Down,
        DbFault::Silent,
        DbFault::CutBefore("SELECT NOW()", "SELECT NOW()"),
        DbFault::ReplyLost("SELECT NOW()", "SELECT NOW()"),
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
    stacks: &Stacks,
    server: Server,
    strategy: Strategy,
) -> Vec<(usize, String, &'static str)> {
    let scenario = Scenario::new(stacks, server, strategy, "fmcal").await;
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
        .check_rotated(stacks)
        .await
        .unwrap_or_else(|e| panic!("calibration: {e}"));
    scenario.cleanup(stacks).await;
    ops
}

/// Runs the rotation with the fault at `point`, checks the state, re-drives it, checks again.
async fn run_point(stacks: &Stacks, server: Server, strategy: Strategy, point: Point) -> Row {
    let scenario = Scenario::new(stacks, server, strategy, "fm").await;
    if let Point::Sm {
        op, when, answer, ..
    } = &point
    {
        scenario.sm.add(Rule::Operation {
            n: *op,
            when: *when,
            answer: *answer,
        });
    }
    let mut failed = "no step failed".to_owned();
    let mut reached = matches!(point, Point::Between { .. });
    for step in STEPS {
        if let Point::Db { step: at, fault } = &point {
            if *at == step {
                match fault {
                    DbFault::Down => scenario.db.set(Fault::Refuse),
                    DbFault::Silent => scenario.db.set(Fault::Blackhole),
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

    let current = scenario.logs_in(stacks, "AWSCURRENT").await;
    let pending = scenario.logs_in(stacks, "AWSPENDING").await;
    let after_fault = match (current, pending) {
        (true, true) => "AWSCURRENT, AWSPENDING",
        (true, false) => "AWSCURRENT",
        (false, true) => "AWSPENDING",
        (false, false) => "NOTHING",
    };
    let fault_ok = match strategy {
        Strategy::Single => current || pending,
        Strategy::Alternating => current,
    };
    let retry = scenario
        .function
        .rotate(&scenario.arn, &scenario.token)
        .await;
    let after_retry = match retry {
        Ok(()) => scenario.check_rotated(stacks).await,
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
    scenario.cleanup(stacks).await;
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

/// How many fault points run at once.
const PARALLEL: usize = 6;

async fn matrix(server: Server, strategy: Strategy) {
    let Some(stacks) = server.stacks() else {
        return;
    };
    let started = Instant::now();
    let ops = calibrate(&stacks, server, strategy).await;
    let points = points(server, strategy, &ops);
    let stacks_ref = &stacks;
    let mut rows: Vec<(usize, Row)> = futures_util::stream::iter(points.into_iter().enumerate())
        .map(|(i, point)| async move { (i, run_point(stacks_ref, server, strategy, point).await) })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    rows.sort_by_key(|(i, _)| *i);
    let rows: Vec<Row> = rows.into_iter().map(|(_, row)| row).collect();
    let title = format!(
        "{} {}",
        match server {
            Server::Postgres => "postgres",
            Server::Mariadb => "mariadb",
        },
        strategy.name()
    );
    let text = format_matrix(&title, &rows, started.elapsed());
    report(
        &format!("fault-matrix-{}.txt", title.replace(' ', "-")),
        &text,
    );
    let failures = rows.iter().filter(|r| !r.ok).count();
    assert_eq!(failures, 0, "{failures} fault points failed:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_postgres_single_user() {
    matrix(Server::Postgres, Strategy::Single).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_mariadb_single_user() {
    matrix(Server::Mariadb, Strategy::Single).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_postgres_alternating_users() {
    matrix(Server::Postgres, Strategy::Alternating).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_mariadb_alternating_users() {
    matrix(Server::Mariadb, Strategy::Alternating).await;
}
