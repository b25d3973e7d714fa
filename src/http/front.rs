//! The public listener's own HTTP/1.1 path for the requests it answers
//! most: a `GET` or `HEAD` with no body, parsed in place (`httparse`, the
//! parser hyper itself uses) and answered straight into the connection's
//! write buffer, with no request or response objects, no header map and
//! no per-request task or timer.
//!
//! Everything else goes to hyper, untouched: the first request this path
//! does not take (another method, a body, `Expect`, HTTP/1.0, an
//! absolute-form target, a head too large or malformed, a path the
//! [`Front`] leaves) hands the connection over, with the bytes already
//! read put back in front of the socket, and hyper serves it from there
//! on. So hyper still decides every answer this path does not give,
//! errors included.
//!
//! What the connection promises is what hyper's did: keep-alive, pipelined
//! requests answered in order, `Connection: close` honoured, a head not
//! complete within `header_read_timeout_ms` (counted from when the
//! connection began waiting for it) ends the connection, and on shutdown
//! an idle connection closes while one mid-head may finish.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes};
use hyper::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::config::HttpConfig;

/// Most headers a head may have on this path; one with more goes to
/// hyper (which takes up to 100).
const MAX_HEADERS: usize = 48;

/// Answers the requests the public listener's own path takes.
pub trait Front: Send + Sync + 'static {
    /// Answers `head` through `reply` and returns true, or returns false,
    /// having written nothing, to leave this request and the rest of the
    /// connection to hyper.
    fn answer(&self, head: &Head<'_>, peer: SocketAddr, reply: &mut Reply<'_>) -> bool;
}

/// A request head this path may answer: `GET` or `HEAD`, HTTP/1.1, no
/// body, an origin-form target.
#[derive(Debug)]
pub struct Head<'a> {
    /// True for `HEAD`.
    pub is_head: bool,
    /// The target's path (starts with `/`).
    pub path: &'a str,
    /// The target's query, without its `?`.
    pub query: Option<&'a str>,
    /// The header lines, as sent.
    pub headers: &'a [httparse::Header<'a>],
}

/// Writes one answer: [`Reply::start`], any [`Reply::header`]s, then
/// [`Reply::end`]. The framing headers (`content-length`, `date`,
/// `connection: close` when the connection ends) are this path's.
pub struct Reply<'a> {
    out: &'a mut Vec<u8>,
    is_head: bool,
    close: bool,
    ended: bool,
}

impl Reply<'_> {
    /// The status line.
    pub fn start(&mut self, status: StatusCode) {
        self.out.extend_from_slice(b"HTTP/1.1 ");
        self.out.extend_from_slice(status.as_str().as_bytes());
        self.out.push(b' ');
        self.out
            .extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    /// One header line; `value` must be a valid header value (a
    /// `HeaderValue`'s bytes).
    pub fn header(&mut self, name: &str, value: &[u8]) {
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b": ");
        self.out.extend_from_slice(value);
        self.out.extend_from_slice(b"\r\n");
    }

    /// The framing headers and `body` (left out, its length kept, for
    /// `HEAD`).
    pub fn end(&mut self, body: &[u8]) {
        let mut len = itoa::Buffer::new();
        self.header("content-length", len.format(body.len()).as_bytes());
        DATE.with(|d| {
            let mut d = d.borrow_mut();
            let now = unix_seconds();
            if d.0 != now {
                let text = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(now));
                *d = (now, text);
            }
            self.header("date", d.1.as_bytes());
        });
        if self.close {
            self.header("connection", b"close");
        }
        self.out.extend_from_slice(b"\r\n");
        if !self.is_head {
            self.out.extend_from_slice(body);
        }
        self.ended = true;
    }
}

/// The wall clock's seconds, from the coarse clock where there is one: the
/// `Date` header needs no finer, and it is read per answer.
fn unix_seconds() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: the kernel (vDSO) writes into a live timespec.
        if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } == 0 {
            return ts.tv_sec as u64;
        }
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

thread_local! {
    /// The `Date` header's text, made once a second per thread.
    static DATE: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((0, String::new())) };
}

/// What a parsed head is to this path.
#[derive(Debug, PartialEq, Eq)]
enum Taken<'a> {
    /// Ours; the connection closes after the answer when `close`.
    Ours {
        is_head: bool,
        target: &'a str,
        close: bool,
    },
    /// hyper's.
    Hyper,
}

/// Whether this path may answer `req`, and how.
fn take<'a>(req: &httparse::Request<'_, 'a>) -> Taken<'a> {
    let is_head = match req.method {
        Some("GET") => false,
        Some("HEAD") => true,
        _ => return Taken::Hyper,
    };
    let (Some(1), Some(target)) = (req.version, req.path) else {
        return Taken::Hyper;
    };
    if !target.starts_with('/') || !target.bytes().all(plain_target_byte) {
        return Taken::Hyper;
    }
    let mut close = false;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            if h.value != b"0" {
                return Taken::Hyper;
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"expect")
            || name.eq_ignore_ascii_case(b"upgrade")
        {
            return Taken::Hyper;
        } else if name.eq_ignore_ascii_case(b"connection") {
            close |= h
                .value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
    }
    Taken::Ours {
        is_head,
        target,
        close,
    }
}

/// The bytes of a request target this path takes as they are: the URI
/// characters `http::Uri` accepts in a path and query without question.
/// A target with any other byte goes to hyper, which decides.
fn plain_target_byte(b: u8) -> bool {
    PLAIN_TARGET[b as usize]
}

/// [`plain_target_byte`] for every byte: one load per byte of a target.
const PLAIN_TARGET: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
                    | b'/'
                    | b'?'
                    | b'%'
            );
        i += 1;
    }
    table
};

/// The bounds on a request head, from `HttpConfig`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a head may take to arrive, from when it is waited for.
    pub header_read_timeout: Duration,
    /// Largest head; a larger one goes to hyper, which answers `431`.
    pub max_header_bytes: usize,
}

impl From<&HttpConfig> for Limits {
    fn from(cfg: &HttpConfig) -> Limits {
        Limits {
            header_read_timeout: Duration::from_millis(cfg.header_read_timeout_ms),
            max_header_bytes: cfg.max_header_bytes,
        }
    }
}

/// What a connection does once the complete heads it has read are
/// answered.
#[derive(Debug, PartialEq, Eq)]
enum After {
    /// Reads on.
    Read,
    /// Ends: the last answer said `connection: close`.
    Close,
    /// Goes to hyper, with the bytes not answered.
    HandOver,
}

/// Answers the complete heads at the start of `buf` into `out`, in order;
/// returns how many bytes they took and what comes next.
fn answer_buffered(
    front: &dyn Front,
    buf: &[u8],
    out: &mut Vec<u8>,
    peer: SocketAddr,
    limits: Limits,
    stop: &Closing,
) -> (usize, After) {
    let mut start = 0;
    while start < buf.len() {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let n = match req.parse(&buf[start..]) {
            Ok(httparse::Status::Complete(n)) if n <= limits.max_header_bytes => n,
            // Larger than hyper reads (its `431` answers it), or not HTTP
            // (its `400`).
            Ok(httparse::Status::Complete(_)) | Err(_) => return (start, After::HandOver),
            Ok(httparse::Status::Partial) if buf.len() - start > limits.max_header_bytes => {
                return (start, After::HandOver)
            }
            Ok(httparse::Status::Partial) => break,
        };
        let Taken::Ours {
            is_head,
            target,
            close,
        } = take(&req)
        else {
            return (start, After::HandOver);
        };
        // Shutting down: this answer is the connection's last, as hyper's
        // graceful shutdown ends a busy keep-alive connection.
        let close = close || stop.is_closed();
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        let head = Head {
            is_head,
            path,
            query,
            headers: req.headers,
        };
        let mut reply = Reply {
            out: &mut *out,
            is_head,
            close,
            ended: false,
        };
        if !front.answer(&head, peer, &mut reply) {
            return (start, After::HandOver);
        }
        debug_assert!(reply.ended, "an answer was started and not ended");
        start += n;
        if close {
            return (start, After::Close);
        }
    }
    (start, After::Read)
}

/// Serves one connection: this path's requests here, the rest handed, with
/// the connection, to `hyper`.
pub async fn serve_connection<H, Fut>(
    front: &dyn Front,
    mut stream: TcpStream,
    peer: SocketAddr,
    limits: Limits,
    hyper: H,
    stop: &Closing,
) where
    H: FnOnce(Prefixed) -> Fut,
    Fut: Future<Output = ()>,
{
    let timeout = limits.header_read_timeout;
    // One timer and one shutdown waiter for the connection's life: moving
    // a deadline later is an atomic store, not a trip to the timer wheel,
    // and the waiter is a flag once registered.
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let stopped = stop.closed();
    tokio::pin!(stopped);
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    // Whether `deadline` is set for the head being waited for.
    let mut armed = false;
    loop {
        let (answered, after) = answer_buffered(front, &buf, &mut out, peer, limits, stop);
        if answered > 0 {
            buf.drain(..answered);
            armed = false;
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        match after {
            After::Read => {}
            After::Close => {
                let _ = stream.shutdown().await;
                return;
            }
            After::HandOver => {
                hyper(Prefixed::new(buf.into(), stream)).await;
                return;
            }
        }
        if !armed {
            deadline
                .as_mut()
                .reset(tokio::time::Instant::now() + timeout);
            armed = true;
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(4096);
        }
        let idle = buf.is_empty();
        tokio::select! {
            biased;
            read = stream.read_buf(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            // A head not complete in time: the connection ends, as hyper's
            // header read timeout ends it.
            _ = &mut deadline => return,
            _ = &mut stopped, if idle => return,
        }
    }
}

/// A listener's stop, as its connections on this path see it: a flag read
/// per request, and a waiter per connection that takes a lock only to
/// register and to leave (a `CancellationToken` locks a mutex on every
/// check, shared by every thread's connections).
#[derive(Debug, Default)]
pub struct Closing {
    closed: AtomicBool,
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, Waker>>,
}

impl Closing {
    /// Not closed.
    pub fn new() -> Closing {
        Closing::default()
    }

    /// Closes: every waiter wakes, every later check sees it.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let waiting = std::mem::take(&mut *self.waiting.lock().unwrap_or_else(|e| e.into_inner()));
        for (_, waker) in waiting {
            waker.wake();
        }
    }

    /// True once closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Ready once closed; to be polled by one task only (its waker is
    /// taken once).
    fn closed(&self) -> Closed<'_> {
        Closed {
            closing: self,
            key: None,
        }
    }
}

/// [`Closing::closed`].
struct Closed<'a> {
    closing: &'a Closing,
    key: Option<u64>,
}

impl Future for Closed<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.closing.closed.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        if this.key.is_none() {
            let key = this.closing.next.fetch_add(1, Ordering::Relaxed);
            let mut waiting = this
                .closing
                .waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            // Checked again under the lock `close` takes after setting the
            // flag: a close between the two checks is seen here.
            if this.closing.closed.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            waiting.insert(key, cx.waker().clone());
            this.key = Some(key);
        }
        Poll::Pending
    }
}

impl Drop for Closed<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            let mut waiting = self
                .closing
                .waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            waiting.remove(&key);
        }
    }
}

/// A connection handed to hyper: the bytes this path read and did not
/// answer, then the socket.
pub struct Prefixed {
    pending: Bytes,
    stream: TcpStream,
}

impl Prefixed {
    /// `stream`, read after `pending`.
    fn new(pending: Bytes, stream: TcpStream) -> Prefixed {
        Prefixed { pending, stream }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.pending.is_empty() {
            let n = buf.remaining().min(this.pending.len());
            buf.put_slice(&this.pending[..n]);
            this.pending.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use http_body_util::Full;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_util::sync::CancellationToken;

    use super::*;

    #[tokio::test]
    async fn closing_wakes_waiters_and_is_seen_after() {
        let closing = Arc::new(Closing::new());
        assert!(!closing.is_closed());
        let waiter = {
            let closing = closing.clone();
            tokio::spawn(async move { closing.closed().await })
        };
        // The waiter has registered once the map holds it.
        while closing.waiting.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        closing.close();
        waiter.await.unwrap();
        assert!(closing.is_closed());
        assert!(closing.waiting.lock().unwrap().is_empty());
        // After the close: ready at once, nothing registered.
        closing.closed().await;
        assert!(closing.waiting.lock().unwrap().is_empty());
    }

    fn parse(raw: &[u8]) -> Taken<'_> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        assert!(req.parse(raw).unwrap().is_complete());
        // The lifetimes of a parsed head are the buffer's: re-take it with
        // the buffer's lifetime for the comparison.
        match take(&req) {
            Taken::Ours {
                is_head,
                target,
                close,
            } => {
                let at = raw
                    .windows(target.len())
                    .position(|w| w == target.as_bytes());
                let target = std::str::from_utf8(&raw[at.unwrap()..][..target.len()]).unwrap();
                Taken::Ours {
                    is_head,
                    target,
                    close,
                }
            }
            Taken::Hyper => Taken::Hyper,
        }
    }

    #[test]
    fn which_heads_this_path_takes() {
        let ours = |is_head, target, close| Taken::Ours {
            is_head,
            target,
            close,
        };
        let cases: &[(&[u8], Taken<'_>)] = &[
            (
                b"GET /a?sub1=x HTTP/1.1\r\nHost: h\r\n\r\n",
                ours(false, "/a?sub1=x", false),
            ),
            (b"HEAD /a HTTP/1.1\r\n\r\n", ours(true, "/a", false)),
            (
                b"GET /a HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n",
                ours(false, "/a", true),
            ),
            (
                b"GET /a HTTP/1.1\r\nConnection: keep-alive\r\n\r\n",
                ours(false, "/a", false),
            ),
            (
                b"GET /a HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
                ours(false, "/a", false),
            ),
            (b"GET /%41b HTTP/1.1\r\n\r\n", ours(false, "/%41b", false)),
            // A body, a promise of one, or another protocol: hyper's.
            (
                b"GET /a HTTP/1.1\r\nContent-Length: 3\r\n\r\n",
                Taken::Hyper,
            ),
            (
                b"GET /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                Taken::Hyper,
            ),
            (
                b"GET /a HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
                Taken::Hyper,
            ),
            (
                b"GET /a HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
                Taken::Hyper,
            ),
            // Other methods, HTTP/1.0, targets that are not plain paths.
            (b"POST /a HTTP/1.1\r\n\r\n", Taken::Hyper),
            (b"OPTIONS * HTTP/1.1\r\n\r\n", Taken::Hyper),
            (b"GET /a HTTP/1.0\r\n\r\n", Taken::Hyper),
            (b"GET http://h/a HTTP/1.1\r\n\r\n", Taken::Hyper),
            (b"GET /a{b} HTTP/1.1\r\n\r\n", Taken::Hyper),
            (b"GET /a\"b HTTP/1.1\r\n\r\n", Taken::Hyper),
        ];
        for (raw, want) in cases {
            assert_eq!(&parse(raw), want, "{}", String::from_utf8_lossy(raw));
        }
    }

    /// Answers `GET|HEAD /ours...` with `200` and the path as the body;
    /// leaves the rest.
    struct Ours;

    impl Front for Ours {
        fn answer(&self, head: &Head<'_>, _peer: SocketAddr, reply: &mut Reply<'_>) -> bool {
            if !head.path.starts_with("/ours") {
                return false;
            }
            reply.start(StatusCode::OK);
            reply.header("x-path", head.path.as_bytes());
            reply.end(head.path.as_bytes());
            true
        }
    }

    /// A server with [`Ours`] in front of hyper, which answers every
    /// request it gets `hyper METHOD PATH`.
    async fn server(
        cfg: HttpConfig,
    ) -> (SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let handler = |req: hyper::Request<hyper::body::Incoming>, _peer| async move {
            let body = format!("hyper {} {}", req.method(), req.uri());
            hyper::Response::new(Full::new(Bytes::from(body)))
        };
        let task = tokio::spawn(crate::http::serve(
            "test",
            listener,
            cfg,
            handler,
            Some(Arc::new(Ours)),
            stop.clone(),
        ));
        (addr, stop, task)
    }

    /// One answer read off `s`: status, headers (names lower case), body
    /// (`has_body` false for `HEAD`).
    async fn answer(
        s: &mut tokio::net::TcpStream,
        buf: &mut Vec<u8>,
        has_body: bool,
    ) -> (u16, Vec<(String, String)>, String) {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(n) = resp.parse(buf).unwrap() {
                let heads: Vec<(String, String)> = resp
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).to_string(),
                        )
                    })
                    .collect();
                let len: usize = heads
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .map_or(0, |(_, v)| v.parse().unwrap());
                let len = if has_body { len } else { 0 };
                if buf.len() >= n + len {
                    let status = resp.code.unwrap();
                    let body = String::from_utf8_lossy(&buf[n..n + len]).to_string();
                    buf.drain(..n + len);
                    return (status, heads, body);
                }
            }
            let read = s.read_buf(buf).await.unwrap();
            assert!(
                read > 0,
                "the connection ended before a whole answer: {:?}",
                String::from_utf8_lossy(buf)
            );
        }
    }

    /// A fresh connection to `addr` that has sent `raw`.
    async fn sent(addr: SocketAddr, raw: &[u8]) -> tokio::net::TcpStream {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(raw).await.unwrap();
        s
    }

    fn header<'h>(heads: &'h [(String, String)], name: &str) -> Option<&'h str> {
        heads
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Reads to the end of the stream: true when the server closed it.
    async fn closed(s: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> bool {
        s.read_to_end(buf).await.is_ok()
    }

    #[tokio::test]
    async fn keep_alive_pipelining_and_hand_over_on_one_connection() {
        let (addr, stop, task) = server(HttpConfig::default()).await;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = Vec::new();

        // Two pipelined in one write, then one more, split mid-head.
        s.write_all(
            b"GET /ours/1 HTTP/1.1\r\nHost: h\r\n\r\nHEAD /ours/2?x=1 HTTP/1.1\r\nHost: h\r\n\r\n",
        )
        .await
        .unwrap();
        let (status, heads, body) = answer(&mut s, &mut buf, true).await;
        assert_eq!((status, body.as_str()), (200, "/ours/1"));
        assert_eq!(header(&heads, "content-length"), Some("7"));
        let date = header(&heads, "date").expect("a date header");
        assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
        assert_eq!(header(&heads, "connection"), None);
        let (status, heads, _) = answer(&mut s, &mut buf, false).await;
        assert_eq!(status, 200);
        assert_eq!(header(&heads, "x-path"), Some("/ours/2"));
        // HEAD: the length of the body it would have had, and no body: the
        // next answer's status line follows at once.
        assert_eq!(header(&heads, "content-length"), Some("7"));
        s.write_all(b"GET /ours/3 HT").await.unwrap();
        s.flush().await.unwrap();
        s.write_all(b"TP/1.1\r\nHost: h\r\n\r\n").await.unwrap();
        let (status, _, body) = answer(&mut s, &mut buf, true).await;
        assert_eq!((status, body.as_str()), (200, "/ours/3"));

        // A request this path leaves, pipelined behind one it takes: the
        // first is answered here, the rest of the connection is hyper's,
        // the request after the hand-over included.
        s.write_all(b"GET /ours/4 HTTP/1.1\r\n\r\nPOST /ours/5 HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET /ours/6 HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let (_, _, body) = answer(&mut s, &mut buf, true).await;
        assert_eq!(body, "/ours/4");
        let (_, _, body) = answer(&mut s, &mut buf, true).await;
        assert_eq!(body, "hyper POST /ours/5");
        let (_, _, body) = answer(&mut s, &mut buf, true).await;
        assert_eq!(body, "hyper GET /ours/6");

        stop.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn close_is_honoured_and_shutdown_closes_idle_connections() {
        let (addr, stop, task) = server(HttpConfig::default()).await;
        let mut buf = Vec::new();
        let mut s = sent(addr, b"GET /ours/1 HTTP/1.1\r\nConnection: close\r\n\r\n").await;
        let (status, heads, _) = answer(&mut s, &mut buf, true).await;
        assert_eq!(status, 200);
        assert_eq!(header(&heads, "connection"), Some("close"));
        assert!(closed(&mut s, &mut buf).await);
        assert!(buf.is_empty(), "bytes after a closing answer: {buf:?}");

        // An idle keep-alive connection, then shutdown: it is closed, and
        // serving ends once it is.
        let mut idle = sent(addr, b"GET /ours/2 HTTP/1.1\r\n\r\n").await;
        let (status, _, _) = answer(&mut idle, &mut buf, true).await;
        assert_eq!(status, 200);
        stop.cancel();
        assert!(closed(&mut idle, &mut buf).await);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn slow_oversized_and_malformed_heads() {
        let cfg = HttpConfig {
            header_read_timeout_ms: 300,
            max_header_bytes: 8192,
            ..HttpConfig::default()
        };
        let (addr, stop, task) = server(cfg).await;
        let mut buf = Vec::new();

        // Cut off: the head never completes, and the server ends the
        // connection without an answer.
        let mut slow = sent(addr, b"GET /ours/1 HTTP/1.1\r\nHost: h\r\n").await;
        assert!(closed(&mut slow, &mut buf).await);
        assert!(buf.is_empty(), "an incomplete head was answered: {buf:?}");

        // Too large: hyper's 431.
        let head = format!(
            "GET /ours/1 HTTP/1.1\r\nx-big: {}\r\n\r\n",
            "a".repeat(10_000)
        );
        let mut big = sent(addr, head.as_bytes()).await;
        let (status, _, _) = answer(&mut big, &mut buf, true).await;
        assert_eq!(status, 431);

        // Not HTTP: hyper's 400.
        let mut bad = sent(addr, b"GET /ours/1 HTTP/1.1\r\nbad header\r\n\r\n").await;
        let (status, _, _) = answer(&mut bad, &mut buf, true).await;
        assert_eq!(status, 400);

        stop.cancel();
        task.await.unwrap();
    }
}
