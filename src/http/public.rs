//! The public listener: tracked redirects and health. Conversions (pixel,
//! postback, `t.js`) join it in a later change.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode};

use super::{text, Resp};
use crate::app::App;
use crate::redirect::ClickRequest;

/// Routes one public request.
pub async fn handle(app: Arc<App>, req: Request<Incoming>, peer: SocketAddr) -> Resp {
    let path = req.uri().path();
    let (route, resp) = match path {
        "/healthz" => ("health", text(StatusCode::OK, "ok\n")),
        "/readyz" => ("health", app.readiness()),
        _ => {
            let code = &path[1..];
            if code.contains('/') || code.is_empty() {
                ("other", text(StatusCode::NOT_FOUND, "not found\n"))
            } else if req.method() == Method::GET || req.method() == Method::HEAD {
                let started = Instant::now();
                let resp = app.redirector.handle(&ClickRequest {
                    code,
                    query: req.uri().query(),
                    is_head: req.method() == Method::HEAD,
                    headers: req.headers(),
                    peer,
                });
                app.metrics
                    .redirect_seconds
                    .observe(started.elapsed().as_secs_f64());
                ("redirect", resp)
            } else {
                let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                ("other", r)
            }
        }
    };
    app.public_requests.inc(route, resp.status().as_u16());
    resp
}
