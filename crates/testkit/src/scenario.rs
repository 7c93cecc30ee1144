//! A rotation under fault: one secret on a server behind a database proxy, driven by a function
//! behind a Secrets Manager proxy, and the state every completed rotation must reach. The server
//! is one of the SQL servers or Redis ([`Target`]).

use std::time::Duration;

use db_secret_rotator::Config;
use db_secret_rotator::protocol::Strategy;
use db_secret_rotator::rotators::Engines;
use serde_json::{Value, json};

use super::proxy::{SmProxy, TcpProxy};
use super::redis::{RedisUser, acl_hash, redis_admin_secret, redis_login, redis_secret};
use super::server::{Server, Table, TestUser};
use super::*;

/// The server a scenario rotates on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// PostgreSQL or MariaDB.
    Sql(Server),
    /// The stack's Redis (plaintext port, ACL file).
    Redis,
}

impl From<Server> for Target {
    fn from(server: Server) -> Self {
        Target::Sql(server)
    }
}

impl Target {
    /// The engine's name, for reports.
    pub fn name(self) -> &'static str {
        match self {
            Target::Sql(Server::Postgres) => "postgres",
            Target::Sql(Server::Mariadb) => "mariadb",
            Target::Redis => "redis",
        }
    }

    /// The stack's Redis; a Redis scenario runs only when the stack has one.
    fn redis(stack: &Stack) -> &RedisStack {
        stack
            .redis
            .as_ref()
            .expect("a Redis scenario needs the stack's Redis")
    }

    /// The server's address, plaintext (the proxy reads the statements it cuts around).
    fn address(self, stack: &Stack) -> (String, u16) {
        match self {
            Target::Sql(server) => server.address(stack),
            Target::Redis => {
                let redis = Self::redis(stack);
                (redis.host.clone(), redis.plain_port)
            }
        }
    }

    async fn create_user(self, stack: &Stack, name: &str, password: &str) -> ScenarioUser {
        match self {
            Target::Sql(server) => {
                ScenarioUser::Sql(stack.create_user(server, name, password).await)
            }
            Target::Redis => {
                let redis = Self::redis(stack);
                let rules = super::redis::APP_RULES;
                ScenarioUser::Redis(RedisUser::create(stack, redis, name, password, rules).await)
            }
        }
    }

    fn secret(self, stack: &Stack, name: &str, password: &str) -> Value {
        match self {
            Target::Sql(server) => stack.secret(server, name, password),
            Target::Redis => redis_secret(Self::redis(stack), name, password),
        }
    }

    fn master_secret(self, stack: &Stack) -> Value {
        match self {
            Target::Sql(server) => stack.master_secret(server),
            Target::Redis => redis_admin_secret(Self::redis(stack)),
        }
    }

    /// Logs in directly over verified TLS; `Err` carries the server's code.
    pub async fn login(self, stack: &Stack, name: &str, password: &str) -> Result<(), String> {
        match self {
            Target::Sql(server) => stack.login(server, name, password).await,
            Target::Redis => redis_login(stack, Self::redis(stack), name, password).await,
        }
    }

    /// The code of a rejected password.
    pub fn rejected(self) -> &'static str {
        match self {
            Target::Sql(server) => server.rejected(),
            Target::Redis => "WRONGPASS",
        }
    }
}

/// The scenario's user.
pub enum ScenarioUser {
    Sql(TestUser),
    Redis(RedisUser),
}

impl ScenarioUser {
    pub fn name(&self) -> &str {
        match self {
            ScenarioUser::Sql(user) => user.name(),
            ScenarioUser::Redis(user) => &user.name,
        }
    }
}

/// The four steps, in order.
pub const STEPS: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];
/// One secret on a server behind a database proxy, driven by a function behind a Secrets
/// Manager proxy.
pub struct Scenario {
    pub target: Target,
    pub strategy: Strategy,
    pub user: ScenarioUser,
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

/// The connect timeout of every step on which the scenario injects no silence: far beyond what a
/// healthy login costs on any machine the suite runs on, loaded or not. A slow machine makes the
/// suite slower, never a healthy login a timeout: only a server the scenario silences is meant
/// to meet a connect timeout, and it then sets [`SILENCE`] for that step.
pub const PATIENT: Duration = Duration::from_secs(30);

/// The connect timeout of a step whose server the scenario silences (the proxy accepts and never
/// answers, or delays every packet beyond it): the silence is certain, so the value only sets
/// how long the step waits for it.
pub const SILENCE: Duration = Duration::from_millis(1500);

/// The configuration of the function under fault: a [`PATIENT`] connect timeout. The proxy reads
/// the statements it cuts around, so the connections are plaintext, on loopback: Redis's `AUTH`
/// then needs `ALLOW_CLEARTEXT_PASSWORDS` (PostgreSQL's SCRAM and MariaDB's computed values do
/// not).
pub fn fault_config(stack: &Stack) -> Config {
    Config {
        tls_extra_ca_file: Some(stack.test_ca.clone()),
        connect_timeout: PATIENT,
        allow_cleartext_passwords: true,
        ..Config::default()
    }
}

impl Scenario {
    /// A user with its secret pointing at a fresh database proxy, its rotation staged.
    pub async fn new(
        stack: &Stack,
        target: impl Into<Target>,
        strategy: Strategy,
        prefix: &str,
    ) -> Self {
        let target = target.into();
        let name = unique(prefix);
        let password = fixture_password();
        let user = target.create_user(stack, &name, &password).await;
        let (host, port) = target.address(stack);
        let db = TcpProxy::start(&host, port).await;
        let client = sm_client().await;
        let mut secret = target.secret(stack, &name, &password);
        secret["host"] = json!("127.0.0.1");
        secret["port"] = json!(db.port.to_string());
        secret["ssl"] = json!(false);
        let (mut clone, mut table) = (None, None);
        if strategy != Strategy::SingleUser {
            let mut master = target.master_secret(stack);
            master["host"] = json!("127.0.0.1");
            master["port"] = json!(db.port);
            master["ssl"] = json!(false);
            let master_arn = create_secret(&client, &master).await;
            secret["masterarn"] = json!(master_arn);
            secret["rotation_strategy"] = json!(strategy.as_str());
        }
        if let (Strategy::AlternatingUsers, Target::Sql(server)) = (strategy, target) {
            clone = Some(format!("{name}_clone"));
            table = Some(stack.grant_table(server, &name).await);
        }
        let arn = create_secret(&client, &secret).await;
        let old_version = version_with(&client, &arn, "AWSCURRENT").await.unwrap();
        let token = token();
        start_rotation(&client, &arn, &token).await;
        let sm = SmProxy::start(stack).await;
        let config = fault_config(stack);
        let rotators = Engines::new(&config).expect("trust roots");
        // No invocation deadline: every wait of a healthy step is bounded by the patient
        // connect timeout or the function's own 30 s bounds, none by the machine's speed. A
        // test that is about the deadline sets one.
        let function = Function::with_endpoint(config, rotators, Some(&sm.url)).await;
        Scenario {
            target,
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

    /// The connect timeout of the function's next invocations.
    pub fn set_connect_timeout(&mut self, timeout: Duration) {
        self.function.app.config.connect_timeout = timeout;
    }

    /// Healthy again, as after a fault the test has cleared: no invocation deadline and the
    /// [`PATIENT`] connect timeout, for the same-token retry.
    pub fn heal(&mut self) {
        self.function.deadline = None;
        self.set_connect_timeout(PATIENT);
    }

    /// Drops the users (and the clone, and the table) this scenario created.
    pub async fn cleanup(self, stack: &Stack) {
        let user = match (self.target, self.user) {
            (Target::Sql(server), ScenarioUser::Sql(user)) => {
                if let Some(table) = self.table {
                    stack.drop_table(server, table).await;
                }
                if let Some(clone) = &self.clone {
                    stack.drop_user(server, clone).await;
                }
                user
            }
            (_, ScenarioUser::Redis(user)) => {
                return user.drop(stack, Target::redis(stack)).await;
            }
            (Target::Redis, ScenarioUser::Sql(_)) => unreachable!("a Redis scenario's user"),
        };
        user.drop(stack).await;
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
    pub async fn logs_in(&self, stack: &Stack, stage: &str) -> bool {
        match self.credential(stage).await {
            Some((user, password)) => self.target.login(stack, &user, &password).await.is_ok(),
            None => false,
        }
    }

    /// The state every completed rotation must reach; `Err` says what is wrong.
    pub async fn check_rotated(&self, stack: &Stack) -> Result<String, String> {
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
        self.target
            .login(stack, &user, &password)
            .await
            .map_err(|e| format!("the new credential does not log in: {e}"))?;
        match self.strategy {
            Strategy::SingleUser => {
                match self
                    .target
                    .login(stack, self.user.name(), &self.password)
                    .await
                {
                    Err(code) if code == self.target.rejected() => {}
                    other => return Err(format!("the old password is not rejected: {other:?}")),
                }
                Ok("rotated; old password rejected".into())
            }
            Strategy::AlternatingUsers => {
                let Target::Sql(server) = self.target else {
                    return Err("alternating users on Redis".into());
                };
                stack
                    .login(server, self.user.name(), &self.password)
                    .await
                    .map_err(|e| format!("AWSPREVIOUS no longer logs in: {e}"))?;
                if Some(&user) != self.clone.as_ref() {
                    return Err(format!("AWSCURRENT is {user}, not the clone"));
                }
                let table = self.table.as_ref().expect("a table");
                stack
                    .reads(server, table, &user, &password)
                    .await
                    .map_err(|e| format!("the clone lacks the original's privileges ({e})"))?;
                Ok("rotated; AWSPREVIOUS logs in; clone has the grants".into())
            }
            Strategy::DualPassword => {
                if user != self.user.name() {
                    return Err(format!("AWSCURRENT is {user}, not the same user"));
                }
                self.target
                    .login(stack, self.user.name(), &self.password)
                    .await
                    .map_err(|e| format!("AWSPREVIOUS no longer logs in: {e}"))?;
                if let ScenarioUser::Redis(redis_user) = &self.user {
                    // What logs in is also saved: a restart would not undo the rotation.
                    let saved = redis_user
                        .saved_line(Target::redis(stack))
                        .unwrap_or_default();
                    if !saved.contains(&acl_hash(&password)) {
                        return Err("the new password is not in the ACL file".into());
                    }
                }
                Ok("rotated; AWSPREVIOUS logs in too".into())
            }
        }
    }
}
