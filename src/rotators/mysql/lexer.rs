//! A minimal lexer for the statements `SHOW GRANTS` prints: words, quoted names and strings
//! (decoded), and punctuation, each with its span in the line.

use std::ops::Range;

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Tok {
    /// A keyword or bare word, as written.
    Word(String),
    /// A `'…'`, `"…"` or `` `…` `` token, decoded.
    Quoted(String),
    /// Any other character (`@`, `,`, `(`, `.`, `*`, …).
    Punct(char),
}

/// A token and where it stands in the statement.
#[derive(Debug, Clone)]
pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) span: Range<usize>,
}

impl Token {
    pub(super) fn is_word(&self, word: &str) -> bool {
        matches!(&self.tok, Tok::Word(w) if w.eq_ignore_ascii_case(word))
    }

    pub(super) fn is_punct(&self, c: char) -> bool {
        self.tok == Tok::Punct(c)
    }

    /// The value of a quoted or bare name.
    pub(super) fn name(&self) -> Option<&str> {
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
pub(super) fn tokenize(sql: &str) -> Option<Vec<Token>> {
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
pub(super) fn find_top_level(tokens: &[Token], from: usize, word: &str) -> Option<usize> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rotators::mysql::quote::quote_literal;

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
}
