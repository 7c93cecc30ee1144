//! A plaintext connection that never answers a server's request for the password in a form an
//! observer can read (`AuthenticationCleartextPassword`) or replay offline
//! (`AuthenticationMD5Password`): docs/protocol.md 5.14.
//!
//! tokio-postgres answers both requests with whatever password it holds, and has no setting to
//! refuse them (its channel-binding requirement would also refuse SCRAM without TLS, which
//! reveals nothing). So the plaintext stream itself reads the server's messages until
//! authentication ends, and fails the read that carries either request, before the driver sees
//! it. SCRAM (`AuthenticationSASL`) passes: it proves the password without revealing it. Once the
//! server says `AuthenticationOk` the stream stops looking.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `AuthenticationCleartextPassword`'s code in an `R` message.
const CLEARTEXT: u32 = 3;
/// `AuthenticationMD5Password`'s code.
const MD5: u32 = 5;
/// `AuthenticationOk`'s code.
const OK: u32 = 0;

/// What the refusal says, through the driver's error chain.
pub(super) const REFUSED: &str = "the server asked for the password in cleartext or as MD5 over \
    a connection without verified TLS, and the password was not sent; use TLS (`ssl: true`), or \
    SCRAM (password_encryption = scram-sha-256 and a SCRAM pg_hba.conf method), or set \
    ALLOW_CLEARTEXT_PASSWORDS=on to accept that risk";

/// Where the reader is in the server's message stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// Reading a message's type byte and length (5 bytes).
    Header { bytes: [u8; 5], have: usize },
    /// Reading an `R` message's authentication code, then skipping the rest of it.
    Code {
        bytes: [u8; 4],
        have: usize,
        rest: usize,
    },
    /// Skipping the rest of any other message.
    Skip { rest: usize },
    /// Authentication is over: nothing more to look at.
    Done,
}

/// What one byte (or the end of a message) told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Nothing,
    Refused,
}

impl Scan {
    const START: Scan = Scan::Header {
        bytes: [0; 5],
        have: 0,
    };

    /// Feeds the server's bytes; `Refused` as soon as a cleartext or MD5 request is complete.
    fn feed(&mut self, mut input: &[u8]) -> Seen {
        while let Some((&byte, tail)) = input.split_first() {
            match self {
                Scan::Done => return Seen::Nothing,
                Scan::Header { bytes, have } => {
                    bytes[*have] = byte;
                    *have += 1;
                    input = tail;
                    if *have == 5 {
                        let length = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
                        // The length counts itself.
                        let body = (length as usize).saturating_sub(4);
                        *self = if bytes[0] == b'R' {
                            Scan::Code {
                                bytes: [0; 4],
                                have: 0,
                                rest: body,
                            }
                        } else {
                            Scan::Skip { rest: body }
                        };
                        if let Seen::Refused = self.end_if_empty() {
                            return Seen::Refused;
                        }
                    }
                }
                Scan::Code { bytes, have, rest } => {
                    if *rest == 0 {
                        *self = Scan::START;
                        continue;
                    }
                    bytes[*have] = byte;
                    *have += 1;
                    *rest -= 1;
                    input = tail;
                    if *have == 4 {
                        match u32::from_be_bytes(*bytes) {
                            CLEARTEXT | MD5 => return Seen::Refused,
                            OK => {
                                *self = Scan::Done;
                                return Seen::Nothing;
                            }
                            _ => *self = Scan::Skip { rest: *rest },
                        }
                    }
                    if let Seen::Refused = self.end_if_empty() {
                        return Seen::Refused;
                    }
                }
                Scan::Skip { rest } => {
                    let skipped = (*rest).min(input.len());
                    *rest -= skipped;
                    input = &input[skipped..];
                    if *rest == 0 {
                        *self = Scan::START;
                    }
                }
            }
        }
        Seen::Nothing
    }

    /// A message whose body is complete goes back to reading headers.
    fn end_if_empty(&mut self) -> Seen {
        match *self {
            Scan::Skip { rest: 0 } => *self = Scan::START,
            Scan::Code { rest: 0, have, .. } if have < 4 => *self = Scan::START,
            _ => {}
        }
        Seen::Nothing
    }
}

/// A plaintext stream that fails instead of letting the driver answer a cleartext or MD5
/// password request.
#[derive(Debug)]
pub(super) struct NoCleartext<S> {
    inner: S,
    scan: Scan,
}

impl<S> NoCleartext<S> {
    pub(super) fn new(inner: S) -> Self {
        NoCleartext {
            inner,
            scan: Scan::START,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for NoCleartext<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if this.scan.feed(&buf.filled()[before..]) == Seen::Refused {
                    // The request never reaches the driver, which therefore sends nothing.
                    buf.set_filled(before);
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        REFUSED,
                    )));
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for NoCleartext<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(code: u32, extra: &[u8]) -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend_from_slice(&(8 + extra.len() as u32).to_be_bytes());
        m.extend_from_slice(&code.to_be_bytes());
        m.extend_from_slice(extra);
        m
    }

    fn notice() -> Vec<u8> {
        let body = b"SNOTICE\0\0";
        let mut m = vec![b'N'];
        m.extend_from_slice(&(4 + body.len() as u32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    /// Feeds `stream` in chunks of every size, returning what each run saw.
    fn scan_in_chunks(stream: &[u8]) -> Vec<Seen> {
        (1..=stream.len())
            .map(|size| {
                let mut scan = Scan::START;
                stream
                    .chunks(size)
                    .map(|chunk| scan.feed(chunk))
                    .find(|seen| *seen == Seen::Refused)
                    .unwrap_or(Seen::Nothing)
            })
            .collect()
    }

    #[test]
    fn cleartext_and_md5_requests_are_refused_however_the_bytes_arrive() {
        for stream in [
            auth(CLEARTEXT, &[]),
            auth(MD5, &[1, 2, 3, 4]),
            [notice(), auth(MD5, b"salt")].concat(),
        ] {
            assert!(
                scan_in_chunks(&stream)
                    .into_iter()
                    .all(|seen| seen == Seen::Refused),
                "{stream:?}"
            );
        }
    }

    #[test]
    fn scram_passes_and_nothing_is_looked_at_after_authentication() {
        // SASL (10) with its mechanism list, SASLContinue (11), SASLFinal (12), Ok (0), then a
        // message that would look like a cleartext request if it were still read as one.
        let stream = [
            auth(10, b"SCRAM-SHA-256\0\0"),
            auth(11, b"r=abc,s=def,i=4096"),
            auth(12, b"v=xyz"),
            auth(OK, &[]),
            auth(CLEARTEXT, &[]),
        ]
        .concat();
        assert!(
            scan_in_chunks(&stream)
                .into_iter()
                .all(|seen| seen == Seen::Nothing)
        );
    }

    #[test]
    fn an_error_before_authentication_passes() {
        let body = b"SFATAL\0C28P01\0\0";
        let mut e = vec![b'E'];
        e.extend_from_slice(&(4 + body.len() as u32).to_be_bytes());
        e.extend_from_slice(body);
        assert!(scan_in_chunks(&e).into_iter().all(|s| s == Seen::Nothing));
    }
}
