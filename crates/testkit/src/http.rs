//! The one skeleton of every test server (the fault proxies, the Lambda Runtime API emulator): a
//! listener on 127.0.0.1 whose connections each run on their own task, all stopped when it is
//! dropped; and just enough HTTP/1.1 for the emulator, the SDK and the Lambda runtime client.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

/// A listener on 127.0.0.1 (any free port) handing each connection to `serve` on its own task.
/// Dropping it stops the listener and every connection task.
pub struct LoopbackServer {
    pub port: u16,
    task: JoinHandle<()>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.task.abort();
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl LoopbackServer {
    pub async fn start<F, Fut>(serve: F) -> Self
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(Mutex::new(Vec::new()));
        let tasks = Arc::clone(&connections);
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let task = tokio::spawn(serve(socket));
                tasks.lock().unwrap().push(task.abort_handle());
            }
        });
        LoopbackServer {
            port,
            task,
            connections,
        }
    }

    /// [`Self::start`] with state every connection shares: `serve(socket, shared)`.
    pub async fn sharing<T, F, Fut>(shared: &Arc<T>, serve: F) -> Self
    where
        T: Send + Sync + 'static,
        F: Fn(TcpStream, Arc<T>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let shared = Arc::clone(shared);
        Self::start(move |socket| serve(socket, Arc::clone(&shared))).await
    }
}

/// One HTTP/1.1 message: start line, headers, and a body read by `Content-Length`, chunked
/// encoding, or (responses only) to the end of the stream.
#[derive(Debug, Clone, Default)]
pub struct Message {
    pub start: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Message {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A response with `status`, extra headers, and `body` (its length set).
    pub fn response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Self {
        Message {
            start: format!("HTTP/1.1 {status}"),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.to_vec(),
        }
    }

    /// Serialises with `Content-Length` (hop-by-hop and length headers replaced).
    pub fn to_bytes(&self, close: bool) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.start).into_bytes();
        for (k, v) in &self.headers {
            if ["content-length", "transfer-encoding", "connection"]
                .iter()
                .any(|h| k.eq_ignore_ascii_case(h))
            {
                continue;
            }
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        if close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// Reads one message; `Ok(None)` at a clean end of stream before any byte.
pub async fn read_message<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    is_response: bool,
) -> std::io::Result<Option<Message>> {
    let mut line = Vec::new();
    if reader.read_until(b'\n', &mut line).await? == 0 {
        return Ok(None);
    }
    let start = String::from_utf8_lossy(&line).trim_end().to_owned();
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if text.is_empty() {
            break;
        }
        if let Some((k, v)) = text.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let mut message = Message {
        start,
        headers,
        body: Vec::new(),
    };
    let chunked = message
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        loop {
            line.clear();
            reader.read_until(b'\n', &mut line).await?;
            let size = String::from_utf8_lossy(&line);
            let size = size.trim().split(';').next().unwrap_or("0");
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| std::io::Error::other("bad chunk size"))?;
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    line.clear();
                    if reader.read_until(b'\n', &mut line).await? == 0
                        || line == b"\r\n"
                        || line == b"\n"
                    {
                        break;
                    }
                }
                break;
            }
            let mut chunk = vec![0; size];
            reader.read_exact(&mut chunk).await?;
            message.body.extend_from_slice(&chunk);
            line.clear();
            reader.read_until(b'\n', &mut line).await?;
        }
    } else if let Some(length) = message.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| std::io::Error::other("bad Content-Length"))?;
        message.body = vec![0; length];
        reader.read_exact(&mut message.body).await?;
    } else if is_response {
        reader.read_to_end(&mut message.body).await?;
    }
    Ok(Some(message))
}

pub async fn write_all<W: AsyncWrite + Unpin>(writer: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    writer.write_all(bytes).await?;
    writer.flush().await
}
