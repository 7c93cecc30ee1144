//! A rotation under fault: one secret on a server behind a database proxy, driven by a function
//! behind a Secrets Manager proxy, and the state every completed rotation must reach.

use std::time::Duration;

use db_secret_rotator::Config;
use db_secret_rotator::protocol::Strategy;
use db_secret_rotator::rotators::Rotators;
use serde_json::{Value, json};

use super::proxy::{SmProxy, TcpProxy};
use super::server::{Server, Table, TestUser};
use super::*;

/// The four steps, in order.
pub const STEPS: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];
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
pub fn fault_config(stack: &Stack) -> Config {
    Config {
        tls_extra_ca_file: Some(stack.test_ca.clone()),
        connect_timeout: Duration::from_millis(1500),
        ..Config::default()
    }
}

impl Scenario {
    /// A user with its secret pointing at a fresh database proxy, its rotation staged.
    pub async fn new(stack: &Stack, server: Server, strategy: Strategy, prefix: &str) -> Self {
        let name = unique(prefix);
        let password = fixture_password();
        let user = stack.create_user(server, &name, &password).await;
        let (host, port) = server.address(stack);
        let db = TcpProxy::start(&host, port).await;
        let client = sm_client().await;
        let mut secret = stack.secret(server, &name, &password);
        secret["host"] = json!("127.0.0.1");
        secret["port"] = json!(db.port.to_string());
        secret["ssl"] = json!(false);
        let (mut clone, mut table) = (None, None);
        if strategy == Strategy::AlternatingUsers {
            let mut master = stack.master_secret(server);
            master["host"] = json!("127.0.0.1");
            master["port"] = json!(db.port);
            master["ssl"] = json!(false);
            let master_arn = create_secret(&client, &master).await;
            secret["masterarn"] = json!(master_arn);
            secret["rotation_strategy"] = json!("alternating-users");
            clone = Some(format!("{name}_clone"));
            table = Some(stack.grant_table(server, &name).await);
        }
        let arn = create_secret(&client, &secret).await;
        let old_version = version_with(&client, &arn, "AWSCURRENT").await.unwrap();
        let token = token();
        start_rotation(&client, &arn, &token).await;
        let sm = SmProxy::start(stack).await;
        let config = fault_config(stack);
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
    pub async fn cleanup(self, stack: &Stack) {
        if let Some(table) = self.table {
            stack.drop_table(self.server, table).await;
        }
        if let Some(clone) = &self.clone {
            stack.drop_user(self.server, clone).await;
        }
        self.user.drop(stack).await;
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
            Some((user, password)) => stack.login(self.server, &user, &password).await.is_ok(),
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
        stack
            .login(self.server, &user, &password)
            .await
            .map_err(|e| format!("the new credential does not log in: {e}"))?;
        match self.strategy {
            Strategy::SingleUser => {
                match stack
                    .login(self.server, self.user.name(), &self.password)
                    .await
                {
                    Err(code) if code == self.server.rejected() => {}
                    other => return Err(format!("the old password is not rejected: {other:?}")),
                }
                Ok("rotated; old password rejected".into())
            }
            Strategy::AlternatingUsers => {
                stack
                    .login(self.server, self.user.name(), &self.password)
                    .await
                    .map_err(|e| format!("AWSPREVIOUS no longer logs in: {e}"))?;
                if Some(&user) != self.clone.as_ref() {
                    return Err(format!("AWSCURRENT is {user}, not the clone"));
                }
                let table = self.table.as_ref().expect("a table");
                stack
                    .reads(self.server, table, &user, &password)
                    .await
                    .map_err(|e| format!("the clone lacks the original's privileges ({e})"))?;
                Ok("rotated; AWSPREVIOUS logs in; clone has the grants".into())
            }
        }
    }
}
