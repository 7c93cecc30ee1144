//! An account's authentication methods, as the server stores them: read by the master from
//! `mysql.global_priv` (MariaDB 10.4+) or `mysql.user` (MySQL), or by the account itself from
//! `SHOW CREATE USER CURRENT_USER()`; and whether one of them accepts a given password.
//!
//! Whether the account on the master's server accepts the current secret's password is how a
//! master proves it acts on the database the current secret logged in to (docs/protocol.md 5.12):
//! a look-alike server on another port holds other values.

use serde_json::Value;

use super::auth_plugin::PasswordPlugin;
use super::lexer::{Tok, tokenize};

/// MariaDB's plugin when an account names none.
const DEFAULT_PLUGIN: &str = "mysql_native_password";

/// One way an account may authenticate: a plugin and the value it stores. The value is derived
/// from a password: never logged (`Debug` leaves it out).
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Method {
    pub(super) plugin: String,
    pub(super) value: String,
}

impl std::fmt::Debug for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Method")
            .field("plugin", &self.plugin)
            .finish_non_exhaustive()
    }
}

impl Method {
    fn new(plugin: &str, value: &str) -> Self {
        Method {
            plugin: plugin.to_owned(),
            value: value.to_owned(),
        }
    }

    /// The plugin, when the function can compute what it stores.
    pub(super) fn computable(&self) -> Option<PasswordPlugin> {
        PasswordPlugin::parse(&self.plugin)
    }

    /// Whether the method accepts `password`: `None` when its value cannot be computed.
    pub(super) fn accepts(&self, password: &str) -> Option<bool> {
        let plugin = self.computable()?;
        let value = plugin.stored_value(password);
        Some(match plugin {
            // `PASSWORD()` prints upper-case hex; compare the way the server does.
            PasswordPlugin::Native => value.eq_ignore_ascii_case(&self.value),
            PasswordPlugin::Ed25519 => value == self.value,
        })
    }
}

/// Whether any of `methods` accepts `password`: `None` when none of them can be computed, so that
/// nothing can be said.
pub(super) fn any_accepts(methods: &[Method], password: &str) -> Option<bool> {
    let answers: Vec<bool> = methods.iter().filter_map(|m| m.accepts(password)).collect();
    (!answers.is_empty()).then(|| answers.contains(&true))
}

/// The methods in a MariaDB `mysql.global_priv` row's JSON: `auth_or` lists them, an empty object
/// standing for the top-level one; without `auth_or` the top-level method is the only one.
/// `None` when the JSON is not understood.
pub(super) fn from_global_priv(privileges: &str) -> Option<Vec<Method>> {
    let value: Value = serde_json::from_str(privileges).ok()?;
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let top = Method {
        plugin: text(&value, "plugin").unwrap_or_else(|| DEFAULT_PLUGIN.to_owned()),
        value: text(&value, "authentication_string").unwrap_or_default(),
    };
    match value.get("auth_or") {
        None => Some(vec![top]),
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|item| match text(item, "plugin") {
                    Some(plugin) => Method {
                        plugin,
                        value: text(item, "authentication_string").unwrap_or_default(),
                    },
                    None => top.clone(),
                })
                .collect(),
        ),
        Some(_) => None,
    }
}

/// The methods in `SHOW CREATE USER`'s line: `IDENTIFIED BY PASSWORD '<hash>'`, `IDENTIFIED VIA
/// <plugin> [USING '<value>'] [OR …]` (MariaDB), `IDENTIFIED WITH <plugin> [AS '<value>']`
/// (MySQL), or no `IDENTIFIED` (no password). `None` when the line is not understood.
pub(super) fn from_show_create_user(line: &str) -> Option<Vec<Method>> {
    let tokens = tokenize(line)?;
    if !tokens.first()?.is_word("CREATE") || !tokens.get(1)?.is_word("USER") {
        return None;
    }
    let Some(at) = tokens.iter().position(|t| t.is_word("IDENTIFIED")) else {
        return Some(vec![Method::new(DEFAULT_PLUGIN, "")]);
    };
    let mut rest = tokens[at + 1..].iter().peekable();
    let quoted = |t: Option<&super::lexer::Token>| match t.map(|t| &t.tok) {
        Some(Tok::Quoted(value)) => Some(value.clone()),
        _ => None,
    };
    let first = rest.next()?;
    if first.is_word("BY") {
        // `IDENTIFIED BY PASSWORD '<hash>'`: mysql_native_password.
        if !rest.next()?.is_word("PASSWORD") {
            return None;
        }
        return Some(vec![Method::new(DEFAULT_PLUGIN, &quoted(rest.next())?)]);
    }
    let (via, using) = if first.is_word("VIA") {
        ("VIA", "USING")
    } else if first.is_word("WITH") {
        ("WITH", "AS")
    } else {
        return None;
    };
    let mut methods = Vec::new();
    loop {
        let plugin = match rest.next().map(|t| &t.tok) {
            Some(Tok::Word(name) | Tok::Quoted(name)) => name.clone(),
            _ => return None,
        };
        let value = if rest.peek().is_some_and(|t| t.is_word(using)) {
            rest.next();
            quoted(rest.next())?
        } else {
            String::new()
        };
        methods.push(Method { plugin, value });
        if via == "VIA" && rest.peek().is_some_and(|t| t.is_word("OR")) {
            rest.next();
            continue;
        }
        return Some(methods);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NATIVE_PW1: &str = "*2B602296A79E0A8784ACC5C88D92E46588CCA3C3";

    #[test]
    fn show_create_user_lines_are_read() {
        let native = from_show_create_user(&format!(
            "CREATE USER `app`@`%` IDENTIFIED BY PASSWORD '{NATIVE_PW1}' REQUIRE SSL"
        ))
        .unwrap();
        assert_eq!(native, [Method::new("mysql_native_password", NATIVE_PW1)]);
        assert_eq!(any_accepts(&native, "pw1"), Some(true));
        assert_eq!(any_accepts(&native, "pw2"), Some(false));

        let both = from_show_create_user(
            "CREATE USER `a``b`@`10.%` IDENTIFIED VIA mysql_native_password USING \
             '*B27918D2D9402882CEADA0EF687D35FBDC137D72' OR ed25519 USING \
             '9IaQu55QANbcP3OBku7SlJub/VL12GY9ElYo6ITP9WY'",
        )
        .unwrap();
        assert_eq!(
            both.iter().map(|m| m.plugin.as_str()).collect::<Vec<_>>(),
            ["mysql_native_password", "ed25519"]
        );
        assert_eq!(any_accepts(&both, "pw2"), Some(true));
        assert_eq!(any_accepts(&both, "pw1"), Some(true));
        assert_eq!(any_accepts(&both, "pw3"), Some(false));

        let none = from_show_create_user("CREATE USER `app`@`%`").unwrap();
        assert_eq!(any_accepts(&none, ""), Some(true));

        let socket =
            from_show_create_user("CREATE USER `app`@`localhost` IDENTIFIED VIA unix_socket")
                .unwrap();
        assert_eq!(any_accepts(&socket, "pw1"), None);

        let mysql = from_show_create_user(
            "CREATE USER `app`@`%` IDENTIFIED WITH 'caching_sha2_password' AS '$A$005$xyz' \
             REQUIRE NONE PASSWORD EXPIRE DEFAULT",
        )
        .unwrap();
        assert_eq!(mysql[0].plugin, "caching_sha2_password");
        assert_eq!(any_accepts(&mysql, "pw1"), None);

        assert_eq!(from_show_create_user("GRANT USAGE ON *.* TO `a`@`%`"), None);
        assert_eq!(
            from_show_create_user("CREATE USER `a`@`%` IDENTIFIED BY 'x'"),
            None
        );
    }

    #[test]
    fn global_priv_rows_are_read() {
        let one = from_global_priv(&format!(
            r#"{{"access":0,"plugin":"mysql_native_password","authentication_string":"{NATIVE_PW1}"}}"#
        ))
        .unwrap();
        assert_eq!(any_accepts(&one, "pw1"), Some(true));
        let or = from_global_priv(&format!(
            r#"{{"plugin":"mysql_native_password","authentication_string":"{NATIVE_PW1}",
               "auth_or":[{{}},{{"plugin":"ed25519","authentication_string":"9IaQu55QANbcP3OBku7SlJub/VL12GY9ElYo6ITP9WY"}}]}}"#
        ))
        .unwrap();
        assert_eq!(or.len(), 2);
        assert_eq!(or[0].value, NATIVE_PW1);
        assert_eq!(any_accepts(&or, "pw1"), Some(true));
        assert_eq!(any_accepts(&or, "pw2"), Some(false));
        // `VIA unix_socket OR mysql_native_password …`: the empty object is the top-level method.
        let socket_first = from_global_priv(&format!(
            r#"{{"plugin":"mysql_native_password","authentication_string":"{NATIVE_PW1}","auth_or":[{{"plugin":"unix_socket"}},{{}}]}}"#
        ))
        .unwrap();
        assert_eq!(
            socket_first
                .iter()
                .map(|m| m.plugin.as_str())
                .collect::<Vec<_>>(),
            ["unix_socket", "mysql_native_password"]
        );
        assert_eq!(any_accepts(&socket_first, "pw1"), Some(true));
        // No plugin: MariaDB's default, no password.
        assert_eq!(
            from_global_priv(r#"{"access":0}"#).unwrap(),
            [Method::new("mysql_native_password", "")]
        );
        assert_eq!(from_global_priv("not json"), None);
        assert_eq!(from_global_priv(r#"{"auth_or":{}}"#), None);
        // Debug leaves the value out.
        assert!(!format!("{:?}", one[0]).contains(NATIVE_PW1));
    }
}
