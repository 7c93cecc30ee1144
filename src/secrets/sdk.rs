//! [`SecretStore`] over the AWS SDK, each call retried by [`RetryPolicy`] under the step's
//! deadline. The SDK's own retries are off: one loop, whose budget is exact, decides. Every attempt
//! of a call carries the same `amz-sdk-invocation-id`, as the SDK's own retries would.

use std::future::Future;

use aws_config::SdkConfig;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::Builder as ConfigOverride;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
use tracing::info;

use super::{SecretDescription, SecretInventory, SecretStore};
use crate::aws::retry::{
    AttemptError, Call, CallError, RetryPolicy, SameInvocation, call, single_attempts,
};
use crate::deadline::StepContext;
use crate::error::Error;
use crate::protocol::Stage;

mod inventory;

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
        let (retries, timeouts) = single_attempts();
        let mut builder = aws_sdk_secretsmanager::config::Builder::from(sdk_config)
            .retry_config(retries)
            .timeout_config(timeouts);
        if let Some(url) = endpoint {
            builder = builder.endpoint_url(url);
        }
        SdkSecretStore {
            client: Client::from_conf(builder.build()),
            policy,
        }
    }

    /// Runs `attempt` under the step's budget and this store's policy, handing each attempt the
    /// call's configuration layer (one invocation id for all its attempts); failures become errors
    /// naming the secret and `operation`.
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
        let layer = ConfigOverride::default().invocation_id_generator(SameInvocation::fresh());
        let subject = format!("secret {secret_id}");
        let what = Call {
            service: "Secrets Manager",
            operation,
            subject: &subject,
        };
        call(what, &self.policy, ctx, || attempt(layer.clone()))
            .await
            .map_err(|failure| match failure {
                CallError::Deadline(e) => e,
                CallError::Failed { code, detail } => Error::SecretsManager {
                    secret_id: secret_id.to_owned(),
                    operation,
                    code,
                    detail,
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
