//! The Lambda binary: configuration, trust roots, clients and rotators are built once per
//! container.

// The runtime's future nests the handler's (SDK, tokio-postgres, mysql_async): its layout needs a
// deeper query stack than rustc's default 128, which a clean build otherwise overflows.
#![recursion_limit = "256"]

use aws_config::BehaviorVersion;
use db_secret_rotator::env::Env;
use db_secret_rotator::metrics::SecretKinds;
use db_secret_rotator::rds::{Rds, SdkRds};
use db_secret_rotator::rotators::Rotators;
use db_secret_rotator::secrets::SdkSecretStore;
use db_secret_rotator::tls::TlsRoots;
use db_secret_rotator::{Config, Error};
use db_secret_rotator::{handler, logging};
use lambda_runtime::{LambdaEvent, service_fn, tracing};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let env = Env::from_process();
    logging::init(&env);
    let setup = match Config::from_env(&env) {
        Ok((config, warnings)) => {
            for warning in warnings {
                tracing::warn!(%warning, "configuration");
            }
            TlsRoots::load(config.tls_extra_ca_file.as_deref()).map(|roots| (config, roots))
        }
        Err(e) => Err(e),
    };
    let (config, roots) = match setup {
        Ok(setup) => setup,
        Err(e) => {
            // Reported as every invocation's error, naming the variable, before any AWS call.
            tracing::error!(error = %e, "invalid configuration");
            let (variable, problem) = match e {
                Error::Config { variable, problem } => (variable, problem),
                other => ("environment", other.to_string()),
            };
            return lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| {
                let problem = problem.clone();
                async move { Err::<(), Error>(Error::Config { variable, problem }) }
            }))
            .await;
        }
    };
    let rotators = Rotators::with_roots(&roots, &config);
    // The SDK's HTTPS client trusts the system roots loaded above instead of loading them again.
    let http_client = roots.sdk_http_client();
    // The rotators and the SDK client keep what they need; the DER copies go back to the heap
    // before the first database connection makes its own.
    drop(roots);
    let mut sdk_config = aws_config::defaults(BehaviorVersion::latest());
    if let Some(http_client) = http_client {
        sdk_config = sdk_config.http_client(http_client);
    }
    let sdk_config = sdk_config.load().await;
    let secrets = SdkSecretStore::new(&sdk_config, config.secrets_manager_endpoint.as_deref());
    // Alternating users only; its client is built on the first RDS call.
    let rds = Rds::new(SdkRds::new(&sdk_config));
    let kinds = SecretKinds::new(SecretKinds::DEFAULT_CAPACITY);
    let (secrets, rotators, rds, config, kinds) = (&secrets, &rotators, &rds, &config, &kinds);
    lambda_runtime::run(service_fn(move |event| {
        handler::handle(event, secrets, rotators, rds, config, kinds)
    }))
    .await
}
