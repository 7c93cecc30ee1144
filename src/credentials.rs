//! Database credentials as stored in a secret, and the [`Password`] newtype that keeps them out of logs.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::engine::Engine;
use crate::error::Error;
use crate::protocol::{Stage, Strategy};

/// A database password. `Debug` is redacted, there is no `Display`, and the one accessor says what it
/// does. It serialises as a plain string because it goes back into the secret JSON.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(value: impl Into<String>) -> Self {
        Password(value.into())
    }

    /// The password itself, for a login or a verifier. Never log or format the result.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// The secret's `ssl` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslSetting {
    /// `true` / `"true"` (any case): TLS required and verified.
    Require,
    /// `false` / `"false"` (any case): plaintext only.
    Disable,
    /// Absent (or `null`): `TLS_MODE` decides.
    Unset,
    /// Present with another value: `TLS_MODE` decides, and a warning is logged.
    Unrecognised,
}

impl SslSetting {
    fn parse(value: Option<&Value>) -> Self {
        match value {
            None | Some(Value::Null) => SslSetting::Unset,
            Some(Value::Bool(true)) => SslSetting::Require,
            Some(Value::Bool(false)) => SslSetting::Disable,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => SslSetting::Require,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => SslSetting::Disable,
            Some(_) => SslSetting::Unrecognised,
        }
    }
}

/// Where a secret without `host` is served, found elsewhere: an RDS-managed master secret holds
/// only `username` and `password`, and the RDS API gives its engine and endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The engine RDS runs.
    pub engine: Engine,
    /// The endpoint's DNS name.
    pub host: String,
    /// The endpoint's port.
    pub port: u16,
}

/// Whether `a` and `b` name the same DNS name: equal but for ASCII case and one trailing dot (the
/// root), which DNS ignores. No other normalisation, no resolution.
pub fn same_host(a: &str, b: &str) -> bool {
    let absolute = |host: &str| host.strip_suffix('.').unwrap_or(host).to_owned();
    let (a, b) = (absolute(a), absolute(b));
    !a.is_empty() && a.eq_ignore_ascii_case(&b)
}

/// A connection's credential: where (engine, host, port, database), as whom (user and password)
/// and how secured (`ssl`, `tls_server_name`). Built from a secret ([`DbSecret::login`]); changed
/// only as a connection, never written back. `Debug` shows where and who, never the password.
#[derive(Clone)]
pub struct Login {
    engine: Engine,
    host: String,
    port: u16,
    username: String,
    password: Password,
    dbname: Option<String>,
    ssl: SslSetting,
    tls_server_name: Option<String>,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("engine", &self.engine)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("dbname", &self.dbname)
            .field("ssl", &self.ssl)
            .field("tls_server_name", &self.tls_server_name)
            .finish()
    }
}

impl Login {
    /// This login with `other`'s TLS settings (`ssl`, `tls_server_name`): an `AWSPREVIOUS`
    /// login follows the current secret's TLS choice.
    pub fn with_tls_of(mut self, other: &Login) -> Self {
        self.ssl = other.ssl;
        self.tls_server_name = other.tls_server_name.clone();
        self
    }

    /// This login with verified TLS to its own `host`, whatever its `ssl` and
    /// `tls_server_name` said: an RDS-managed master's, which no other secret may choose
    /// (docs/protocol.md 5.14).
    pub fn with_verified_tls(mut self) -> Self {
        self.ssl = SslSetting::Require;
        self.tls_server_name = None;
        self
    }

    /// This credential at `other`'s endpoint (host and port), with `other`'s TLS settings: the
    /// current secret proven on the master's server when RDS related the two hosts.
    pub fn at_endpoint_of(self, other: &Login) -> Self {
        let mut next = self.with_tls_of(other);
        next.host = other.host.clone();
        next.port = other.port;
        next
    }

    /// This login with another password (a wrong one, to prove that a server compares them).
    pub fn with_password(mut self, password: Password) -> Self {
        self.password = password;
        self
    }

    /// Whether `other` is at the same endpoint: the same DNS name and the same port.
    pub fn same_endpoint(&self, other: &Login) -> bool {
        same_host(&self.host, &other.host) && self.port == other.port
    }

    /// The engine.
    pub fn engine(&self) -> Engine {
        self.engine
    }
    /// The host, as the secret names it.
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
    /// The user.
    pub fn username(&self) -> &str {
        &self.username
    }
    /// The password.
    pub fn password(&self) -> &Password {
        &self.password
    }
    /// The database to connect to, when the secret names one.
    pub fn dbname(&self) -> Option<&str> {
        self.dbname.as_deref()
    }
    /// How the connection is secured.
    pub fn ssl(&self) -> SslSetting {
        self.ssl
    }
    /// The name verified and sent as SNI, when it is not `host`.
    pub fn tls_server_name(&self) -> Option<&str> {
        self.tls_server_name.as_deref()
    }
}

/// What parsing fills in that the secret itself does not say.
#[derive(Clone, Copy)]
enum Fill<'a> {
    /// Nothing: every required key must be present.
    Nothing,
    /// The engine, when the secret has no `engine` key.
    Engine(Engine),
    /// Engine, host and port, whatever the secret says of them.
    Endpoint(&'a Endpoint),
}

/// A database secret: the validated fields a rotation reads, plus the whole JSON object so that
/// unknown keys, their types and their order survive a rotation verbatim.
///
/// `Debug` shows where and who, never the password or the other keys' values.
#[derive(Clone)]
pub struct DbSecret {
    fields: Map<String, Value>,
    engine: Engine,
    host: String,
    port: u16,
    username: String,
    password: Password,
    dbname: Option<String>,
    ssl: SslSetting,
    tls_server_name: Option<String>,
    rotation_strategy: Option<Strategy>,
    masterarn: Option<String>,
}

impl fmt::Debug for DbSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbSecret")
            .field("engine", &self.engine)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("dbname", &self.dbname)
            .field("ssl", &self.ssl)
            .field("tls_server_name", &self.tls_server_name)
            .field("rotation_strategy", &self.rotation_strategy)
            .field("masterarn", &self.masterarn)
            .finish_non_exhaustive()
    }
}

/// Describes a JSON syntax error by category and position only: `serde_json`'s message quotes the
/// offending input, which here is a secret.
pub(crate) fn describe_json_error(e: &serde_json::Error) -> String {
    let category = match e.classify() {
        serde_json::error::Category::Io => "I/O",
        serde_json::error::Category::Syntax => "syntax",
        serde_json::error::Category::Data => "data",
        serde_json::error::Category::Eof => "unexpected end of input",
    };
    format!(
        "value is not valid JSON ({category} error at line {} column {})",
        e.line(),
        e.column()
    )
}

/// The known keys of a secret object, read one at a time; every error names the key, never its
/// value.
pub(crate) struct Keys<'a> {
    pub(crate) fields: &'a Map<String, Value>,
    pub(crate) invalid: &'a dyn Fn(String) -> Error,
}

impl Keys<'_> {
    pub(crate) fn required_string(&self, key: &str) -> Result<String, Error> {
        match self.fields.get(key) {
            None | Some(Value::Null) => Err((self.invalid)(format!(
                "{key} key is missing from secret JSON"
            ))),
            Some(Value::String(s)) if s.is_empty() => {
                Err((self.invalid)(format!("field `{key}` must not be empty")))
            }
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err((self.invalid)(format!("field `{key}` must be a string"))),
        }
    }

    /// A string, or `None` when absent, `null` or empty.
    pub(crate) fn optional_string(&self, key: &str) -> Result<Option<String>, Error> {
        match self.fields.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err((self.invalid)(format!(
                "field `{key}` must be a string or null"
            ))),
        }
    }

    /// `engine`, or `default` when the key is absent or `null`.
    fn engine(&self, default: Option<Engine>) -> Result<Engine, Error> {
        let name = match (self.fields.get("engine"), default) {
            (None | Some(Value::Null), Some(engine)) => return Ok(engine),
            _ => self.required_string("engine")?,
        };
        Engine::parse(&name).ok_or_else(|| {
            (self.invalid)(format!(
                "field `engine` is not supported; accepted values (exact case): {}",
                Engine::ACCEPTED
            ))
        })
    }

    /// `password`: any string, the empty one included.
    pub(crate) fn password(&self) -> Result<Password, Error> {
        match self.fields.get("password") {
            Some(Value::String(s)) => Ok(Password::new(s.clone())),
            None | Some(Value::Null) => Err((self.invalid)(
                "password key is missing from secret JSON".into(),
            )),
            Some(_) => Err((self.invalid)("field `password` must be a string".into())),
        }
    }

    /// `port`: a JSON number or a numeric string, 1 to 65535; the engine's default when absent.
    fn port(&self, engine: Engine) -> Result<u16, Error> {
        let as_string = || {
            (self.invalid)(
                "field `port` must be a number from 1 to 65535 (or such a string)".into(),
            )
        };
        match self.fields.get("port") {
            None | Some(Value::Null) => Ok(engine.default_port()),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0)
                .ok_or_else(|| {
                    (self.invalid)("field `port` must be an integer from 1 to 65535".into())
                }),
            Some(Value::String(s)) => s
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(as_string),
            Some(_) => Err(as_string()),
        }
    }

    /// `rotation_strategy`, the per-secret strategy.
    pub(crate) fn rotation_strategy(&self) -> Result<Option<Strategy>, Error> {
        self.optional_string("rotation_strategy")?
            .map(|name| {
                Strategy::parse(&name).ok_or_else(|| {
                    (self.invalid)(format!(
                        "field `rotation_strategy` is not supported; accepted values: {}",
                        Strategy::ACCEPTED
                    ))
                })
            })
            .transpose()
    }
}

impl DbSecret {
    /// Parses and validates the `SecretString` of `secret_id` at `stage`. Errors name the secret, the
    /// stage and the field, never a value.
    pub fn parse(secret_id: &str, stage: Stage, text: &str) -> Result<Self, Error> {
        Self::parse_object(secret_id, stage, text, Fill::Nothing)
    }

    /// Like [`DbSecret::parse`], with `engine` assumed when the secret has no `engine` key (a master
    /// secret managed by RDS has none). The assumed engine is not written into the JSON.
    pub(crate) fn parse_with_engine(
        secret_id: &str,
        stage: Stage,
        text: &str,
        engine: Engine,
    ) -> Result<Self, Error> {
        Self::parse_object(secret_id, stage, text, Fill::Engine(engine))
    }

    /// Like [`DbSecret::parse`], for a secret served at `endpoint` (an RDS-managed master secret,
    /// located through the RDS API): its engine, host and port are `endpoint`'s, whatever keys it
    /// has for them, and they are not written into the JSON.
    pub(crate) fn parse_at(
        secret_id: &str,
        stage: Stage,
        text: &str,
        endpoint: &Endpoint,
    ) -> Result<Self, Error> {
        Self::parse_object(secret_id, stage, text, Fill::Endpoint(endpoint))
    }

    /// Whether `text` is a JSON object without a `host` (absent or `null`): a master secret that
    /// RDS manages holds only `username` and `password`. Anything else, valid or not, is `false`.
    pub(crate) fn lacks_host(text: &str) -> bool {
        serde_json::from_str::<Map<String, Value>>(text)
            .is_ok_and(|fields| matches!(fields.get("host"), None | Some(Value::Null)))
    }

    fn parse_object(
        secret_id: &str,
        stage: Stage,
        text: &str,
        fill: Fill<'_>,
    ) -> Result<Self, Error> {
        let invalid = |problem: String| Error::invalid_secret(secret_id, stage, problem);
        let value: Value =
            serde_json::from_str(text).map_err(|e| invalid(describe_json_error(&e)))?;
        let Value::Object(fields) = value else {
            return Err(invalid("value must be a JSON object".into()));
        };
        let keys = Keys {
            fields: &fields,
            invalid: &invalid,
        };
        let (engine, host) = match fill {
            Fill::Endpoint(at) => (at.engine, at.host.clone()),
            Fill::Engine(engine) => (keys.engine(Some(engine))?, keys.required_string("host")?),
            Fill::Nothing => (keys.engine(None)?, keys.required_string("host")?),
        };
        let username = keys.required_string("username")?;
        let password = keys.password()?;
        let port = match fill {
            Fill::Endpoint(at) => at.port,
            Fill::Engine(_) | Fill::Nothing => keys.port(engine)?,
        };
        let dbname = keys.optional_string("dbname")?;
        let tls_server_name = keys.optional_string("tls_server_name")?;
        let masterarn = keys.optional_string("masterarn")?;
        let rotation_strategy = keys.rotation_strategy()?;
        let ssl = SslSetting::parse(fields.get("ssl"));
        Ok(DbSecret {
            fields,
            engine,
            host,
            port,
            username,
            password,
            dbname,
            ssl,
            tls_server_name,
            rotation_strategy,
            masterarn,
        })
    }

    /// The secret's JSON, every key in its original order and type.
    pub fn to_json(&self) -> String {
        Value::Object(self.fields.clone()).to_string()
    }

    /// A copy with `password` replaced, in place, and nothing else changed.
    pub fn with_password(&self, password: Password) -> Self {
        let mut next = self.clone();
        next.fields.insert(
            "password".to_owned(),
            Value::String(password.expose().to_owned()),
        );
        next.password = password;
        next
    }

    /// A copy with `username` replaced, in place, and nothing else changed.
    pub fn with_username(&self, username: String) -> Self {
        let mut next = self.clone();
        next.fields
            .insert("username".to_owned(), Value::String(username.clone()));
        next.username = username;
        next
    }

    /// What a connection with this secret's credential is made with. A [`Login`] can be pointed
    /// elsewhere or secured otherwise (an `AWSPREVIOUS` login with current's TLS settings, the
    /// master's endpoint), and never goes back into a secret: what the secret says and what is
    /// stored stay one.
    pub fn login(&self) -> Login {
        Login {
            engine: self.engine,
            host: self.host.clone(),
            port: self.port,
            username: self.username.clone(),
            password: self.password.clone(),
            dbname: self.dbname.clone(),
            ssl: self.ssl,
            tls_server_name: self.tls_server_name.clone(),
        }
    }

    /// Whether `other` is served at the same endpoint: the same DNS name (ASCII case and one
    /// trailing dot aside, never resolved) and the same port.
    pub fn same_endpoint(&self, other: &DbSecret) -> bool {
        same_host(&self.host, &other.host) && self.port == other.port
    }

    /// `engine`.
    pub fn engine(&self) -> Engine {
        self.engine
    }
    /// `host`, compared as an exact string.
    pub fn host(&self) -> &str {
        &self.host
    }
    /// `port`, or the engine's default.
    pub fn port(&self) -> u16 {
        self.port
    }
    /// `username`.
    pub fn username(&self) -> &str {
        &self.username
    }
    /// `password`.
    pub fn password(&self) -> &Password {
        &self.password
    }
    /// `dbname` as given (`null` and `""` count as absent).
    pub fn dbname(&self) -> Option<&str> {
        self.dbname.as_deref()
    }
    /// `ssl`.
    pub fn ssl(&self) -> SslSetting {
        self.ssl
    }
    /// `tls_server_name`: the name for SNI and certificate verification when `host` is a CNAME.
    pub fn tls_server_name(&self) -> Option<&str> {
        self.tls_server_name.as_deref()
    }
    /// `rotation_strategy`, the per-secret override of `ROTATION_STRATEGY`.
    pub fn rotation_strategy(&self) -> Option<Strategy> {
        self.rotation_strategy
    }
    /// `masterarn`: the superuser secret used by the alternating-users strategy.
    pub fn masterarn(&self) -> Option<&str> {
        self.masterarn.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENTINEL: &str = "S3ntinel-'\\\"-pw";

    fn secret(json: &str) -> Result<DbSecret, Error> {
        DbSecret::parse("arn:test", Stage::Current, json)
    }

    #[test]
    fn unknown_keys_types_and_order_survive_a_password_change() {
        let text = r#"{"zeta":1,"engine":"postgres","host":"db","port":"5433","username":"app","password":"old","dbname":null,"ssl":"TRUE","custom":{"nested":[1,"x"]},"alpha":true}"#;
        let s = secret(text).unwrap();
        assert_eq!(s.port(), 5433);
        assert_eq!(s.ssl(), SslSetting::Require);
        assert_eq!(s.dbname(), None);
        let next = s.with_password(Password::new("new"));
        assert_eq!(
            next.to_json(),
            text.replace(r#""password":"old""#, r#""password":"new""#)
        );
    }

    #[test]
    fn defaults_and_settings() {
        let s = secret(r#"{"engine":"mariadb","host":"h","username":"u","password":"p"}"#).unwrap();
        assert_eq!((s.port(), s.ssl()), (3306, SslSetting::Unset));
        let s = secret(r#"{"engine":"aurora-postgresql","host":"h","username":"u","password":"p","port":6543,"ssl":false,"rotation_strategy":"alternating-users"}"#).unwrap();
        assert_eq!((s.port(), s.ssl()), (6543, SslSetting::Disable));
        assert_eq!(s.rotation_strategy(), Some(Strategy::AlternatingUsers));
        let s = secret(
            r#"{"engine":"postgres","host":"h","username":"u","password":"p","ssl":"yes please"}"#,
        )
        .unwrap();
        assert_eq!(s.ssl(), SslSetting::Unrecognised);
    }

    #[test]
    fn errors_name_the_field_and_never_the_value() {
        let cases = [
            (
                format!(
                    r#"{{"engine":"Postgres","host":"h","username":"u","password":"{SENTINEL}"}}"#
                ),
                "engine",
            ),
            (
                format!(r#"{{"engine":"postgres","username":"u","password":"{SENTINEL}"}}"#),
                "host",
            ),
            (
                format!(r#"{{"engine":"postgres","host":"h","password":"{SENTINEL}"}}"#),
                "username",
            ),
            (
                r#"{"engine":"postgres","host":"h","username":"u"}"#.to_owned(),
                "password",
            ),
            (
                format!(
                    r#"{{"engine":"postgres","host":"h","username":"u","password":"{SENTINEL}","port":70000}}"#
                ),
                "port",
            ),
            (
                format!(
                    r#"{{"engine":"postgres","host":"h","username":"u","password":"{SENTINEL}","port":"54x"}}"#
                ),
                "port",
            ),
            (
                format!(
                    r#"{{"engine":"postgres","host":"h","username":"u","password":"{SENTINEL}","port":true}}"#
                ),
                "port",
            ),
            (
                format!(
                    r#"{{"engine":"postgres","host":"h","username":"u","password":"{SENTINEL}","dbname":5}}"#
                ),
                "dbname",
            ),
            (
                format!(
                    r#"{{"engine":"postgres","host":"h","username":"u","password":"{SENTINEL}","rotation_strategy":"multi-user"}}"#
                ),
                "rotation_strategy",
            ),
            (
                format!(
                    r#"{{"engine":"postgres","host":"h","username":"u","password":"{SENTINEL}""#
                ),
                "JSON",
            ),
            (format!(r#"["{SENTINEL}"]"#), "object"),
            (
                format!(r#"{{"engine":"postgres","password":{SENTINEL:?},}}"#),
                "JSON",
            ),
        ];
        for (text, needle) in cases {
            let err = secret(&text).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert_eq!(err.error_type(), "InvalidSecret");
            assert!(shown.contains(needle), "{shown}");
            assert!(
                shown.contains("arn:test") && shown.contains("AWSCURRENT"),
                "{shown}"
            );
            assert!(!shown.contains("S3ntinel"), "{shown}");
        }
    }

    #[test]
    fn an_rds_managed_master_secret_fails_naming_host() {
        let text = r#"{"username":"master","password":"S3ntinel"}"#;
        let err = DbSecret::parse_with_engine("arn:master", Stage::Current, text, Engine::Postgres)
            .unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.contains("arn:master") && shown.contains("host key is missing"),
            "{shown}"
        );
        assert!(!shown.contains("S3ntinel"));
        // A given engine still wins, and must be valid.
        let text = r#"{"engine":"mysql","host":"h","username":"m","password":"p"}"#;
        let s = DbSecret::parse_with_engine("arn:master", Stage::Current, text, Engine::Postgres)
            .unwrap();
        assert_eq!(s.engine(), Engine::Mysql);
        assert_eq!(s.to_json(), text, "the assumed engine is not written");
        let s = DbSecret::parse_with_engine(
            "m",
            Stage::Current,
            r#"{"host":"h","username":"m","password":"p"}"#,
            Engine::Mariadb,
        )
        .unwrap();
        assert_eq!((s.engine(), s.port()), (Engine::Mariadb, 3306));
    }

    #[test]
    fn debug_is_redacted() {
        let s = secret(&format!(
            r#"{{"engine":"postgres","host":"h","username":"u","password":"{}","api_key":"K3Y"}}"#,
            "S3ntinel"
        ))
        .unwrap();
        let shown = format!("{s:?} {:?}", s.password());
        assert!(
            !shown.contains("S3ntinel") && !shown.contains("K3Y"),
            "{shown}"
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use proptest::strategy::Strategy;

        /// Any JSON value; every string carries the marker `Zq`, which no error text contains.
        fn json() -> impl Strategy<Value = Value> {
            crate::arbitrary::json(3, 24, 5, "[a-z_]{1,10}")
        }

        /// A value for a known key: valid-looking, near-valid, or anything.
        fn field(valid: &'static [&'static str]) -> impl Strategy<Value = Option<Value>> {
            prop::option::of(prop_oneof![
                prop::sample::select(valid).prop_map(|v| Value::String(v.to_owned())),
                "Zq[ -~]{0,20}".prop_map(Value::String),
                (0u32..70_000).prop_map(Value::from),
                json(),
            ])
        }

        /// Secret objects built from the known keys (plus junk), serialised.
        fn secret_text() -> impl Strategy<Value = String> {
            (
                (
                    field(&[
                        "postgres",
                        "aurora-postgresql",
                        "mysql",
                        "aurora-mysql",
                        "mariadb",
                        "Postgres",
                    ]),
                    field(&["Zqhost"]),
                    field(&["Zquser"]),
                    field(&["Zqpassword"]),
                    field(&["5432", "0", "65536", "x"]),
                ),
                (
                    field(&["Zqdb"]),
                    field(&["true", "false", "TRUE", "maybe"]),
                    field(&["single-user", "alternating-users", "alternating"]),
                    field(&["Zqarn"]),
                    field(&["Zqname"]),
                ),
                prop::collection::btree_map("[a-z]{1,8}", json(), 0..3),
            )
                .prop_map(
                    |(
                        (engine, host, user, password, port),
                        (db, ssl, strategy, master, tls),
                        junk,
                    )| {
                        let mut object: Map<String, Value> = junk.into_iter().collect();
                        for (key, value) in [
                            ("engine", engine),
                            ("host", host),
                            ("username", user),
                            ("password", password),
                            ("port", port),
                            ("dbname", db),
                            ("ssl", ssl),
                            ("rotation_strategy", strategy),
                            ("masterarn", master),
                            ("tls_server_name", tls),
                        ] {
                            if let Some(value) = value {
                                object.insert(key.to_owned(), value);
                            }
                        }
                        Value::Object(object).to_string()
                    },
                )
        }

        fn check(text: &str) -> Result<(), TestCaseError> {
            match DbSecret::parse("arn:test", Stage::Pending, text) {
                Ok(secret) => {
                    // Every key survives, in order and type, a password change.
                    let next = secret.with_password(Password::new("Zqnew"));
                    let before: Value = serde_json::from_str(text).unwrap();
                    let mut after: Value = serde_json::from_str(&next.to_json()).unwrap();
                    after["password"] = before["password"].clone();
                    prop_assert_eq!(&after, &before);
                    let keys =
                        |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
                    prop_assert_eq!(keys(&after), keys(&before));
                    let shown = format!("{secret:?}");
                    let password = secret.password().expose();
                    prop_assert!(password.len() < 8 || !shown.contains(password));
                }
                Err(e) => {
                    prop_assert_eq!(e.error_type(), "InvalidSecret");
                    let shown = format!("{e} {e:?}");
                    prop_assert!(!shown.contains("Zq"), "{}", shown);
                    prop_assert!(shown.contains("arn:test") && shown.contains("AWSPENDING"));
                }
            }
            Ok(())
        }

        proptest! {
            #[test]
            fn any_text_parses_or_is_rejected_as_invalid_secret(text in "Zq\\PC{0,64}|\\PC{0,64}") {
                // Arbitrary text: nothing of it may be echoed, marked or not.
                match DbSecret::parse("arn:test", Stage::Current, &text) {
                    Ok(_) => {}
                    Err(e) => {
                        prop_assert_eq!(e.error_type(), "InvalidSecret");
                        let shown = format!("{e} {e:?}");
                        prop_assert!(!shown.contains("Zq"), "{}", shown);
                    }
                }
            }

            #[test]
            fn any_secret_object_parses_or_is_rejected_as_invalid_secret(text in secret_text()) {
                check(&text)?;
            }

            #[test]
            fn any_json_parses_or_is_rejected_as_invalid_secret(value in json()) {
                check(&value.to_string())?;
            }
        }
    }
}
