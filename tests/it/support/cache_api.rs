//! An ElastiCache and MemoryDB user API emulator, in the test process, with the stack's Redis as
//! the data plane.
//!
//! [`CacheApi`] serves, on 127.0.0.1, the two operations of each service that a rotation calls,
//! as the SDK clients speak them:
//!
//! - ElastiCache's query protocol (a form body with `Action=DescribeUsers` or `Action=ModifyUser`,
//!   XML answers, errors as `<ErrorResponse>` with the service's codes `UserNotFound`,
//!   `InvalidUserState`, `InvalidParameterValue`, `Throttling`);
//! - MemoryDB's JSON protocol (`X-Amz-Target: AmazonMemoryDB.DescribeUsers` or `.UpdateUser`,
//!   errors as `__type` `UserNotFoundFault`, `InvalidUserStateFault`,
//!   `InvalidParameterValueException`, `ThrottlingException`).
//!
//! It keeps users (id, name, passwords, status, authentication type, access string). A password
//! change is refused (`InvalidUserState`) unless the user is `active`; an accepted one puts the
//! user in `modifying` for the delay the test chose, then applies the new list to the data
//! plane, the stack's `redis-server`, as its admin (`ACL SETUSER <name> reset on >p1 >p2
//! <access string>`, then `ACL SAVE`, since the stack's users live in an ACL file), and only then
//! reports the user `active` again, as the services do once a change has reached every node. So
//! after setSecret both passwords `AUTH` (once the change settled), and after the next rotation
//! the oldest is refused. A delay of `None` leaves a change `modifying` until
//! [`CacheApi::release`].
//!
//! Faults: the next N calls of an operation are answered (before or after serving them) with a
//! throttling error, an HTTP 500, a non-retryable `InvalidParameterValue`, a cut connection or no
//! answer (the [`Answer`]s of the Secrets Manager proxy), so that the function's retries and
//! re-driven steps meet them.
//!
//! # Why MemoryDB is emulated here too, not served by moto
//!
//! moto serves MemoryDB's `DescribeUsers` and `UpdateUser`, but its users are always `active`:
//! it cannot hold a user in `modifying`, refuse a change with `InvalidUserStateFault`, report a
//! user being deleted, throttle, or apply passwords to any server. A forwarding proxy would have
//! had to keep its own copy of every user's status and passwords and rewrite moto's answers, which
//! is this emulator with moto's bookkeeping beside it. Both services are therefore emulated in
//! one place, with one state machine; `cache_users::moto_reads_the_same_answers` runs the
//! function against moto's MemoryDB (and ElastiCache's `DescribeUsers`) directly, so that the
//! answers emulated here are checked against an independent implementation of the same shapes.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::BehaviorVersion;
use db_secret_rotator::Config;
use db_secret_rotator::cache_user::{SdkCacheUsers, Service};
use db_secret_rotator::rotators::Engines;
use serde_json::{Value, json};
use tokio::io::BufReader;
use tokio::net::TcpStream;

use super::proxy::{Answer, When};
use super::redis::redis_admin;
use super::{Function, RedisStack, Stack, register_password, unique};
use testkit::http::{LoopbackServer, Message, read_message, write_all};

/// The account and Region of the stack's Secrets Manager (moto's defaults): a secret's ARN names
/// them, and without a Lambda context they are the function's home.
pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";

/// The access string the emulator's users are created with: the rules of their Redis ACL user.
pub const ACCESS: &str = "on ~cache:* +ping +get +set";

/// A user the emulator serves, as a test names it.
#[derive(Debug, Clone)]
pub struct ApiUser {
    pub service: Service,
    /// ElastiCache's `UserId`, MemoryDB's name: what the ARN ends with.
    pub id: String,
    /// The name clients log in with: the Redis ACL user.
    pub name: String,
    pub arn: String,
}

impl ApiUser {
    /// The user's secret in AWS's shape, with `engine`; with a data plane, `host`, `port` and
    /// `ssl: true` of the stack's TLS Redis (the test CA's certificate names `127.0.0.1`).
    pub fn secret(&self, password: &str, data_plane: Option<&RedisStack>) -> Value {
        register_password(password);
        let mut secret = json!({
            "user_arn": self.arn,
            "username": self.name,
            "password": password,
            "engine": self.service.engine(),
            "note": "kept verbatim",
        });
        if let Some(redis) = data_plane {
            secret["host"] = json!(redis.host);
            secret["port"] = json!(redis.port);
            secret["ssl"] = json!(true);
        }
        secret
    }
}

/// The ARN of user `id` of `service` in `account`.
pub fn user_arn(service: Service, account: &str, id: &str) -> String {
    match service {
        Service::ElastiCache => format!("arn:aws:elasticache:{REGION}:{account}:user:{id}"),
        Service::MemoryDb => format!("arn:aws:memorydb:{REGION}:{account}:user/{id}"),
    }
}

/// One call the emulator answered.
#[derive(Debug, Clone)]
pub struct ApiCall {
    pub service: Service,
    /// `DescribeUsers`, `ModifyUser`, `UpdateUser`, or what else was asked.
    pub op: String,
    /// The user the call named (`UserId` or `UserName`), if any.
    pub user: String,
    /// The fault that answered it, if any.
    pub fault: Option<(When, Answer)>,
    /// The error code the emulator itself answered with, if any (`InvalidUserState`, …).
    pub error: Option<String>,
    /// Parameters of a change other than the passwords (the function sends none).
    pub extra: Vec<String>,
}

#[derive(Debug, Clone)]
struct EmUser {
    name: String,
    passwords: Vec<String>,
    status: String,
    authentication: String,
    access: String,
    /// How long each change stays `modifying`; `None`: until [`CacheApi::release`].
    delay: Option<Duration>,
    /// Bumped by every change, so that a settling change that was overtaken does nothing.
    generation: u64,
    /// Changes accepted.
    changes: usize,
}

#[derive(Debug)]
struct Rule {
    op: String,
    count: usize,
    when: When,
    answer: Answer,
}

type Key = (Service, String);

struct Shared {
    users: Mutex<HashMap<Key, EmUser>>,
    rules: Mutex<Vec<Rule>>,
    log: Mutex<Vec<ApiCall>>,
    data_plane: Option<(&'static Stack, &'static RedisStack)>,
    /// Failures of the data plane's `ACL` commands (a test asserts there are none).
    data_plane_errors: Mutex<Vec<String>>,
}

/// The emulator; stops when dropped (its users' Redis ACL users are removed by
/// [`CacheApi::cleanup`]).
pub struct CacheApi {
    /// `http://127.0.0.1:<port>`: the endpoint the function's clients are given.
    pub url: String,
    shared: Arc<Shared>,
    _server: LoopbackServer,
}

impl CacheApi {
    /// An emulator whose password changes reach `data_plane` (the stack's Redis), or no server.
    pub async fn start(data_plane: Option<(&'static Stack, &'static RedisStack)>) -> Self {
        let shared = Arc::new(Shared {
            users: Mutex::new(HashMap::new()),
            rules: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            data_plane,
            data_plane_errors: Mutex::new(Vec::new()),
        });
        let accept = Arc::clone(&shared);
        let server =
            LoopbackServer::start(move |socket| connection(socket, Arc::clone(&accept))).await;
        CacheApi {
            url: format!("http://127.0.0.1:{}", server.port),
            shared,
            _server: server,
        }
    }

    /// The function (trusting the stack's test CA) with its ElastiCache and MemoryDB clients
    /// pointed at this emulator, and its Secrets Manager client at `secrets_manager` (a fault
    /// proxy) or the stack's emulator.
    pub async fn function(&self, stack: &Stack, secrets_manager: Option<&str>) -> Function {
        function_with_cache_endpoint(stack, &self.url, secrets_manager).await
    }

    /// Creates an `active` user of `service` named from `prefix`, with password authentication
    /// and `passwords`, [`ACCESS`] as its access string, changes settling after 100 ms; with a
    /// data plane, its Redis ACL user too.
    pub async fn create_user(&self, service: Service, prefix: &str, passwords: &[&str]) -> ApiUser {
        for password in passwords {
            register_password(password);
        }
        // unique() joins with underscores; user ids take letters, digits and hyphens.
        let name = unique(prefix).replace('_', "-");
        let id = match service {
            Service::ElastiCache => format!("id-{name}"),
            Service::MemoryDb => name.clone(),
        };
        let user = EmUser {
            name: name.clone(),
            passwords: passwords.iter().map(|p| (*p).to_owned()).collect(),
            status: "active".to_owned(),
            authentication: "password".to_owned(),
            access: ACCESS.to_owned(),
            delay: Some(Duration::from_millis(100)),
            generation: 0,
            changes: 0,
        };
        if let Some((stack, redis)) = self.shared.data_plane {
            if let Err(e) = apply_acl(stack, redis, &user).await {
                panic!("creating the Redis user {name}: {e}");
            }
        }
        self.shared
            .users
            .lock()
            .unwrap()
            .insert((service, id.clone()), user);
        ApiUser {
            service,
            arn: user_arn(service, ACCOUNT, &id),
            id,
            name,
        }
    }

    fn with_user<T>(&self, user: &ApiUser, f: impl FnOnce(&mut EmUser) -> T) -> T {
        let mut users = self.shared.users.lock().unwrap();
        let found = users
            .get_mut(&(user.service, user.id.clone()))
            .unwrap_or_else(|| panic!("the emulator has no user {}", user.id));
        f(found)
    }

    /// How long the user's next changes stay `modifying` (`None`: until [`CacheApi::release`]).
    pub fn set_delay(&self, user: &ApiUser, delay: Option<Duration>) {
        self.with_user(user, |u| u.delay = delay);
    }

    /// Another change starts (its passwords unchanged): the user is `modifying` until
    /// [`CacheApi::release`], and refuses changes meanwhile.
    pub fn hold(&self, user: &ApiUser) {
        self.with_user(user, |u| {
            u.status = "modifying".to_owned();
            u.generation += 1;
        });
    }

    /// The change under way reaches the data plane and the user becomes `active`.
    pub async fn release(&self, user: &ApiUser) {
        let generation = self.with_user(user, |u| u.generation);
        settle(
            Arc::clone(&self.shared),
            (user.service, user.id.clone()),
            generation,
        )
        .await;
    }

    /// Sets the status the API reports (`deleting`, `creating`, …), nothing else.
    pub fn set_status(&self, user: &ApiUser, status: &str) {
        self.with_user(user, |u| u.status = status.to_owned());
    }

    /// Sets the authentication type the API reports (`no-password`, `iam`), nothing else.
    pub fn set_authentication(&self, user: &ApiUser, authentication: &str) {
        self.with_user(user, |u| u.authentication = authentication.to_owned());
    }

    /// Empties the user's password list in the control plane only (the API then reports a
    /// count of 0).
    pub fn forget_passwords(&self, user: &ApiUser) {
        self.with_user(user, |u| u.passwords.clear());
    }

    /// The user is gone from the API (its Redis user stays until [`CacheApi::cleanup`]).
    pub fn delete(&self, user: &ApiUser) {
        self.shared
            .users
            .lock()
            .unwrap()
            .remove(&(user.service, user.id.clone()));
    }

    /// The passwords the user holds, newest first, as the control plane has them.
    pub fn passwords(&self, user: &ApiUser) -> Vec<String> {
        self.with_user(user, |u| u.passwords.clone())
    }

    /// The status the API reports.
    pub fn status(&self, user: &ApiUser) -> String {
        self.with_user(user, |u| u.status.clone())
    }

    /// The changes accepted for the user.
    pub fn changes(&self, user: &ApiUser) -> usize {
        self.with_user(user, |u| u.changes)
    }

    /// The next `count` calls of `op` (`DescribeUsers`, `ModifyUser`, `UpdateUser`, or `*` for
    /// any) are answered with `answer`, before or after the emulator serves them. Rules are
    /// consumed in the order added.
    pub fn fail(&self, op: &str, count: usize, when: When, answer: Answer) {
        self.shared.rules.lock().unwrap().push(Rule {
            op: op.to_owned(),
            count,
            when,
            answer,
        });
    }

    /// Drops every fault rule not yet consumed.
    pub fn clear_faults(&self) {
        self.shared.rules.lock().unwrap().clear();
    }

    /// Every call answered so far.
    pub fn log(&self) -> Vec<ApiCall> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Calls of `op` answered so far.
    pub fn calls(&self, op: &str) -> usize {
        self.shared
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.op == op)
            .count()
    }

    /// Calls answered by a fault rule so far.
    pub fn faults_served(&self) -> usize {
        self.shared
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.fault.is_some())
            .count()
    }

    /// Removes the Redis ACL users of every user created, saves the ACL file, and panics if a
    /// data-plane command failed on the way.
    pub async fn cleanup(&self, users: &[&ApiUser]) {
        if let Some((stack, redis)) = self.shared.data_plane {
            let mut admin = redis_admin(stack, redis).await;
            for user in users {
                let _: ::redis::Value = ::redis::cmd("ACL")
                    .arg("DELUSER")
                    .arg(&user.name)
                    .query_async(&mut admin.conn)
                    .await
                    .unwrap();
            }
            let _: ::redis::Value = ::redis::cmd("ACL")
                .arg("SAVE")
                .query_async(&mut admin.conn)
                .await
                .unwrap();
        }
        let errors = self.shared.data_plane_errors.lock().unwrap().clone();
        assert!(errors.is_empty(), "data plane: {errors:?}");
    }
}

/// The function (trusting the stack's test CA) whose ElastiCache and MemoryDB clients call
/// `endpoint`, its Secrets Manager client `secrets_manager` or the stack's emulator.
pub async fn function_with_cache_endpoint(
    stack: &Stack,
    endpoint: &str,
    secrets_manager: Option<&str>,
) -> Function {
    let config = Config {
        tls_extra_ca_file: Some(stack.test_ca.clone()),
        ..Config::default()
    };
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .load()
        .await;
    let engines = Engines::new(&config)
        .expect("trust roots")
        .with_cache_users(SdkCacheUsers::new(&sdk));
    Function::with_endpoint(config, engines, secrets_manager).await
}

// ---------------------------------------------------------------------------------------------
// The data plane

/// Makes the Redis ACL user `user.name` hold exactly the user's passwords and access string.
async fn apply_acl(stack: &Stack, redis: &RedisStack, user: &EmUser) -> Result<(), String> {
    let mut admin = redis_admin(stack, redis).await;
    let mut setuser = ::redis::cmd("ACL");
    setuser.arg("SETUSER").arg(&user.name).arg("reset");
    match user.authentication.as_str() {
        "no-password" => {
            setuser.arg("nopass");
        }
        _ => {
            for password in &user.passwords {
                setuser.arg(format!(">{password}"));
            }
        }
    }
    setuser.arg(user.access.split_whitespace().collect::<Vec<_>>());
    // The error names the command only: its arguments hold the passwords.
    let _: ::redis::Value = setuser
        .query_async(&mut admin.conn)
        .await
        .map_err(|e| format!("ACL SETUSER {}: {:?}", user.name, e.kind()))?;
    let _: ::redis::Value = ::redis::cmd("ACL")
        .arg("SAVE")
        .query_async(&mut admin.conn)
        .await
        .map_err(|e| format!("ACL SAVE: {e}"))?;
    Ok(())
}

/// The change of `generation` reaches the data plane, then the user is `active`; a change that
/// was overtaken by another does nothing.
async fn settle(shared: Arc<Shared>, key: Key, generation: u64) {
    let user = {
        let users = shared.users.lock().unwrap();
        match users.get(&key) {
            Some(u) if u.generation == generation => u.clone(),
            _ => return,
        }
    };
    if let Some((stack, redis)) = shared.data_plane {
        if let Err(e) = apply_acl(stack, redis, &user).await {
            shared.data_plane_errors.lock().unwrap().push(e);
            return;
        }
    }
    let mut users = shared.users.lock().unwrap();
    if let Some(u) = users.get_mut(&key) {
        if u.generation == generation && u.status == "modifying" {
            u.status = "active".to_owned();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The two protocols

/// A request, decoded: which service, which operation, its parameters.
struct Request {
    service: Service,
    op: String,
    /// ElastiCache: `UserId`; MemoryDB: `UserName`.
    user: Option<String>,
    /// The passwords of a change, in order.
    passwords: Vec<String>,
    /// Other parameters of a change.
    extra: Vec<String>,
}

/// `application/x-www-form-urlencoded` pairs, decoded.
fn form(body: &[u8]) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                    match u8::from_str_radix(hex, 16) {
                        Ok(b) => {
                            out.push(b);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode_request(request: &Message) -> Request {
    if let Some(target) = request.header("x-amz-target") {
        let op = target.rsplit('.').next().unwrap_or("?").to_owned();
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let passwords = body["AuthenticationMode"]["Passwords"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let mut extra: Vec<String> = body
            .as_object()
            .map(|o| {
                o.keys()
                    .filter(|k| !["UserName", "AuthenticationMode"].contains(&k.as_str()))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if let Some(kind) = body["AuthenticationMode"]["Type"].as_str() {
            if kind != "password" {
                extra.push(format!("AuthenticationMode.Type={kind}"));
            }
        }
        return Request {
            service: Service::MemoryDb,
            op,
            user: body["UserName"].as_str().map(str::to_owned),
            passwords,
            extra,
        };
    }
    let pairs = form(&request.body);
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut passwords: Vec<(usize, String)> = pairs
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("Passwords.member.")
                .and_then(|n| n.parse().ok())
                .map(|n| (n, v.clone()))
        })
        .collect();
    passwords.sort();
    let extra = pairs
        .iter()
        .map(|(k, _)| k.clone())
        .filter(|k| {
            !["Action", "Version", "UserId"].contains(&k.as_str())
                && !k.starts_with("Passwords.member.")
        })
        .collect();
    Request {
        service: Service::ElastiCache,
        op: get("Action").unwrap_or_else(|| "?".to_owned()),
        user: get("UserId"),
        passwords: passwords.into_iter().map(|(_, p)| p).collect(),
        extra,
    }
}

/// An error the emulator answers with: HTTP status, the service's code, a message.
struct ApiError {
    status: &'static str,
    code: &'static str,
    message: String,
}

fn not_found(service: Service, id: &str) -> ApiError {
    match service {
        Service::ElastiCache => ApiError {
            status: "404 Not Found",
            code: "UserNotFound",
            message: format!("User {id} not found."),
        },
        Service::MemoryDb => ApiError {
            status: "400 Bad Request",
            code: "UserNotFoundFault",
            message: format!("User {id} not found."),
        },
    }
}

fn fault_error(service: Service, answer: Answer) -> ApiError {
    let ec = service == Service::ElastiCache;
    match answer {
        Answer::Throttle => ApiError {
            status: "400 Bad Request",
            code: if ec {
                "Throttling"
            } else {
                "ThrottlingException"
            },
            message: "Rate exceeded".to_owned(),
        },
        Answer::ServerError => ApiError {
            status: "500 Internal Server Error",
            code: if ec {
                "InternalFailure"
            } else {
                "InternalServerErrorException"
            },
            message: "fault injected by the test emulator".to_owned(),
        },
        _ => invalid_parameter(service, "fault injected by the test emulator"),
    }
}

fn invalid_parameter(service: Service, message: &str) -> ApiError {
    ApiError {
        status: "400 Bad Request",
        code: match service {
            Service::ElastiCache => "InvalidParameterValue",
            Service::MemoryDb => "InvalidParameterValueException",
        },
        message: message.to_owned(),
    }
}

fn error_message(service: Service, error: &ApiError) -> Message {
    match service {
        Service::ElastiCache => {
            let body = format!(
                "<ErrorResponse xmlns=\"http://elasticache.amazonaws.com/doc/2015-02-02/\">\
                 <Error><Type>Sender</Type><Code>{}</Code><Message>{}</Message></Error>\
                 <RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>",
                error.code,
                xml(&error.message)
            );
            Message::response(
                error.status,
                &[("Content-Type", "text/xml")],
                body.as_bytes(),
            )
        }
        Service::MemoryDb => {
            let body = json!({"__type": error.code, "message": error.message}).to_string();
            Message::response(
                error.status,
                &[
                    ("Content-Type", "application/x-amz-json-1.1"),
                    ("x-amzn-ErrorType", error.code),
                    ("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000"),
                ],
                body.as_bytes(),
            )
        }
    }
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A user as ElastiCache's XML describes it (the members of `User`).
fn elasticache_user(id: &str, user: &EmUser) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<UserId>{}</UserId><UserName>{}</UserName><Status>{}</Status><Engine>redis</Engine>\
         <MinimumEngineVersion>6.0</MinimumEngineVersion><AccessString>{}</AccessString>\
         <UserGroupIds/><Authentication><Type>{}</Type><PasswordCount>{}</PasswordCount>\
         </Authentication><ARN>{}</ARN>",
        xml(id),
        xml(&user.name),
        xml(&user.status),
        xml(&user.access),
        xml(&user.authentication),
        count(user),
        xml(&user_arn(Service::ElastiCache, ACCOUNT, id))
    );
    out
}

/// A user as MemoryDB's JSON describes it.
fn memorydb_user(user: &EmUser) -> Value {
    json!({
        "Name": user.name,
        "Status": user.status,
        "AccessString": user.access,
        "ACLNames": [],
        "MinimumEngineVersion": "6.2",
        "Authentication": {"Type": user.authentication, "PasswordCount": count(user)},
        "ARN": user_arn(Service::MemoryDb, ACCOUNT, &user.name),
    })
}

fn count(user: &EmUser) -> usize {
    if user.authentication == "password" {
        user.passwords.len()
    } else {
        0
    }
}

fn ok_message(service: Service, op: &str, result: &str) -> Message {
    match service {
        Service::ElastiCache => {
            let body = format!(
                "<{op}Response xmlns=\"http://elasticache.amazonaws.com/doc/2015-02-02/\">\
                 <{op}Result>{result}</{op}Result><ResponseMetadata>\
                 <RequestId>00000000-0000-0000-0000-000000000000</RequestId>\
                 </ResponseMetadata></{op}Response>"
            );
            Message::response("200 OK", &[("Content-Type", "text/xml")], body.as_bytes())
        }
        Service::MemoryDb => Message::response(
            "200 OK",
            &[
                ("Content-Type", "application/x-amz-json-1.1"),
                ("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000"),
            ],
            result.as_bytes(),
        ),
    }
}

/// Serves one request against the state: the answer, or the emulator's own error.
fn serve(shared: &Arc<Shared>, request: &Request) -> Result<Message, ApiError> {
    let service = request.service;
    match request.op.as_str() {
        "DescribeUsers" => {
            let users = shared.users.lock().unwrap();
            let mut found: Vec<(&String, &EmUser)> = users
                .iter()
                .filter(|((s, id), _)| {
                    *s == service && request.user.as_ref().is_none_or(|wanted| wanted == id)
                })
                .map(|((_, id), u)| (id, u))
                .collect();
            if let (Some(id), true) = (&request.user, found.is_empty()) {
                return Err(not_found(service, id));
            }
            found.sort_by_key(|(id, _)| (*id).clone());
            Ok(match service {
                Service::ElastiCache => {
                    let members: String = found
                        .iter()
                        .map(|(id, u)| format!("<member>{}</member>", elasticache_user(id, u)))
                        .collect();
                    ok_message(
                        service,
                        "DescribeUsers",
                        &format!("<Users>{members}</Users>"),
                    )
                }
                Service::MemoryDb => {
                    let users: Vec<Value> = found.iter().map(|(_, u)| memorydb_user(u)).collect();
                    ok_message(
                        service,
                        "DescribeUsers",
                        &json!({"Users": users}).to_string(),
                    )
                }
            })
        }
        "ModifyUser" | "UpdateUser" => {
            let id = request.user.clone().unwrap_or_default();
            let user = change(shared, service, &id, &request.passwords)?;
            Ok(match service {
                Service::ElastiCache => {
                    ok_message(service, "ModifyUser", &elasticache_user(&id, &user))
                }
                Service::MemoryDb => ok_message(
                    service,
                    "UpdateUser",
                    &json!({"User": memorydb_user(&user)}).to_string(),
                ),
            })
        }
        other => Err(invalid_parameter(
            service,
            &format!("the test emulator does not serve {other}"),
        )),
    }
}

/// A password change: refused unless the user is `active` and the list is one the services
/// accept; else the user is `modifying` until the change settles.
fn change(
    shared: &Arc<Shared>,
    service: Service,
    id: &str,
    passwords: &[String],
) -> Result<EmUser, ApiError> {
    let key = (service, id.to_owned());
    let mut users = shared.users.lock().unwrap();
    let user = users.get_mut(&key).ok_or_else(|| not_found(service, id))?;
    if user.status != "active" {
        return Err(ApiError {
            status: "400 Bad Request",
            code: match service {
                Service::ElastiCache => "InvalidUserState",
                Service::MemoryDb => "InvalidUserStateFault",
            },
            message: format!("User {id} is not in active state."),
        });
    }
    let well_formed = |p: &String| {
        (16..=128).contains(&p.chars().count())
            && p.bytes().all(|b| (b' '..=b'~').contains(&b))
            && !p.contains([',', '"', '/', '@'])
    };
    let distinct = passwords.len() < 2 || passwords[0] != passwords[1];
    if passwords.is_empty()
        || passwords.len() > 2
        || !passwords.iter().all(well_formed)
        || !distinct
    {
        return Err(invalid_parameter(
            service,
            "Passwords must be one or two distinct strings of 16 to 128 printable characters.",
        ));
    }
    user.passwords = passwords.to_vec();
    user.status = "modifying".to_owned();
    user.generation += 1;
    user.changes += 1;
    if let Some(delay) = user.delay {
        let (shared, generation) = (Arc::clone(shared), user.generation);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            settle(shared, key, generation).await;
        });
    }
    Ok(user.clone())
}

/// The fault for a call of `op`, consuming one from the first rule that matches.
fn take_fault(shared: &Shared, op: &str) -> Option<(When, Answer)> {
    let mut rules = shared.rules.lock().unwrap();
    let rule = rules
        .iter_mut()
        .find(|r| r.count > 0 && (r.op == op || r.op == "*"))?;
    rule.count -= 1;
    Some((rule.when, rule.answer))
}

async fn connection(client: TcpStream, shared: Arc<Shared>) {
    let _ = client.set_nodelay(true);
    let (r, mut w) = client.into_split();
    let mut reader = BufReader::new(r);
    loop {
        let Ok(Some(message)) = read_message(&mut reader, false).await else {
            return;
        };
        let request = decode_request(&message);
        let fault = take_fault(&shared, &request.op);
        let mut record = ApiCall {
            service: request.service,
            op: request.op.clone(),
            user: request.user.clone().unwrap_or_default(),
            fault,
            error: None,
            extra: request.extra.clone(),
        };
        let served = match fault {
            Some((When::Before, _)) => None,
            _ => Some(serve(&shared, &request)),
        };
        let answer = match (fault, served) {
            (Some((_, Answer::Cut)), _) => {
                shared.log.lock().unwrap().push(record);
                return;
            }
            (Some((_, Answer::Hang)), _) => {
                shared.log.lock().unwrap().push(record);
                std::future::pending::<()>().await;
                return;
            }
            (Some((_, answer)), _) => {
                error_message(request.service, &fault_error(request.service, answer))
            }
            (None, Some(Ok(answer))) => answer,
            (None, Some(Err(error))) => {
                record.error = Some(error.code.to_owned());
                error_message(request.service, &error)
            }
            (None, None) => unreachable!("served unless faulted before"),
        };
        shared.log.lock().unwrap().push(record);
        let close = message
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"));
        if write_all(&mut w, &answer.to_bytes(close)).await.is_err() || close {
            return;
        }
    }
}
