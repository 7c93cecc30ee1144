//! Rotation metrics: one CloudWatch Embedded Metric Format (EMF) line per invocation.
//!
//! The line goes to stdout, the function's log stream, where CloudWatch turns it into metrics
//! without any API call: `Duration` (milliseconds), `Success` and `Failure` (counts), and the
//! step's Secrets Manager `SecretsManagerRetries` and `SecretsManagerThrottles` (counts), with the
//! dimensions chosen by `METRICS_DIMENSIONS` among `Engine`, `Strategy`, `Step` and `Outcome`. The
//! secret id and the error type ride along as properties (searchable in the logs, not dimensions).
//! No secret value is ever part of it.
//!
//! A step that reads no secret (finishSecret, or a step the guard ends early) takes its engine and
//! strategy from [`SecretKinds`], what the container remembers of the secrets it has read; when
//! it has forgotten or never seen the secret, the line leaves those dimensions out rather than
//! report them as unknown.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::engine::Engine;
use crate::env::Env;
use crate::error::Error;
use crate::protocol::Strategy;

/// A metric dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    /// The secret's engine (left out when it is not known, see [`SecretKinds`]).
    Engine,
    /// The rotation strategy (likewise).
    Strategy,
    /// The step name.
    Step,
    /// `success` or `failure`.
    Outcome,
}

impl Dimension {
    fn name(self) -> &'static str {
        match self {
            Dimension::Engine => "Engine",
            Dimension::Strategy => "Strategy",
            Dimension::Step => "Step",
            Dimension::Outcome => "Outcome",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [
            Dimension::Engine,
            Dimension::Strategy,
            Dimension::Step,
            Dimension::Outcome,
        ]
        .into_iter()
        .find(|d| d.name().eq_ignore_ascii_case(name))
    }
}

/// `METRICS`, `METRICS_NAMESPACE`, `METRICS_DIMENSIONS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Whether the line is written (`METRICS=off` turns it off).
    pub enabled: bool,
    /// CloudWatch namespace (default `DbSecretRotator`).
    pub namespace: String,
    /// The dimension set (default `Engine,Strategy,Step`).
    pub dimensions: Vec<Dimension>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            namespace: "DbSecretRotator".to_owned(),
            dimensions: vec![Dimension::Engine, Dimension::Strategy, Dimension::Step],
        }
    }
}

impl MetricsConfig {
    /// Reads the metrics variables of `env`: `METRICS` is a switch (`on`/`off`
    /// or a boolean spelling, default on); blank values mean the defaults.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the variable whose value is unusable.
    pub fn from_env(env: &Env) -> Result<Self, Error> {
        let mut config = MetricsConfig {
            enabled: env.switch("METRICS", true)?,
            ..MetricsConfig::default()
        };
        if let Some(v) = env.setting("METRICS_NAMESPACE") {
            if v.len() > 255 || v.starts_with("AWS/") || v.contains(':') {
                return Err(Error::Config {
                    variable: "METRICS_NAMESPACE",
                    problem:
                        "must be at most 255 characters, without `:`, and not start with `AWS/`"
                            .into(),
                });
            }
            config.namespace = v.to_owned();
        }
        if let Some(v) = env.setting("METRICS_DIMENSIONS") {
            let mut dimensions = Vec::new();
            for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                let d = Dimension::parse(name).ok_or_else(|| Error::Config {
                    variable: "METRICS_DIMENSIONS",
                    problem: "must be a comma-separated list of Engine, Strategy, Step, Outcome"
                        .into(),
                })?;
                if !dimensions.contains(&d) {
                    dimensions.push(d);
                }
            }
            config.dimensions = dimensions;
        }
        Ok(config)
    }
}

/// What one invocation did, for its metrics line.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Secret ARN or name, when the event had one.
    pub secret_id: Option<String>,
    /// Step name as received (`invalid` when the event had none).
    pub step: String,
    /// Engine of the secret the step read, if any.
    pub engine: Option<Engine>,
    /// Strategy in force, if a secret was read.
    pub strategy: Option<Strategy>,
    /// Wall time of the invocation.
    pub duration: Duration,
    /// `errorType` of the failure, `None` on success.
    pub error_type: Option<&'static str>,
    /// Secrets Manager attempts beyond the first, over the step's calls.
    pub retries: u32,
    /// Throttling answers from Secrets Manager during the step.
    pub throttled: u32,
}

impl Report {
    /// The EMF JSON line (without a newline) at `timestamp_ms` (milliseconds since the epoch).
    pub(crate) fn emf_line(&self, config: &MetricsConfig, timestamp_ms: u64) -> String {
        let failed = self.error_type.is_some();
        // EMF requires a member for every dimension named: an unknown one is left out of both.
        let known = |d: &&Dimension| match d {
            Dimension::Engine => self.engine.is_some(),
            Dimension::Strategy => self.strategy.is_some(),
            Dimension::Step | Dimension::Outcome => true,
        };
        let mut root = Map::new();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": config.namespace,
                    "Dimensions": [config.dimensions.iter().filter(known).map(|d| d.name()).collect::<Vec<_>>()],
                    "Metrics": [
                        {"Name": "Duration", "Unit": "Milliseconds"},
                        {"Name": "Success", "Unit": "Count"},
                        {"Name": "Failure", "Unit": "Count"},
                        {"Name": "SecretsManagerRetries", "Unit": "Count"},
                        {"Name": "SecretsManagerThrottles", "Unit": "Count"},
                    ],
                }],
            }),
        );
        if let Some(engine) = self.engine {
            root.insert("Engine".into(), json!(engine.as_str()));
        }
        if let Some(strategy) = self.strategy {
            root.insert("Strategy".into(), json!(strategy.as_str()));
        }
        root.insert("Step".into(), json!(self.step));
        root.insert(
            "Outcome".into(),
            json!(if failed { "failure" } else { "success" }),
        );
        root.insert(
            "Duration".into(),
            json!((self.duration.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0),
        );
        root.insert("Success".into(), json!(u8::from(!failed)));
        root.insert("Failure".into(), json!(u8::from(failed)));
        root.insert("SecretsManagerRetries".into(), json!(self.retries));
        root.insert("SecretsManagerThrottles".into(), json!(self.throttled));
        if let Some(secret_id) = &self.secret_id {
            root.insert("SecretId".into(), json!(secret_id));
        }
        if let Some(error_type) = self.error_type {
            root.insert("ErrorType".into(), json!(error_type));
        }
        Value::Object(root).to_string()
    }

    /// Writes the line to stdout when metrics are enabled. A failed write is ignored: metrics must
    /// never fail a rotation.
    pub fn emit(&self, config: &MetricsConfig) {
        if !config.enabled {
            return;
        }
        let timestamp_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut line = self.emf_line(config, timestamp_ms);
        line.push('\n');
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }
}

/// Engine and strategy of the secrets this container has read, by secret id, for the metrics of
/// steps that read no secret. Bounded: when full, the entry used least recently is forgotten. At
/// the default capacity, with ARNs of about 100 bytes, that is a few hundred kilobytes at most;
/// only the rotations in flight on this container need to be remembered.
#[derive(Debug)]
pub struct SecretKinds {
    capacity: usize,
    inner: Mutex<Lru>,
}

#[derive(Debug, Default)]
struct Lru {
    /// Secret id → engine, strategy, and when it was last used.
    entries: HashMap<String, (Engine, Strategy, u64)>,
    /// Last use → secret id, oldest first.
    by_use: BTreeMap<u64, String>,
    clock: u64,
}

impl Lru {
    fn touch(
        &mut self,
        secret_id: &str,
        kind: Option<(Engine, Strategy)>,
    ) -> Option<(Engine, Strategy)> {
        self.clock += 1;
        let now = self.clock;
        let entry = self.entries.get_mut(secret_id)?;
        self.by_use.remove(&entry.2);
        if let Some((engine, strategy)) = kind {
            (entry.0, entry.1) = (engine, strategy);
        }
        entry.2 = now;
        self.by_use.insert(now, secret_id.to_owned());
        Some((entry.0, entry.1))
    }
}

impl SecretKinds {
    /// Entries kept by default.
    pub const DEFAULT_CAPACITY: usize = 1024;

    /// An empty memory of at most `capacity` secrets (at least one).
    pub fn new(capacity: usize) -> Self {
        SecretKinds {
            capacity: capacity.max(1),
            inner: Mutex::new(Lru::default()),
        }
    }

    /// Remembers the report's engine and strategy when its step read the secret, or fills them in
    /// from memory when it did not.
    pub fn complete(&self, report: &mut Report) {
        let Some(secret_id) = report.secret_id.as_deref() else {
            return;
        };
        let mut lru = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        match report.engine.zip(report.strategy) {
            Some(kind) => {
                if lru.touch(secret_id, Some(kind)).is_some() {
                    return;
                }
                if lru.entries.len() >= self.capacity {
                    if let Some((_, oldest)) = lru.by_use.pop_first() {
                        lru.entries.remove(&oldest);
                    }
                }
                let now = lru.clock;
                lru.entries
                    .insert(secret_id.to_owned(), (kind.0, kind.1, now));
                lru.by_use.insert(now, secret_id.to_owned());
            }
            None => {
                if let Some((engine, strategy)) = lru.touch(secret_id, None) {
                    (report.engine, report.strategy) = (Some(engine), Some(strategy));
                }
            }
        }
    }

    /// How many secrets are remembered.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .len()
    }

    /// Whether no secret is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<MetricsConfig, Error> {
        MetricsConfig::from_env(&Env::from_pairs(vars))
    }

    #[test]
    fn configuration() {
        assert_eq!(config(&[]).unwrap(), MetricsConfig::default());
        assert!(!config(&[("METRICS", "off")]).unwrap().enabled);
        assert!(!config(&[("METRICS", "false")]).unwrap().enabled);
        assert!(config(&[("METRICS", "on")]).unwrap().enabled);
        let c = config(&[
            ("METRICS_NAMESPACE", "Team/Rotation"),
            ("METRICS_DIMENSIONS", "step, outcome,Step"),
        ])
        .unwrap();
        assert_eq!(c.namespace, "Team/Rotation");
        assert_eq!(c.dimensions, [Dimension::Step, Dimension::Outcome]);
        for (name, value) in [
            ("METRICS", "maybe"),
            ("METRICS_NAMESPACE", "AWS/Lambda"),
            ("METRICS_DIMENSIONS", "Engine,Host"),
        ] {
            match config(&[(name, value)]) {
                Err(Error::Config { variable, .. }) => assert_eq!(variable, name),
                other => panic!("{name}={value}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_line_is_valid_emf() {
        let report = Report {
            secret_id: Some("arn:aws:secretsmanager:us-east-1:1:secret:x".into()),
            step: "setSecret".into(),
            engine: Some(Engine::Mariadb),
            strategy: Some(Strategy::AlternatingUsers),
            duration: Duration::from_micros(1_234_567),
            error_type: Some("LoginFailed"),
            retries: 4,
            throttled: 3,
        };
        let line = report.emf_line(&MetricsConfig::default(), 1_700_000_000_000);
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        let meta = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000u64);
        assert_eq!(meta["Namespace"], "DbSecretRotator");
        // Every dimension and metric named in the metadata is a top-level member.
        for d in meta["Dimensions"][0].as_array().unwrap() {
            assert!(v[d.as_str().unwrap()].is_string(), "{d}");
        }
        for m in meta["Metrics"].as_array().unwrap() {
            assert!(v[m["Name"].as_str().unwrap()].is_number(), "{m}");
        }
        assert_eq!(v["Engine"], "mariadb");
        assert_eq!(v["Strategy"], "alternating-users");
        assert_eq!(v["Outcome"], "failure");
        assert_eq!(v["Duration"], 1234.567);
        assert_eq!(
            (v["Success"].as_u64(), v["Failure"].as_u64()),
            (Some(0), Some(1))
        );
        assert_eq!(v["ErrorType"], "LoginFailed");
        assert_eq!(
            (
                v["SecretsManagerRetries"].as_u64(),
                v["SecretsManagerThrottles"].as_u64()
            ),
            (Some(4), Some(3))
        );

        // Engine and strategy unknown: left out of the dimension set and the members.
        let ok = Report {
            error_type: None,
            engine: None,
            strategy: None,
            ..report
        };
        let v: Value = serde_json::from_str(&ok.emf_line(&MetricsConfig::default(), 1)).unwrap();
        assert_eq!(v["Outcome"].as_str(), Some("success"));
        assert!(
            v.get("Engine").is_none() && v.get("Strategy").is_none(),
            "{v}"
        );
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Step"]])
        );
        assert!(v.get("ErrorType").is_none());
    }

    fn report(secret_id: &str, kind: Option<(Engine, Strategy)>) -> Report {
        Report {
            secret_id: Some(secret_id.to_owned()),
            step: "finishSecret".into(),
            engine: kind.map(|k| k.0),
            strategy: kind.map(|k| k.1),
            duration: Duration::ZERO,
            error_type: None,
            retries: 0,
            throttled: 0,
        }
    }

    #[test]
    fn the_container_remembers_what_its_secrets_are_within_a_bound() {
        let kinds = SecretKinds::new(3);
        let pg = (Engine::Postgres, Strategy::SingleUser);
        let maria = (Engine::Mariadb, Strategy::AlternatingUsers);
        for (id, kind) in [("a", pg), ("b", maria), ("c", pg)] {
            kinds.complete(&mut report(id, Some(kind)));
        }
        // A step that read nothing gets what an earlier step saw.
        let mut finish = report("b", None);
        kinds.complete(&mut finish);
        assert_eq!(
            (finish.engine, finish.strategy),
            (Some(maria.0), Some(maria.1))
        );
        // Full: "a", the least recently used, goes; "b" was just used and stays.
        kinds.complete(&mut report("d", Some(maria)));
        assert_eq!(kinds.len(), 3);
        let mut forgotten = report("a", None);
        kinds.complete(&mut forgotten);
        assert_eq!((forgotten.engine, forgotten.strategy), (None, None));
        for id in ["b", "c", "d"] {
            let mut r = report(id, None);
            kinds.complete(&mut r);
            assert!(r.engine.is_some(), "{id}");
        }
        // A changed strategy replaces the remembered one; a report without a secret is ignored.
        kinds.complete(&mut report("c", Some(maria)));
        let mut r = report("c", None);
        kinds.complete(&mut r);
        assert_eq!(r.strategy, Some(maria.1));
        kinds.complete(&mut Report {
            secret_id: None,
            ..report("x", Some(pg))
        });
        assert_eq!(kinds.len(), 3);

        // Ten thousand secrets through the default capacity: the bound holds.
        let kinds = SecretKinds::new(SecretKinds::DEFAULT_CAPACITY);
        for n in 0..10_000 {
            kinds.complete(&mut report(
                &format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:s{n}"),
                Some(pg),
            ));
        }
        assert_eq!(kinds.len(), SecretKinds::DEFAULT_CAPACITY);
    }
}
