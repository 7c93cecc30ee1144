//! [`SecretStore`] over the AWS SDK, each call retried by [`RetryPolicy`] under the step's
//! deadline. The SDK's own retries are off: one loop, whose budget is exact, decides. Every attempt
//! of a call carries the same `amz-sdk-invocation-id`, as the SDK's own retries would.

use std::future::Future;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_runtime::invocation_id::{InvocationId, InvocationIdGenerator};
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::Builder as ConfigOverride;
use aws_sdk_secretsmanager::error::BoxError;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
use rand::RngExt;
use tracing::info;

use super::retry::{AttemptError, Failure, RetryPolicy, full_jitter, with_retries};
use super::{SecretDescription, SecretInventory, SecretStore};
use crate::deadline::{Deadline, StepContext};
use crate::error::Error;
use crate::protocol::Stage;

mod inventory;

/// Hands the SDK one invocation id for every attempt of a call.
#[derive(Debug)]
struct SameInvocation(InvocationId);

impl InvocationIdGenerator for SameInvocation {
    fn generate(&self) -> Result<Option<InvocationId>, BoxError> {
        Ok(Some(self.0.clone()))
    }
}

/// A configuration layer giving every attempt of one call a new random (version 4) UUID as its
/// invocation id.
fn one_invocation() -> ConfigOverride {
    let mut bytes: [u8; 16] = rand::rng().random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let id = format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    );
    ConfigOverride::default().invocation_id_generator(SameInvocation(InvocationId::new(id)))
}

/// [`SecretStore`] over the AWS SDK.
#[derive(Debug, Clone)]
pub struct SdkSecretStore {
    client: Client,
    policy: RetryPolicy,
}

impl SdkSecretStore {
    /// Builds the client once per container, with the default [`RetryPolicy`]. `endpoint`
    /// (`SECRETS_MANAGER_ENDPOINT`), when given, wins over the SDK's own endpoint settings.
    pub fn new(sdk_config: &SdkConfig, endpoint: Option<&str>) -> Self {
        Self::with_policy(sdk_config, endpoint, RetryPolicy::default())
    }

    /// [`SdkSecretStore::new`] with a given retry policy.
    pub fn with_policy(
        sdk_config: &SdkConfig,
        endpoint: Option<&str>,
        policy: RetryPolicy,
    ) -> Self {
        // The SDK makes one attempt per `send()`; connecting is bounded here, the whole attempt by
        // the retry loop.
        let mut builder = aws_sdk_secretsmanager::config::Builder::from(sdk_config)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .build(),
            );
        if let Some(url) = endpoint {
            builder = builder.endpoint_url(url);
        }
        SdkSecretStore {
            client: Client::from_conf(builder.build()),
            policy,
        }
    }

    /// Runs `attempt` under the step's budget and this store's policy, handing each attempt the
    /// call's configuration layer; failures become errors naming the secret and `operation`.
    async fn call<T, F, Fut>(
        &self,
        ctx: &StepContext<'_>,
        secret_id: &str,
        operation: &'static str,
        mut attempt: F,
    ) -> Result<T, Error>
    where
        F: FnMut(ConfigOverride) -> Fut,
        Fut: Future<Output = Result<T, AttemptError>>,
    {
        let (budget, invocation_deadline) = ctx.deadline.call_budget();
        let limits = (budget, Deadline::min_attempt());
        let layer = one_invocation();
        let result = with_retries(
            operation,
            &self.policy,
            limits,
            &mut full_jitter,
            ctx.tally,
            || attempt(layer.clone()),
        )
        .await;
        result.map_err(|failure| match failure {
            Failure::Fatal(error) => Error::SecretsManager {
                secret_id: secret_id.to_owned(),
                operation,
                code: error.code,
                detail: error.detail,
            },
            Failure::OutOfTime { attempts, last } if invocation_deadline => {
                Error::DeadlineExceeded {
                    step: ctx.step.clone(),
                    attempt: match last {
                        None => format!("Secrets Manager {operation} of secret {secret_id}"),
                        Some(last) => format!(
                            "Secrets Manager {operation} of secret {secret_id}, attempt {} \
                             (attempt {attempts} failed: {})",
                            attempts + 1,
                            last.label
                        ),
                    },
                }
            }
            Failure::OutOfTime { attempts, last } => Error::SecretsManager {
                secret_id: secret_id.to_owned(),
                operation,
                code: last.as_ref().and_then(|l| l.code.clone()),
                detail: format!(
                    "gave up after {attempts} attempts in {} s: {}",
                    budget.as_secs(),
                    last.map_or_else(|| "no attempt".to_owned(), |l| l.detail)
                ),
            },
        })
    }

    /// `GetSecretValue`; `Ok(None)` for `ResourceNotFoundException` when `absent_ok`.
    async fn get_value(
        &self,
        secret_id: &str,
        stage: Stage,
        version: Option<&str>,
        absent_ok: bool,
        ctx: &StepContext<'_>,
    ) -> Result<Option<String>, Error> {
        let operation = match stage {
            Stage::Current => "GetSecretValue AWSCURRENT",
            Stage::Pending => "GetSecretValue AWSPENDING",
            Stage::Previous => "GetSecretValue AWSPREVIOUS",
        };
        let out: Option<GetSecretValueOutput> = self
            .call(ctx, secret_id, operation, |layer| async {
                let result = self
                    .client
                    .get_secret_value()
                    .secret_id(secret_id)
                    .version_stage(stage.as_str())
                    .set_version_id(version.map(str::to_owned))
                    .customize()
                    .config_override(layer)
                    .send()
                    .await;
                match result {
                    Ok(out) => Ok(Some(out)),
                    Err(e)
                        if absent_ok
                            && e.as_service_error()
                                .is_some_and(|s| s.is_resource_not_found_exception()) =>
                    {
                        Ok(None)
                    }
                    Err(e) => Err(AttemptError::from_sdk(&e)),
                }
            })
            .await?;
        match out {
            Some(GetSecretValueOutput {
                secret_string: Some(value),
                ..
            }) => Ok(Some(value)),
            Some(GetSecretValueOutput {
                secret_binary: Some(_),
                ..
            }) => Err(Error::invalid_secret(
                secret_id,
                stage,
                "value is binary (SecretBinary); a JSON SecretString is required",
            )),
            Some(_) | None => Ok(None),
        }
    }

    /// `UpdateSecretVersionStage` moving `stage` as `attempt` asks. A repeat refused
    /// (`InvalidParameterException`) after an attempt whose outcome was unknown may mean that
    /// attempt already moved the label: the labels say, through `done`.
    async fn change_label<T, F, Fut>(
        &self,
        ctx: &StepContext<'_>,
        secret_id: &str,
        stage: Stage,
        done: impl Fn(&SecretDescription) -> bool,
        attempt: F,
    ) -> Result<(), Error>
    where
        F: FnMut(ConfigOverride) -> Fut,
        Fut: Future<Output = Result<T, AttemptError>>,
    {
        let operation = "UpdateSecretVersionStage";
        let retries_before = ctx.tally.retries();
        let result = self.call(ctx, secret_id, operation, attempt).await;
        let refused_repeat = ctx.tally.retries() > retries_before
            && matches!(&result, Err(Error::SecretsManager { code: Some(code), .. })
                if code == "InvalidParameterException");
        if refused_repeat && done(&self.describe(secret_id, ctx).await?) {
            info!(operation, %stage, "an earlier attempt had already moved the label");
            return Ok(());
        }
        result.map(|_| ())
    }
}

impl SecretStore for SdkSecretStore {
    async fn describe(
        &self,
        secret_id: &str,
        ctx: &StepContext<'_>,
    ) -> Result<SecretDescription, Error> {
        Ok(self.inspect(secret_id, ctx).await?.description)
    }

    async fn get(
        &self,
        secret_id: &str,
        stage: Stage,
        version: Option<&str>,
        ctx: &StepContext<'_>,
    ) -> Result<String, Error> {
        let value = self
            .get_value(secret_id, stage, version, false, ctx)
            .await?;
        // An answer without either value: not found is an error above.
        value.ok_or_else(|| Error::invalid_secret(secret_id, stage, "version has no value"))
    }

    async fn get_if_exists(
        &self,
        secret_id: &str,
        stage: Stage,
        version: Option<&str>,
        ctx: &StepContext<'_>,
    ) -> Result<Option<String>, Error> {
        self.get_value(secret_id, stage, version, true, ctx).await
    }

    async fn put_pending(
        &self,
        secret_id: &str,
        token: &str,
        value: &str,
        rotation_token: Option<&str>,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        self.call(ctx, secret_id, "PutSecretValue", |layer| async {
            let request = self
                .client
                .put_secret_value()
                .secret_id(secret_id)
                .client_request_token(token)
                .secret_string(value)
                .version_stages(Stage::Pending.as_str())
                .set_rotation_token(rotation_token.map(str::to_owned))
                .customize()
                .config_override(layer);
            request.send().await.map_err(|e| AttemptError::from_sdk(&e))
        })
        .await?;
        Ok(())
    }

    async fn promote(
        &self,
        secret_id: &str,
        token: &str,
        from_version: &str,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        let moved = |labels: &SecretDescription| labels.has_stage(token, Stage::Current);
        self.change_label(ctx, secret_id, Stage::Current, moved, |layer| async {
            let request = self
                .client
                .update_secret_version_stage()
                .secret_id(secret_id)
                .version_stage(Stage::Current.as_str())
                .move_to_version_id(token)
                .remove_from_version_id(from_version)
                .customize()
                .config_override(layer);
            request.send().await.map_err(|e| AttemptError::from_sdk(&e))
        })
        .await
    }
}
