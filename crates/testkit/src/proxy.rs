//! Fault injection on the wire: a programmable TCP proxy for the database servers and an HTTP
//! proxy for the Secrets Manager emulator, both switchable while connections are open.
//!
//! - [`TcpProxy`] sits between the function and a database server. [`Fault`] applies to new and
//!   live connections: refuse (accept and reset: the server is down; live connections are reset
//!   too, which is what a server stop or restart looks like to a client), accept and never answer,
//!   delay every chunk, or cut a connection after N bytes in either direction. A one-shot
//!   [`Trigger`] fires on the first client chunk containing a pattern (a plaintext SQL statement)
//!   and either drops the connection before the statement reaches the server or forwards it and
//!   loses the server's reply. The stack's servers are shared by parallel tests, so "server down"
//!   is always this proxy refusing, never a real server stop.
//! - [`SmProxy`] sits between the function's SDK client and the emulator (the function is given
//!   its URL as the explicit endpoint). It speaks just enough HTTP/1.1 to count operations (by
//!   `amz-sdk-invocation-id`: one operation, however many attempts) and to answer, per rule,
//!   before or after forwarding: HTTP 500, `ThrottlingException`, a non-retryable
//!   `InvalidRequestException`, an IAM refusal (HTTP 403), a cut connection, or no answer at all. It can also enforce a
//!   write quota, as the service does per region: a token bucket shared by the writing operations,
//!   answering `ThrottlingException` (HTTP 400, the service's JSON error) beyond it. It serves
//!   RDS the same way (the function's RDS endpoint): a query-protocol request is named by its
//!   `Action` and answered with the query protocol's XML errors.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::Stack;
use super::http::{LoopbackServer, Message, read_message, write_all};

// ---------------------------------------------------------------------------------------------
// TCP proxy

/// What the proxy does to connections, switchable at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward both ways.
    Pass,
    /// Accept and reset at once (the server is down); live connections are reset too.
    Refuse,
    /// Accept, read and discard, never answer; live connections stop forwarding too.
    Blackhole,
    /// Forward, delaying every chunk (either direction) by this much.
    Delay(Duration),
    /// Per connection: forward `up` bytes from the client and `down` bytes from the server, then
    /// close both sides.
    CutAfter {
        up: Option<usize>,
        down: Option<usize>,
    },
}

/// What a [`Trigger`] does to the connection whose client chunk matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerAction {
    /// Close the connection without forwarding the chunk: the statement never ran.
    DropBefore,
    /// Forward the chunk, wait for the server's reply, discard it and close: the statement ran
    /// but the client never learns how it went.
    LoseReply,
    /// Forward the chunk, then never forward anything back; the connection stays open.
    HangReply,
}

/// A one-shot fault on the first client chunk containing `pattern`.
#[derive(Debug, Clone)]
pub struct Trigger {
    pub pattern: Vec<u8>,
    pub action: TriggerAction,
}

#[derive(Debug)]
struct TcpShared {
    upstream: SocketAddr,
    fault: Mutex<Fault>,
    trigger: Mutex<Option<Trigger>>,
    fired: AtomicBool,
    connections: AtomicUsize,
}

/// A TCP proxy on 127.0.0.1 in front of `upstream`; stops when dropped.
pub struct TcpProxy {
    pub port: u16,
    shared: Arc<TcpShared>,
    _server: LoopbackServer,
}

impl TcpProxy {
    /// A proxy forwarding to `host:port`.
    pub async fn start(host: &str, port: u16) -> Self {
        let upstream = tokio::net::lookup_host((host, port))
            .await
            .unwrap()
            .next()
            .expect("an address");
        let shared = Arc::new(TcpShared {
            upstream,
            fault: Mutex::new(Fault::Pass),
            trigger: Mutex::new(None),
            fired: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
        });
        let accept_shared = Arc::clone(&shared);
        let server = LoopbackServer::start(move |socket| {
            accept_shared.connections.fetch_add(1, Ordering::Relaxed);
            tcp_connection(socket, Arc::clone(&accept_shared))
        })
        .await;
        TcpProxy {
            port: server.port,
            shared,
            _server: server,
        }
    }

    /// Switches the fault for new and live connections.
    pub fn set(&self, fault: Fault) {
        *self.shared.fault.lock().unwrap() = fault;
    }

    /// Arms a one-shot trigger (replacing any armed one).
    pub fn arm(&self, trigger: Trigger) {
        self.shared.fired.store(false, Ordering::SeqCst);
        *self.shared.trigger.lock().unwrap() = Some(trigger);
    }

    /// Disarms the trigger; returns whether it fired.
    pub fn disarm(&self) -> bool {
        self.shared.trigger.lock().unwrap().take();
        self.shared.fired.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }
}

/// Closes with a reset (`SO_LINGER` 0), as a refusing or crashed server does.
#[allow(
    deprecated,
    reason = "a zero linger resets at once; it never blocks on drop"
)]
fn reset(socket: TcpStream) {
    let _ = socket.set_linger(Some(Duration::ZERO));
    drop(socket);
}

fn current(shared: &TcpShared) -> Fault {
    *shared.fault.lock().unwrap()
}

/// The armed trigger's action when `chunk` contains its pattern (disarming it).
fn take_trigger(shared: &TcpShared, chunk: &[u8]) -> Option<TriggerAction> {
    let mut trigger = shared.trigger.lock().unwrap();
    let matched = trigger.as_ref().is_some_and(|t| {
        !t.pattern.is_empty() && chunk.windows(t.pattern.len()).any(|w| w == t.pattern)
    });
    if !matched {
        return None;
    }
    shared.fired.store(true, Ordering::SeqCst);
    trigger.take().map(|t| t.action)
}

/// What a connection does after a chunk.
enum Flow {
    /// Read on.
    Next,
    /// Close both sides.
    Close,
    /// Reset the client (the server went down).
    Refuse,
}

/// Forwards one chunk read from one side to the other (`to`), as the current fault says: drops
/// it, delays it, forwards only what a cut leaves (`cut` picks this direction's limit, `sent`
/// counts what went this way), or forwards it whole. On the client's side (`after` given), an
/// armed trigger matching the chunk fires first: the chunk is dropped with the connection, or
/// forwarded and the trigger's action remembered in `after` for the server's reply.
async fn relay(
    shared: &TcpShared,
    chunk: &[u8],
    sent: &mut usize,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    cut: impl Fn(Fault) -> Option<usize>,
    after: Option<&mut Option<TriggerAction>>,
) -> Flow {
    let fault = current(shared);
    match fault {
        Fault::Refuse => return Flow::Refuse,
        Fault::Blackhole => return Flow::Next,
        Fault::Delay(d) => tokio::time::sleep(d).await,
        _ => {}
    }
    if let Some(limit) = cut(fault).filter(|limit| *sent + chunk.len() >= *limit) {
        let _ = to.write_all(&chunk[..limit - *sent]).await;
        return Flow::Close;
    }
    if let Some(after) = after {
        if let Some(action) = take_trigger(shared, chunk) {
            if action == TriggerAction::DropBefore {
                return Flow::Close;
            }
            *after = Some(action);
        }
    }
    *sent += chunk.len();
    if to.write_all(chunk).await.is_err() {
        return Flow::Close;
    }
    Flow::Next
}

async fn tcp_connection(client: TcpStream, shared: Arc<TcpShared>) {
    match current(&shared) {
        Fault::Refuse => return reset(client),
        Fault::Blackhole => {
            // Hold the connection, read and discard, never answer.
            let mut client = client;
            let mut sink = vec![0u8; 16 * 1024];
            while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
            return;
        }
        _ => {}
    }
    let Ok(server) = TcpStream::connect(shared.upstream).await else {
        return reset(client);
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let (mut up, mut down) = (0usize, 0usize);
    let mut cbuf = vec![0u8; 32 * 1024];
    let mut sbuf = vec![0u8; 32 * 1024];
    let mut after: Option<TriggerAction> = None;
    let mut refuse = false;
    let up_cut = |fault| match fault {
        Fault::CutAfter { up, .. } => up,
        _ => None,
    };
    let down_cut = |fault| match fault {
        Fault::CutAfter { down, .. } => down,
        _ => None,
    };
    loop {
        let flow = tokio::select! {
            read = cr.read(&mut cbuf) => {
                let n = match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                relay(&shared, &cbuf[..n], &mut up, &mut sw, up_cut, Some(&mut after)).await
            }
            read = sr.read(&mut sbuf) => {
                let n = match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                match after {
                    Some(TriggerAction::LoseReply) => break,
                    Some(TriggerAction::HangReply) => continue,
                    _ => {}
                }
                relay(&shared, &sbuf[..n], &mut down, &mut cw, down_cut, None).await
            }
        };
        match flow {
            Flow::Next => {}
            Flow::Close => break,
            Flow::Refuse => {
                refuse = true;
                break;
            }
        }
    }
    if refuse {
        if let Ok(client) = cr.reunite(cw) {
            reset(client);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets Manager proxy

/// What a faulted request gets instead of (or after) the emulator's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// HTTP 500 (`InternalServiceError`): retried by the SDK's standard strategy.
    ServerError,
    /// HTTP 400 `ThrottlingException`: retried (throttling).
    Throttle,
    /// HTTP 400 `InvalidRequestException`: not retried, so the step fails at once.
    Invalid,
    /// The connection is closed without an answer: retried (transient I/O error).
    Cut,
    /// No answer, connection held open: the SDK's attempt timeout decides.
    Hang,
    /// HTTP 403: the caller's IAM policy does not allow the operation (`AccessDeniedException`;
    /// RDS's `AccessDenied`). Not retried.
    Denied,
}

impl Answer {
    pub fn name(self) -> &'static str {
        match self {
            Answer::ServerError => "HTTP 500",
            Answer::Throttle => "throttled",
            Answer::Invalid => "non-retryable 400",
            Answer::Cut => "connection cut",
            Answer::Hang => "no answer",
            Answer::Denied => "access denied",
        }
    }
}

/// Whether the faulted request reaches the emulator first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// The emulator never sees the request.
    Before,
    /// The emulator runs the request; its answer is replaced.
    After,
}

/// A fault rule of the [`SmProxy`].
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    /// Every attempt of the `n`th operation (1-based, counted by SDK invocation id).
    Operation {
        n: usize,
        when: When,
        answer: Answer,
    },
    /// Only attempt `attempt` (1-based) of the `n`th operation.
    Attempt {
        n: usize,
        attempt: usize,
        when: When,
        answer: Answer,
    },
    /// The next `count` requests, whatever their operation, before forwarding.
    NextRequests { count: usize, answer: Answer },
    /// Every request.
    All { when: When, answer: Answer },
}

/// One request seen by the [`SmProxy`].
#[derive(Debug, Clone)]
pub struct SmRecord {
    pub op: usize,
    pub name: String,
    /// The request's `SecretId` and `VersionStage`, when it has them.
    pub secret_id: String,
    pub stage: Option<String>,
    pub attempt: usize,
    pub fault: Option<(When, Answer)>,
}

/// The operations that change a secret: in the service they share one regional quota.
pub const WRITE_OPERATIONS: &[&str] = &[
    "PutSecretValue",
    "UpdateSecretVersionStage",
    "UpdateSecret",
    "CreateSecret",
    "DeleteSecret",
    "RestoreSecret",
    "RotateSecret",
    "CancelRotateSecret",
    "TagResource",
    "UntagResource",
    "PutResourcePolicy",
    "DeleteResourcePolicy",
];

/// A token bucket: `rate` tokens a second, holding at most `burst`.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What the write quota did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaCount {
    /// Writes let through.
    pub admitted: usize,
    /// Writes answered with `ThrottlingException`.
    pub throttled: usize,
}

#[derive(Debug)]
struct SmShared {
    upstream: String,
    rules: Mutex<Vec<Rule>>,
    ops: Mutex<HashMap<String, (usize, usize)>>,
    next_op: AtomicUsize,
    log: Mutex<Vec<SmRecord>>,
    quota: Mutex<Option<Bucket>>,
    quota_count: Mutex<QuotaCount>,
}

/// An HTTP proxy in front of the Secrets Manager emulator; stops when dropped.
pub struct SmProxy {
    /// `http://127.0.0.1:<port>`: the function's explicit endpoint.
    pub url: String,
    shared: Arc<SmShared>,
    _server: LoopbackServer,
}

impl SmProxy {
    /// A proxy in front of the stack's emulator.
    pub async fn start(stack: &Stack) -> Self {
        let upstream = stack
            .secrets_manager
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let shared = Arc::new(SmShared {
            upstream,
            rules: Mutex::new(Vec::new()),
            ops: Mutex::new(HashMap::new()),
            next_op: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
            quota: Mutex::new(None),
            quota_count: Mutex::new(QuotaCount::default()),
        });
        let server = LoopbackServer::sharing(&shared, sm_connection).await;
        SmProxy {
            url: format!("http://127.0.0.1:{}", server.port),
            shared,
            _server: server,
        }
    }

    pub fn add(&self, rule: Rule) {
        self.shared.rules.lock().unwrap().push(rule);
    }

    pub fn clear(&self) {
        self.shared.rules.lock().unwrap().clear();
    }

    /// Operations seen so far.
    pub fn operations(&self) -> usize {
        self.shared.next_op.load(Ordering::SeqCst)
    }

    /// Every request seen so far.
    pub fn log(&self) -> Vec<SmRecord> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Limits the [`WRITE_OPERATIONS`] together to `rate` a second, with bursts of up to `burst`
    /// (the bucket starts full); writes beyond it are answered with `ThrottlingException`.
    pub fn limit_writes(&self, rate: f64, burst: f64) {
        *self.shared.quota.lock().unwrap() = Some(Bucket {
            rate,
            burst,
            tokens: burst,
            at: Instant::now(),
        });
    }

    /// What the write quota admitted and refused so far.
    pub fn quota_count(&self) -> QuotaCount {
        *self.shared.quota_count.lock().unwrap()
    }
}

/// Whether the write quota refuses a request of operation `name` (counting it either way).
fn over_quota(shared: &SmShared, name: &str) -> bool {
    if !WRITE_OPERATIONS.contains(&name) {
        return false;
    }
    let Some(admitted) = shared.quota.lock().unwrap().as_mut().map(Bucket::take) else {
        return false;
    };
    let mut count = shared.quota_count.lock().unwrap();
    if admitted {
        count.admitted += 1;
    } else {
        count.throttled += 1;
    }
    !admitted
}

/// The fault for attempt `attempt` of operation `op`, consuming a `NextRequests` budget.
fn decide(shared: &SmShared, op: usize, attempt: usize) -> Option<(When, Answer)> {
    let mut rules = shared.rules.lock().unwrap();
    let mut found = None;
    for rule in rules.iter_mut() {
        match rule {
            Rule::Operation { n, when, answer } if *n == op => {
                found = Some((*when, *answer));
                break;
            }
            Rule::Attempt {
                n,
                attempt: a,
                when,
                answer,
            } if *n == op && *a == attempt => {
                found = Some((*when, *answer));
                break;
            }
            Rule::NextRequests { count, answer } if *count > 0 => {
                *count -= 1;
                found = Some((When::Before, *answer));
                break;
            }
            Rule::All { when, answer } => {
                found = Some((*when, *answer));
                break;
            }
            _ => {}
        }
    }
    found
}

async fn forward(upstream: &str, request: &Message) -> std::io::Result<Message> {
    let stream = TcpStream::connect(upstream).await?;
    let (r, mut w) = stream.into_split();
    write_all(&mut w, &request.to_bytes(true)).await?;
    read_message(&mut BufReader::new(r), true)
        .await?
        .ok_or_else(|| std::io::ErrorKind::UnexpectedEof.into())
}

/// The operation a request calls: the `X-Amz-Target` of the JSON protocol (Secrets Manager), or
/// the `Action` of the query protocol's form body (RDS).
fn operation_name(request: &Message) -> String {
    if let Some(target) = request.header("x-amz-target") {
        return target.rsplit('.').next().unwrap_or("?").to_owned();
    }
    String::from_utf8_lossy(&request.body)
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .unwrap_or("?")
        .to_owned()
}

/// Whether `request` speaks the query protocol (a form body, XML answers): RDS.
fn is_query(request: &Message) -> bool {
    request
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"))
}

/// An error answer as the service writes it: AWS JSON 1.1 (the type in `__type` and in the
/// `x-amzn-ErrorType` header), or the query protocol's XML (`json` false), where the RDS codes
/// drop the `Exception` suffix (`Throttling`).
fn error_response(status: &str, error_type: &str, message: &str, json: bool) -> Message {
    if !json {
        let code = match error_type {
            "ThrottlingException" => "Throttling",
            "InternalServiceError" => "InternalFailure",
            "InvalidRequestException" => "InvalidParameterValue",
            "AccessDeniedException" => "AccessDenied",
            other => other,
        };
        let body = format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>\
             <Message>{message}</Message></Error>\
             <RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
        );
        return Message::response(status, &[("Content-Type", "text/xml")], body.as_bytes());
    }
    let body = format!(r#"{{"__type":"{error_type}","message":"{message}"}}"#);
    Message::response(
        status,
        &[
            ("Content-Type", "application/x-amz-json-1.1"),
            ("x-amzn-ErrorType", error_type),
            ("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000"),
        ],
        body.as_bytes(),
    )
}

const INJECTED: &str = "fault injected by the test proxy";

async fn sm_connection(client: TcpStream, shared: Arc<SmShared>) {
    let _ = client.set_nodelay(true);
    let (r, mut w) = client.into_split();
    let mut reader = BufReader::new(r);
    loop {
        let Ok(Some(request)) = read_message(&mut reader, false).await else {
            return;
        };
        let name = operation_name(&request);
        let json = !is_query(&request);
        let id = request
            .header("amz-sdk-invocation-id")
            .map(str::to_owned)
            .unwrap_or_else(|| format!("anonymous-{}", rand::random::<u64>()));
        let (op, attempt) = {
            let mut ops = shared.ops.lock().unwrap();
            let entry = ops
                .entry(id)
                .or_insert_with(|| (shared.next_op.fetch_add(1, Ordering::SeqCst) + 1, 0));
            entry.1 += 1;
            *entry
        };
        let fault = decide(&shared, op, attempt)
            .or_else(|| over_quota(&shared, &name).then_some((When::Before, Answer::Throttle)));
        let body: serde_json::Value =
            serde_json::from_slice(&request.body).unwrap_or(serde_json::Value::Null);
        shared.log.lock().unwrap().push(SmRecord {
            op,
            name,
            secret_id: body["SecretId"].as_str().unwrap_or("").to_owned(),
            stage: body["VersionStage"].as_str().map(str::to_owned),
            attempt,
            fault,
        });
        let answer = match fault {
            None => match forward(&shared.upstream, &request).await {
                Ok(response) => response,
                Err(_) => return,
            },
            Some((when, answer)) => {
                if when == When::After {
                    let _ = forward(&shared.upstream, &request).await;
                }
                match answer {
                    Answer::ServerError => error_response(
                        "500 Internal Server Error",
                        "InternalServiceError",
                        INJECTED,
                        json,
                    ),
                    Answer::Throttle => error_response(
                        "400 Bad Request",
                        "ThrottlingException",
                        "Rate exceeded",
                        json,
                    ),
                    Answer::Invalid => {
                        error_response("400 Bad Request", "InvalidRequestException", INJECTED, json)
                    }
                    Answer::Denied => error_response(
                        "403 Forbidden",
                        "AccessDeniedException",
                        "User is not authorized to perform this operation",
                        json,
                    ),
                    Answer::Cut => {
                        if let Ok(client) = reader.into_inner().reunite(w) {
                            reset(client);
                        }
                        return;
                    }
                    Answer::Hang => {
                        std::future::pending::<()>().await;
                        return;
                    }
                }
            }
        };
        let close = request
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"));
        if write_all(&mut w, &answer.to_bytes(close)).await.is_err() || close {
            return;
        }
    }
}
