//! The Secrets Manager emulator, driven directly: secrets, staged rotations, labels, values and
//! snapshots, plus a [`SecretStore`] that counts the function's calls.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use aws_config::BehaviorVersion;
use aws_sdk_secretsmanager::Client;
use db_secret_rotator::Error;
use db_secret_rotator::deadline::StepContext;
use db_secret_rotator::protocol::Stage;
use db_secret_rotator::secrets::{SecretDescription, SecretInfo, SecretInventory, SecretStore};
use serde_json::Value;

use super::{register_password, register_secret, unique};

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
    start_rotation_by(
        client,
        arn,
        token,
        "arn:aws:lambda:us-east-1:123456789012:function:db-secret-rotator",
    )
    .await;
}

/// Writes `value` as the `AWSPENDING` version `token` by hand, as a hostile or mistaken writer
/// could between the steps.
pub async fn put_pending(client: &Client, arn: &str, token: &str, value: &str) {
    client
        .put_secret_value()
        .secret_id(arn)
        .client_request_token(token)
        .secret_string(value)
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
}

/// [`start_rotation`], with `function` as the secret's rotation function.
pub async fn start_rotation_by(client: &Client, arn: &str, token: &str, function: &str) {
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
        .rotation_lambda_arn(function)
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

/// The raw value at `stage` (the stage is always named: see docs/protocol.md section 7).
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

/// The `password` of the `AWSPENDING` version under `token`, read directly.
pub async fn pending_password(client: &Client, arn: &str, token: &str) -> String {
    let text = client
        .get_secret_value()
        .secret_id(arn)
        .version_id(token)
        .version_stage("AWSPENDING")
        .send()
        .await
        .expect("GetSecretValue AWSPENDING")
        .secret_string
        .expect("SecretString");
    register_secret(&text);
    let value: Value = serde_json::from_str(&text).expect("JSON");
    value["password"].as_str().expect("a password").to_owned()
}

/// The `password` of the `AWSCURRENT` version.
pub async fn current_password(client: &Client, arn: &str) -> String {
    value(client, arn, "AWSCURRENT").await["password"]
        .as_str()
        .expect("a password")
        .to_owned()
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
    async fn describe(&self, id: &str, ctx: &StepContext<'_>) -> Result<SecretDescription, Error> {
        self.count("DescribeSecret");
        self.inner.describe(id, ctx).await
    }
    async fn get(
        &self,
        id: &str,
        stage: Stage,
        version: Option<&str>,
        ctx: &StepContext<'_>,
    ) -> Result<String, Error> {
        self.count("GetSecretValue");
        self.inner.get(id, stage, version, ctx).await
    }
    async fn get_if_exists(
        &self,
        id: &str,
        stage: Stage,
        version: Option<&str>,
        ctx: &StepContext<'_>,
    ) -> Result<Option<String>, Error> {
        self.count("GetSecretValue");
        self.inner.get_if_exists(id, stage, version, ctx).await
    }
    async fn put_pending(
        &self,
        id: &str,
        token: &str,
        value: &str,
        rt: Option<&str>,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        self.count("PutSecretValue");
        self.inner.put_pending(id, token, value, rt, ctx).await
    }
    async fn promote(
        &self,
        id: &str,
        token: &str,
        from: &str,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        self.count("UpdateSecretVersionStage");
        self.inner.promote(id, token, from, ctx).await
    }
}

impl<S: SecretInventory> SecretInventory for CountingStore<S> {
    async fn list(&self, page_size: i32, ctx: &StepContext<'_>) -> Result<Vec<SecretInfo>, Error> {
        self.count("ListSecrets");
        self.inner.list(page_size, ctx).await
    }
    async fn inspect(&self, id: &str, ctx: &StepContext<'_>) -> Result<SecretInfo, Error> {
        self.count("DescribeSecret");
        self.inner.inspect(id, ctx).await
    }
    async fn version_dates(
        &self,
        id: &str,
        ctx: &StepContext<'_>,
    ) -> Result<BTreeMap<String, SystemTime>, Error> {
        self.count("ListSecretVersionIds");
        self.inner.version_dates(id, ctx).await
    }
    async fn remove_stage(
        &self,
        id: &str,
        stage: Stage,
        version: &str,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        self.count("UpdateSecretVersionStage");
        self.inner.remove_stage(id, stage, version, ctx).await
    }
}
