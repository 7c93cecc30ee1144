//! The scheduled audit: the function invoked with a doctor event instead of a rotation event
//! (`events/scheduledAudit.json`; the template's optional EventBridge schedule sends it):
//!
//! ```json
//! {"Command": "doctor", "Arguments": ["--function", "<the function's ARN>", "--login"]}
//! ```
//!
//! `Arguments` are the command line's, checked by the same rules. The audit runs within the
//! invocation's deadline and writes one CloudWatch Embedded Metric Format line per unhealthy (or
//! unaudited) secret: the metric `UnhealthySecrets` (1) in `METRICS_NAMESPACE`, dimension
//! `FunctionName`, with the secret's id and problem codes as properties, never a value. The
//! invocation answers the report's JSON document; when a secret could not be audited it fails
//! with that call's error instead.
//!
//! The preflight on demand (docs/protocol.md 5.15), for pipelines that deploy secrets, is the
//! same audit of one secret, logging in: `{"Command": "preflight", "SecretId": "<id>"}` answers
//! the report, and fails with `PreflightFailed` naming what the next rotation would fail on.
//! Both are commands of the function, and `AUDIT_EVENTS` decides whether an event may run them.

use std::io::Write;

use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};
use tracing::{info, warn};

use super::args::{self, Command, Options};
use super::audit::Doctor;
use super::report::{Code, Report};
use crate::app::App;
use crate::config::AuditEvents;
use crate::deadline::Deadline;
use crate::error::{Error, Shortfall, ShortfallKind};
use crate::rds::RdsApi;
use crate::rotators::Rotator;
use crate::secrets::{SecretInventory, SecretStore};

/// The event's `Command` for an audit.
pub const COMMAND: &str = "doctor";

/// The event's `Command` for the preflight of one secret.
pub const PREFLIGHT: &str = "preflight";

/// The metric counted per unhealthy secret.
pub const METRIC: &str = "UnhealthySecrets";

/// Whether `payload` asks for a command (an audit, a preflight) rather than a rotation step: it
/// has a `Command` and no `Step`.
pub fn is_audit_event(payload: &Value) -> bool {
    payload.get("Command").is_some() && payload.get("Step").is_none()
}

/// The audit an event asks for.
fn options(payload: &Value) -> Result<Options, Error> {
    if payload.get("Command").and_then(Value::as_str) == Some(PREFLIGHT) {
        let invalid = Error::InvalidEvent {
            field: "SecretId",
            problem: "must name the secret to check",
        };
        let secret = payload
            .get("SecretId")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty() && id.chars().all(|c| (' '..='~').contains(&c)))
            .ok_or(invalid)?;
        return Ok(Options {
            secrets: vec![secret.to_owned()],
            login: true,
            ..Options::default()
        });
    }
    if payload.get("Command").and_then(Value::as_str) != Some(COMMAND) {
        return Err(Error::InvalidEvent {
            field: "Command",
            problem: "must be \"doctor\" or \"preflight\"",
        });
    }
    let invalid = Error::InvalidEvent {
        field: "Arguments",
        problem: "must be a list of strings",
    };
    let arguments = match payload.get("Arguments") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or(invalid)?,
        Some(_) => return Err(invalid),
    };
    let command = std::iter::once(COMMAND.to_owned()).chain(arguments);
    match args::parse(command) {
        Ok(Command::Doctor(options)) => Ok(options),
        Ok(Command::Help | Command::Version) => Err(Error::InvalidEvent {
            field: "Arguments",
            problem: "must ask for an audit, not for help",
        }),
        Err(usage) => {
            warn!(error = %usage, "invalid doctor arguments");
            Err(Error::InvalidEvent {
                field: "Arguments",
                problem: "is not a doctor command line (db-secret-rotator --help)",
            })
        }
    }
}

/// Refuses an audit the deployment does not allow events to ask for (`AUDIT_EVENTS`,
/// docs/protocol.md 5.14): anyone who may invoke the function could otherwise read every
/// secret's audit or move staging labels, whatever the deployment's own schedule says.
fn allowed(options: &Options, allowed: AuditEvents) -> Result<(), Error> {
    let asked = if options.repair {
        AuditEvents::Repair
    } else {
        AuditEvents::Audit
    };
    if asked <= allowed {
        return Ok(());
    }
    warn!(
        asked = asked.as_str(),
        allowed = allowed.as_str(),
        "an audit event asked for more than AUDIT_EVENTS allows; nothing was done"
    );
    Err(Error::InvalidEvent {
        field: "Command",
        problem: match allowed {
            AuditEvents::Off => {
                "asks for an audit, which this deployment does not allow events to run \
                 (AUDIT_EVENTS=off); nothing was done"
            }
            _ => {
                "asks for --repair, which this deployment does not allow events to run \
                 (AUDIT_EVENTS=audit); nothing was done"
            }
        },
    })
}

/// Runs the audit the event asks for, within the invocation's deadline; writes the metric lines
/// and logs each unhealthy secret's problems.
///
/// # Errors
///
/// [`Error::InvalidEvent`] for an unusable `Command` or `Arguments`, or an audit or repair that
/// `AUDIT_EVENTS` does not allow (before any call); otherwise the error of the first secret that
/// could not be audited.
pub async fn handle<S, R, A>(event: LambdaEvent<Value>, app: &App<S, R, A>) -> Result<Value, Error>
where
    S: SecretStore + SecretInventory,
    R: Rotator,
    A: RdsApi,
{
    let config = &app.config;
    let options = options(&event.payload)?;
    allowed(&options, config.audit_events)?;
    let deadline = Deadline::from_epoch_millis(event.context.deadline, config.connect_timeout);
    let report = Doctor::new(app).within(deadline).run(&options).await;
    if event.payload.get("Command").and_then(Value::as_str) == Some(PREFLIGHT) {
        return preflight_answer(report);
    }
    if config.metrics.enabled {
        let function = &event.context.env_config.function_name;
        let timestamp_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut stdout = std::io::stdout().lock();
        for line in metric_lines(&report, &config.metrics.namespace, function, timestamp_ms) {
            // Metrics must never fail the audit.
            let _ = writeln!(stdout, "{line}");
        }
    }
    for secret in report.secrets.iter().filter(|s| !s.healthy()) {
        for problem in &secret.problems {
            warn!(secret_id = %secret.arn, code = problem.code.as_str(), detail = %problem.detail, "unhealthy secret");
        }
    }
    let (healthy, unhealthy) = report.counts();
    info!(
        healthy,
        unhealthy,
        not_audited = report.failures.len(),
        "audit finished"
    );
    match report.failures.into_iter().next() {
        Some(failure) => Err(failure.error),
        None => Ok(Report::to_json(&Report {
            secrets: report.secrets,
            failures: Vec::new(),
        })),
    }
}

/// The preflight's answer: the report when nothing would stop the next rotation, else
/// `PreflightFailed` naming each problem that would.
fn preflight_answer(report: Report) -> Result<Value, Error> {
    let Report { secrets, failures } = report;
    if let Some(failure) = failures.into_iter().next() {
        return Err(failure.error);
    }
    let report = Report {
        secrets,
        failures: Vec::new(),
    };
    let Some(secret) = report.secrets.first() else {
        return Ok(report.to_json());
    };
    let blocking: Vec<Shortfall> = secret
        .problems
        .iter()
        .filter(|p| blocks(p.code))
        .map(|p| Shortfall {
            kind: ShortfallKind::Secret,
            account: p.code.as_str().to_owned(),
            missing: p.detail.clone(),
            hint: None,
        })
        .collect();
    if blocking.is_empty() {
        return Ok(report.to_json());
    }
    Err(Error::PreflightFailed {
        secret_id: secret.arn.clone(),
        shortfalls: blocking,
    })
}

/// Whether a problem stops the next rotation (rather than reporting a state: rotation turned
/// off, a late schedule, a deprecated plugin).
fn blocks(code: Code) -> bool {
    !code.is_advice() && !matches!(code, Code::RotationDisabled | Code::Overdue)
}

/// One EMF line per unhealthy or unaudited secret.
fn metric_lines(
    report: &Report,
    namespace: &str,
    function: &str,
    timestamp_ms: u64,
) -> Vec<String> {
    let line = |secret_id: &str, facts: Value| {
        let mut root = json!({
            "_aws": {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
                    "Dimensions": [["FunctionName"]],
                    "Metrics": [{"Name": METRIC, "Unit": "Count"}],
                }],
            },
            "FunctionName": function,
            METRIC: 1,
            "SecretId": secret_id,
        });
        if let (Some(root), Value::Object(facts)) = (root.as_object_mut(), facts) {
            root.extend(facts);
        }
        root.to_string()
    };
    let unhealthy = report.secrets.iter().filter(|s| !s.healthy()).map(|s| {
        let codes: Vec<&str> = s.problems.iter().map(|p| p.code.as_str()).collect();
        line(&s.arn, json!({"SecretName": s.name, "Problems": codes}))
    });
    let unaudited = report
        .failures
        .iter()
        .map(|f| line(&f.secret, json!({"AuditError": f.error.to_string()})));
    unhealthy.chain(unaudited).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::report::{Code, Failure, Problem, SecretReport};

    const EVENT: &str = include_str!("../../events/scheduledAudit.json");

    #[test]
    fn the_documented_event_is_an_audit() {
        let event: Value = serde_json::from_str(EVENT).unwrap();
        assert!(is_audit_event(&event));
        let options = options(&event).unwrap();
        assert!(options.login && options.lists() && !options.repair);
        assert!(options.function.is_some());
        // A rotation event never is, even with a stray `Command`.
        let rotation = json!({"Step": "createSecret", "SecretId": "s", "ClientRequestToken": "t", "Command": "doctor"});
        assert!(!is_audit_event(&rotation));
    }

    #[test]
    fn the_deployment_decides_what_an_event_may_ask() {
        let audit =
            options(&json!({"Command": "doctor", "Arguments": ["--all", "--login"]})).unwrap();
        let repair =
            options(&json!({"Command": "doctor", "Arguments": ["--all", "--repair"]})).unwrap();
        for (options, setting, ok) in [
            (&audit, AuditEvents::Off, false),
            (&audit, AuditEvents::Audit, true),
            (&audit, AuditEvents::Repair, true),
            (&repair, AuditEvents::Off, false),
            (&repair, AuditEvents::Audit, false),
            (&repair, AuditEvents::Repair, true),
        ] {
            let result = allowed(options, setting);
            assert_eq!(result.is_ok(), ok, "{setting:?} {:?}", options.repair);
            if let Err(e) = result {
                assert_eq!(e.error_type(), "InvalidEvent");
                assert!(e.to_string().contains("AUDIT_EVENTS"), "{e}");
            }
        }
    }

    #[test]
    fn unusable_events_are_refused_naming_the_field() {
        for (event, field) in [
            (json!({"Command": "rotate"}), "Command"),
            (json!({"Command": 7}), "Command"),
            (json!({"Command": "doctor"}), "Arguments"),
            (
                json!({"Command": "doctor", "Arguments": "--all"}),
                "Arguments",
            ),
            (
                json!({"Command": "doctor", "Arguments": ["--all", 1]}),
                "Arguments",
            ),
            (
                json!({"Command": "doctor", "Arguments": ["--everything"]}),
                "Arguments",
            ),
            (
                json!({"Command": "doctor", "Arguments": ["--help"]}),
                "Arguments",
            ),
        ] {
            match options(&event) {
                Err(Error::InvalidEvent { field: f, .. }) => assert_eq!(f, field, "{event}"),
                other => panic!("{event}: {other:?}"),
            }
        }
    }

    #[test]
    fn one_metric_line_per_unhealthy_or_unaudited_secret() {
        let secret = |name: &str, problems: Vec<Problem>| SecretReport {
            arn: format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}"),
            name: name.to_owned(),
            problems,
            repairs: Vec::new(),
        };
        let report = Report {
            secrets: vec![
                secret("fine", Vec::new()),
                secret(
                    "stuck",
                    vec![
                        Problem::new(Code::StuckPending, "detail"),
                        Problem::new(Code::CurrentLoginFailed, "detail"),
                    ],
                ),
            ],
            failures: vec![Failure {
                secret: "gone".into(),
                error: Error::RotationDisabled {
                    secret_id: "gone".into(),
                },
            }],
        };
        let lines = metric_lines(&report, "DbSecretRotator", "rotator", 1_700_000_000_000);
        assert_eq!(lines.len(), 2, "{lines:?}");
        let first: Value = serde_json::from_str(&lines[0]).unwrap();
        let directive = &first["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "DbSecretRotator");
        assert_eq!(directive["Dimensions"], json!([["FunctionName"]]));
        assert_eq!(directive["Metrics"][0]["Name"], METRIC);
        assert_eq!(first["FunctionName"], "rotator");
        assert_eq!(first[METRIC], 1);
        assert_eq!(first["SecretName"], "stuck");
        assert_eq!(
            first["Problems"],
            json!(["stuck-pending", "current-login-failed"])
        );
        let second: Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(second["SecretId"], "gone");
        assert!(second["AuditError"].as_str().unwrap().contains("gone"));
    }
}
