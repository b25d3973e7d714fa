//! The public listener laid out thread per core: one thread per request
//! core, each with a current-thread runtime and a listening socket of its
//! own on the same address (`SO_REUSEPORT`, so the kernel spreads new
//! connections over them). A connection lives and dies on the thread that
//! accepted it: no work stealing, no wake-up crossing threads on the
//! redirect's path, no runtime bookkeeping shared between cores. Each
//! thread is pinned to a CPU of its own (`sched::pin_to_allowed_cpu`).
//!
//! With one CPU there is one request thread, and it is the process's
//! runtime itself (see `main`), where the shipper also runs in slices:
//! [`serve`] then serves its one listener there.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::future::Either;
use hyper::body::Incoming;
use hyper::{Request, Response};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::front::Front;
use crate::config::HttpConfig;

/// How many request threads the public listener gets: one per CPU the
/// process may run on.
pub fn request_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Listens on `addr` `n` times with `SO_REUSEPORT`; the first socket fixes
/// the port when `addr` asks for any (`:0`), the others join it.
pub fn bind(addr: SocketAddr, n: usize) -> io::Result<Vec<std::net::TcpListener>> {
    let mut listeners = Vec::with_capacity(n);
    let mut at = addr;
    for _ in 0..n.max(1) {
        let socket = Socket::new(Domain::for_address(at), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&at.into())?;
        socket.listen(1024)?;
        let listener: std::net::TcpListener = socket.into();
        at = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Serves `listeners` with `handler` until `stop` (then as
/// [`super::serve`] does: open connections get the grace period); the
/// future returned ends when serving has. One listener is served by that
/// future itself, on the caller's runtime (the process's one, which the
/// shipper shares); more, each on a thread of its own with a
/// current-thread runtime.
pub fn serve<F, Fut, B>(
    name: &'static str,
    mut listeners: Vec<std::net::TcpListener>,
    cfg: HttpConfig,
    handler: F,
    front: Option<Arc<dyn Front>>,
    stop: CancellationToken,
) -> io::Result<impl Future<Output = ()>>
where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if listeners.len() == 1 {
        let listener = TcpListener::from_std(listeners.remove(0))?;
        return Ok(Either::Left(super::serve(
            name, listener, cfg, handler, front, stop,
        )));
    }
    let mut done = Vec::with_capacity(listeners.len());
    for (i, listener) in listeners.into_iter().enumerate() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (cfg, handler, front, stop) =
            (cfg.clone(), handler.clone(), front.clone(), stop.clone());
        std::thread::Builder::new()
            .name(format!("{name}-{i}"))
            .spawn(move || {
                crate::sched::shorten_slice();
                match crate::sched::pin_to_allowed_cpu(i) {
                    Some(cpu) => tracing::debug!(listener = name, thread = i, cpu, "pinned"),
                    None => tracing::warn!(listener = name, thread = i, "not pinned to a cpu"),
                }
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(l) => super::serve(name, l, cfg, handler, front, stop).await,
                        Err(e) => tracing::error!(listener = name, error = %e, "cannot serve"),
                    }
                });
                let _ = tx.send(());
            })?;
        done.push(rx);
    }
    Ok(Either::Right(async move {
        for rx in done {
            if rx.await.is_err() {
                tracing::error!(listener = name, "a request thread panicked");
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_socket_shares_the_port_the_first_was_given() {
        let listeners = bind("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        assert_eq!(listeners.len(), 3);
        let port = listeners[0].local_addr().unwrap().port();
        assert_ne!(port, 0);
        for l in &listeners {
            assert_eq!(l.local_addr().unwrap().port(), port);
        }
    }

    #[test]
    fn a_taken_port_is_refused_not_shared_with_another_process_socket() {
        // A plain listener (no SO_REUSEPORT) holds the port: joining it
        // must fail rather than split its connections.
        let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let err = bind(plain.local_addr().unwrap(), 2).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }
}
