//! The public listener: tracked redirects, conversions (`/pixel`,
//! `/postback`), the merchant's snippet (`/t.js`), partner applications
//! (`POST /apply`) and health. Redirects and health checks are answered
//! on the listener's own HTTP/1.1 path ([`super::front`], through the
//! [`Front`] impl below: the redirect is the hot path), everything else
//! on hyper ([`handle`]); `/partner/...` is handed to the partner API's axum router
//! (`partner` is a reserved code, so no link can shadow it, and the
//! redirect pays one comparison for it).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode};
use prometheus::Histogram;

use super::apply::Applications;
use super::front::{Front, Head, Reply};
use super::{conversion, response, text, Readiness, Resp, TEXT_PLAIN};
use crate::conversions::intake::Intake;
use crate::metrics::RequestCounters;
use crate::redirect::{Answer, ClickRequest, Heads, Redirector};

/// What answers `GET|HEAD /{code}`: the [`Redirector`] in production; the
/// routing tests put a recorder in its place, so they need no segment log.
pub trait ClickHandler: Send + Sync + 'static {
    /// Answers one tracked redirect (or the unknown-code answer).
    fn redirect(&self, req: &ClickRequest<'_>) -> Answer;

    /// The client address of a request (after trusted proxies).
    fn client_ip(&self, peer: SocketAddr, headers: &hyper::HeaderMap) -> std::net::IpAddr {
        let _ = headers;
        peer.ip()
    }
}

impl ClickHandler for Redirector {
    fn redirect(&self, req: &ClickRequest<'_>) -> Answer {
        self.handle(req)
    }

    fn client_ip(&self, peer: SocketAddr, headers: &hyper::HeaderMap) -> std::net::IpAddr {
        Redirector::client_ip(self, peer, Heads::Map(headers))
    }
}

/// What the public listener needs, and nothing more.
pub struct PublicState<C = Redirector> {
    /// Answers redirects.
    pub clicks: C,
    /// Takes conversions; `None` answers them `503` (tests of routing).
    pub conversions: Option<Intake>,
    /// Takes partner applications; `None` answers `/apply` `404`
    /// (`partners.accept_applications = false`, tests of routing).
    pub applications: Option<Applications>,
    /// `readyz`.
    pub ready: Readiness,
    /// Requests by route and status class.
    pub requests: RequestCounters,
    /// Time spent answering a redirect.
    pub redirect_seconds: Histogram,
    /// The partner API under `/partner/`; `None` answers it `404` (tests
    /// of routing).
    pub partner: Option<axum::Router>,
}

/// Where a public request goes, from its method and path alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    Health,
    Ready,
    Redirect(&'a str),
    Pixel,
    Postback,
    Script,
    /// `/partner` and below: the partner API.
    Partner,
    Apply,
    NotFound,
    /// With the methods the path takes.
    MethodNotAllowed(&'static str),
    /// A request target that is not a path (`CONNECT host:port`, `*`).
    BadTarget,
}

fn route<'a>(method: &Method, path: &'a str) -> Route<'a> {
    let Some(rest) = path.strip_prefix('/') else {
        return Route::BadTarget;
    };
    match rest {
        "healthz" => Route::Health,
        "readyz" => Route::Ready,
        "pixel" if method == Method::GET => Route::Pixel,
        "postback" if method == Method::GET || method == Method::POST => Route::Postback,
        "t.js" if method == Method::GET || method == Method::HEAD => Route::Script,
        "apply" if method == Method::POST => Route::Apply,
        "apply" => Route::MethodNotAllowed("POST"),
        "pixel" => Route::MethodNotAllowed("GET"),
        "postback" => Route::MethodNotAllowed("GET, POST"),
        "" => Route::NotFound,
        "partner" => Route::Partner,
        code if code.contains('/') => {
            if code.starts_with("partner/") {
                Route::Partner
            } else {
                Route::NotFound
            }
        }
        code if method == Method::GET || method == Method::HEAD => Route::Redirect(code),
        _ => Route::MethodNotAllowed("GET, HEAD"),
    }
}

/// Routes one public request.
pub async fn handle<C: ClickHandler>(
    state: Arc<PublicState<C>>,
    req: Request<hyper::body::Incoming>,
    peer: SocketAddr,
) -> Resp {
    let to = route(req.method(), req.uri().path());
    if let (Route::Pixel | Route::Postback, Some(intake)) = (to, &state.conversions) {
        let ip = state.clicks.client_ip(peer, req.headers());
        let resp = if to == Route::Pixel {
            conversion::pixel(intake, &req, ip).await
        } else {
            conversion::postback(intake, req, ip).await
        };
        state.requests.inc("conversion", resp.status().as_u16());
        return resp;
    }
    if let (Route::Partner, Some(router)) = (to, &state.partner) {
        let resp = partner(router, req).await;
        state.requests.inc("partner", resp.status().as_u16());
        return resp;
    }
    if let (Route::Apply, Some(applications)) = (to, &state.applications) {
        let ip = state.clicks.client_ip(peer, req.headers());
        let resp = applications.apply(req, ip).await;
        state.requests.inc("apply", resp.status().as_u16());
        return resp;
    }
    answer(&state, to, &req, peer)
}

/// Passes a `/partner/` request to the partner API's router and collects
/// its answer (JSON or CSV pages, bounded by their limits) into the
/// listener's body type.
async fn partner(router: &axum::Router, req: Request<hyper::body::Incoming>) -> Resp {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let resp = match router.clone().oneshot(req.map(axum::body::Body::new)).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (parts, body) = resp.into_parts();
    match body.collect().await {
        Ok(b) => Resp::from_parts(parts, http_body_util::Full::new(b.to_bytes())),
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the partner api answer could not be read\n",
        ),
    }
}

/// The answer to `req` on route `to` (conversions only when this node
/// takes none), whatever its body type.
fn answer<C: ClickHandler, B>(
    state: &PublicState<C>,
    to: Route<'_>,
    req: &Request<B>,
    peer: SocketAddr,
) -> Resp {
    let (label, resp) = match to {
        Route::Health => ("health", text(StatusCode::OK, "ok\n")),
        Route::Ready => ("health", state.ready.response()),
        Route::Redirect(code) => {
            let answer = state.redirect(&ClickRequest {
                code,
                query: req.uri().query(),
                is_head: req.method() == Method::HEAD,
                headers: Heads::Map(req.headers()),
                peer,
            });
            ("redirect", answer.into_response())
        }
        Route::Pixel | Route::Postback => (
            "conversion",
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "conversions are not taken here\n",
            ),
        ),
        // Counted with "other": the route labels are a fixed set in `metrics`.
        Route::Script => ("other", script()),
        // Only when this node serves no partner API (tests of routing).
        Route::Partner => ("partner", text(StatusCode::NOT_FOUND, "not found\n")),
        Route::Apply => (
            "apply",
            text(StatusCode::NOT_FOUND, "applications are not taken here\n"),
        ),
        Route::NotFound => ("other", text(StatusCode::NOT_FOUND, "not found\n")),
        Route::MethodNotAllowed(allow) => {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            ("other", r)
        }
        Route::BadTarget => (
            "other",
            text(
                StatusCode::BAD_REQUEST,
                "bad request target: expected a path\n",
            ),
        ),
    };
    state.requests.inc(label, resp.status().as_u16());
    resp
}

impl<C: ClickHandler> PublicState<C> {
    /// One redirect, timed.
    fn redirect(&self, req: &ClickRequest<'_>) -> Answer {
        let started = Instant::now();
        let answer = self.clicks.redirect(req);
        self.redirect_seconds
            .observe(started.elapsed().as_secs_f64());
        answer
    }
}

/// The public listener's own path (`front`) takes redirects and the
/// health checks; everything else goes on to hyper and [`handle`].
impl<C: ClickHandler> Front for PublicState<C> {
    fn answer(&self, head: &Head<'_>, peer: SocketAddr, reply: &mut Reply<'_>) -> bool {
        let method = if head.is_head {
            Method::HEAD
        } else {
            Method::GET
        };
        let (label, status) = match route(&method, head.path) {
            Route::Redirect(code) => {
                let answer = self.redirect(&ClickRequest {
                    code,
                    query: head.query,
                    is_head: head.is_head,
                    headers: Heads::Raw(head.headers),
                    peer,
                });
                reply.start(answer.status());
                answer.for_each_header(|name, value| reply.header(name, value.as_bytes()));
                reply.end(answer.body());
                ("redirect", answer.status())
            }
            Route::Health => ("health", plain(reply, StatusCode::OK, "ok\n")),
            Route::Ready => {
                let (status, body) = self.ready.answer();
                ("health", plain(reply, status, body))
            }
            _ => return false,
        };
        self.requests.inc(label, status.as_u16());
        true
    }
}

/// [`text`]'s answer, written by the public listener's own path.
fn plain(reply: &mut Reply<'_>, status: StatusCode, body: &'static str) -> StatusCode {
    reply.start(status);
    reply.header("content-type", TEXT_PLAIN.as_bytes());
    reply.end(body.as_bytes());
    status
}

/// The merchant's snippet, compiled in: a deployment is one binary, and
/// the script cannot drift from the `/pixel` it calls.
const SCRIPT: &str = include_str!("assets/t.js");

/// `GET|HEAD /t.js`; hyper leaves the body out of a `HEAD` answer and
/// keeps its length.
fn script() -> Resp {
    let mut r = response(
        StatusCode::OK,
        "application/javascript; charset=utf-8",
        Bytes::from_static(SCRIPT.as_bytes()),
    );
    // An hour: merchants' pages load it on every view, and a fix still
    // reaches every browser the same day.
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::Mutex;

    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::config::HttpConfig;
    use crate::metrics::Metrics;

    /// Answers every redirect with a 302 and remembers the codes it saw.
    #[derive(Default)]
    struct Seen(Mutex<Vec<String>>);

    impl ClickHandler for Seen {
        fn redirect(&self, req: &ClickRequest<'_>) -> Answer {
            self.0.lock().unwrap().push(req.code.to_string());
            Answer::Found(HeaderValue::from_static("/elsewhere"))
        }
    }

    fn state() -> (Arc<PublicState<Seen>>, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new());
        let state = Arc::new(PublicState {
            clicks: Seen::default(),
            conversions: None,
            applications: None,
            ready: Readiness::new(),
            requests: RequestCounters::new(&metrics, "public"),
            redirect_seconds: metrics.redirect_seconds.clone(),
            partner: None,
        });
        (state, metrics)
    }

    /// `method target` → (status, the code the redirect saw, if any).
    fn check(method: &str, target: &str, expected: (u16, Option<&str>)) {
        let (state, _) = state();
        state.ready.set(true);
        let req = Request::builder()
            .method(method)
            .uri(target)
            .body(())
            .unwrap();
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let status = answer(&state, route(req.method(), req.uri().path()), &req, peer)
            .status()
            .as_u16();
        let seen = state.clicks.0.lock().unwrap().pop();
        assert_eq!((status, seen.as_deref()), expected, "{method} {target}");
    }

    #[test]
    fn routing() {
        check("GET", "/summer", (302, Some("summer")));
        check("HEAD", "/summer?sub1=x", (302, Some("summer")));
        check("GET", "/healthz", (200, None));
        check("GET", "/readyz", (200, None));
        check("GET", "/t.js", (200, None));
        check("HEAD", "/t.js", (200, None));
        check("POST", "/t.js", (405, None));
        // `apply` is never a link code; without applications it is 404.
        check("POST", "/apply", (404, None));
        check("GET", "/apply", (405, None));
        check("POST", "/applyx", (405, None));
        check("GET", "/", (404, None));
        check("GET", "/a/b", (404, None));
        check("POST", "/summer", (405, None));
        // The partner API's prefix never reaches the redirect.
        check("GET", "/partner", (404, None));
        check("GET", "/partner/v1/me", (404, None));
        check("POST", "/partner/v1/links", (404, None));
        check("GET", "/partnerx", (302, Some("partnerx")));
        check("DELETE", "/summer", (405, None));
        // Authority-form and asterisk-form targets carry no path.
        check("CONNECT", "a:1", (400, None));
        check("OPTIONS", "*", (400, None));
        // Absolute-form (proxy requests) still has a path.
        check("GET", "http://example.com/summer", (302, Some("summer")));
    }

    #[test]
    fn the_script_is_small_and_fetches_nothing_from_elsewhere() {
        assert!(SCRIPT.len() < 4096, "t.js is {} bytes", SCRIPT.len());
        for literal in ["http://", "https://"] {
            assert!(!SCRIPT.contains(literal), "t.js names {literal}");
        }
        let resp = script();
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "application/javascript; charset=utf-8"
        );
        assert_eq!(
            resp.headers()[header::CACHE_CONTROL],
            "public, max-age=3600"
        );
    }

    #[test]
    fn readiness_follows_the_handle() {
        let (state, metrics) = state();
        let get = |path: &str| {
            let req = Request::get(path).body(()).unwrap();
            answer(
                &state,
                route(req.method(), req.uri().path()),
                &req,
                "127.0.0.1:9".parse().unwrap(),
            )
            .status()
            .as_u16()
        };
        assert_eq!(get("/readyz"), 503);
        state.ready.set(true);
        assert_eq!(get("/readyz"), 200);
        state.ready.set(false);
        assert_eq!(get("/readyz"), 503);
        let text = String::from_utf8(metrics.render()).unwrap();
        assert!(
            text.contains(
                "trackedge_http_requests_total{class=\"5xx\",listener=\"public\",route=\"health\"} 2"
            ),
            "{text}"
        );
    }

    /// Sends `raw` bytes on a fresh connection; returns the status line.
    fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(raw).unwrap();
        let mut answer = Vec::new();
        // The server closes after answering a `Connection: close` request.
        s.read_to_end(&mut answer).unwrap();
        let text = String::from_utf8_lossy(&answer).to_string();
        text.lines().next().unwrap_or_default().to_string()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn odd_request_targets_get_an_answer_over_the_wire() {
        let (state, _) = state();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let front: Arc<dyn Front> = state.clone();
        let server = tokio::spawn(crate::http::serve(
            "public",
            listener,
            HttpConfig::default(),
            move |req, peer| handle(state.clone(), req, peer),
            Some(front),
            stop.clone(),
        ));
        let cases: &[(&[u8], &str)] = &[
            (
                b"CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\nConnection: close\r\n\r\n",
                "HTTP/1.1 400",
            ),
            (
                b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                "HTTP/1.1 400",
            ),
            (
                b"GET /summer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                "HTTP/1.1 302",
            ),
            // The listener's own path and hyper's give the same answers.
            (
                b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n",
                "HTTP/1.1 200",
            ),
            (b"GET /healthz HTTP/1.0\r\n\r\n", "HTTP/1.0 200"),
            (
                b"GET http://x/summer HTTP/1.1\r\nConnection: close\r\n\r\n",
                "HTTP/1.1 302",
            ),
            (
                b"GET /a/b HTTP/1.1\r\nConnection: close\r\n\r\n",
                "HTTP/1.1 404",
            ),
            (
                b"DELETE /summer HTTP/1.1\r\nConnection: close\r\n\r\n",
                "HTTP/1.1 405",
            ),
        ];
        for (raw, want) in cases {
            let line = tokio::task::spawn_blocking(move || exchange(addr, raw))
                .await
                .unwrap();
            assert!(
                line.starts_with(want),
                "{:?} answered {line:?}",
                String::from_utf8_lossy(raw)
            );
        }
        stop.cancel();
        server.await.unwrap();
    }
}
