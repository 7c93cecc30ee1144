//! MySQL, Aurora MySQL and MariaDB (PROTOCOL.md 5.7 and 5.8), over `mysql_async`.
//!
//! - **TLS.** mysql_async builds its own rustls configuration from certificates, so the rotator
//!   hands it the same trust roots as PostgreSQL ([`TlsRoots::certificates`]: system, Amazon RDS,
//!   `TLS_EXTRA_CA_FILE`) and switches its built-in webpki roots off, so both engines trust exactly
//!   the same CAs. `tls_server_name` becomes mysql_async's hostname override, which is the name sent
//!   as SNI and verified against the certificate (the chain is still verified); TCP still goes to
//!   `host`.
//! - **Literals.** The password statements take no `?` placeholder: MariaDB 10.11 answers 1064 to
//!   `ALTER USER … IDENTIFIED BY ?`, `CREATE USER … IDENTIFIED BY ?` and `SET PASSWORD =
//!   PASSWORD(?)` (an integration test proves it), and MySQL's grammar also wants a string literal
//!   there. Passwords are therefore escaped client-side by [`quote_literal`] for the session's
//!   `sql_mode`, read when the session opens.
//! - **Own password.** MySQL: `ALTER USER CURRENT_USER() IDENTIFIED BY …` (plus `REPLACE …` under
//!   `PASSWORD REQUIRE CURRENT`). MariaDB: `SET PASSWORD = PASSWORD(…)`, because MariaDB refuses
//!   `ALTER USER CURRENT_USER()` (error 1227) to users without `CREATE USER`. Both address exactly
//!   the account the server authenticated.
//! - **Accounts** are written as backtick identifiers (`` `user`@`host` ``, backticks doubled),
//!   which no `sql_mode` changes. The host always comes from the server (`CURRENT_USER()`, split at
//!   the last `@`), never assumed `'%'`.
//! - **Alternating users.** The clone is `<clone>@<current account's host>`. Every rotation
//!   replays the current account's `SHOW GRANTS` onto it (`rewrite_grant`) and copies its
//!   `REQUIRE` setting from its `mysql.user` row (`ssl_type`, `ssl_cipher`, `x509_issuer`,
//!   `x509_subject`: a table in MySQL, a view in MariaDB 10.4+, read with bound parameters rather
//!   than by parsing `SHOW CREATE USER`, whose MySQL 8 output carries a binary password hash).
//! - **Errors.** A statement failure keeps only the server's error number and SQLSTATE (the message
//!   echoes the statement near the error, and with it a password or grant text). A login failure
//!   keeps the number and SQLSTATE, or the driver's transport/TLS description, which carries no
//!   credential.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, DriverError, IoError, OptsBuilder, SslOpts};
use tracing::warn;

use super::{Account, Failure, Rotator, StepContext, TlsChoice, connect_per_tls_choice};
use crate::config::TlsMode;
use crate::credentials::{DbSecret, Password};
use crate::error::Error;
use crate::rotators::Engine;
use crate::tls::TlsRoots;

/// `ER_MISSING_CURRENT_PASSWORD` (MySQL 8.0.13+): the account is under `PASSWORD REQUIRE CURRENT`,
/// so changing its own password needs `REPLACE <current password>`.
pub const ER_MISSING_CURRENT_PASSWORD: u16 = 3892;

/// How long [`Rotator::close`] waits for the server to acknowledge `COM_QUIT`: a fraction of the
/// deadline's safety margin, which a statement timeout leaves for closing and reporting.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(250);

/// The MySQL-family rotator: trust roots shared by every connection.
#[derive(Clone)]
pub struct MysqlRotator {
    ssl: SslOpts,
    roots: usize,
    mode: TlsMode,
}

impl fmt::Debug for MysqlRotator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlRotator")
            .field("roots", &self.roots)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// An authenticated MySQL or MariaDB connection, with the account the server authenticated and
/// the quoting rules of its `sql_mode`.
pub struct MySession {
    conn: Conn,
    engine: Engine,
    account: Account,
    server: ServerSession,
}

/// What a session learns about itself when it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ServerSession {
    /// `sql_mode` contains `NO_BACKSLASH_ESCAPES`.
    no_backslash_escapes: bool,
    /// `@@version` names MariaDB (the secret's `engine` may say `mysql` for a MariaDB server).
    mariadb: bool,
}

impl fmt::Debug for MySession {
    // `Conn`'s own `Debug` prints the connection options; keep to what identifies the session.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MySession")
            .field("engine", &self.engine)
            .field("account", &self.account)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl MySession {
    /// Sets the session's `sql_mode` and reads it back, exactly as a new session does; literals
    /// written afterwards follow the new mode. This lets tests prove, against a live server, that
    /// the password statements follow `NO_BACKSLASH_ESCAPES` (a global `sql_mode` would disturb
    /// every other test). The mode travels as a bound parameter.
    pub async fn set_sql_mode(&mut self, sql_mode: &str) -> Result<(), Error> {
        let failed = |code: String| Error::Database {
            engine: self.engine,
            action: "setting sql_mode",
            code,
        };
        self.conn
            .exec_drop("SET SESSION sql_mode = ?", (sql_mode,))
            .await
            .map_err(|e| failed(error_code(&e)))?;
        let (account, server) = read_session(&mut self.conn).await.map_err(failed)?;
        self.account = account;
        self.server = server;
        Ok(())
    }

    /// Whether the session's `sql_mode` contains `NO_BACKSLASH_ESCAPES`.
    pub fn no_backslash_escapes(&self) -> bool {
        self.server.no_backslash_escapes
    }

    /// Whether the server is MariaDB (from `@@version`).
    pub fn is_mariadb(&self) -> bool {
        self.server.mariadb
    }

    fn literal(&self, value: &str) -> String {
        quote_literal(value, self.server.no_backslash_escapes)
    }
}

/// The code kept from a driver error: `error <number> (<SQLSTATE>)` for a server error, never its
/// message; else the driver's description of a transport, TLS or protocol failure with its causes
/// (`… invalid peer certificate: UnknownIssuer`), which carries no credential and no SQL.
fn error_code(e: &mysql_async::Error) -> String {
    if let mysql_async::Error::Server(server) = e {
        return format!("error {} ({})", server.code, server.state);
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The server's error number, when the server answered with an error.
fn server_error_number(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(server) => Some(server.code),
        _ => None,
    }
}

/// Whether a failed connection attempt never reached authentication. Server errors (1045 and
/// friends), authentication-plugin failures and timeouts count as reached: none of them may be
/// retried in plaintext.
fn failed_before_auth(e: &mysql_async::Error) -> bool {
    match e {
        mysql_async::Error::Server(_) => false,
        mysql_async::Error::Driver(
            DriverError::UnknownAuthPlugin { .. }
            | DriverError::CleartextPluginDisabled
            | DriverError::MysqlOldPasswordDisabled
            | DriverError::InvalidParsecSalt,
        ) => false,
        mysql_async::Error::Io(IoError::Io(io)) => io.kind() != std::io::ErrorKind::TimedOut,
        _ => true,
    }
}

/// Reads `CURRENT_USER()` (the account the server authenticated), `@@SESSION.sql_mode` and
/// `@@version`, in one round trip.
async fn read_session(conn: &mut Conn) -> Result<(Account, ServerSession), String> {
    let row: Option<(String, String, String)> = conn
        .query_first("SELECT CURRENT_USER(), @@SESSION.sql_mode, @@version")
        .await
        .map_err(|e| error_code(&e))?;
    let (current_user, sql_mode, version) = row.ok_or("SELECT CURRENT_USER() returned no row")?;
    let account =
        split_account(&current_user).ok_or("CURRENT_USER() is not of the form user@host")?;
    let server = ServerSession {
        no_backslash_escapes: sql_mode
            .split(',')
            .any(|mode| mode.trim().eq_ignore_ascii_case("NO_BACKSLASH_ESCAPES")),
        mariadb: version.to_ascii_lowercase().contains("mariadb"),
    };
    Ok((account, server))
}

/// Splits `CURRENT_USER()`'s `user@host` at the **last** `@`: a user name may contain `@`, a host
/// may not.
pub fn split_account(current_user: &str) -> Option<Account> {
    current_user.rsplit_once('@').map(|(user, host)| Account {
        user: user.to_owned(),
        host: Some(host.to_owned()),
    })
}

/// A string literal for a session whose `sql_mode` has (`no_backslash_escapes`) or lacks
/// `NO_BACKSLASH_ESCAPES`. With it, backslashes are ordinary characters and only `'` is doubled;
/// without it, `\`, `'`, `"`, NUL, newline, carriage return and Ctrl-Z are backslash-escaped, as
/// `mysql_real_escape_string` does. The result may contain a password: never log it.
pub fn quote_literal(value: &str, no_backslash_escapes: bool) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' if no_backslash_escapes => out.push_str("''"),
            _ if no_backslash_escapes => out.push(c),
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{1a}' => out.push_str("\\Z"),
            _ => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A backtick-quoted identifier (backticks doubled); `sql_mode` does not change its meaning.
fn quote_identifier(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// An account name, `` `user`@`host` ``.
pub fn account_sql(user: &str, host: &str) -> String {
    format!("{}@{}", quote_identifier(user), quote_identifier(host))
}

// ------------------------------------------------------------------------------------------------
// A minimal lexer for the statements `SHOW GRANTS` prints.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// A keyword or bare word, as written.
    Word(String),
    /// A `'…'`, `"…"` or `` `…` `` token, decoded.
    Quoted(String),
    /// Any other character (`@`, `,`, `(`, `.`, `*`, …).
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    span: Range<usize>,
}

impl Token {
    fn is_word(&self, word: &str) -> bool {
        matches!(&self.tok, Tok::Word(w) if w.eq_ignore_ascii_case(word))
    }

    fn is_punct(&self, c: char) -> bool {
        self.tok == Tok::Punct(c)
    }

    /// The value of a quoted or bare name.
    fn name(&self) -> Option<&str> {
        match &self.tok {
            Tok::Word(w) | Tok::Quoted(w) => Some(w),
            Tok::Punct(_) => None,
        }
    }
}

/// Splits a statement into tokens; `None` when a quote is not closed. Strings (`'…'`, `"…"`) take
/// both doubled quotes and backslash escapes, since the server prints them that way whatever the
/// session's `sql_mode` (observed on MariaDB 10.11: `'/CN=a''b\\c'`); identifiers (`` `…` ``) only
/// doubled backticks.
fn tokenize(sql: &str) -> Option<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut chars = sql.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        if matches!(c, '\'' | '"' | '`') {
            let mut value = String::new();
            let mut end = None;
            while let Some((i, d)) = chars.next() {
                if d == c {
                    if chars.peek().is_some_and(|&(_, next)| next == c) {
                        chars.next();
                        value.push(c);
                        continue;
                    }
                    end = Some(i + d.len_utf8());
                    break;
                }
                if d == '\\' && c != '`' {
                    let (_, escaped) = chars.next()?;
                    match escaped {
                        '0' => value.push('\0'),
                        'n' => value.push('\n'),
                        'r' => value.push('\r'),
                        't' => value.push('\t'),
                        'b' => value.push('\u{8}'),
                        'Z' => value.push('\u{1a}'),
                        // Kept escaped by the server outside LIKE patterns too.
                        '%' | '_' => {
                            value.push('\\');
                            value.push(escaped);
                        }
                        other => value.push(other),
                    }
                    continue;
                }
                value.push(d);
            }
            tokens.push(Token {
                tok: Tok::Quoted(value),
                span: start..end?,
            });
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let mut end = start + c.len_utf8();
            while let Some(&(i, d)) = chars.peek() {
                if !(d.is_alphanumeric() || d == '_' || d == '$') {
                    break;
                }
                end = i + d.len_utf8();
                chars.next();
            }
            tokens.push(Token {
                tok: Tok::Word(sql[start..end].to_owned()),
                span: start..end,
            });
        } else {
            tokens.push(Token {
                tok: Tok::Punct(c),
                span: start..start + c.len_utf8(),
            });
        }
    }
    Some(tokens)
}

/// Index of the first `word` outside parentheses, from `from` on.
fn find_top_level(tokens: &[Token], from: usize, word: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, token) in tokens.iter().enumerate().skip(from) {
        if token.is_punct('(') {
            depth += 1;
        } else if token.is_punct(')') {
            depth = depth.saturating_sub(1);
        } else if depth == 0 && token.is_word(word) {
            return Some(i);
        }
    }
    None
}

/// One line of `SHOW GRANTS`, rewritten for another account.
#[derive(Debug, Clone, PartialEq, Eq)]
enum GrantLine {
    /// The statement to run for the target account. Contains grant text: never log it.
    Replay(String),
    /// `GRANT USAGE ON *.*` and nothing else: implied by the account's existence.
    Usage,
    /// `GRANT PROXY`: not replayed, since it needs the master to hold `PROXY … WITH GRANT OPTION`
    /// on the proxied account, which RDS masters do not.
    Proxy,
    /// Neither `GRANT`, `REVOKE` (MySQL partial revokes) nor `SET DEFAULT ROLE` (MariaDB).
    Unknown,
}

/// Rewrites one `SHOW GRANTS FOR <from>` line for the account `to_sql` (already quoted):
///
/// - the grantee, exactly as the server printed it (`` `u`@`h` `` or `'u'@'h'`), becomes `to_sql`;
///   it must decode to `from_user`@`from_host`, else the line is refused;
/// - `IDENTIFIED BY PASSWORD '<hash>'` (and any other `IDENTIFIED …` clause) is stripped, as is
///   `REQUIRE …`, which MariaDB prints on the `USAGE` line and which is copied separately;
/// - `WITH GRANT OPTION`, `WITH ADMIN OPTION` and resource limits are kept, and everything before
///   the grantee (privileges, `` `db%`.* ``) is kept verbatim.
///
/// `Err` names what could not be understood, never the line itself.
fn rewrite_grant(
    line: &str,
    from_user: &str,
    from_host: &str,
    to_sql: &str,
) -> Result<GrantLine, &'static str> {
    let tokens = tokenize(line).ok_or("a grant of the current account has an unclosed quote")?;
    let word = |i: usize, w: &str| tokens.get(i).is_some_and(|t| t.is_word(w));
    let keyword = if word(0, "GRANT") {
        if word(1, "PROXY") {
            return Ok(GrantLine::Proxy);
        }
        "TO"
    } else if word(0, "REVOKE") {
        "FROM"
    } else if word(0, "SET") && word(1, "DEFAULT") && word(2, "ROLE") {
        "FOR"
    } else {
        return Ok(GrantLine::Unknown);
    };
    let at = find_top_level(&tokens, 1, keyword)
        .ok_or("a grant of the current account names no grantee")?;
    let (Some(user), Some(sign), Some(host)) =
        (tokens.get(at + 1), tokens.get(at + 2), tokens.get(at + 3))
    else {
        return Err("a grant of the current account names no grantee");
    };
    let is_current = sign.is_punct('@')
        && user.name() == Some(from_user)
        && host
            .name()
            .is_some_and(|h| h.eq_ignore_ascii_case(from_host));
    if !is_current {
        return Err("a grant of the current account names another grantee");
    }

    // The tail after the grantee: drop IDENTIFIED and REQUIRE clauses, keep WITH … verbatim.
    let mut kept = None;
    let mut i = at + 4;
    while let Some(token) = tokens.get(i) {
        if token.is_word("IDENTIFIED") {
            i += 1;
            // `IDENTIFIED WITH <plugin> [AS '<hash>']` (MySQL 5.7): this WITH is not a tail WITH.
            if word(i, "WITH") {
                i += 1;
            }
            while i < tokens.len() && !word(i, "REQUIRE") && !word(i, "WITH") {
                i += 1;
            }
        } else if token.is_word("REQUIRE") {
            i += 1;
            while i < tokens.len() && !word(i, "WITH") {
                i += 1;
            }
        } else if token.is_word("WITH") {
            kept = Some(token.span.start);
            break;
        } else {
            return Err("a grant of the current account has an unrecognised clause");
        }
    }

    if keyword == "TO" && word(1, "USAGE") && word(2, "ON") && kept.is_none() {
        return Ok(GrantLine::Usage);
    }
    let mut out = String::with_capacity(line.len() + to_sql.len());
    out.push_str(&line[..user.span.start]);
    out.push_str(to_sql);
    if let Some(start) = kept {
        out.push(' ');
        out.push_str(line[start..].trim_end());
    }
    Ok(GrantLine::Replay(out))
}

/// The privileges a rewritten grant line confers, one entry per privilege and object
/// (`SELECT ON `db`.*`, `GRANT OPTION ON `db`.*`, `ROLE `r``), so that two accounts' grants can be
/// compared whatever way the server groups them. Lines it does not understand count whole.
fn grant_units(line: &str) -> Vec<String> {
    let whole = || vec![line.trim().to_owned()];
    let Some(tokens) = tokenize(line) else {
        return whole();
    };
    if !tokens.first().is_some_and(|t| t.is_word("GRANT")) {
        return whole();
    }
    let Some(to) = find_top_level(&tokens, 1, "TO") else {
        return whole();
    };
    let text = |r: Range<usize>| line[r].trim().to_owned();
    // Privileges (or roles) are separated by top-level commas.
    let list_end = find_top_level(&tokens[..to], 1, "ON").unwrap_or(to);
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut item_start: Option<usize> = None;
    let mut item_end = 0;
    for token in &tokens[1..list_end] {
        if token.is_punct(',') && depth == 0 {
            if let Some(start) = item_start.take() {
                items.push(text(start..item_end));
            }
            continue;
        }
        if token.is_punct('(') {
            depth += 1;
        } else if token.is_punct(')') {
            depth = depth.saturating_sub(1);
        }
        item_start.get_or_insert(token.span.start);
        item_end = token.span.end;
    }
    if let Some(start) = item_start {
        items.push(text(start..item_end));
    }
    let tail: Vec<&Token> = tokens[to..].iter().collect();
    let has = |first: &str, second: &str| {
        tail.windows(2)
            .any(|w| w[0].is_word(first) && w[1].is_word(second))
    };
    let mut units = Vec::new();
    if list_end < to {
        let object = text(tokens[list_end + 1].span.start..tokens[to - 1].span.end);
        for item in items {
            units.push(format!("{item} ON {object}"));
        }
        if has("GRANT", "OPTION") {
            units.push(format!("GRANT OPTION ON {object}"));
        }
    } else {
        let admin = has("ADMIN", "OPTION");
        for item in items {
            if admin {
                units.push(format!("ADMIN OPTION {item}"));
            }
            units.push(format!("ROLE {item}"));
        }
    }
    units
}

/// `ssl_type`, `ssl_cipher`, `x509_issuer`, `x509_subject` of a `mysql.user` row: bytes, since the
/// last three are BLOBs in MySQL; nullable, since MariaDB's view declares `ssl_type` so.
type RequireRow = (
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
);

/// An account's TLS requirement (`REQUIRE …`), as stored in its `mysql.user` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsRequirement {
    /// `REQUIRE NONE` (`ssl_type` empty).
    None,
    /// `REQUIRE SSL` (`ssl_type` `ANY`).
    Ssl,
    /// `REQUIRE X509`.
    X509,
    /// `REQUIRE ISSUER '…' AND SUBJECT '…' AND CIPHER '…'` (`ssl_type` `SPECIFIED`); empty parts
    /// are left out.
    Specified {
        /// `x509_issuer`.
        issuer: String,
        /// `x509_subject`.
        subject: String,
        /// `ssl_cipher`.
        cipher: String,
    },
}

impl TlsRequirement {
    /// From `mysql.user`'s `ssl_type`, `ssl_cipher`, `x509_issuer`, `x509_subject` (MySQL: a
    /// table; MariaDB 10.4+: a view over `mysql.global_priv`). `None` for an unknown `ssl_type`.
    pub fn from_row(ssl_type: &str, cipher: &str, issuer: &str, subject: &str) -> Option<Self> {
        match ssl_type.to_ascii_uppercase().as_str() {
            "" | "NONE" => Some(TlsRequirement::None),
            "ANY" => Some(TlsRequirement::Ssl),
            "X509" => Some(TlsRequirement::X509),
            "SPECIFIED" if cipher.is_empty() && issuer.is_empty() && subject.is_empty() => {
                Some(TlsRequirement::X509)
            }
            "SPECIFIED" => Some(TlsRequirement::Specified {
                issuer: issuer.to_owned(),
                subject: subject.to_owned(),
                cipher: cipher.to_owned(),
            }),
            _ => None,
        }
    }

    /// The `REQUIRE …` clause, literals escaped for the session's `sql_mode`.
    pub fn to_sql(&self, no_backslash_escapes: bool) -> String {
        match self {
            TlsRequirement::None => "REQUIRE NONE".to_owned(),
            TlsRequirement::Ssl => "REQUIRE SSL".to_owned(),
            TlsRequirement::X509 => "REQUIRE X509".to_owned(),
            TlsRequirement::Specified {
                issuer,
                subject,
                cipher,
            } => {
                let parts: Vec<String> =
                    [("ISSUER", issuer), ("SUBJECT", subject), ("CIPHER", cipher)]
                        .into_iter()
                        .filter(|(_, value)| !value.is_empty())
                        .map(|(kind, value)| {
                            format!("{kind} {}", quote_literal(value, no_backslash_escapes))
                        })
                        .collect();
                format!("REQUIRE {}", parts.join(" AND "))
            }
        }
    }
}

impl MysqlRotator {
    /// A rotator trusting exactly `roots` (mysql_async's built-in webpki roots are switched off)
    /// and falling back per `mode`.
    pub fn new(roots: &TlsRoots, mode: TlsMode) -> Self {
        // mysql_async builds its rustls configuration with `ClientConfig::builder()`, which needs a
        // process-wide provider. rustls picks aws-lc-rs by itself while it is the only provider
        // compiled in; installing it explicitly keeps that true if another provider ever enters
        // the dependency tree. An `Err` only means one is installed already.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        // DER buffers (mysql_async's `PathOrBuf` is not exported by name, hence the inference);
        // the driver parses them into its own root store for each connection.
        let ssl = SslOpts::default()
            .with_root_certs(
                roots
                    .certificates()
                    .iter()
                    .map(|cert| cert.as_ref().to_vec().into())
                    .collect(),
            )
            .with_disable_built_in_roots(true);
        MysqlRotator {
            ssl,
            roots: roots.certificates().len(),
            mode,
        }
    }

    async fn connect_once(
        &self,
        creds: &DbSecret,
        use_tls: bool,
        attempt: &str,
        ctx: &StepContext<'_>,
    ) -> Result<MySession, Failure> {
        let timeout = ctx
            .deadline
            .connect_timeout(ctx.step, attempt)
            .map_err(|error| Failure {
                error,
                before_auth: false,
            })?;
        let engine = creds.engine();
        let failed = |code: String, before_auth: bool| Failure {
            error: Error::Database {
                engine,
                action: "logging in",
                code,
            },
            before_auth,
        };
        let mut opts = OptsBuilder::default()
            .ip_or_hostname(creds.host())
            .tcp_port(creds.port())
            .user(Some(creds.username()))
            .pass(Some(creds.password().expose()))
            .db_name(creds.dbname())
            // The driver would otherwise read `@@socket` and reconnect through a local Unix
            // socket when one exists: a different account (`'user'@'localhost'`) and no TLS.
            .prefer_socket(false);
        if use_tls {
            let mut ssl = self.ssl.clone();
            if let Some(name) = creds.tls_server_name() {
                // Validated here so that the error names the field; an invalid name means TLS
                // cannot be set up, like an invalid `host` in the driver.
                crate::tls::server_name(creds.host(), Some(name))
                    .map_err(|problem| failed(problem, true))?;
                // Despite its name this keeps full verification: the chain is checked and the
                // certificate must match this name, which is also sent as SNI.
                ssl = ssl.with_danger_tls_hostname_override(Some(name.to_owned()));
            }
            opts = opts.ssl_opts(ssl);
        }
        let work = async {
            let mut conn = Conn::new(opts)
                .await
                .map_err(|e| failed(error_code(&e), failed_before_auth(&e)))?;
            match read_session(&mut conn).await {
                Ok((account, server)) => Ok(MySession {
                    conn,
                    engine,
                    account,
                    server,
                }),
                Err(code) => {
                    let _ = conn.disconnect().await;
                    Err(failed(code, false))
                }
            }
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(failed(format!("timed out after {timeout:?}"), false)),
        }
    }
}

/// Runs `statement` (which may contain a password or grant text: never logged) under `timeout`;
/// a failure keeps only the error number and SQLSTATE.
async fn run(
    session: &mut MySession,
    statement: &str,
    timeout: Duration,
    action: &'static str,
) -> Result<(), Error> {
    let engine = session.engine;
    match tokio::time::timeout(timeout, session.conn.query_drop(statement)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::Database {
            engine,
            action,
            code: error_code(&e),
        }),
        Err(_) => Err(Error::Database {
            engine,
            action,
            code: format!(
                "timed out after {timeout:?}; the change may or may not have been applied"
            ),
        }),
    }
}

impl Rotator for MysqlRotator {
    type Session = MySession;

    async fn connect(
        &self,
        creds: &DbSecret,
        attempt: &str,
        ctx: &StepContext<'_>,
    ) -> Result<MySession, Error> {
        connect_per_tls_choice(
            TlsChoice::resolve(creds.ssl(), self.mode),
            creds,
            ctx,
            |tls| self.connect_once(creds, tls, attempt, ctx),
        )
        .await
    }

    async fn check(&self, session: &mut MySession, ctx: &StepContext<'_>) -> Result<(), Error> {
        let timeout = ctx.deadline.query_timeout(ctx.step, "test query")?;
        run(session, "SELECT NOW()", timeout, "running the test query").await
    }

    /// Changes the password of exactly the account the server authenticated, whatever its host:
    ///
    /// - MySQL: `ALTER USER CURRENT_USER() IDENTIFIED BY …`; under `PASSWORD REQUIRE CURRENT`
    ///   (error 3892) again with `REPLACE <the password used to log in>`.
    /// - MariaDB: `SET PASSWORD = PASSWORD(…)`, because MariaDB (10.11 included) refuses `ALTER
    ///   USER CURRENT_USER()` with error 1227 unless the user holds `CREATE USER`, which
    ///   application users do not. Not attempting `ALTER USER` first keeps a failing statement
    ///   carrying the password out of MariaDB's `SQL_ERROR_LOG`.
    async fn set_own_password(
        &self,
        session: &mut MySession,
        user: &DbSecret,
        new: &Password,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        let timeout = ctx
            .deadline
            .query_timeout(ctx.step, "setting the password")?;
        let engine = session.engine;
        if session.server.mariadb {
            let statement = format!("SET PASSWORD = PASSWORD({})", session.literal(new.expose()));
            return run(session, &statement, timeout, "setting the password").await;
        }
        let statement = format!(
            "ALTER USER CURRENT_USER() IDENTIFIED BY {}",
            session.literal(new.expose())
        );
        let failed = |code: String| Error::Database {
            engine,
            action: "setting the password",
            code,
        };
        let first = match tokio::time::timeout(timeout, session.conn.query_drop(&statement)).await {
            Ok(result) => result,
            Err(_) => {
                return Err(failed(format!(
                    "timed out after {timeout:?}; the change may or may not have been applied"
                )));
            }
        };
        match first {
            Ok(()) => Ok(()),
            Err(e) if server_error_number(&e) == Some(ER_MISSING_CURRENT_PASSWORD) => {
                let timeout = ctx
                    .deadline
                    .query_timeout(ctx.step, "ALTER USER … REPLACE")?;
                let statement = format!(
                    "{statement} REPLACE {}",
                    session.literal(user.password().expose())
                );
                run(session, &statement, timeout, "setting the password").await
            }
            Err(e) => Err(failed(error_code(&e))),
        }
    }

    fn account(&self, session: &MySession) -> Account {
        session.account.clone()
    }

    /// As the master: the target is `<pending user>@<current account's host>`. Creates it when
    /// missing (`CREATE USER IF NOT EXISTS`, with a throwaway password); then, every rotation,
    /// replays the current account's `SHOW GRANTS` onto it, copies its `REQUIRE` setting, and
    /// only then sets the pending password (`ALTER USER`). Account statements commit implicitly,
    /// so this is not one transaction; every part is idempotent, and because the pending password
    /// comes last, a rotation interrupted anywhere is repeated in full by the retry.
    async fn set_password_as_master(
        &self,
        master: &mut MySession,
        current: &Account,
        pending: &DbSecret,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        let engine = master.engine;
        let Some(host) = current.host.as_deref() else {
            return Err(Error::Database {
                engine,
                action: "looking up the alternate user",
                code: "the current account has no host".to_owned(),
            });
        };
        let target_user = pending.username();
        let target = account_sql(target_user, host);
        let source = account_sql(&current.user, host);
        let timeout = ctx
            .deadline
            .query_timeout(ctx.step, "creating or updating the alternate user")?;
        let work = async {
            let failed = |action: &'static str, e: &mysql_async::Error| Error::Database {
                engine,
                action,
                code: error_code(e),
            };
            let exists: Option<u8> = master
                .conn
                .exec_first(
                    "SELECT 1 FROM mysql.user WHERE User = ? AND Host = ?",
                    (target_user, host),
                )
                .await
                .map_err(|e| failed("looking up the alternate user", &e))?;
            // The pending password is set last. Once it logs in, a retried setSecret returns
            // early (PROTOCOL.md 3), so the grants and the TLS requirement must be in place
            // before it does: a new account starts with a throwaway password nobody knows
            // (mixed classes, for password-validation plugins).
            let mut created = false;
            if exists.is_none() {
                let throwaway = format!("Tw{:032x}-Aa1!", rand::random::<u128>());
                let statement = format!(
                    "CREATE USER IF NOT EXISTS {target} IDENTIFIED BY {}",
                    master.literal(&throwaway)
                );
                master
                    .conn
                    .query_drop(&statement)
                    .await
                    .map_err(|e| failed("creating the alternate user", &e))?;
                // A warning means the account appeared meanwhile.
                created = master.conn.get_warnings() == 0;
            }
            let set_password = format!(
                "ALTER USER {target} IDENTIFIED BY {}",
                master.literal(pending.password().expose())
            );

            if target_user == current.user {
                master
                    .conn
                    .query_drop(&set_password)
                    .await
                    .map_err(|e| failed("setting the password", &e))?;
                return Ok((created, 0));
            }
            let grants: Vec<String> = master
                .conn
                .query(format!("SHOW GRANTS FOR {source}"))
                .await
                .map_err(|e| failed("reading the current account's grants", &e))?;
            let mut replayed = 0usize;
            let mut expected = BTreeSet::new();
            for line in &grants {
                match rewrite_grant(line, &current.user, host, &target) {
                    Ok(GrantLine::Replay(statement)) => {
                        expected.extend(grant_units(&statement));
                        master
                            .conn
                            .query_drop(&statement)
                            .await
                            .map_err(|e| failed("copying the current account's grants", &e))?;
                        replayed += 1;
                    }
                    Ok(GrantLine::Usage) => {}
                    Ok(GrantLine::Proxy) => warn!(
                        user = %current.user,
                        host,
                        target = target_user,
                        "not copying a PROXY grant to the alternate user"
                    ),
                    Ok(GrantLine::Unknown) => warn!(
                        user = %current.user,
                        host,
                        target = target_user,
                        "not copying an unrecognised SHOW GRANTS line to the alternate user"
                    ),
                    Err(problem) => {
                        return Err(Error::Database {
                            engine,
                            action: "copying the current account's grants",
                            code: problem.to_owned(),
                        });
                    }
                }
            }

            let row: Option<RequireRow> = master
                .conn
                .exec_first(
                    "SELECT ssl_type, ssl_cipher, x509_issuer, x509_subject \
                     FROM mysql.user WHERE User = ? AND Host = ?",
                    (current.user.as_str(), host),
                )
                .await
                .map_err(|e| failed("reading the current account's TLS requirement", &e))?;
            let unreadable = |code: &str| Error::Database {
                engine,
                action: "reading the current account's TLS requirement",
                code: code.to_owned(),
            };
            let (ssl_type, cipher, issuer, subject) =
                row.ok_or_else(|| unreadable("the current account has no mysql.user row"))?;
            let text = |bytes: Option<Vec<u8>>| {
                String::from_utf8(bytes.unwrap_or_default())
                    .map_err(|_| unreadable("a REQUIRE value is not UTF-8"))
            };
            let requirement = TlsRequirement::from_row(
                &text(ssl_type)?,
                &text(cipher)?,
                &text(issuer)?,
                &text(subject)?,
            )
            .ok_or_else(|| unreadable("unknown ssl_type"))?;
            let statement = format!(
                "ALTER USER {target} {}",
                requirement.to_sql(master.server.no_backslash_escapes)
            );
            master
                .conn
                .query_drop(&statement)
                .await
                .map_err(|e| failed("copying the current account's TLS requirement", &e))?;

            // The replay is additive: report what the target holds beyond the current account.
            let held: Vec<String> = master
                .conn
                .query(format!("SHOW GRANTS FOR {target}"))
                .await
                .map_err(|e| failed("reading the alternate user's grants", &e))?;
            let extra = held
                .iter()
                .filter_map(
                    |line| match rewrite_grant(line, target_user, host, &target) {
                        Ok(GrantLine::Replay(statement)) => Some(grant_units(&statement)),
                        _ => None,
                    },
                )
                .flatten()
                .filter(|unit| !expected.contains(unit))
                .count();
            if extra > 0 {
                warn!(
                    user = %current.user,
                    target = target_user,
                    host,
                    extra,
                    "the alternate user holds privileges the current user lacks; \
                     the replay only adds, so revoke them by hand if unintended"
                );
            }
            master
                .conn
                .query_drop(&set_password)
                .await
                .map_err(|e| failed("setting the password", &e))?;
            Ok((created, replayed))
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(Ok((created, grants))) => {
                tracing::info!(
                    user = target_user,
                    host,
                    created,
                    grants,
                    "alternate user updated"
                );
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Database {
                engine,
                action: "creating or updating the alternate user",
                code: format!("timed out after {timeout:?}; some changes may have been applied"),
            }),
        }
    }

    async fn close(&self, session: MySession) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, session.conn.disconnect()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_with_backslash_escapes() {
        assert_eq!(quote_literal("plain", false), "'plain'");
        assert_eq!(quote_literal("", false), "''");
        assert_eq!(quote_literal(r"a'b\c", false), r"'a\'b\\c'");
        assert_eq!(quote_literal("q\"", false), r#"'q\"'"#);
        assert_eq!(
            quote_literal("nul\0nl\ncr\rz\u{1a}", false),
            r"'nul\0nl\ncr\rz\Z'"
        );
        assert_eq!(quote_literal("%_é€", false), "'%_é€'");
        // A trailing backslash must not escape the closing quote.
        assert_eq!(quote_literal("x\\", false), r"'x\\'");
        assert_eq!(quote_literal("\\'", false), r"'\\\''");
    }

    #[test]
    fn literals_with_no_backslash_escapes() {
        assert_eq!(quote_literal("plain", true), "'plain'");
        assert_eq!(quote_literal(r"a'b\c", true), r"'a''b\c'");
        assert_eq!(quote_literal("x\\", true), r"'x\'");
        assert_eq!(quote_literal("''", true), "''''''");
        assert_eq!(quote_literal("q\"\n\0", true), "'q\"\n\0'");
    }

    #[test]
    fn literals_round_trip_through_the_lexer() {
        // The lexer decodes backslash-escaped literals, which is what the escaper writes without
        // NO_BACKSLASH_ESCAPES.
        for value in ["a'b\\c\"", "\0\n\r\u{1a}", "x\\", "''", "plain"] {
            let quoted = quote_literal(value, false);
            let tokens = tokenize(&quoted).unwrap();
            assert_eq!(tokens.len(), 1, "{quoted}");
            assert_eq!(tokens[0].tok, Tok::Quoted(value.to_owned()), "{quoted}");
        }
    }

    #[test]
    fn identifiers_and_accounts() {
        assert_eq!(account_sql("app", "%"), "`app`@`%`");
        assert_eq!(account_sql("a`b'c\\", "10.0.%"), "`a``b'c\\`@`10.0.%`");
    }

    #[test]
    fn current_user_splits_at_the_last_at() {
        let split = |s: &str| split_account(s).map(|a| (a.user, a.host.unwrap()));
        assert_eq!(split("app@%"), Some(("app".into(), "%".into())));
        assert_eq!(split("a@b@10.0.%"), Some(("a@b".into(), "10.0.%".into())));
        assert_eq!(split("@localhost"), Some(("".into(), "localhost".into())));
        assert_eq!(split("app@"), Some(("app".into(), "".into())));
        assert_eq!(split("app"), None);
    }

    fn rewrite(line: &str, user: &str, host: &str, to: &str) -> Result<GrantLine, &'static str> {
        rewrite_grant(line, user, host, &account_sql(to, host))
    }

    fn replay(s: &str) -> Result<GrantLine, &'static str> {
        Ok(GrantLine::Replay(s.to_owned()))
    }

    #[test]
    fn grants_get_the_new_grantee() {
        // MariaDB 10.4+ and MySQL 8 print backtick identifiers.
        assert_eq!(
            rewrite(
                "GRANT SELECT, INSERT ON `db%x`.* TO `app`@`%` WITH GRANT OPTION",
                "app",
                "%",
                "app_clone"
            ),
            replay("GRANT SELECT, INSERT ON `db%x`.* TO `app_clone`@`%` WITH GRANT OPTION")
        );
        assert_eq!(
            rewrite(
                "GRANT SELECT (`User`, `Host`) ON `mysql`.`user` TO `app`@`10.0.%`",
                "app",
                "10.0.%",
                "app_clone"
            ),
            replay("GRANT SELECT (`User`, `Host`) ON `mysql`.`user` TO `app_clone`@`10.0.%`")
        );
        // MySQL 5.7 and older MariaDB print string literals.
        assert_eq!(
            rewrite(
                "GRANT ALL PRIVILEGES ON `db`.* TO 'app'@'%'",
                "app",
                "%",
                "app_clone"
            ),
            replay("GRANT ALL PRIVILEGES ON `db`.* TO `app_clone`@`%`")
        );
        // Roles (MySQL 8, MariaDB) and MariaDB's default role.
        assert_eq!(
            rewrite(
                "GRANT `reader`@`%`,`writer`@`%` TO `app`@`%` WITH ADMIN OPTION",
                "app",
                "%",
                "app_clone"
            ),
            replay("GRANT `reader`@`%`,`writer`@`%` TO `app_clone`@`%` WITH ADMIN OPTION")
        );
        assert_eq!(
            rewrite(
                "SET DEFAULT ROLE `reader` FOR `app`@`%`",
                "app",
                "%",
                "app_clone"
            ),
            replay("SET DEFAULT ROLE `reader` FOR `app_clone`@`%`")
        );
        // MySQL partial revokes.
        assert_eq!(
            rewrite(
                "REVOKE INSERT ON `mysql`.* FROM `app`@`%`",
                "app",
                "%",
                "app_clone"
            ),
            replay("REVOKE INSERT ON `mysql`.* FROM `app_clone`@`%`")
        );
        // A grantee-like text inside a quoted identifier is not the grantee.
        assert_eq!(
            rewrite(
                "GRANT SELECT ON `x TO ``app```.* TO `app`@`%`",
                "app",
                "%",
                "app_clone"
            ),
            replay("GRANT SELECT ON `x TO ``app```.* TO `app_clone`@`%`")
        );
    }

    #[test]
    fn grantee_names_needing_escapes() {
        // As MariaDB 10.11 prints the user  pr`o'b\e  (observed with SHOW GRANTS).
        assert_eq!(
            rewrite(
                "GRANT SELECT ON `probe%db`.* TO `pr``o'b\\e`@`1.2.3.4`",
                "pr`o'b\\e",
                "1.2.3.4",
                "pr`o'b\\e_clone"
            ),
            replay("GRANT SELECT ON `probe%db`.* TO `pr``o'b\\e_clone`@`1.2.3.4`")
        );
        assert_eq!(
            rewrite(
                "GRANT SELECT ON `db`.* TO 'it''s\\\\'@'%'",
                "it's\\",
                "%",
                "it's\\_clone"
            ),
            replay("GRANT SELECT ON `db`.* TO `it's\\_clone`@`%`")
        );
    }

    #[test]
    fn usage_identified_and_require_are_dropped() {
        let hash = "*2B602296A79E0A8784ACC5C88D92E46588CCA3C3";
        assert_eq!(
            rewrite(
                &format!("GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '{hash}'"),
                "app",
                "%",
                "app_clone"
            ),
            Ok(GrantLine::Usage)
        );
        assert_eq!(
            rewrite(
                &format!(
                    "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '{hash}' REQUIRE SSL"
                ),
                "app",
                "%",
                "app_clone"
            ),
            Ok(GrantLine::Usage)
        );
        assert_eq!(
            rewrite("GRANT USAGE ON *.* TO `app`@`%`", "app", "%", "app_clone"),
            Ok(GrantLine::Usage)
        );
        // Observed on MariaDB 10.11: REQUIRE parts without AND, then resource limits.
        assert_eq!(
            rewrite(
                &format!(
                    "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '{hash}' REQUIRE ISSUER '/CN=i' \
                     SUBJECT '/CN=a''b\\\\c WITH x' CIPHER 'AES' WITH MAX_QUERIES_PER_HOUR 5"
                ),
                "app",
                "%",
                "app_clone"
            ),
            replay("GRANT USAGE ON *.* TO `app_clone`@`%` WITH MAX_QUERIES_PER_HOUR 5")
        );
        assert_eq!(
            rewrite(
                "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED VIA ed25519 USING 'abc' OR mysql_native_password USING 'x' WITH GRANT OPTION",
                "app",
                "%",
                "app_clone"
            ),
            replay("GRANT USAGE ON *.* TO `app_clone`@`%` WITH GRANT OPTION")
        );
        // MySQL 5.7: IDENTIFIED WITH <plugin> AS '<hash>'.
        assert_eq!(
            rewrite(
                "GRANT SELECT ON `db`.* TO 'app'@'%' IDENTIFIED WITH 'mysql_native_password' AS '*AB' WITH GRANT OPTION",
                "app",
                "%",
                "app_clone"
            ),
            replay("GRANT SELECT ON `db`.* TO `app_clone`@`%` WITH GRANT OPTION")
        );
    }

    #[test]
    fn other_lines_are_classified_or_refused() {
        assert_eq!(
            rewrite(
                "GRANT PROXY ON ''@'%' TO 'app'@'%' WITH GRANT OPTION",
                "app",
                "%",
                "app_clone"
            ),
            Ok(GrantLine::Proxy)
        );
        assert_eq!(
            rewrite("SHOW WARNINGS", "app", "%", "app_clone"),
            Ok(GrantLine::Unknown)
        );
        assert!(rewrite("GRANT SELECT ON `db`.* TO `other`@`%`", "app", "%", "x").is_err());
        assert!(rewrite("GRANT SELECT ON `db`.* TO `app`@`10.%`", "app", "%", "x").is_err());
        assert!(rewrite("GRANT SELECT ON `db`.* TO `app", "app", "%", "x").is_err());
        assert!(rewrite("GRANT SELECT ON `db`.*", "app", "%", "x").is_err());
        assert!(
            rewrite(
                "GRANT SELECT ON `db`.* TO `app`@`%` BANANA",
                "app",
                "%",
                "x"
            )
            .is_err()
        );
        // The error never quotes the line.
        let secret = "GRANT SELECT ON `s3cr3t`.* TO `other`@`%`";
        assert!(
            !rewrite(secret, "app", "%", "x")
                .unwrap_err()
                .contains("s3cr3t")
        );
        // Host names compare case-insensitively, as the server does.
        assert!(
            rewrite(
                "GRANT SELECT ON `db`.* TO `app`@`DB.example`",
                "app",
                "db.example",
                "x"
            )
            .is_ok()
        );
    }

    #[test]
    fn grant_units_compare_privileges() {
        let units = grant_units(
            "GRANT SELECT, INSERT (`a`, `b`) ON `db`.* TO `app_clone`@`%` WITH GRANT OPTION",
        );
        assert_eq!(
            units,
            [
                "SELECT ON `db`.*",
                "INSERT (`a`, `b`) ON `db`.*",
                "GRANT OPTION ON `db`.*"
            ]
        );
        assert_eq!(
            grant_units("GRANT `r1`, `r2` TO `app_clone`@`%`"),
            ["ROLE `r1`", "ROLE `r2`"]
        );
        assert_eq!(
            grant_units("SET DEFAULT ROLE `r1` FOR `app_clone`@`%`"),
            ["SET DEFAULT ROLE `r1` FOR `app_clone`@`%`"]
        );
    }

    #[test]
    fn tls_requirements() {
        use TlsRequirement as R;
        assert_eq!(R::from_row("", "", "", ""), Some(R::None));
        assert_eq!(R::from_row("ANY", "", "", ""), Some(R::Ssl));
        assert_eq!(R::from_row("X509", "", "", ""), Some(R::X509));
        assert_eq!(R::from_row("SPECIFIED", "", "", ""), Some(R::X509));
        assert_eq!(R::from_row("bogus", "", "", ""), None);
        let specified = R::from_row("SPECIFIED", "AES", "", "/CN=a'b\\c").unwrap();
        assert_eq!(
            specified.to_sql(false),
            r"REQUIRE SUBJECT '/CN=a\'b\\c' AND CIPHER 'AES'"
        );
        assert_eq!(
            specified.to_sql(true),
            r"REQUIRE SUBJECT '/CN=a''b\c' AND CIPHER 'AES'"
        );
        let all = R::Specified {
            issuer: "/CN=i".into(),
            subject: "/CN=s".into(),
            cipher: "AES".into(),
        };
        assert_eq!(
            all.to_sql(false),
            "REQUIRE ISSUER '/CN=i' AND SUBJECT '/CN=s' AND CIPHER 'AES'"
        );
        assert_eq!(R::None.to_sql(false), "REQUIRE NONE");
        assert_eq!(R::Ssl.to_sql(true), "REQUIRE SSL");
        assert_eq!(R::X509.to_sql(true), "REQUIRE X509");
    }

    #[test]
    fn error_codes_keep_number_and_state_only() {
        let e = mysql_async::Error::Server(mysql_async::ServerError {
            code: 1064,
            message: "You have an error in your SQL syntax near 'S3cret'".into(),
            state: "42000".into(),
        });
        assert_eq!(error_code(&e), "error 1064 (42000)");
        assert!(!failed_before_auth(&e));
        let io = mysql_async::Error::Io(IoError::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        )));
        assert!(failed_before_auth(&io));
        let timeout = mysql_async::Error::Io(IoError::Io(std::io::ErrorKind::TimedOut.into()));
        assert!(!failed_before_auth(&timeout));
        let plugin =
            mysql_async::Error::Driver(DriverError::UnknownAuthPlugin { name: "x".into() });
        assert!(!failed_before_auth(&plugin));
        let no_tls = mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer);
        assert!(failed_before_auth(&no_tls));
    }
}
