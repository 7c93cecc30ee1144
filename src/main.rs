//! The binary. Without arguments (as the Lambda runtime starts it) it is the function:
//! configuration, trust roots, clients and rotators are built once per container, and each event
//! is a rotation step, or the scheduled audit. With arguments it is the operator's command line,
//! `db-secret-rotator doctor …` (docs/protocol.md 8). Without arguments and outside Lambda (no
//! `AWS_LAMBDA_RUNTIME_API`) it says what it is and how to run the doctor, and exits with 2.

// The runtime's future nests the handler's (SDK, tokio-postgres, mysql_async): its layout needs a
// deeper query stack than rustc's default 128, which a clean build otherwise overflows.
#![recursion_limit = "256"]

use std::io::Write;
use std::process::ExitCode;

use aws_config::BehaviorVersion;
use db_secret_rotator::app::App;
use db_secret_rotator::cache_user::SdkCacheUsers;
use db_secret_rotator::doctor::cli::CommandLine;
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

/// What the binary says when run by hand with no arguments, outside Lambda.
const NOT_IN_LAMBDA: &str = "\
db-secret-rotator is an AWS Lambda function that rotates database credentials stored in AWS
Secrets Manager. Run without arguments, it serves the Lambda Runtime API, which only Lambda
(or an emulator such as `cargo lambda watch`) provides: AWS_LAMBDA_RUNTIME_API is not set here.

Run by hand, it is the operator's tool, which audits rotations and repairs a stuck AWSPENDING:

  db-secret-rotator doctor --secret prod/app/postgres --login
  db-secret-rotator doctor --all
  db-secret-rotator --help
";

fn main() -> ExitCode {
    let arguments: Vec<_> = std::env::args_os().skip(1).collect();
    // Lambda's own variable, read by the runtime crate: no function to serve without it.
    if arguments.is_empty() && std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        let _ = write!(std::io::stderr(), "{NOT_IN_LAMBDA}");
        return ExitCode::from(EXIT_USAGE);
    }
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
    let command = doctor::cli::parse_command_line(arguments);
    let mut stdout = std::io::stdout().lock();
    let status = match command {
        Ok(CommandLine::Run(Command::Help)) => write!(stdout, "{}", doctor::HELP).map_or(1, |()| 0),
        Ok(CommandLine::Run(Command::Version)) => {
            writeln!(stdout, "db-secret-rotator {}", env!("CARGO_PKG_VERSION")).map_or(1, |()| 0)
        }
        Ok(CommandLine::Completions(shell)) => {
            write!(stdout, "{}", shell.script()).map_or(1, |()| 0)
        }
        Ok(CommandLine::Run(Command::Doctor(options))) => {
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
/// trust roots are loaded when first needed (docs/benchmarks.md, "At the floor on a 128 MB
/// function"); `TLS_EXTRA_CA_FILE` is read and checked here, so that a bad file fails before
/// any AWS call.
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
    let rotators = rotators.with_cache_users(SdkCacheUsers::new(&sdk_config));
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
