//! A minimal Lambda Runtime API emulator, and the real binary running against it.
//!
//! The emulator serves `GET /2018-06-01/runtime/invocation/next` (long poll; headers
//! `lambda-runtime-aws-request-id`, `lambda-runtime-deadline-ms` in epoch milliseconds,
//! `lambda-runtime-invoked-function-arn`), `POST …/invocation/{id}/response`,
//! `POST …/invocation/{id}/error` and `POST …/init/error`, over HTTP/1.1 on 127.0.0.1.
//! [`FunctionProcess`] spawns the built binary with `AWS_LAMBDA_RUNTIME_API` pointing at it, the
//! stack's environment, and its stdout (the function's log stream) in a file under the target
//! directory, and reads its resident memory and open descriptors from `/proc`.
//!
//! The emulator notes when the runtime first asks for an event, and when it hands each event out
//! and receives the answer ([`RuntimeApi::queue`], [`Queued::answer`]): `scripts/bench.sh`
//! measures with it through `bench/harness.rs`, which includes this file for the emulator alone.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::io::BufReader;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::Stack;
use super::http::{LoopbackServer, Message, read_message, write_all};

/// How an invocation ended, as the runtime reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `POST …/response` with this body.
    Response(Vec<u8>),
    /// `POST …/error`: the Diagnostic's `errorType` and `errorMessage`.
    Error { error_type: String, message: String },
    /// `POST …/init/error`.
    InitError(String),
}

impl Outcome {
    /// The `errorType`, or `None` for a response.
    pub fn error_type(&self) -> Option<&str> {
        match self {
            Outcome::Response(_) => None,
            Outcome::Error { error_type, .. } => Some(error_type),
            Outcome::InitError(_) => Some("InitError"),
        }
    }
}

/// An invocation's outcome and when the emulator saw it happen.
#[derive(Debug, Clone)]
#[allow(
    dead_code,
    reason = "the tests read the outcome; bench/harness.rs the times"
)]
pub struct Timed {
    pub outcome: Outcome,
    /// When `GET …/invocation/next` handed the event out (`None`: never, as after an init error).
    pub dispatched: Option<Instant>,
    /// When the answer (or the init error) arrived.
    pub answered: Instant,
}

struct Invocation {
    id: String,
    body: Vec<u8>,
    deadline_ms: u64,
}

/// An invocation [`RuntimeApi::queue`] queued.
pub struct Queued {
    id: String,
    budget: Duration,
    rx: oneshot::Receiver<Timed>,
}

impl Queued {
    /// The runtime's answer (panics after the budget plus 30 s).
    pub async fn answer(self) -> Timed {
        match tokio::time::timeout(self.budget + Duration::from_secs(30), self.rx).await {
            Ok(timed) => timed.expect("the emulator dropped the invocation"),
            Err(_) => panic!("invocation {} got no answer", self.id),
        }
    }
}

/// An invocation queued and not yet answered, as the emulator keeps it.
struct Waiting {
    answer: oneshot::Sender<Timed>,
    dispatched: Option<Instant>,
}

impl Waiting {
    fn answer(self, outcome: Outcome, answered: Instant) {
        let _ = self.answer.send(Timed {
            outcome,
            dispatched: self.dispatched,
            answered,
        });
    }
}

struct Shared {
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>,
    waiting: Mutex<HashMap<String, Waiting>>,
    init_error: Mutex<Option<String>>,
    /// `GET …/invocation/next` requests received.
    polls: AtomicUsize,
    /// When the first of them arrived.
    first_poll: OnceLock<Instant>,
}

/// The emulator on 127.0.0.1; stops when dropped.
pub struct RuntimeApi {
    /// `127.0.0.1:<port>`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub address: String,
    sender: mpsc::UnboundedSender<Invocation>,
    shared: Arc<Shared>,
    next_id: AtomicUsize,
    _server: LoopbackServer,
}

fn epoch_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

impl RuntimeApi {
    pub async fn start() -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            queue: tokio::sync::Mutex::new(receiver),
            waiting: Mutex::new(HashMap::new()),
            init_error: Mutex::new(None),
            polls: AtomicUsize::new(0),
            first_poll: OnceLock::new(),
        });
        let server = LoopbackServer::sharing(&shared, connection).await;
        RuntimeApi {
            address: format!("127.0.0.1:{}", server.port),
            sender,
            shared,
            next_id: AtomicUsize::new(0),
            _server: server,
        }
    }

    /// Queues one invocation with `body` (any bytes) and a deadline `budget` from now, and waits
    /// for the runtime's answer (panics after the budget plus 30 s).
    pub async fn invoke(&self, body: impl Into<Vec<u8>>, budget: Duration) -> Outcome {
        self.queue(body, budget).answer().await.outcome
    }

    /// Queues one invocation as [`Self::invoke`] does, without waiting for the answer.
    pub fn queue(&self, body: impl Into<Vec<u8>>, budget: Duration) -> Queued {
        let id = format!(
            "req-{}-{}",
            std::process::id(),
            self.next_id.fetch_add(1, Ordering::Relaxed)
        );
        let (answer, rx) = oneshot::channel();
        self.shared.waiting.lock().unwrap().insert(
            id.clone(),
            Waiting {
                answer,
                dispatched: None,
            },
        );
        let deadline_ms = epoch_ms() + u64::try_from(budget.as_millis()).unwrap();
        self.sender
            .send(Invocation {
                id: id.clone(),
                body: body.into(),
                deadline_ms,
            })
            .unwrap();
        if let Some(message) = self.shared.init_error.lock().unwrap().clone() {
            if let Some(waiting) = self.shared.waiting.lock().unwrap().remove(&id) {
                waiting.answer(Outcome::InitError(message), Instant::now());
            }
        }
        Queued { id, budget, rx }
    }

    /// Waits until the runtime asks for its first invocation: the function has started. Panics
    /// after `limit`.
    pub async fn ready(&self, limit: Duration) {
        let started = std::time::Instant::now();
        while self.shared.polls.load(Ordering::SeqCst) == 0 {
            assert!(
                started.elapsed() < limit,
                "the function did not start in {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// When the runtime first asked for an invocation, if it has.
    #[allow(
        dead_code,
        reason = "for bench/harness.rs; the tests wait with `ready`"
    )]
    pub fn first_poll(&self) -> Option<Instant> {
        self.shared.first_poll.get().copied()
    }

    /// [`Self::invoke`] with a JSON event.
    pub async fn invoke_json(&self, event: &Value, budget: Duration) -> Outcome {
        self.invoke(event.to_string(), budget).await
    }
}

const PREFIX: &str = "/2018-06-01/runtime/";

async fn connection(socket: TcpStream, shared: Arc<Shared>) {
    let _ = socket.set_nodelay(true);
    let (r, mut w) = socket.into_split();
    let mut reader = BufReader::new(r);
    while let Ok(Some(request)) = read_message(&mut reader, false).await {
        let received = Instant::now();
        let mut parts = request.start.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_owned(),
            parts.next().unwrap_or("").to_owned(),
        );
        let route = path.strip_prefix(PREFIX).unwrap_or("");
        let accepted = Message::response(
            "202 Accepted",
            &[("Content-Type", "application/json")],
            br#"{"status":"OK"}"#,
        );
        let response = match (method.as_str(), route) {
            ("GET", "invocation/next") => {
                shared.first_poll.get_or_init(|| received);
                shared.polls.fetch_add(1, Ordering::SeqCst);
                let next = shared.queue.lock().await.recv().await;
                let Some(invocation) = next else { return };
                if let Some(waiting) = shared.waiting.lock().unwrap().get_mut(&invocation.id) {
                    waiting.dispatched = Some(Instant::now());
                }
                let deadline = invocation.deadline_ms.to_string();
                Message::response(
                    "200 OK",
                    &[
                        ("Content-Type", "application/json"),
                        ("lambda-runtime-aws-request-id", &invocation.id),
                        ("lambda-runtime-deadline-ms", &deadline),
                        (
                            "lambda-runtime-invoked-function-arn",
                            "arn:aws:lambda:us-east-1:123456789012:function:db-secret-rotator",
                        ),
                        (
                            "lambda-runtime-trace-id",
                            "Root=1-00000000-000000000000000000000000;Sampled=0",
                        ),
                    ],
                    &invocation.body,
                )
            }
            ("POST", "init/error") => {
                let message = String::from_utf8_lossy(&request.body).into_owned();
                *shared.init_error.lock().unwrap() = Some(message.clone());
                for (_, waiting) in shared.waiting.lock().unwrap().drain() {
                    waiting.answer(Outcome::InitError(message.clone()), received);
                }
                accepted
            }
            ("POST", route) if route.starts_with("invocation/") => {
                let rest = &route["invocation/".len()..];
                let (id, kind) = rest.rsplit_once('/').unwrap_or((rest, ""));
                let outcome = match kind {
                    "response" => Some(Outcome::Response(request.body.clone())),
                    "error" => {
                        let diagnostic: Value =
                            serde_json::from_slice(&request.body).unwrap_or(Value::Null);
                        Some(Outcome::Error {
                            error_type: diagnostic["errorType"].as_str().unwrap_or("").to_owned(),
                            message: diagnostic["errorMessage"].as_str().unwrap_or("").to_owned(),
                        })
                    }
                    _ => None,
                };
                match (outcome, shared.waiting.lock().unwrap().remove(id)) {
                    (Some(outcome), Some(waiting)) => {
                        waiting.answer(outcome, received);
                        accepted
                    }
                    _ => Message::response("404 Not Found", &[], b"{}"),
                }
            }
            _ => Message::response("404 Not Found", &[], b"{}"),
        };
        if write_all(&mut w, &response.to_bytes(false)).await.is_err() {
            return;
        }
    }
}

/// The built binary, running against a [`RuntimeApi`]; killed when dropped.
pub struct FunctionProcess {
    pub api: RuntimeApi,
    child: std::process::Child,
    /// The function's stdout and stderr (its log stream).
    pub log: PathBuf,
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl FunctionProcess {
    /// Spawns the binary with the stack's environment (inherited), trusting the test CA, with
    /// JSON logs, plus `env`.
    pub async fn spawn(stack: &Stack, name: &str, env: &[(&str, &str)]) -> Self {
        let command = std::process::Command::new(super::paths::function_binary());
        Self::spawn_command(stack, command, name, env).await
    }

    /// [`Self::spawn`] with `command` starting the function: another build of it (a release
    /// package's `bootstrap`), or an emulator running another architecture's.
    pub async fn spawn_command(
        stack: &Stack,
        mut command: std::process::Command,
        name: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let api = RuntimeApi::start().await;
        let log = super::paths::tmp().join(format!("{name}-{}.log", std::process::id()));
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        command
            .env("AWS_LAMBDA_RUNTIME_API", &api.address)
            .env("AWS_LAMBDA_FUNCTION_NAME", "db-secret-rotator")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("TLS_EXTRA_CA_FILE", &stack.test_ca)
            .env_remove("RUST_LOG")
            .env_remove("AWS_LAMBDA_LOG_LEVEL")
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err);
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().expect("spawning the function binary");
        FunctionProcess { api, child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS")
    }

    /// Open file descriptors.
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// Open TCP sockets by state, from the process's descriptors and `/proc/net/tcp`.
    pub fn sockets(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target.to_string_lossy().starts_with("socket:"))
            .count()
    }

    /// The function's log so far.
    pub fn logs(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }
}
