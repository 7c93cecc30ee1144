//! The log capture and the leak check: every password a test creates or reads is registered, with
//! the values servers store for it, and log lines and errors are scanned for all of them.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, OnceLock};

use db_secret_rotator::Error;
use db_secret_rotator::rotators::mysql::PasswordPlugin;
use db_secret_rotator::rotators::redis::password_hash;
use serde_json::Value;

use super::stack;

/// Every log line of the test binary, at every level, as JSON: leak checks scan it.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static CAPTURE: OnceLock<Capture> = OnceLock::new();

/// Installs the capturing subscriber (once) before any handler code runs.
pub fn capture_logs() {
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .json()
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        capture
    });
}

/// Everything logged so far by any test.
pub fn logs() -> String {
    capture_logs();
    let capture = CAPTURE.get().expect("installed");
    String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned()
}

/// Passwords shorter than this are not registered: they would match ordinary log text.
const MIN_REGISTERED: usize = 8;

#[derive(Default)]
struct Registry {
    passwords: BTreeSet<String>,
    /// How far the log capture has been scanned.
    scanned: usize,
    /// The matcher over `passwords` (raw and JSON-escaped), rebuilt after a registration.
    matcher: Option<Arc<(aho_corasick::AhoCorasick, Vec<String>)>>,
}

static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();

fn registry() -> &'static Mutex<Registry> {
    REGISTRY.get_or_init(|| {
        let mut registry = Registry::default();
        if let Some(stack) = stack() {
            let redis = stack.redis.as_ref().map(|r| &r.admin_password);
            let admins = [&stack.pg_admin_password, &stack.mariadb_admin_password];
            for password in admins.into_iter().chain(redis) {
                if password.len() >= MIN_REGISTERED {
                    registry.passwords.extend(forms(password));
                }
            }
        }
        Mutex::new(registry)
    })
}

/// A password and what servers store for it, which the function computes for dual passwords
/// (MariaDB's `mysql_native_password` and `ed25519` values, Redis's SHA-256): none of them may
/// appear in a log line or an error either.
fn forms(password: &str) -> [String; 4] {
    [
        password.to_owned(),
        PasswordPlugin::Native.stored_value(password),
        PasswordPlugin::Ed25519.stored_value(password),
        password_hash(password),
    ]
}

/// Registers a password the leak check must never find, nor a value derived from it (`forms`),
/// in a log line or an error.
pub fn register_password(password: &str) {
    if password.len() >= MIN_REGISTERED {
        let mut registry = registry().lock().unwrap();
        let before = registry.passwords.len();
        registry.passwords.extend(forms(password));
        if registry.passwords.len() != before {
            registry.matcher = None;
        }
    }
}

/// Registers the `password` of a secret's JSON text, if it has one.
pub fn register_secret(text: &str) {
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        if let Some(password) = value.get("password").and_then(Value::as_str) {
            register_password(password);
        }
    }
}

/// The registered passwords found in `text`, raw or JSON-escaped (log lines are JSON).
pub fn registered_passwords_in(text: &str) -> Vec<String> {
    let shared = {
        let mut registry = registry().lock().unwrap();
        if registry.matcher.is_none() {
            let passwords: Vec<String> = registry.passwords.iter().cloned().collect();
            let mut patterns = Vec::with_capacity(passwords.len() * 2);
            for password in &passwords {
                patterns.push(password.clone());
                let escaped = serde_json::to_string(password).unwrap();
                patterns.push(escaped[1..escaped.len() - 1].to_owned());
            }
            let matcher = aho_corasick::AhoCorasick::new(&patterns).unwrap();
            registry.matcher = Some(Arc::new((matcher, passwords)));
        }
        registry.matcher.clone().expect("built")
    };
    let (matcher, passwords) = &*shared;
    let mut found: Vec<String> = matcher
        .find_overlapping_iter(text)
        .map(|m| passwords[m.pattern().as_usize() / 2].clone())
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Panics when `text` contains a registered password; `what` says where it came from. The
/// message shows the offending line with the password masked.
pub fn assert_no_password_in(text: &str, what: &str) {
    let found = registered_passwords_in(text);
    if let Some(password) = found.first() {
        let escaped = serde_json::to_string(password).unwrap();
        let escaped = &escaped[1..escaped.len() - 1];
        let line = text
            .lines()
            .find(|l| l.contains(password.as_str()) || l.contains(escaped))
            .unwrap_or("");
        panic!(
            "leak check: {} registered password(s) found in {what}, e.g. in: {}",
            found.len(),
            line.replace(password.as_str(), "<PASSWORD>")
                .replace(escaped, "<PASSWORD>")
        );
    }
}

/// Scans the log lines captured since the last scan (any test's) and `error`, if any.
pub fn check_leaks(error: Option<&Error>) {
    capture_logs();
    let fresh = {
        let capture = CAPTURE.get().expect("installed").0.lock().unwrap();
        let mut registry = registry().lock().unwrap();
        // Start a little early, for a password split across two scans.
        let mut start = registry.scanned.saturating_sub(512).min(capture.len());
        while start > 0 && (capture[start] & 0xC0) == 0x80 {
            start -= 1;
        }
        registry.scanned = capture.len();
        String::from_utf8_lossy(&capture[start..]).into_owned()
    };
    assert_no_password_in(&fresh, "the captured logs");
    if let Some(error) = error {
        // The Lambda Diagnostic is the errorType plus this Display text.
        let shown = format!("{error} {error:?}");
        assert_no_password_in(&shown, "a returned error");
    }
}

/// A random password for fixtures, registered.
pub fn fixture_password() -> String {
    let password = format!("Fx-{:016x}-'\\", rand::random::<u64>());
    register_password(&password);
    password
}
