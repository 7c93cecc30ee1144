//! [`RdsApi`] over `aws-sdk-rds`. The client takes the function's SDK configuration (Region,
//! credentials, HTTPS client, `AWS_ENDPOINT_URL_RDS` and `AWS_ENDPOINT_URL`) and is built on first
//! use: a container that never rotates alternating users never builds it, and its cold start
//! does not pay for it. Calls run exactly as Secrets Manager's do (`crate::aws::retry`): the
//! SDK's own retries off, all attempts of a call within the step's budget, one invocation id for
//! all of them.

use std::future::Future;
use std::sync::OnceLock;

use aws_config::SdkConfig;
use aws_sdk_rds::Client;
use aws_sdk_rds::config::Builder as ConfigOverride;

use super::{DbCluster, DbInstance, RdsApi};
use crate::aws::retry::{
    AttemptError, Call, CallError, RetryPolicy, SameInvocation, call, single_attempts,
};
use crate::deadline::StepContext;
use crate::error::Error;

/// [`RdsApi`] over the AWS SDK.
#[derive(Debug)]
pub struct SdkRds {
    sdk_config: SdkConfig,
    client: OnceLock<Client>,
    policy: RetryPolicy,
}

impl SdkRds {
    /// Keeps the SDK configuration; the client is built on the first call.
    pub fn new(sdk_config: &SdkConfig) -> Self {
        SdkRds {
            sdk_config: sdk_config.clone(),
            client: OnceLock::new(),
            policy: RetryPolicy::default(),
        }
    }

    /// Whether the client has been built (it is, from the first call on).
    pub fn client_built(&self) -> bool {
        self.client.get().is_some()
    }

    fn client(&self) -> &Client {
        self.client.get_or_init(|| {
            let (retries, timeouts) = single_attempts();
            let config = aws_sdk_rds::config::Builder::from(&self.sdk_config)
                .retry_config(retries)
                .timeout_config(timeouts)
                .build();
            Client::from_conf(config)
        })
    }

    /// Runs `attempt` under the step's budget, each attempt with the call's configuration layer;
    /// failures become [`Error::Rds`] naming the rotated secret, `operation` and `subject`.
    async fn call<T, F, Fut>(
        &self,
        ctx: &StepContext<'_>,
        operation: &'static str,
        subject: String,
        mut attempt: F,
    ) -> Result<T, Error>
    where
        F: FnMut(ConfigOverride) -> Fut,
        Fut: Future<Output = Result<T, AttemptError>>,
    {
        let layer = ConfigOverride::default().invocation_id_generator(SameInvocation::fresh());
        let what = Call {
            service: "RDS",
            operation,
            subject: &subject,
        };
        call(what, &self.policy, ctx, || attempt(layer.clone()))
            .await
            .map_err(|failure| match failure {
                CallError::Deadline(e) => e,
                CallError::Failed { code, detail } => Error::Rds {
                    secret_id: ctx.secret_id.to_owned(),
                    operation,
                    subject,
                    code,
                    detail,
                },
            })
    }
}

impl RdsApi for SdkRds {
    async fn instance(&self, id: &str, ctx: &StepContext<'_>) -> Result<Option<DbInstance>, Error> {
        let subject = format!("DB instance {id}");
        let out = self
            .call(ctx, "DescribeDBInstances", subject, |layer| async {
                let request = self
                    .client()
                    .describe_db_instances()
                    .db_instance_identifier(id);
                match request.customize().config_override(layer).send().await {
                    Ok(out) => Ok(Some(out)),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_db_instance_not_found_fault()) =>
                    {
                        Ok(None)
                    }
                    Err(e) => Err(AttemptError::from_sdk(&e)),
                }
            })
            .await?;
        Ok(out.and_then(|out| out.db_instances().first().map(instance)))
    }

    async fn cluster(&self, id: &str, ctx: &StepContext<'_>) -> Result<Option<DbCluster>, Error> {
        let subject = format!("DB cluster {id}");
        let out = self
            .call(ctx, "DescribeDBClusters", subject, |layer| async {
                let request = self
                    .client()
                    .describe_db_clusters()
                    .db_cluster_identifier(id);
                match request.customize().config_override(layer).send().await {
                    Ok(out) => Ok(Some(out)),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_db_cluster_not_found_fault()) =>
                    {
                        Ok(None)
                    }
                    Err(e) => Err(AttemptError::from_sdk(&e)),
                }
            })
            .await?;
        Ok(out.and_then(|out| out.db_clusters().first().map(cluster)))
    }
}

/// A port as RDS gives it (`i32`), when it is one.
fn port(value: Option<i32>) -> Option<u16> {
    value
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
}

fn instance(i: &aws_sdk_rds::types::DbInstance) -> DbInstance {
    DbInstance {
        identifier: i.db_instance_identifier().unwrap_or_default().to_owned(),
        arn: i.db_instance_arn().map(str::to_owned),
        engine: i.engine().map(str::to_owned),
        address: i.endpoint().and_then(|e| e.address()).map(str::to_owned),
        port: port(i.endpoint().and_then(|e| e.port())),
        replica_source: i
            .read_replica_source_db_instance_identifier()
            .map(str::to_owned),
        cluster: i.db_cluster_identifier().map(str::to_owned),
        master_secret: i
            .master_user_secret()
            .and_then(|s| s.secret_arn())
            .map(str::to_owned),
    }
}

fn cluster(c: &aws_sdk_rds::types::DbCluster) -> DbCluster {
    DbCluster {
        identifier: c.db_cluster_identifier().unwrap_or_default().to_owned(),
        engine: c.engine().map(str::to_owned),
        writer: c.endpoint().map(str::to_owned),
        reader: c.reader_endpoint().map(str::to_owned),
        port: port(c.port()),
        master_secret: c
            .master_user_secret()
            .and_then(|s| s.secret_arn())
            .map(str::to_owned),
    }
}
