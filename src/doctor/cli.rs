//! `doctor` on the command line: the arguments, the audit, its report on stdout, its exit
//! status; and the shells' completion scripts.

use std::io::Write;

use tracing::{error, warn};

use super::args::Options;
use super::audit::Doctor;
use super::report::EXIT_INCOMPLETE;
use crate::app::App;
use crate::aws::retry;
use crate::rds::RdsApi;
use crate::rotators::Rotator;
use crate::secrets::{SecretInventory, SecretStore};

pub use super::args::{CommandLine, Shell, parse_command_line};

/// Runs the audit `options` ask for and writes its report to `out`: the table, or with `--json`
/// one JSON document. Secrets that could not be audited are logged (stderr) as well, and a call
/// that waits for an endpoint says so on stderr as it retries. Returns the exit status
/// ([`super::Report::exit_status`]).
pub async fn run<S, R, A>(options: &Options, app: &App<S, R, A>, out: &mut dyn Write) -> u8
where
    S: SecretStore + SecretInventory,
    R: Rotator,
    A: RdsApi,
{
    // An operator at a terminal otherwise sees nothing for up to a minute per secret when an
    // endpoint does not answer. The function never gets here: its stderr is its log.
    retry::announce_waits();
    let report = Doctor::new(app).run(options).await;
    for failure in &report.failures {
        error!(secret_id = %failure.secret, error = %failure.error, "could not audit the secret");
    }
    if report.secrets.is_empty() && report.failures.is_empty() {
        warn!("no secret was audited");
    }
    let written = if options.json {
        serde_json::to_writer_pretty(&mut *out, &report.to_json())
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        report.write_table(out)
    };
    if let Err(e) = written.and_then(|()| out.flush()) {
        error!(error = %e, "could not write the report");
        return EXIT_INCOMPLETE;
    }
    report.exit_status()
}
