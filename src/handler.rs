//! The Lambda adapter: event → validated [`RotationEvent`] → span → the rotation's step
//! ([`crate::rotation`]) → the invocation's metrics line.
//!
//! Generic over the secret store, the database connectors and the RDS API, held by the
//! container's [`App`], so unit tests run the protocol against in-memory fakes and integration
//! tests against the emulator and real servers.

use std::cell::Cell;
use std::time::Instant;

use lambda_runtime::LambdaEvent;
use serde_json::Value;
use tracing::{Instrument, info_span, warn};

use crate::app::App;
use crate::deadline::{CallTally, Deadline, StepContext};
use crate::engine::Family;
use crate::error::Error;
use crate::event::RotationEvent;
use crate::metrics::Report;
use crate::protocol::Step;
use crate::rds::RdsApi;
use crate::rotation::{PasswordSource, Rotation, Scope};
use crate::rotators::Rotator;
use crate::secrets::SecretStore;

/// The Lambda entry point: validates the event, runs the guard and the step, then writes the
/// invocation's metrics line. The container's memory of secrets completes the metrics of steps
/// that read no secret.
pub async fn handle<S: SecretStore, R: Rotator, A: RdsApi>(
    event: LambdaEvent<Value>,
    app: &App<S, R, A>,
) -> Result<(), Error> {
    let deadline = Deadline::from_epoch_millis(event.context.deadline, app.config.connect_timeout);
    let passwords = |family: Family| {
        app.config
            .password_policy
            .generate(family, &mut rand::rng())
    };
    let (result, mut report) = run_reporting(&event.payload, deadline, app, &passwords).await;
    app.kinds.complete(&mut report);
    report.emit(&app.config.metrics);
    result
}

/// [`handle`] with the deadline and the password source given explicitly, without metrics.
pub async fn run<S: SecretStore, R: Rotator, A: RdsApi>(
    payload: &Value,
    deadline: Deadline,
    app: &App<S, R, A>,
    passwords: PasswordSource<'_>,
) -> Result<(), Error> {
    run_reporting(payload, deadline, app, passwords).await.0
}

/// [`run`], also returning what the invocation did, for its metrics line.
pub(crate) async fn run_reporting<S: SecretStore, R: Rotator, A: RdsApi>(
    payload: &Value,
    deadline: Deadline,
    app: &App<S, R, A>,
    passwords: PasswordSource<'_>,
) -> (Result<(), Error>, Report) {
    let started = Instant::now();
    let event = match RotationEvent::from_value(payload) {
        Ok(event) => event,
        Err(e) => {
            let report = Report {
                secret_id: None,
                step: "invalid".to_owned(),
                engine: None,
                strategy: None,
                duration: started.elapsed(),
                error_type: Some(e.error_type()),
                retries: 0,
                throttled: 0,
            };
            return (Err(e), report);
        }
    };
    let span = info_span!(
        "rotation",
        secret_id = %event.secret_id,
        step = %event.step,
        token = %event.token,
    );
    let tally = CallTally::default();
    let rotation = Rotation {
        scope: Scope {
            app,
            ctx: StepContext {
                secret_id: &event.secret_id,
                step: &event.step,
                deadline,
                tally: &tally,
            },
        },
        event: &event,
        passwords,
        seen: Cell::new(None),
    };
    let result = rotation.run().instrument(span.clone()).await;
    if let Err(e) = &result {
        span.in_scope(|| warn!(error_type = e.error_type(), error = %e, "step failed"));
    }
    let (engine, strategy) = rotation.seen.get().unzip();
    let report = Report {
        secret_id: Some(event.secret_id.clone()),
        // An unknown step name is the caller's text: keep it out of metric dimensions.
        step: match &event.step {
            Step::Other(_) | Step::Audit => "invalid".to_owned(),
            step => step.to_string(),
        },
        engine,
        strategy,
        duration: started.elapsed(),
        error_type: result.as_ref().err().map(Error::error_type),
        retries: tally.retries(),
        throttled: tally.throttled(),
    };
    (result, report)
}

#[cfg(test)]
mod tests;
