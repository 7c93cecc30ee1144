//! The binary. Without arguments (as the Lambda runtime starts it) it is the function:
//! configuration, trust roots, clients and rotators are built once per container, and each event
//! is a rotation step, or the scheduled audit. With arguments it is the operator's command line,
//! `db-secret-rotator doctor …` (docs/protocol.md 8).

// The runtime's future nests the handler's (SDK, tokio-postgres, mysql_async): its layout needs a
// deeper query stack than rustc's default 128, which a clean build otherwise overflows.
#![recursion_limit = "256"]

use std::io::Write;
use std::process::ExitCode;

use aws_config::BehaviorVersion;
use db_secret_rotator::app::App;
use db_secret_rotator::doctor::{self, Command, EXIT_USAGE, schedule};
use db_secret_rotator::env::Env;
use db_secret_rotator::rds::{Rds, SdkRds};
use db_secret_rotator::rotators::Engines;
use db_secret_rotator::secrets::SdkSecretStore;
use db_secret_rotator::tls::LazyRoots;
use db_secret_rotator::{Config, Error};
use db_secret_rotator::{handler, logging};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

fn main() -> ExitCode {
    let arguments: Vec<_> = std::env::args_os().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let env = Env::from_process();
    if arguments.is_empty() {
        logging::init(&env);
        return match runtime.block_on(function(&env)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "the Lambda runtime stopped");
                ExitCode::FAILURE
            }
        };
    }
    let command = arguments
        .into_iter()
        .map(|a| {
            a.into_string()
                .map_err(|_| "an argument is not valid Unicode")
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| doctor::UsageError(e.to_owned()))
        .and_then(doctor::parse);
    let mut stdout = std::io::stdout().lock();
    let status = match command {
        Ok(Command::Help) => write!(stdout, "{}", doctor::HELP).map_or(1, |()| 0),
        Ok(Command::Version) => {
            writeln!(stdout, "db-secret-rotator {}", env!("CARGO_PKG_VERSION")).map_or(1, |()| 0)
        }
        Ok(Command::Doctor(options)) => {
            // Logs to stderr: stdout carries the report.
            if tracing::subscriber::set_global_default(logging::subscriber(&env, std::io::stderr))
                .is_err()
            {
                tracing::warn!("a log subscriber was already installed");
            }
            runtime.block_on(command_line(&env, &options, &mut stdout))
        }
        Err(usage) => {
            let _ = writeln!(std::io::stderr(), "db-secret-rotator: {usage}");
            EXIT_USAGE
        }
    };
    ExitCode::from(status)
}

/// The container's state, which the function and the command line share: the configuration, its
/// warnings logged, the connectors over the trust roots, the Secrets Manager client trusting the
/// same system roots, and the RDS lookups (whose client is built on the first RDS call). The
/// trust roots are loaded when first needed (docs/benchmarks.md, "Start-up"); `TLS_EXTRA_CA_FILE`
/// is read and checked here, so that a bad file fails before any AWS call.
async fn app(env: &Env) -> Result<App<SdkSecretStore, Engines, SdkRds>, Error> {
    let (config, warnings) = Config::from_env(env)?;
    for warning in warnings {
        tracing::warn!(%warning, "configuration");
    }
    let roots = LazyRoots::new(
        &config.tls_system_store,
        config.tls_extra_ca_file.as_deref(),
    )?;
    let rotators = Engines::with_lazy_roots(&roots, &config);
    // The SDK's HTTPS client trusts the same system roots, loaded for its first connector.
    let sdk_config = aws_config::defaults(BehaviorVersion::latest())
        .http_client(roots.sdk_http_client())
        .load()
        .await;
    if sdk_config.region().is_none() {
        return Err(Error::Config {
            variable: "AWS_REGION",
            problem: "is not set, and no profile names a Region".to_owned(),
        });
    }
    let secrets = SdkSecretStore::new(&sdk_config, config.secrets_manager_endpoint.as_deref());
    let rds = Rds::new(SdkRds::new(&sdk_config));
    Ok(App::new(config, secrets, rotators, rds))
}

/// The Lambda function: each event is a rotation step, or a scheduled audit.
async fn function(env: &Env) -> Result<(), lambda_runtime::Error> {
    let app = match app(env).await {
        Ok(app) => app,
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
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        if schedule::is_audit_event(&event.payload) {
            schedule::handle(event, app).await
        } else {
            handler::handle(event, app).await.map(|()| Value::Null)
        }
    }))
    .await
}

/// `doctor`: the audit and its report on `out`; an unusable configuration is a usage error.
async fn command_line(env: &Env, options: &doctor::Options, out: &mut dyn Write) -> u8 {
    match app(env).await {
        Ok(app) => doctor::cli::run(options, &app, out).await,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            EXIT_USAGE
        }
    }
}
