//! HTTP listeners: the accept loop shared by both, the readiness handle
//! they answer `readyz` from, and response helpers.
//!
//! Each listener has its own state type, holding what that listener needs
//! and nothing more: [`public::PublicState`] (redirects and health checks
//! on the listener's own HTTP/1.1 path, [`front`], since they are the hot
//! path; everything else on hyper; `/partner/` goes on to the partner
//! API's axum router and its [`partner::PartnerState`]) and
//! [`admin::AdminState`] (the JSON API on an axum router). `app` builds
//! both; nothing here reaches back into `app`.
//!
//! Both listeners speak HTTP/1.1 with a header read timeout (slow clients
//! are cut off), a bounded request head (larger ones get hyper's `431`),
//! and graceful shutdown: on stop, accepting ends, in-flight requests
//! finish within the grace period, idle keep-alive connections close.
//!
//! [`bundle`] serves the browser pages compiled into the binary (the admin
//! dashboard, the partner portal) with their files and security headers.

pub mod admin;
pub mod apply;
pub mod bundle;
pub mod conversion;
pub mod cores;
pub mod front;
pub mod partner;
pub mod public;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::config::HttpConfig;

/// The response type of every handler.
pub type Resp = Response<Full<Bytes>>;

/// Whether this node can take traffic: false while starting (the catalog
/// is not loaded yet) and once shutdown begins. Cloned into each listener's
/// state; `app` flips it.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// A handle that starts not ready.
    pub fn new() -> Readiness {
        Readiness::default()
    }

    /// Marks the node ready (true) or not (false).
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }

    /// True when the node can take traffic.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// The `readyz` status and text: `200` when ready, else `503`.
    pub fn answer(&self) -> (StatusCode, &'static str) {
        if self.is_ready() {
            (StatusCode::OK, "ready\n")
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
        }
    }

    /// The `readyz` answer as a response.
    pub fn response(&self) -> Resp {
        let (status, body) = self.answer();
        text(status, body)
    }
}

/// Accepts connections on `listener` and serves each with `handler` until
/// `stop`; then waits up to `grace` for open connections to finish. With a
/// `front`, each connection starts on [`front::serve_connection`], which
/// answers what it takes and hands the rest to hyper and `handler`.
pub async fn serve<F, Fut, B>(
    name: &'static str,
    listener: TcpListener,
    cfg: HttpConfig,
    handler: F,
    front: Option<Arc<dyn front::Front>>,
    stop: CancellationToken,
) where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(cfg.header_read_timeout_ms))
        .max_buf_size(cfg.max_header_bytes)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let limits = front::Limits::from(&cfg);
    let closing = Arc::new(front::Closing::new());
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly
                // instead of spinning.
                warn!(listener = name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let h = handler.clone();
        let svc = service_fn(move |req| {
            let h = h.clone();
            async move { Ok::<_, Infallible>(h(req, peer).await) }
        });
        // Held for the connection's life, on either path: shutdown waits
        // for every watcher to go.
        let watcher = graceful.watcher();
        let builder = builder.clone();
        match &front {
            Some(front) => {
                let (front, closing) = (front.clone(), closing.clone());
                let hyper = move |io| serve_hyper(name, io, builder, svc, watcher);
                tokio::spawn(async move {
                    front::serve_connection(&*front, stream, peer, limits, hyper, &closing).await
                });
            }
            None => {
                tokio::spawn(serve_hyper(name, stream, builder, svc, watcher));
            }
        }
    }
    drop(listener);
    closing.close();
    let grace = Duration::from_secs(cfg.shutdown_grace_secs);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(grace) => {
            warn!(listener = name, grace_secs = grace.as_secs(), "connections still open after the grace period; closing them");
        }
    }
}

/// Serves connection `io` with hyper until it ends; `watcher` lets the
/// listener's graceful shutdown reach it, and wait for it.
async fn serve_hyper<I, S>(
    name: &'static str,
    io: I,
    builder: http1::Builder,
    svc: S,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = watcher.watch(builder.serve_connection(TokioIo::new(io), svc));
    if let Err(e) = conn.await {
        debug!(listener = name, error = %e, "connection ended with an error");
    }
}

/// A response with `status`, content type and body.
pub fn response(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// The content type of [`text`] answers.
pub const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// A plain-text response.
pub fn text(status: StatusCode, body: &'static str) -> Resp {
    response(status, TEXT_PLAIN, Bytes::from_static(body.as_bytes()))
}
