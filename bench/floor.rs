//! The floor for `scripts/bench.sh`: the least work a rotation can do, to compare the function with.
//!
//! Not shipped in the Lambda. It makes only the unavoidable calls of one rotation, in the order the
//! four steps make them, with no guard, no validation and no fallback:
//!
//! - Secrets Manager, the 11 calls of a single-user rotation (docs/protocol.md 5.3): `DescribeSecret` at
//!   each step; createSecret `GetSecretValue` current and pending, `PutSecretValue`; setSecret
//!   current and pending; testSecret pending; finishSecret `UpdateSecretVersionStage`. Alternating
//!   users add one: the master secret.
//! - The database: log in with current, change the password, log in with the new one. Alternating
//!   users log in with current (the protocol requires that it works), then as the master, which
//!   changes the other user's password. Dual passwords (MariaDB, Redis) do the same, the master
//!   writing both passwords in one statement (`ALTER USER … IDENTIFIED VIA … OR …`; `ACL SETUSER
//!   <user> resetpass #<new> #<current>` and `ACL SAVE`), without reading the account first.
//!
//! It uses the crate's own configuration reader ([`Config::from_env`]), Secrets Manager client
//! ([`SdkSecretStore`], same timeouts and retries, same HTTPS client trusting the same system
//! roots), trust roots ([`LazyRoots`] with `TLS_EXTRA_CA_FILE`, loaded on first use as the
//! function loads them; verified TLS when the secret says `"ssl": true`, one TLS configuration
//! per process for every driver) and alternating-users clone name. It talks to the databases
//! through the drivers directly, with nothing of the crate's database side: the MySQL and Redis
//! password values it needs are written out below (the bench's passwords are alphanumeric, so
//! their SQL literals need no escaping).
//!
//! It writes `{"ready_ns"}` once set up (nanoseconds since the Unix epoch, the clock of Python's
//! `time.time_ns()`), then reads one JSON request per line on stdin, `{"secret_id", "token", "strategy"}`,
//! rotates, and answers one JSON line on stdout: `{"ok", "started_ns", "total_ms", "steps":
//! {"createSecret": ms, …}}` or `{"ok": false, "error"}`. The process stays up between requests,
//! like a warm Lambda container.

// A measuring tool: stdout is its output channel and stderr its log.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fmt::Write as _;
use std::io::BufRead;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use db_secret_rotator::Config;
use db_secret_rotator::deadline::{CallTally, Deadline, StepContext};
use db_secret_rotator::engine::{Engine, Family, clone_name};
use db_secret_rotator::env::Env;
use db_secret_rotator::protocol::{Stage, Step, Strategy};
use db_secret_rotator::secrets::{SdkSecretStore, SecretStore};
use db_secret_rotator::tls::LazyRoots;
use mysql_async::prelude::Queryable;
use postgres_protocol::escape::{escape_identifier, escape_literal};
use rand::distr::{Distribution, Uniform};
use serde_json::{Value, json};
use sha1::Sha1;
use sha2::{Digest, Sha256};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the floor connects with: the function's trust roots, loaded on the first verified-TLS
/// login, and mysql_async's options carrying them, whose TLS configuration the driver builds on
/// the first login and every later login shares (as the function does: `MysqlTls`).
struct Tls {
    roots: LazyRoots,
    mysql: OnceLock<mysql_async::Opts>,
}

impl Tls {
    fn mysql(&self) -> mysql_async::Opts {
        self.mysql
            .get_or_init(|| {
                let ssl = mysql_async::SslOpts::default()
                    .with_root_certs(
                        self.roots
                            .get()
                            .certificates()
                            .iter()
                            .map(|cert| cert.as_ref().to_vec().into())
                            .collect(),
                    )
                    .with_disable_built_in_roots(true);
                mysql_async::OptsBuilder::default().ssl_opts(ssl).into()
            })
            .clone()
    }
}

/// `*` and the upper-case hex of SHA1(SHA1(password)): what `mysql_native_password` stores.
fn native_password(password: &str) -> String {
    let mut out = String::from("*");
    for byte in Sha1::digest(Sha1::digest(password.as_bytes())) {
        let _ = write!(out, "{byte:02X}");
    }
    out
}

/// The lower-case hex SHA-256 of `password`, as Redis ACL rules name it.
fn redis_hash(password: &str) -> String {
    let mut out = String::with_capacity(64);
    for byte in Sha256::digest(password.as_bytes()) {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// `` `user`@`%` ``: the bench's accounts are at host `%`, and its user names need no escaping.
fn account(user: &str) -> String {
    format!("`{}`@`%`", user.replace('`', "``"))
}

/// The time now, in nanoseconds since the Unix epoch (`CLOCK_REALTIME`, the clock of Python's
/// `time.time_ns()`): through the C library, which valgrind serves, where rustix's own reading of
/// `CLOCK_MONOTONIC` would fault under it.
fn unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// One open session.
enum Session {
    Pg(tokio_postgres::Client, tokio::task::JoinHandle<()>),
    My(mysql_async::Conn),
    Redis(
        redis::aio::MultiplexedConnection,
        tokio::task::JoinHandle<()>,
    ),
}

fn field<'a>(secret: &'a Value, key: &str) -> Result<&'a str, BoxError> {
    secret[key]
        .as_str()
        .ok_or_else(|| format!("secret has no string `{key}`").into())
}

fn port(secret: &Value, default: u16) -> u16 {
    match &secret["port"] {
        Value::Number(n) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .unwrap_or(default)
}

fn engine(secret: &Value) -> Result<Engine, BoxError> {
    Engine::parse(field(secret, "engine")?).ok_or_else(|| "secret has an unknown `engine`".into())
}

/// `AUTH` as the secret's user over `stream`.
async fn redis_login<S>(secret: &Value, stream: S) -> Result<Session, BoxError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let info = redis::RedisConnectionInfo::default()
        .set_username(field(secret, "username")?)
        .set_password(field(secret, "password")?)
        .set_skip_set_lib_name();
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let (conn, driver) =
        redis::aio::MultiplexedConnection::new_with_config(&info, stream, config).await?;
    Ok(Session::Redis(conn, tokio::spawn(driver)))
}

async fn login(secret: &Value, tls: &Tls) -> Result<Session, BoxError> {
    let use_tls = secret["ssl"] == json!(true);
    if engine(secret)?.family() == Family::Redis {
        let host = field(secret, "host")?;
        let tcp = tokio::net::TcpStream::connect((host, port(secret, 6379))).await?;
        if !use_tls {
            return redis_login(secret, tcp).await;
        }
        let name = rustls_pki_types::ServerName::try_from(host.to_owned())?;
        let stream = tokio_rustls::TlsConnector::from(tls.roots.get().client_config())
            .connect(name, tcp)
            .await?;
        return redis_login(secret, stream).await;
    }
    if engine(secret)?.family() == Family::Postgres {
        let mut config = tokio_postgres::Config::new();
        config
            .host(field(secret, "host")?)
            .port(port(secret, 5432))
            .user(field(secret, "username")?)
            .password(field(secret, "password")?)
            .dbname(secret["dbname"].as_str().unwrap_or("postgres"))
            .connect_timeout(Duration::from_secs(5));
        let (client, task) = if use_tls {
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            let (client, connection) = config
                .connect(tokio_postgres_rustls::MakeRustlsConnect::new(
                    (*tls.roots.get().client_config()).clone(),
                ))
                .await?;
            (client, tokio::spawn(async move { drop(connection.await) }))
        } else {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
            (client, tokio::spawn(async move { drop(connection.await) }))
        };
        Ok(Session::Pg(client, task))
    } else {
        let opts = if use_tls {
            mysql_async::OptsBuilder::from_opts(tls.mysql())
        } else {
            mysql_async::OptsBuilder::default()
        };
        let opts = opts
            .ip_or_hostname(field(secret, "host")?)
            .tcp_port(port(secret, 3306))
            .user(Some(field(secret, "username")?))
            .pass(Some(field(secret, "password")?))
            .db_name(secret["dbname"].as_str())
            .prefer_socket(false);
        Ok(Session::My(mysql_async::Conn::new(opts).await?))
    }
}

async fn close(session: Session) {
    match session {
        Session::Pg(client, task) => {
            drop(client);
            let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
        }
        Session::My(conn) => {
            let _ = conn.disconnect().await;
        }
        Session::Redis(conn, driver) => {
            drop(conn);
            let _ = tokio::time::timeout(Duration::from_secs(1), driver).await;
        }
    }
}

/// Sets `user`'s password to `password`: its own (`own`, single user) or, as the master, another's.
async fn set_password(
    session: &mut Session,
    user: &str,
    password: &str,
    own: bool,
) -> Result<(), BoxError> {
    match session {
        Session::Pg(client, _) => {
            let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
            let sql = format!(
                "ALTER ROLE {} PASSWORD {}",
                escape_identifier(user),
                escape_literal(&verifier)
            );
            client.batch_execute(&sql).await?;
        }
        // MariaDB refuses `ALTER USER CURRENT_USER()` to unprivileged users, hence `SET PASSWORD`
        // for one's own. The bench's passwords are alphanumeric, so their literal is the same
        // whatever the session's `sql_mode`, and its accounts are at host `%`: the floor reads
        // neither, which the function does.
        Session::My(conn) => {
            if !password.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err("the floor writes alphanumeric passwords only".into());
            }
            let sql = if own {
                format!("SET PASSWORD = PASSWORD('{password}')")
            } else {
                format!("ALTER USER {} IDENTIFIED BY '{password}'", account(user))
            };
            conn.query_drop(sql).await?;
        }
        Session::Redis(..) => return Err("the bench rotates Redis with dual passwords".into()),
    }
    Ok(())
}

/// As the master, makes `user` accept `new` and `current` (dual passwords), in one statement.
async fn add_password(
    session: &mut Session,
    user: &str,
    new: &str,
    current: &str,
) -> Result<(), BoxError> {
    match session {
        Session::My(conn) => {
            let method = |password: &str| {
                format!(
                    "mysql_native_password USING '{}'",
                    native_password(password)
                )
            };
            let sql = format!(
                "ALTER USER {} IDENTIFIED VIA {} OR {}",
                account(user),
                method(new),
                method(current)
            );
            conn.query_drop(sql).await?;
        }
        Session::Redis(conn, _) => {
            let (new, current) = (redis_hash(new), redis_hash(current));
            redis::pipe()
                .cmd("ACL")
                .arg("SETUSER")
                .arg(user)
                .arg("resetpass")
                .arg(format!("#{new}"))
                .arg(format!("#{current}"))
                .ignore()
                .cmd("ACL")
                .arg("SAVE")
                .ignore()
                .exec_async(conn)
                .await?;
        }
        Session::Pg(..) => return Err("PostgreSQL has no dual passwords".into()),
    }
    Ok(())
}

fn new_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let index = Uniform::new(0, ALPHABET.len()).expect("a non-empty alphabet");
    (0..32)
        .map(|_| char::from(ALPHABET[index.sample(&mut rng)]))
        .collect()
}

fn parse(text: String) -> Result<Value, BoxError> {
    Ok(serde_json::from_str(&text)?)
}

static STEPS: [Step; 4] = [
    Step::CreateSecret,
    Step::SetSecret,
    Step::TestSecret,
    Step::FinishSecret,
];

/// setSecret's database work: log in with current, then as the master unless single user, and set
/// or add the pending password.
async fn set_secret(
    store: &SdkSecretStore,
    tls: &Tls,
    current: &Value,
    pending: &Value,
    strategy: Strategy,
    ctx: &StepContext<'_>,
) -> Result<(), BoxError> {
    let mut session = login(current, tls).await?;
    if strategy != Strategy::SingleUser {
        close(session).await;
        let masterarn = field(current, "masterarn")?;
        let mut master = parse(store.get(masterarn, Stage::Current, None, ctx).await?)?;
        master["dbname"] = current["dbname"].clone();
        session = login(&master, tls).await?;
    }
    let (user, password) = (field(pending, "username")?, field(pending, "password")?);
    let own = strategy == Strategy::SingleUser;
    let result = match strategy {
        Strategy::DualPassword => {
            add_password(&mut session, user, password, field(current, "password")?).await
        }
        _ => set_password(&mut session, user, password, own).await,
    };
    close(session).await;
    result?;
    Ok(())
}

/// One rotation; returns each step's wall time in milliseconds.
async fn rotate(
    store: &SdkSecretStore,
    config: &Config,
    tls: &Tls,
    id: &str,
    token: &str,
    strategy: Strategy,
) -> Result<Vec<(&'static str, f64)>, BoxError> {
    let alternating = strategy == Strategy::AlternatingUsers;
    let mut steps = Vec::new();
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1000.0;
    // The function's budget and retries, without an invocation deadline.
    let tally = CallTally::new();
    let at = |n: usize| StepContext {
        secret_id: id,
        step: &STEPS[n],
        deadline: Deadline::new(None, config.connect_timeout),
        tally: &tally,
    };

    // createSecret
    let t = Instant::now();
    let ctx = at(0);
    store.describe(id, &ctx).await?;
    let mut pending = parse(store.get(id, Stage::Current, None, &ctx).await?)?;
    let _ = store
        .get_if_exists(id, Stage::Pending, Some(token), &ctx)
        .await?;
    pending["password"] = json!(new_password());
    if alternating {
        let limit = engine(&pending)?.username_limit(config.mysql_username_limit);
        let clone = clone_name(field(&pending, "username")?, limit)
            .map_err(|limit| format!("the clone name would exceed {limit} characters"))?;
        pending["username"] = json!(clone);
    }
    store
        .put_pending(id, token, &pending.to_string(), None, &ctx)
        .await?;
    steps.push(("createSecret", ms(t)));

    // setSecret
    let t = Instant::now();
    let ctx = at(1);
    store.describe(id, &ctx).await?;
    let current = parse(store.get(id, Stage::Current, None, &ctx).await?)?;
    let pending = parse(store.get(id, Stage::Pending, Some(token), &ctx).await?)?;
    set_secret(store, tls, &current, &pending, strategy, &ctx).await?;
    steps.push(("setSecret", ms(t)));

    // testSecret
    let t = Instant::now();
    let ctx = at(2);
    store.describe(id, &ctx).await?;
    let pending = parse(store.get(id, Stage::Pending, Some(token), &ctx).await?)?;
    close(login(&pending, tls).await?).await;
    steps.push(("testSecret", ms(t)));

    // finishSecret
    let t = Instant::now();
    let ctx = at(3);
    let description = store.describe(id, &ctx).await?;
    let current = description
        .version_with(Stage::Current)
        .ok_or("no AWSCURRENT version")?;
    store.promote(id, token, current, &ctx).await?;
    steps.push(("finishSecret", ms(t)));
    Ok(steps)
}

fn main() -> Result<(), BoxError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (config, _) = Config::from_env(&Env::from_process())?;
    // As the function: the extra file checked now, the rest loaded on first use.
    let roots = LazyRoots::new(
        &config.tls_system_store,
        config.tls_extra_ca_file.as_deref(),
    )?;
    // mysql_async's rustls set-up needs a process-wide provider, as in the function.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let store = runtime.block_on(async {
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .http_client(roots.sdk_http_client())
            .load()
            .await;
        SdkSecretStore::new(&sdk, config.secrets_manager_endpoint.as_deref())
    });
    let tls = Tls {
        roots,
        mysql: OnceLock::new(),
    };
    println!("{}", json!({"ready_ns": unix_ns()}));

    for line in std::io::stdin().lock().lines() {
        let request: Value = serde_json::from_str(&line?)?;
        let id = field(&request, "secret_id")?;
        let token = field(&request, "token")?;
        let strategy = Strategy::parse(field(&request, "strategy")?)
            .ok_or("the request's strategy is unknown")?;
        let started_ns = unix_ns();
        let started = Instant::now();
        let answer = match runtime.block_on(rotate(&store, &config, &tls, id, token, strategy)) {
            Ok(steps) => json!({
                "ok": true,
                "started_ns": started_ns,
                "total_ms": started.elapsed().as_secs_f64() * 1000.0,
                "steps": steps
                    .into_iter()
                    .map(|(step, ms)| (step.to_owned(), json!(ms)))
                    .collect::<serde_json::Map<_, _>>(),
            }),
            Err(e) => json!({"ok": false, "error": e.to_string()}),
        };
        println!("{answer}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use db_secret_rotator::rotators::mysql::PasswordPlugin;
    use db_secret_rotator::rotators::redis::password_hash;

    use super::*;

    /// The floor writes the same values as the function, without calling its code.
    #[test]
    fn password_values_are_the_functions() {
        for password in ["", "x", "AbC123xyz", "0123456789abcdef0123456789abcdef"] {
            if !password.is_empty() {
                assert_eq!(
                    native_password(password),
                    PasswordPlugin::Native.stored_value(password)
                );
            }
            assert_eq!(redis_hash(password), password_hash(password));
        }
        assert_eq!(account("bench_my_su_floor"), "`bench_my_su_floor`@`%`");
    }
}
