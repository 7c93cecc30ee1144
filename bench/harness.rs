//! The servers `scripts/bench/bench.py` measures through: the integration suite's own Lambda
//! Runtime API emulator and counting Secrets Manager proxy (the `testkit` crate,
//! `crates/testkit`), driven over stdin and stdout. Not part of the Lambda.
//!
//! bench.py spawns the function and the floor itself (it owns their CPU cap, their CPU times and
//! their peak RSS); this program serves, on 127.0.0.1, one emulator per function process and one
//! proxy in front of the stack's Secrets Manager emulator (`AWS_ENDPOINT_URL_SECRETS_MANAGER`,
//! with the rest of `scripts/stack.sh env`).
//!
//! It starts by writing `proxy <url>`, then reads one command per line and answers each with one
//! line, `error <reason>` when the command is not understood:
//!
//! - `api` → `api <n> <address>`: a fresh emulator, `<address>` being the value of
//!   `AWS_LAMBDA_RUNTIME_API`.
//! - `enqueue <n> <event>` → `queued <id>`: queues the event (the rest of the line) on emulator
//!   `n` with a 30-second deadline, without waiting for the answer. Once the function answers, a
//!   line `done <JSON>` follows, at any point of the stream: `{"id", "api", "ok", "error",
//!   "dispatched_ns", "answered_ns", "first_poll_ns"}`, the last three being when the emulator
//!   handed the event out, when the answer arrived and when the function first asked for an
//!   event, on `CLOCK_MONOTONIC` in nanoseconds, the clock of Python's `time.perf_counter_ns()`.
//! - `take` → `take <JSON>`: the Secrets Manager operations since the previous `take`, as the
//!   integration suite counts them: one per operation, however many attempts (by the SDK's
//!   `amz-sdk-invocation-id`), `{"operations": {"GetSecretValue": 5, …}, "retries": 0}`.
//! - `stop <n>` → `stopped <n>`: closes emulator `n` and forgets its pending invocations.
//! - `user <engine> <name> <password> [<clone password>]` → `user <name>`: (re)creates the login
//!   user `name` on the stack's server of `engine` (`postgres`, `mariadb` or `redis`) with
//!   `password`, through the suite's own fixtures, as an admin over verified TLS. With a clone
//!   password (SQL servers), `<name>_clone` too, which on PostgreSQL is a member of `name`'s
//!   role; without one, a `<name>_clone` left from an earlier run is dropped, so that the
//!   function's first alternating rotation creates it. A Redis user gets `~bench:* +ping +get`.
//!
//! It exits when its stdin closes.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::task::AbortHandle;

use testkit::proxy::SmProxy;
use testkit::redis::RedisUser;
use testkit::runtime_api::{Outcome, RuntimeApi};
use testkit::{Server, Stack, TestUser};

/// The deadline each invocation is given, as the bench always has.
const BUDGET: Duration = Duration::from_secs(30);

/// `CLOCK_MONOTONIC` readings from `Instant`s: std's `Instant` reads that clock on Linux, but does
/// not say its value, so one reading of each, taken together, pins the offset.
struct Clock {
    base: Instant,
    base_ns: u64,
}

impl Clock {
    fn new() -> Self {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let base = Instant::now();
        let secs = u64::try_from(now.tv_sec).unwrap_or(0);
        let nanos = u64::try_from(now.tv_nsec).unwrap_or(0);
        Clock {
            base,
            base_ns: secs * 1_000_000_000 + nanos,
        }
    }

    fn ns(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.base).as_nanos();
        self.base_ns + u64::try_from(since).unwrap_or(u64::MAX - self.base_ns)
    }
}

/// One line to stdout, written and flushed whole (replies and `done` lines come from several
/// tasks).
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// An emulator and the invocations still waiting on it.
struct Api {
    api: Arc<RuntimeApi>,
    pending: Vec<AbortHandle>,
}

struct Harness {
    stack: &'static Stack,
    clock: Arc<Clock>,
    proxy: SmProxy,
    /// How many of the proxy's records earlier `take`s have counted.
    taken: usize,
    apis: HashMap<usize, Api>,
    next_api: usize,
    next_invocation: usize,
}

impl Harness {
    /// The reply to one command line.
    async fn command(&mut self, line: &str) -> Result<String, String> {
        let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
        match verb {
            "api" => {
                let api = Arc::new(RuntimeApi::start().await);
                let n = self.next_api;
                self.next_api += 1;
                let reply = format!("api {n} {}", api.address);
                self.apis.insert(
                    n,
                    Api {
                        api,
                        pending: Vec::new(),
                    },
                );
                Ok(reply)
            }
            "enqueue" => {
                let (n, event) = rest.split_once(' ').ok_or("enqueue needs <n> <event>")?;
                let n: usize = n.parse().map_err(|_| format!("no emulator '{n}'"))?;
                let id = self.next_invocation;
                self.next_invocation += 1;
                let clock = Arc::clone(&self.clock);
                let api = self.api(n)?;
                let queued = api.api.queue(event.as_bytes().to_vec(), BUDGET);
                let handle = Arc::clone(&api.api);
                let task = tokio::spawn(async move {
                    let timed = queued.answer().await;
                    let error = match &timed.outcome {
                        Outcome::Response(_) => None,
                        Outcome::Error {
                            error_type,
                            message,
                        } => Some(format!("{error_type}: {message}")),
                        Outcome::InitError(message) => Some(format!("init error: {message}")),
                    };
                    let done = json!({
                        "id": id,
                        "api": n,
                        "ok": error.is_none(),
                        "error": error,
                        "dispatched_ns": timed.dispatched.map(|at| clock.ns(at)),
                        "answered_ns": clock.ns(timed.answered),
                        "first_poll_ns": handle.first_poll().map(|at| clock.ns(at)),
                    });
                    say(&format!("done {done}"));
                });
                api.pending.retain(|t| !t.is_finished());
                api.pending.push(task.abort_handle());
                Ok(format!("queued {id}"))
            }
            "take" => {
                let log = self.proxy.log();
                let mut operations = BTreeMap::<String, usize>::new();
                let mut retries = 0;
                for record in log.get(self.taken..).unwrap_or_default() {
                    if record.attempt == 1 {
                        *operations.entry(record.name.clone()).or_default() += 1;
                    } else {
                        retries += 1;
                    }
                }
                self.taken = log.len();
                Ok(format!(
                    "take {}",
                    json!({"operations": operations, "retries": retries})
                ))
            }
            "stop" => {
                let n: usize = rest.trim().parse().map_err(|_| "stop needs <n>")?;
                let api = self.apis.remove(&n).ok_or(format!("no emulator {n}"))?;
                for task in api.pending {
                    task.abort();
                }
                Ok(format!("stopped {n}"))
            }
            "user" => {
                let words: Vec<&str> = rest.split_whitespace().collect();
                let [engine, name, password, clone @ ..] = words.as_slice() else {
                    return Err("user needs <engine> <name> <password> [<clone password>]".into());
                };
                let clone = match clone {
                    [] => None,
                    [clone] => Some((*clone).to_owned()),
                    _ => return Err("user takes one clone password at most".into()),
                };
                let (engine, name, password) = (
                    (*engine).to_owned(),
                    (*name).to_owned(),
                    (*password).to_owned(),
                );
                let reply = format!("user {name}");
                // A fixture fails by panicking: its task's panic becomes this command's error.
                let stack = self.stack;
                tokio::spawn(reset_user(stack, engine, name, password, clone))
                    .await
                    .map_err(|e| format!("user set-up failed: {e}"))??;
                Ok(reply)
            }
            _ => Err(format!("unknown command '{verb}'")),
        }
    }

    fn api(&mut self, n: usize) -> Result<&mut Api, String> {
        self.apis.get_mut(&n).ok_or(format!("no emulator {n}"))
    }
}

/// The `user` command: `name` (and `<name>_clone` with `clone`) recreated on `engine`'s server.
async fn reset_user(
    stack: &'static Stack,
    engine: String,
    name: String,
    password: String,
    clone: Option<String>,
) -> Result<(), String> {
    let clone_name = format!("{name}_clone");
    let server = match engine.as_str() {
        "postgres" => Server::Postgres,
        "mariadb" => Server::Mariadb,
        "redis" => {
            let redis = stack.redis.as_ref().ok_or("the stack has no Redis")?;
            RedisUser::create(
                stack,
                redis,
                &name,
                &password,
                &["~bench:*", "+ping", "+get"],
            )
            .await;
            return Ok(());
        }
        other => return Err(format!("no engine '{other}'")),
    };
    stack.drop_user(server, &clone_name).await;
    let user = stack.create_user(server, &name, &password).await;
    if let Some(clone_password) = clone {
        let clone = stack
            .create_user(server, &clone_name, &clone_password)
            .await;
        if let (TestUser::Pg(user), TestUser::Pg(clone)) = (&user, &clone) {
            user.grant_to(stack, clone).await;
        }
    }
    Ok(())
}

fn main() -> Result<(), String> {
    let clock = Arc::new(Clock::new());
    let stack = testkit::stack().ok_or("the stack's environment is incomplete")?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("tokio runtime: {e}"))?;
    let proxy = runtime.block_on(SmProxy::start(stack));
    say(&format!("proxy {}", proxy.url));
    let mut harness = Harness {
        stack,
        clock,
        proxy,
        taken: 0,
        apis: HashMap::new(),
        next_api: 0,
        next_invocation: 0,
    };
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("reading stdin: {e}"))?;
        let reply = runtime.block_on(harness.command(line.trim_end()));
        say(&reply.unwrap_or_else(|reason| format!("error {reason}")));
    }
    Ok(())
}
