//! A small HTTP/1.1 server for `/metrics`: GET and HEAD, one request per
//! connection, and nothing a client sends can make it use unbounded
//! threads, memory or time.
//!
//! Hand-written on `std::net` on purpose: a scrape endpoint needs one route
//! and no keep-alive, TLS or body parsing, and the crates that do HTTP well
//! (hyper, axum) bring an async stack, while tiny_http spawns a thread per
//! connection without a bound. A fixed pool of threads, a bounded queue,
//! a size cap and one deadline per request are the whole job.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{sync_channel, Receiver, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bounds on what clients may take.
#[derive(Clone, Debug)]
pub struct ServerLimits {
    /// Requests handled at once (the size of the thread pool); as many again
    /// may wait, and more connections are answered 503 at once.
    pub max_connections: usize,
    /// Bytes of request line and headers.
    pub max_request: usize,
    /// Time a client has to send its whole request.
    pub read_timeout: Duration,
    /// Time a client has to take each write of the response.
    pub write_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 8,
            max_request: 8 * 1024,
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// A page to answer with.
pub struct Page {
    pub content_type: &'static str,
    pub body: String,
}

/// Finds the page for a path (without the query); `None` answers 404.
pub type Handler = dyn Fn(&str) -> Option<Page> + Send + Sync;

/// Serves `listener` until the process exits.
pub fn serve(listener: TcpListener, limits: ServerLimits, handler: Arc<Handler>) {
    let workers = limits.max_connections.max(1);
    let (tx, rx) = sync_channel::<TcpStream>(workers);
    let rx = Arc::new(Mutex::new(rx));
    for _ in 0..workers {
        let rx = rx.clone();
        let handler = handler.clone();
        let limits = limits.clone();
        std::thread::spawn(move || worker(&rx, &limits, &*handler));
    }
    for stream in listener.incoming().flatten() {
        match tx.try_send(stream) {
            Ok(()) => {}
            Err(TrySendError::Full(mut stream)) => {
                let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
                let _ = refuse(&mut stream, &Status::BUSY, "busy; try again\n");
            }
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
}

fn worker(rx: &Mutex<Receiver<TcpStream>>, limits: &ServerLimits, handler: &Handler) {
    loop {
        let next = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(stream) = next else { return };
        let _ = handle(stream, limits, handler);
    }
}

/// An HTTP status line.
struct Status(&'static str);

impl Status {
    const OK: Status = Status("200 OK");
    const BAD_REQUEST: Status = Status("400 Bad Request");
    const NOT_FOUND: Status = Status("404 Not Found");
    const METHOD_NOT_ALLOWED: Status = Status("405 Method Not Allowed");
    const TIMEOUT: Status = Status("408 Request Timeout");
    const TOO_LARGE: Status = Status("431 Request Header Fields Too Large");
    const BUSY: Status = Status("503 Service Unavailable");
}

const TEXT: &str = "text/plain; charset=utf-8";

/// Why reading a request stopped.
enum ReadError {
    TooLarge,
    Timeout,
    Io,
}

fn handle(mut stream: TcpStream, limits: &ServerLimits, handler: &Handler) -> io::Result<()> {
    stream.set_write_timeout(Some(limits.write_timeout))?;
    let s = &mut stream;
    let head = match read_head(s, limits) {
        Ok(head) => head,
        Err(ReadError::TooLarge) => return refuse(s, &Status::TOO_LARGE, "request too large\n"),
        Err(ReadError::Timeout) => return refuse(s, &Status::TIMEOUT, "request timed out\n"),
        Err(ReadError::Io) => return Ok(()),
    };
    let Some((method, target)) = request_line(&head) else {
        return refuse(s, &Status::BAD_REQUEST, "bad request\n");
    };
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            let allow = [("Allow", "GET, HEAD")];
            let body = "method not allowed; use GET or HEAD\n";
            return respond(s, false, &Status::METHOD_NOT_ALLOWED, &allow, TEXT, body);
        }
    };
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    match handler(path) {
        Some(page) => respond(
            s,
            head_only,
            &Status::OK,
            &[],
            page.content_type,
            &page.body,
        ),
        None => respond(
            s,
            head_only,
            &Status::NOT_FOUND,
            &[],
            TEXT,
            "not found; try /metrics\n",
        ),
    }
}

/// The method and target of `METHOD TARGET HTTP/1.x`.
fn request_line(head: &str) -> Option<(&str, &str)> {
    let mut parts = head.lines().next()?.split(' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(target), Some(version), None) if version.starts_with("HTTP/1.") => {
            Some((method, target))
        }
        _ => None,
    }
}

/// Answers an error with a short text body.
fn refuse(stream: &mut TcpStream, status: &Status, body: &str) -> io::Result<()> {
    respond(stream, false, status, &[], TEXT, body)
}

/// Reads the request line and headers, up to the blank line, within the
/// size limit and one deadline for the whole request (a client that sends
/// a byte at a time does not get a fresh timeout per byte).
fn read_head(stream: &mut TcpStream, limits: &ServerLimits) -> Result<String, ReadError> {
    let deadline = Instant::now() + limits.read_timeout;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = find_end(&buf) {
            buf.truncate(end);
            return Ok(String::from_utf8_lossy(&buf).into_owned());
        }
        if buf.len() > limits.max_request {
            return Err(ReadError::TooLarge);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReadError::Timeout);
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|_| ReadError::Io)?;
        match stream.read(&mut chunk) {
            Ok(0) => return Err(ReadError::Io),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(ReadError::Timeout)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(ReadError::Io),
        }
    }
}

/// Where the head ends (`\r\n\r\n`, or `\n\n` from lenient clients).
fn find_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = buf.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn respond(
    stream: &mut TcpStream,
    head_only: bool,
    status: &Status,
    extra: &[(&str, &str)],
    content_type: &str,
    body: &str,
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        status.0,
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn start(limits: ServerLimits) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handler: Arc<Handler> = Arc::new(|path: &str| {
            (path == "/metrics").then(|| Page {
                content_type: "text/plain; version=0.0.4",
                body: "m 1\n".to_owned(),
            })
        });
        std::thread::spawn(move || serve(listener, limits, handler));
        addr
    }

    fn fast() -> ServerLimits {
        ServerLimits {
            read_timeout: Duration::from_millis(300),
            ..ServerLimits::default()
        }
    }

    /// Sends `request` and reads the whole answer.
    fn ask(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(request).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn get_answers_the_page_and_head_its_headers_only() {
        let addr = start(fast());
        let get = ask(addr, b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(get.starts_with("HTTP/1.1 200 OK\r\n"), "{get}");
        assert!(get.contains("Content-Length: 4\r\n"), "{get}");
        assert!(get.ends_with("\r\n\r\nm 1\n"), "{get}");
        let head = ask(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n");
        assert_eq!(
            Some(head.as_str()),
            get.strip_suffix("m 1\n"),
            "HEAD differs from GET"
        );
    }

    #[test]
    fn other_methods_get_405_with_allow() {
        let addr = start(fast());
        for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
            let r = ask(
                addr,
                format!("{method} /metrics HTTP/1.1\r\n\r\n").as_bytes(),
            );
            assert!(r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{r}");
            assert!(r.contains("\r\nAllow: GET, HEAD\r\n"), "{r}");
        }
    }

    #[test]
    fn unknown_paths_get_404() {
        let addr = start(fast());
        let r = ask(addr, b"GET /nope HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"), "{r}");
        let r = ask(addr, b"HEAD /nope HTTP/1.1\r\n\r\n");
        assert!(
            r.starts_with("HTTP/1.1 404 Not Found\r\n") && r.ends_with("\r\n\r\n"),
            "{r}"
        );
        let r = ask(addr, b"GARBAGE\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{r}");
    }

    #[test]
    fn oversized_request_is_refused() {
        let addr = start(fast());
        let mut req = b"GET /metrics HTTP/1.1\r\nX-Big: ".to_vec();
        req.extend(std::iter::repeat_n(b'a', 64 * 1024));
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // The server may close before everything is written.
        let _ = s.write_all(&req);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let r = String::from_utf8_lossy(&out);
        assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
    }

    #[test]
    fn slow_client_times_out() {
        let addr = start(fast());
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let started = Instant::now();
        // A byte every 50 ms: each read is quick, the request never ends.
        let mut out = Vec::new();
        for b in b"GET /metrics HTTP/1.1\r\nX: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if s.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = s.read_to_end(&mut out);
        let r = String::from_utf8_lossy(&out);
        assert!(r.starts_with("HTTP/1.1 408 "), "{r}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn connections_beyond_the_bound_get_503() {
        let addr = start(ServerLimits {
            max_connections: 1,
            read_timeout: Duration::from_secs(3),
            ..ServerLimits::default()
        });
        // One idle connection in the pool, one waiting: the third is busy.
        let _a = TcpStream::connect(addr).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let _b = TcpStream::connect(addr).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let started = Instant::now();
        let r = ask(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 503 "), "{r}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
}
