//! Redis fixtures: direct logins (verified TLS with the test CA, or plaintext), the admin
//! connection, ACL users and their rules, the ACL file, and secrets on the stack's Redis.
//!
//! The fixtures speak to the server with the `redis` crate directly, over a stream they open
//! themselves, so that what they observe does not depend on the rotator under test.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisConnectionInfo, Value, cmd};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;

use super::{FIXTURE_TIMEOUT, RedisStack, Stack, register_password, trusting};

/// An open connection and the task driving it.
pub struct RedisConn {
    pub conn: MultiplexedConnection,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for RedisConn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Logs in as `user` over verified TLS (`tls`, trusting only the test CA) or plaintext; `Err`
/// carries the server's error code (`WRONGPASS`) or the transport error.
pub async fn redis_connect(
    stack: &Stack,
    redis: &RedisStack,
    user: &str,
    password: &str,
    tls: bool,
) -> Result<RedisConn, String> {
    let port = if tls { redis.port } else { redis.plain_port };
    let info = RedisConnectionInfo::default()
        .set_username(user)
        .set_password(password)
        .set_skip_set_lib_name();
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(None)
        .set_response_timeout(Some(FIXTURE_TIMEOUT));
    let login = async {
        let tcp = TcpStream::connect((redis.host.as_str(), port))
            .await
            .map_err(|e| e.to_string())?;
        if !tls {
            return handshake(&info, tcp, config).await;
        }
        let connector = tokio_rustls::TlsConnector::from(trusting(&stack.test_ca).client_config());
        let name = rustls_pki_types::ServerName::try_from(redis.host.clone()).unwrap();
        let stream = connector
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        handshake(&info, stream, config).await
    };
    tokio::time::timeout(FIXTURE_TIMEOUT, login)
        .await
        .unwrap_or_else(|_| panic!("login as {user} timed out"))
}

/// `AUTH` over `stream`; `Err` is `WRONGPASS` for a refused login, else the error's code or
/// text.
async fn handshake<S>(
    info: &RedisConnectionInfo,
    stream: S,
    config: AsyncConnectionConfig,
) -> Result<RedisConn, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (conn, driver) = MultiplexedConnection::new_with_config(info, stream, config)
        .await
        .map_err(|e| match e.kind() {
            redis::ErrorKind::AuthenticationFailed => "WRONGPASS".to_owned(),
            _ => e.code().map_or_else(|| e.to_string(), str::to_owned),
        })?;
    let driver = tokio::spawn(driver);
    Ok(RedisConn { conn, driver })
}

/// Logs in as `user` over verified TLS and sends `PING`.
pub async fn redis_login(
    stack: &Stack,
    redis: &RedisStack,
    user: &str,
    password: &str,
) -> Result<(), String> {
    let mut session = redis_connect(stack, redis, user, password, true).await?;
    let pong: String = cmd("PING")
        .query_async(&mut session.conn)
        .await
        .map_err(|e| e.to_string())?;
    assert_eq!(pong, "PONG");
    Ok(())
}

/// The admin connection (verified TLS).
pub async fn redis_admin(stack: &Stack, redis: &RedisStack) -> RedisConn {
    redis_connect(stack, redis, &redis.admin_user, &redis.admin_password, true)
        .await
        .expect("admin login")
}

/// Runs `ACL <args>` as the admin.
pub async fn acl(stack: &Stack, redis: &RedisStack, args: &[&str]) -> Value {
    let mut admin = redis_admin(stack, redis).await;
    cmd("ACL")
        .arg(args)
        .query_async(&mut admin.conn)
        .await
        .unwrap_or_else(|e| panic!("ACL {}: {e}", args.first().unwrap_or(&"")))
}

/// SHA-256 hex of a password, as ACL users store it.
pub fn acl_hash(password: &str) -> String {
    Sha256::digest(password.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An ACL user, deleted by [`RedisUser::drop`].
pub struct RedisUser {
    pub name: String,
}

/// Rules a test user gets: its own keys, one channel, a few commands, and a selector.
pub const APP_RULES: &[&str] = &[
    "~app:*",
    "&events",
    "-@all",
    "+get",
    "+set",
    "+ping",
    "(~cache:* +get)",
];

impl RedisUser {
    /// Creates the enabled user `name` with `password` and `rules`, replacing one left behind.
    pub async fn create(
        stack: &Stack,
        redis: &RedisStack,
        name: &str,
        password: &str,
        rules: &[&str],
    ) -> Self {
        register_password(password);
        let hash = format!("#{}", acl_hash(password));
        let mut args = vec!["SETUSER", name, "reset", "on", hash.as_str()];
        args.extend_from_slice(rules);
        acl(stack, redis, &args).await;
        RedisUser {
            name: name.to_owned(),
        }
    }

    /// `ACL GETUSER` without the passwords: unchanged means no rule but the passwords changed.
    pub async fn rules(&self, stack: &Stack, redis: &RedisStack) -> Vec<(String, String)> {
        self.fields(stack, redis)
            .await
            .into_iter()
            .filter(|(key, _)| key != "passwords")
            .collect()
    }

    /// The password hashes the user has.
    pub async fn hashes(&self, stack: &Stack, redis: &RedisStack) -> Vec<String> {
        let fields = self.fields(stack, redis).await;
        let (_, passwords) = fields.iter().find(|(key, _)| key == "passwords").unwrap();
        let mut hashes: Vec<String> = passwords
            .split(',')
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect();
        hashes.sort();
        hashes
    }

    async fn fields(&self, stack: &Stack, redis: &RedisStack) -> Vec<(String, String)> {
        let answer = acl(stack, redis, &["GETUSER", &self.name]).await;
        let Value::Array(items) = answer else {
            panic!("ACL GETUSER {}: no such user", self.name)
        };
        items
            .chunks_exact(2)
            .map(|pair| (text(&pair[0]), text(&pair[1])))
            .collect()
    }

    /// The user's line in the ACL file (`user <name> on #… ~…`), if it was saved there.
    pub fn saved_line(&self, redis: &RedisStack) -> Option<String> {
        let file = std::fs::read_to_string(&redis.acl_file).expect("the ACL file");
        let prefix = format!("user {} ", self.name);
        file.lines()
            .find(|line| line.starts_with(&prefix))
            .map(str::to_owned)
    }

    pub async fn drop(self, stack: &Stack, redis: &RedisStack) {
        acl(stack, redis, &["DELUSER", &self.name]).await;
    }
}

/// A value as text; arrays joined with commas (selectors as their debug form).
fn text(value: &Value) -> String {
    match value {
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        other => format!("{other:?}"),
    }
}

/// A secret for `user` on the stack's Redis (TLS port, `ssl` true), with a key the function must
/// keep verbatim.
pub fn redis_secret(redis: &RedisStack, user: &str, password: &str) -> Json {
    json!({
        "engine": "redis",
        "host": redis.host,
        "port": redis.port,
        "username": user,
        "password": password,
        "ssl": true,
        "note": "kept verbatim",
    })
}

/// The admin's secret, the master of dual-password rotations.
pub fn redis_admin_secret(redis: &RedisStack) -> Json {
    redis_secret(redis, &redis.admin_user, &redis.admin_password)
}

/// A `redis-server` of the test's own, on a free loopback port, plaintext, with the admin
/// `dsr_admin` and the default user off: users in an ACL file under its directory, or (without
/// one) in its configuration. Stopped and removed when dropped.
pub struct SpawnedRedis {
    pub port: u16,
    pub admin_password: String,
    /// The directory holding the ACL file, when there is one.
    pub acl_dir: Option<PathBuf>,
    dir: PathBuf,
    child: Child,
}

impl SpawnedRedis {
    pub async fn start(with_acl_file: bool) -> Self {
        let dir = super::paths::tmp().join(super::unique("redis"));
        std::fs::create_dir_all(&dir).unwrap();
        let admin_password = super::fixture_password();
        let admin = format!("dsr_admin on #{} ~* &* +@all", acl_hash(&admin_password));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        // Users in an ACL file, or in the configuration file (the server's first argument).
        let users = format!("user default off\nuser {admin}\n");
        let conf = dir.join("redis.conf");
        let acl_dir = with_acl_file.then(|| dir.join("acl"));
        match &acl_dir {
            Some(acl_dir) => {
                std::fs::create_dir_all(acl_dir).unwrap();
                std::fs::write(acl_dir.join("users.acl"), users).unwrap();
                let file = acl_dir.join("users.acl");
                std::fs::write(&conf, format!("aclfile {}\n", file.display())).unwrap();
            }
            None => std::fs::write(&conf, users).unwrap(),
        }
        let mut command = Command::new("redis-server");
        command
            .arg(&conf)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(std::fs::File::create(dir.join("stdout.log")).unwrap())
            .stderr(std::process::Stdio::null());
        let child = command
            .spawn()
            .expect("redis-server (scripts/stack.sh up installs it)");
        let server = SpawnedRedis {
            port,
            admin_password,
            acl_dir,
            dir,
            child,
        };
        for _ in 0..200 {
            if server.admin().await.is_ok() {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server did not start on port {port}");
    }

    /// The admin connection.
    pub async fn admin(&self) -> Result<RedisConn, String> {
        self.connect("dsr_admin", &self.admin_password).await
    }

    /// Logs in over plaintext; `Err` carries the code.
    pub async fn connect(&self, user: &str, password: &str) -> Result<RedisConn, String> {
        let info = RedisConnectionInfo::default()
            .set_username(user)
            .set_password(password)
            .set_skip_set_lib_name();
        let tcp = TcpStream::connect(("127.0.0.1", self.port))
            .await
            .map_err(|e| e.to_string())?;
        handshake(&info, tcp, AsyncConnectionConfig::new()).await
    }

    /// Creates the enabled user `name` with `password`, allowed `PING` only.
    pub async fn create_user(&self, name: &str, password: &str) {
        register_password(password);
        let mut admin = self.admin().await.unwrap();
        let hash = format!("#{}", acl_hash(password));
        let _: () = cmd("ACL")
            .arg(&["SETUSER", name, "on", hash.as_str(), "+ping"])
            .query_async(&mut admin.conn)
            .await
            .unwrap();
    }

    /// A secret for `user` on this server.
    pub fn secret(&self, user: &str, password: &str) -> Json {
        json!({
            "engine": "redis",
            "host": "127.0.0.1",
            "port": self.port,
            "username": user,
            "password": password,
            "ssl": false,
        })
    }
}

impl Drop for SpawnedRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
