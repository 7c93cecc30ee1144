//! The function as Secrets Manager drives it, and the rotators behind it.

use std::path::Path;
use std::time::Duration;

use aws_config::BehaviorVersion;
use db_secret_rotator::app::App;
use db_secret_rotator::config::TlsMode;
use db_secret_rotator::credentials::{DbSecret, Login, Password};
use db_secret_rotator::deadline::{CallTally, Deadline, StepContext};
use db_secret_rotator::engine::Family;
use db_secret_rotator::handler;
use db_secret_rotator::protocol::{Stage, Step};
use db_secret_rotator::rds::SdkRds;
use db_secret_rotator::rotators::{AnySession, Connect, Engines, Rotator, Session};
use db_secret_rotator::secrets::SdkSecretStore;
use db_secret_rotator::tls::TlsRoots;
use db_secret_rotator::{Config, Error};
use serde_json::{Value, json};

use super::{CountingStore, Stack, capture_logs, check_leaks, register_password, stack};

/// The function as Secrets Manager drives it: one container's state (store, database
/// connectors, RDS lookups at the stack's emulator, configuration) kept across invocations.
pub struct Function<R = Engines> {
    pub app: App<CountingStore<SdkSecretStore>, R, SdkRds>,
    /// Overrides the policy when set (passwords with characters that need escaping).
    pub password: Option<Box<dyn Fn(Family) -> Password>>,
    /// Invocation time budget (`None`: no Lambda deadline).
    pub deadline: Option<Duration>,
    /// How long the handler itself took in the last invocation (the leak check excluded).
    pub handler_time: std::cell::Cell<Duration>,
}

impl Function {
    /// The function trusting the stack's test CA (plus system and RDS roots), default settings.
    pub async fn new(stack: &Stack) -> Self {
        Self::with_config(Config {
            tls_extra_ca_file: Some(stack.test_ca.clone()),
            ..Config::default()
        })
        .await
    }

    /// [`Function::new`] with `ALLOW_CLEARTEXT_PASSWORDS=on`: for servers the tests reach over
    /// plaintext on loopback, where a password would otherwise be refused (Redis's `AUTH`).
    pub async fn allowing_cleartext(stack: &Stack) -> Self {
        Self::with_config(Config {
            tls_extra_ca_file: Some(stack.test_ca.clone()),
            allow_cleartext_passwords: true,
            ..Config::default()
        })
        .await
    }

    /// The function with a given configuration; its trust roots follow `tls_extra_ca_file`.
    pub async fn with_config(config: Config) -> Self {
        capture_logs();
        let rotators = Engines::new(&config).expect("trust roots");
        Self::with_rotators(config, rotators).await
    }

    /// The function trusting exactly the CA bundle at `ca` (no system or RDS roots).
    pub async fn trusting_only(ca: &Path, config: Config) -> Self {
        capture_logs();
        let rotators = Engines::with_roots(&trusting(ca), &config);
        Self::with_rotators(config, rotators).await
    }

    async fn with_rotators(config: Config, rotators: Engines) -> Self {
        Self::with_endpoint(config, rotators, None).await
    }

    /// The function with an explicit Secrets Manager endpoint (a fault proxy), as
    /// `SECRETS_MANAGER_ENDPOINT` gives it.
    pub async fn with_endpoint(config: Config, rotators: Engines, endpoint: Option<&str>) -> Self {
        capture_logs();
        let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
        // The emulator serves RDS too; the stack's environment names no RDS endpoint.
        let rds = super::rds_at(stack().map(|s| s.secrets_manager.as_str())).await;
        Function {
            app: App::new(
                config,
                CountingStore::new(SdkSecretStore::new(&sdk, endpoint)),
                rotators,
                rds,
            ),
            password: None,
            deadline: None,
            handler_time: std::cell::Cell::new(Duration::ZERO),
        }
    }

    /// The same function with other rotators (tests that redirect connections).
    pub fn with_rotators_of<R2: Rotator>(self, rotators: R2) -> Function<R2> {
        let App {
            config, store, rds, ..
        } = self.app;
        Function {
            app: App::new(config, store, rotators, rds),
            password: self.password,
            deadline: self.deadline,
            handler_time: self.handler_time,
        }
    }
}

impl<R: Rotator> Function<R> {
    /// Invokes one step with a rotation event.
    pub async fn invoke(&self, step: &str, arn: &str, token: &str) -> Result<(), Error> {
        let payload = json!({
            "Step": step,
            "SecretId": arn,
            "ClientRequestToken": token,
            "RotationToken": "it-rotation-token",
        });
        self.invoke_payload(&payload).await
    }

    /// Invokes the handler with any payload. Afterwards the leak check scans the log lines
    /// captured since its last scan and the returned error for every registered password.
    pub async fn invoke_payload(&self, payload: &Value) -> Result<(), Error> {
        let deadline = Deadline::new(
            self.deadline.map(|d| std::time::Instant::now() + d),
            self.app.config.connect_timeout,
        );
        let policy = |family: Family| {
            let password = match &self.password {
                Some(f) => f(family),
                None => self
                    .app
                    .config
                    .password_policy
                    .generate(family, &mut rand::rng()),
            };
            register_password(password.expose());
            password
        };
        let started = std::time::Instant::now();
        let result = handler::run(payload, deadline, &self.app, &policy).await;
        self.handler_time.set(started.elapsed());
        check_leaks(result.as_ref().err());
        result
    }

    /// Generates every new password with each of AWS's 32 punctuation characters in it.
    pub fn generate_every_punctuation(&mut self) {
        self.password = Some(Box::new(|_| {
            Password::new(format!("N{:08x}{PUNCTUATION}", rand::random::<u32>()))
        }));
    }

    /// Runs the four steps in order.
    pub async fn rotate(&self, arn: &str, token: &str) -> Result<(), Error> {
        for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
            self.invoke(step, arn, token).await?;
        }
        Ok(())
    }
}

/// AWS's 32 punctuation characters, every one the password generator may draw.
pub const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

// ---------------------------------------------------------------------------------------------
// The rotators, called directly

/// Trust roots of exactly the PEM bundle at `ca` (no system or RDS roots).
pub fn trusting(ca: &Path) -> TlsRoots {
    TlsRoots::from_pem(&std::fs::read(ca).expect("CA file")).expect("CA")
}

/// Engines trusting exactly the CA at `ca`, under `mode`.
pub fn rotators_trusting(ca: &Path, mode: TlsMode) -> Engines {
    rotators_with(
        ca,
        Config {
            tls_mode: mode,
            ..Config::default()
        },
    )
}

/// Engines trusting exactly the CA at `ca`, under `config`.
pub fn rotators_with(ca: &Path, config: Config) -> Engines {
    capture_logs();
    Engines::with_roots(&trusting(ca), &config)
}

/// A setSecret context for `secret_id`, without a Lambda deadline.
pub fn ctx(secret_id: &str) -> StepContext<'_> {
    static SET_SECRET: Step = Step::SetSecret;
    static TALLY: CallTally = CallTally::new();
    StepContext {
        secret_id,
        step: &SET_SECRET,
        deadline: Deadline::new(None, Duration::from_secs(5)),
        tally: &TALLY,
    }
}

/// A secret's JSON, parsed as the function parses it.
pub fn db_secret(value: &Value) -> DbSecret {
    DbSecret::parse("arn:direct-test", Stage::Current, &value.to_string()).unwrap()
}

/// The login the secret `value` describes.
pub fn login_of(value: &Value) -> Login {
    db_secret(value).login()
}

/// Connects with the secret `value`, as `secret_id` for logs.
pub async fn connect(
    rotators: &Engines,
    value: &Value,
    secret_id: &str,
) -> Result<AnySession, Error> {
    rotators
        .connect(&login_of(value), "login", &ctx(secret_id))
        .await
}

/// Connects, runs the test query and closes.
pub async fn login(rotators: &Engines, value: &Value, secret_id: &str) -> Result<(), Error> {
    let mut session = connect(rotators, value, secret_id).await?;
    let result = session.check(&ctx(secret_id)).await;
    session.close().await;
    result
}
