//! Shared fixtures: the stack's addresses (read once from the environment), an SDK client for the
//! emulator, database admin helpers, a log capture, and the password registry of the leak check.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_secretsmanager::Client;
use db_secret_rotator::credentials::Password;
use db_secret_rotator::deadline::Deadline;
use db_secret_rotator::engine::Family;
use db_secret_rotator::handler;
use db_secret_rotator::protocol::Stage;
use db_secret_rotator::rotators::Rotators;
use db_secret_rotator::secrets::{SdkSecretStore, SecretDescription, SecretStore};
use db_secret_rotator::tls::TlsRoots;
use db_secret_rotator::{Config, Error};
use postgres_protocol::escape::{escape_identifier, escape_literal};
use serde_json::{Value, json};

/// Addresses and admin credentials of the local stack (`scripts/stack.sh env`).
#[derive(Debug)]
pub struct Stack {
    pub pg_host: String,
    pub pg_port: u16,
    pub pg_plain_port: u16,
    pub pg_admin_user: String,
    pub pg_admin_password: String,
    pub test_ca: PathBuf,
    pub other_ca: PathBuf,
}

static STACK: OnceLock<Option<Stack>> = OnceLock::new();

fn read_stack() -> Result<Stack, String> {
    let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let port = |name: &str| -> Result<u16, String> {
        var(name)?
            .parse()
            .map_err(|_| format!("{name} is not a port"))
    };
    var("AWS_ENDPOINT_URL_SECRETS_MANAGER")?;
    Ok(Stack {
        pg_host: var("DSR_PG_HOST")?,
        pg_port: port("DSR_PG_PORT")?,
        pg_plain_port: port("DSR_PG_PLAIN_PORT")?,
        pg_admin_user: var("DSR_PG_ADMIN_USER")?,
        pg_admin_password: var("DSR_PG_ADMIN_PASSWORD")?,
        test_ca: var("DSR_TEST_CA")?.into(),
        other_ca: var("DSR_OTHER_CA")?.into(),
    })
}

/// The stack, or `None` (test skipped) when its environment is missing. Under `CI=true` a missing
/// stack fails the run: a green CI that ran no database test is worse than a red one.
#[allow(clippy::print_stderr, reason = "a skipped test says why")]
pub fn stack() -> Option<&'static Stack> {
    STACK
        .get_or_init(|| match read_stack() {
            Ok(stack) => Some(stack),
            Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("CI=true but the local stack is missing ({why}); run scripts/test.sh")
            }
            Err(why) => {
                eprintln!("skipping integration tests: {why} (eval \"$(scripts/stack.sh env)\")");
                None
            }
        })
        .as_ref()
}

/// Returns from the test when the stack is missing (outside CI).
macro_rules! require_stack {
    () => {
        match $crate::support::stack() {
            Some(stack) => stack,
            None => return,
        }
    };
}
pub(crate) use require_stack;

/// A name no other test (or earlier run) uses: prefix, process id and a counter.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh version token (the service sends a UUID).
pub fn token() -> String {
    let n: u128 = rand::random();
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

// ---------------------------------------------------------------------------------------------
// Logs

/// Every log line of the test binary, at every level, as JSON: leak checks scan it.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static CAPTURE: OnceLock<Capture> = OnceLock::new();

/// Installs the capturing subscriber (once) before any handler code runs.
pub fn capture_logs() {
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .json()
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        capture
    });
}

/// Everything logged so far by any test.
pub fn logs() -> String {
    capture_logs();
    let capture = CAPTURE.get().expect("installed");
    String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Leak check: every password a test creates or reads is registered; logs and errors are scanned

/// Passwords shorter than this are not registered: they would match ordinary log text.
const MIN_REGISTERED: usize = 8;

#[derive(Default)]
struct Registry {
    passwords: std::collections::BTreeSet<String>,
    /// How far the log capture has been scanned.
    scanned: usize,
    /// The matcher over `passwords` (raw and JSON-escaped), rebuilt after a registration.
    matcher: Option<Arc<(aho_corasick::AhoCorasick, Vec<String>)>>,
}

static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();

fn registry() -> &'static Mutex<Registry> {
    REGISTRY.get_or_init(|| {
        let mut registry = Registry::default();
        for var in ["DSR_PG_ADMIN_PASSWORD", "DSR_MARIADB_ADMIN_PASSWORD"] {
            if let Ok(password) = std::env::var(var) {
                if password.len() >= MIN_REGISTERED {
                    registry.passwords.insert(password);
                }
            }
        }
        Mutex::new(registry)
    })
}

/// Registers a password the leak check must never find in a log line or an error.
pub fn register_password(password: &str) {
    if password.len() >= MIN_REGISTERED {
        let mut registry = registry().lock().unwrap();
        if registry.passwords.insert(password.to_owned()) {
            registry.matcher = None;
        }
    }
}

/// Registers the `password` of a secret's JSON text, if it has one.
pub fn register_secret(text: &str) {
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        if let Some(password) = value.get("password").and_then(Value::as_str) {
            register_password(password);
        }
    }
}

/// The registered passwords found in `text`, raw or JSON-escaped (log lines are JSON).
pub fn registered_passwords_in(text: &str) -> Vec<String> {
    let shared = {
        let mut registry = registry().lock().unwrap();
        if registry.matcher.is_none() {
            let passwords: Vec<String> = registry.passwords.iter().cloned().collect();
            let mut patterns = Vec::with_capacity(passwords.len() * 2);
            for password in &passwords {
                patterns.push(password.clone());
                let escaped = serde_json::to_string(password).unwrap();
                patterns.push(escaped[1..escaped.len() - 1].to_owned());
            }
            let matcher = aho_corasick::AhoCorasick::new(&patterns).unwrap();
            registry.matcher = Some(Arc::new((matcher, passwords)));
        }
        registry.matcher.clone().expect("built")
    };
    let (matcher, passwords) = &*shared;
    let mut found: Vec<String> = matcher
        .find_overlapping_iter(text)
        .map(|m| passwords[m.pattern().as_usize() / 2].clone())
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Panics when `text` contains a registered password; `what` says where it came from. The
/// message shows the offending line with the password masked.
pub fn assert_no_password_in(text: &str, what: &str) {
    let found = registered_passwords_in(text);
    if let Some(password) = found.first() {
        let escaped = serde_json::to_string(password).unwrap();
        let escaped = &escaped[1..escaped.len() - 1];
        let line = text
            .lines()
            .find(|l| l.contains(password.as_str()) || l.contains(escaped))
            .unwrap_or("");
        panic!(
            "leak check: {} registered password(s) found in {what}, e.g. in: {}",
            found.len(),
            line.replace(password.as_str(), "<PASSWORD>")
                .replace(escaped, "<PASSWORD>")
        );
    }
}

/// Scans the log lines captured since the last scan (any test's) and `error`, if any.
pub fn check_leaks(error: Option<&Error>) {
    capture_logs();
    let fresh = {
        let capture = CAPTURE.get().expect("installed").0.lock().unwrap();
        let mut registry = registry().lock().unwrap();
        // Start a little early, for a password split across two scans.
        let mut start = registry.scanned.saturating_sub(512).min(capture.len());
        while start > 0 && (capture[start] & 0xC0) == 0x80 {
            start -= 1;
        }
        registry.scanned = capture.len();
        String::from_utf8_lossy(&capture[start..]).into_owned()
    };
    assert_no_password_in(&fresh, "the captured logs");
    if let Some(error) = error {
        // The Lambda Diagnostic is the errorType plus this Display text.
        let shown = format!("{error} {error:?}");
        assert_no_password_in(&shown, "a returned error");
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets Manager (the emulator)

/// An SDK client for the emulator, configured from the environment like the function's.
pub async fn sm_client() -> Client {
    let config = aws_config::load_defaults(BehaviorVersion::latest()).await;
    Client::new(&config)
}

/// Creates a secret and returns its ARN.
pub async fn create_secret(client: &Client, value: &Value) -> String {
    if let Some(password) = value.get("password").and_then(Value::as_str) {
        register_password(password);
    }
    let name = unique("dsr-test/secret");
    client
        .create_secret()
        .name(name)
        .secret_string(value.to_string())
        .send()
        .await
        .expect("CreateSecret")
        .arn
        .expect("ARN")
}

/// Stages `token` the way the service does before `createSecret`: `RotateSecret` creates an empty
/// `AWSPENDING` version (the emulator then fails to invoke the unknown function, which is expected).
pub async fn start_rotation(client: &Client, arn: &str, token: &str) {
    // After a finished rotation the service clears the AWSPENDING label left on the new current
    // version; a new rotation is refused while it lingers.
    for (version, stages) in labels(client, arn).await {
        if stages.iter().any(|s| s == "AWSPENDING") && stages.iter().any(|s| s == "AWSCURRENT") {
            client
                .update_secret_version_stage()
                .secret_id(arn)
                .version_stage("AWSPENDING")
                .remove_from_version_id(version)
                .send()
                .await
                .expect("clearing AWSPENDING");
        }
    }
    let _ = client
        .rotate_secret()
        .secret_id(arn)
        .client_request_token(token)
        .rotation_lambda_arn("arn:aws:lambda:us-east-1:123456789012:function:db-secret-rotator")
        .rotation_rules(
            aws_sdk_secretsmanager::types::RotationRulesType::builder()
                .automatically_after_days(30)
                .build(),
        )
        .send()
        .await;
    let stages = labels(client, arn).await;
    assert_eq!(
        stages.get(token).map(Vec::as_slice),
        Some(&["AWSPENDING".to_owned()][..]),
        "the emulator did not stage the token AWSPENDING"
    );
}

/// `VersionIdsToStages`, stages sorted.
pub async fn labels(client: &Client, arn: &str) -> BTreeMap<String, Vec<String>> {
    let out = client
        .describe_secret()
        .secret_id(arn)
        .send()
        .await
        .expect("DescribeSecret");
    out.version_ids_to_stages()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let mut v = v.clone();
                    v.sort();
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The version holding `stage`.
pub async fn version_with(client: &Client, arn: &str, stage: &str) -> Option<String> {
    labels(client, arn)
        .await
        .into_iter()
        .find(|(_, stages)| stages.iter().any(|s| s == stage))
        .map(|(v, _)| v)
}

/// The raw value at `stage` (the stage is always named: see PROTOCOL.md section 7).
pub async fn raw_value(client: &Client, arn: &str, stage: &str) -> String {
    let text = client
        .get_secret_value()
        .secret_id(arn)
        .version_stage(stage)
        .send()
        .await
        .expect("GetSecretValue")
        .secret_string
        .expect("SecretString");
    register_secret(&text);
    text
}

/// The parsed value at `stage`.
pub async fn value(client: &Client, arn: &str, stage: &str) -> Value {
    serde_json::from_str(&raw_value(client, arn, stage).await).expect("JSON")
}

/// Every version's id, stages and value: equal snapshots mean nothing was written.
pub async fn snapshot(
    client: &Client,
    arn: &str,
) -> BTreeMap<String, (Vec<String>, Option<String>)> {
    let mut out = BTreeMap::new();
    let versions = client
        .list_secret_version_ids()
        .secret_id(arn)
        .include_deprecated(true)
        .send()
        .await
        .expect("ListSecretVersionIds");
    for v in versions.versions() {
        let id = v.version_id().expect("id").to_owned();
        let mut stages = v.version_stages().to_vec();
        stages.sort();
        let value = client
            .get_secret_value()
            .secret_id(arn)
            .version_id(&id)
            .send()
            .await
            .ok()
            .and_then(|o| o.secret_string);
        if let Some(text) = &value {
            register_secret(text);
        }
        out.insert(id, (stages, value));
    }
    out
}

/// A [`SecretStore`] that counts calls per operation.
#[derive(Debug)]
pub struct CountingStore<S> {
    inner: S,
    pub calls: Mutex<BTreeMap<&'static str, usize>>,
}

impl<S> CountingStore<S> {
    pub fn new(inner: S) -> Self {
        CountingStore {
            inner,
            calls: Mutex::new(BTreeMap::new()),
        }
    }
    fn count(&self, op: &'static str) {
        *self.calls.lock().unwrap().entry(op).or_default() += 1;
    }
    pub fn total(&self) -> usize {
        self.calls.lock().unwrap().values().sum()
    }
    pub fn writes(&self) -> usize {
        let calls = self.calls.lock().unwrap();
        calls.get("PutSecretValue").copied().unwrap_or(0)
            + calls.get("UpdateSecretVersionStage").copied().unwrap_or(0)
    }
}

impl<S: SecretStore> SecretStore for CountingStore<S> {
    async fn describe(&self, id: &str) -> Result<SecretDescription, Error> {
        self.count("DescribeSecret");
        self.inner.describe(id).await
    }
    async fn get(
        &self,
        id: &str,
        stage: Stage,
        version: Option<&str>,
    ) -> Result<Option<String>, Error> {
        self.count("GetSecretValue");
        self.inner.get(id, stage, version).await
    }
    async fn put_pending(
        &self,
        id: &str,
        token: &str,
        value: &str,
        rt: Option<&str>,
    ) -> Result<(), Error> {
        self.count("PutSecretValue");
        self.inner.put_pending(id, token, value, rt).await
    }
    async fn promote(&self, id: &str, token: &str, from: &str) -> Result<(), Error> {
        self.count("UpdateSecretVersionStage");
        self.inner.promote(id, token, from).await
    }
}

// ---------------------------------------------------------------------------------------------
// The function

/// The function as Secrets Manager drives it: store, rotators and configuration.
pub struct Function {
    pub store: CountingStore<SdkSecretStore>,
    pub rotators: Rotators,
    pub config: Config,
    /// Overrides the policy when set (passwords with characters that need escaping).
    pub password: Option<Box<dyn Fn(Family) -> Password>>,
    /// Invocation time budget (`None`: no Lambda deadline).
    pub deadline: Option<Duration>,
    /// How long the handler itself took in the last invocation (the leak check excluded).
    pub handler_time: std::cell::Cell<Duration>,
}

impl Function {
    /// The function trusting the stack's test CA (plus system and RDS roots), default settings.
    pub async fn new(stack: &Stack) -> Self {
        Self::with_config(
            stack,
            Config {
                tls_extra_ca_file: Some(stack.test_ca.clone()),
                ..Config::default()
            },
        )
        .await
    }

    /// The function with a given configuration; its trust roots follow `tls_extra_ca_file`.
    pub async fn with_config(_stack: &Stack, config: Config) -> Self {
        capture_logs();
        let rotators = Rotators::new(&config).expect("trust roots");
        Self::with_rotators(config, rotators).await
    }

    /// The function trusting exactly the CA bundle at `ca` (no system or RDS roots).
    pub async fn trusting_only(ca: &std::path::Path, config: Config) -> Self {
        capture_logs();
        let roots = TlsRoots::from_pem(&std::fs::read(ca).expect("CA file")).expect("CA");
        let rotators = Rotators::with_roots(&roots, &config);
        Self::with_rotators(config, rotators).await
    }

    async fn with_rotators(config: Config, rotators: Rotators) -> Self {
        Self::with_endpoint(config, rotators, None).await
    }

    /// The function with an explicit Secrets Manager endpoint (a fault proxy), as
    /// `SECRETS_MANAGER_ENDPOINT` gives it.
    pub async fn with_endpoint(config: Config, rotators: Rotators, endpoint: Option<&str>) -> Self {
        capture_logs();
        let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
        Function {
            store: CountingStore::new(SdkSecretStore::new(&sdk, endpoint)),
            rotators,
            config,
            password: None,
            deadline: None,
            handler_time: std::cell::Cell::new(Duration::ZERO),
        }
    }

    /// Invokes one step with a rotation event.
    pub async fn invoke(&self, step: &str, arn: &str, token: &str) -> Result<(), Error> {
        let payload = json!({
            "Step": step,
            "SecretId": arn,
            "ClientRequestToken": token,
            "RotationToken": "it-rotation-token",
        });
        self.invoke_payload(&payload).await
    }

    /// Invokes the handler with any payload. Afterwards the leak check scans the log lines
    /// captured since its last scan and the returned error for every registered password.
    pub async fn invoke_payload(&self, payload: &Value) -> Result<(), Error> {
        let deadline = Deadline::new(
            self.deadline.map(|d| std::time::Instant::now() + d),
            self.config.connect_timeout,
        );
        let policy = |family: Family| {
            let password = match &self.password {
                Some(f) => f(family),
                None => self
                    .config
                    .password_policy
                    .generate(family, &mut rand::rng()),
            };
            register_password(password.expose());
            password
        };
        let started = std::time::Instant::now();
        let result = handler::run(
            payload,
            deadline,
            &self.store,
            &self.rotators,
            &self.config,
            &policy,
        )
        .await;
        self.handler_time.set(started.elapsed());
        check_leaks(result.as_ref().err());
        result
    }

    /// Runs the four steps in order.
    pub async fn rotate(&self, arn: &str, token: &str) -> Result<(), Error> {
        for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
            self.invoke(step, arn, token).await?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/// A rustls client config trusting only the stack's test CA, for direct logins in assertions.
fn test_tls(stack: &Stack) -> tokio_postgres_rustls::MakeRustlsConnect {
    let roots = TlsRoots::from_pem(&std::fs::read(&stack.test_ca).expect("CA")).expect("CA");
    tokio_postgres_rustls::MakeRustlsConnect::new((*roots.client_config()).clone())
}

/// Logs in directly (verified TLS on the TLS port, plaintext on the plain port) and runs a query.
/// `Err` carries the SQLSTATE, or the driver's description when there is none.
pub async fn pg_login(stack: &Stack, port: u16, user: &str, password: &str) -> Result<(), String> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&stack.pg_host)
        .port(port)
        .user(user)
        .password(password)
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(5));
    let client = if port == stack.pg_plain_port {
        let (client, conn) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(pg_code)?;
        tokio::spawn(conn);
        client
    } else {
        config.ssl_mode(tokio_postgres::config::SslMode::Require);
        let (client, conn) = config.connect(test_tls(stack)).await.map_err(pg_code)?;
        tokio::spawn(conn);
        client
    };
    client.simple_query("SELECT 1").await.map_err(pg_code)?;
    Ok(())
}

fn pg_code(e: tokio_postgres::Error) -> String {
    match e.code() {
        Some(code) => code.code().to_owned(),
        None => e.to_string(),
    }
}

/// A session on cluster A (verified TLS) as `user`.
pub async fn pg_client(stack: &Stack, user: &str, password: &str) -> tokio_postgres::Client {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&stack.pg_host)
        .port(stack.pg_port)
        .user(user)
        .password(password)
        .dbname("postgres")
        .ssl_mode(tokio_postgres::config::SslMode::Require);
    let (client, conn) = config.connect(test_tls(stack)).await.expect("login");
    tokio::spawn(conn);
    client
}

/// The admin session on the cluster at `port`.
pub async fn pg_admin(stack: &Stack, port: u16) -> tokio_postgres::Client {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&stack.pg_host)
        .port(port)
        .user(&stack.pg_admin_user)
        .password(&stack.pg_admin_password)
        .dbname("postgres");
    if port == stack.pg_plain_port {
        let (client, conn) = config
            .connect(tokio_postgres::NoTls)
            .await
            .expect("admin login");
        tokio::spawn(conn);
        client
    } else {
        config.ssl_mode(tokio_postgres::config::SslMode::Require);
        let (client, conn) = config.connect(test_tls(stack)).await.expect("admin login");
        tokio::spawn(conn);
        client
    }
}

/// A login role with a password, dropped by [`PgUser::drop`].
pub struct PgUser {
    pub name: String,
    pub port: u16,
}

impl PgUser {
    /// Creates `name` (any characters) with `password` on the cluster at `port`.
    pub async fn create(stack: &Stack, port: u16, name: &str, password: &str) -> Self {
        pg_admin(stack, port)
            .await
            .batch_execute(&format!(
                "CREATE ROLE {} LOGIN PASSWORD {}",
                escape_identifier(name),
                escape_literal(password)
            ))
            .await
            .expect("CREATE ROLE");
        PgUser {
            name: name.to_owned(),
            port,
        }
    }

    /// Sets the password behind the function's back.
    pub async fn set_password(&self, stack: &Stack, password: &str) {
        pg_admin(stack, self.port)
            .await
            .batch_execute(&format!(
                "ALTER ROLE {} PASSWORD {}",
                escape_identifier(&self.name),
                escape_literal(password)
            ))
            .await
            .expect("ALTER ROLE");
    }

    /// The stored verifier: unchanged means no password statement ran.
    pub async fn verifier(&self, stack: &Stack) -> String {
        pg_admin(stack, self.port)
            .await
            .query_one(
                "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
                &[&self.name],
            )
            .await
            .expect("pg_authid")
            .get(0)
    }

    pub async fn drop(self, stack: &Stack) {
        let _ = pg_admin(stack, self.port)
            .await
            .batch_execute(&format!(
                "DROP ROLE IF EXISTS {}",
                escape_identifier(&self.name)
            ))
            .await;
    }
}

/// A secret JSON for `user` on the TLS cluster, with keys the function must keep verbatim.
pub fn pg_secret(stack: &Stack, port: u16, user: &str, password: &str) -> Value {
    json!({
        "engine": "postgres",
        "host": stack.pg_host,
        "port": port.to_string(),
        "username": user,
        "password": password,
        "dbname": "postgres",
        "note": "kept verbatim",
        "nested": {"list": [1, "two", null], "flag": true},
    })
}

/// A random password for fixtures.
pub fn fixture_password() -> String {
    let password = format!("Fx-{:016x}-'\\", rand::random::<u64>());
    register_password(&password);
    password
}
