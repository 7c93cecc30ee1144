//! The Lambda binary: configuration, clients and trust roots are built once per container.

// The runtime's future nests the handler's (SDK, tokio-postgres, mysql_async): its layout needs a
// deeper query stack than rustc's default 128, which a clean build otherwise overflows.
#![recursion_limit = "256"]

use aws_config::BehaviorVersion;
use db_secret_rotator::env::Env;
use db_secret_rotator::metrics::SecretKinds;
use db_secret_rotator::rotators::Rotators;
use db_secret_rotator::secrets::SdkSecretStore;
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
            Rotators::new(&config).map(|rotators| (config, rotators))
        }
        Err(e) => Err(e),
    };
    let (config, rotators) = match setup {
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
    let sdk_config = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let secrets = SdkSecretStore::new(&sdk_config, config.secrets_manager_endpoint.as_deref());
    let kinds = SecretKinds::new(SecretKinds::DEFAULT_CAPACITY);
    let (secrets, rotators, config, kinds) = (&secrets, &rotators, &config, &kinds);
    lambda_runtime::run(service_fn(move |event| {
        handler::handle(event, secrets, rotators, config, kinds)
    }))
    .await
}
