//! `GET|HEAD /{code}`: verdicts → lookup → click id → record → 302.
//!
//! The click's verdicts (bot, rate limited) are known before its id is
//! issued, because the id carries them (signed) to attribution.
//!
//! Invariant: this path does no network I/O, no syscall and awaits nothing.
//! The route comes from the in-memory cache, the click id is computed, and
//! the click is one lock-free append into the shared, file-backed mapping of
//! the segment log — durable against a process crash before the 302 leaves.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};

use crate::bot::BotDetector;
use crate::catalog::RouteCache;
use crate::click_id::{ClickFlags, ClickIdCodec};
use crate::client_ip::TrustedProxies;
use crate::events::{ClickRow, Event, EventSink, OrphanRow};
use crate::metrics::Metrics;
use crate::ratelimit::ClickLimiter;

/// Longest sub-id kept; longer ones are cut at a character boundary.
pub const MAX_SUB_LEN: usize = 255;
/// Longest user agent kept.
pub const MAX_UA_LEN: usize = 512;
/// Longest referer kept.
pub const MAX_REFERER_LEN: usize = 1024;
/// Longest orphan code kept.
const MAX_ORPHAN_CODE_LEN: usize = 64;

const NOT_FOUND_PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>Link not found</title></head><body><h1>Link not found</h1><p>This tracking link does not exist or is no longer active.</p></body></html>\n";

/// The request facts the redirect needs, borrowed from the HTTP request.
pub struct ClickRequest<'a> {
    /// The path without its leading `/`.
    pub code: &'a str,
    /// The query string, if any.
    pub query: Option<&'a str>,
    /// True for HEAD.
    pub is_head: bool,
    /// The request headers.
    pub headers: Heads<'a>,
    /// The TCP peer.
    pub peer: SocketAddr,
}

/// The request headers the redirect reads: hyper's map, or the head as
/// parsed on the public listener's own path (`http::front`), which builds
/// no map. Names are looked up in lower case.
#[derive(Clone, Copy)]
pub enum Heads<'a> {
    /// A request that went through hyper.
    Map(&'a HeaderMap),
    /// A head parsed in place.
    Raw(&'a [httparse::Header<'a>]),
}

impl<'a> Heads<'a> {
    /// The first value of header `name` (lower case).
    pub fn get(self, name: &str) -> Option<&'a [u8]> {
        match self {
            Heads::Map(m) => m.get(name).map(|v| v.as_bytes()),
            Heads::Raw(raw) => raw
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value),
        }
    }
}

/// What a redirect answers: the protocol layer writes it (hyper's
/// response, or the public listener's own writer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `302` to this `Location`.
    Found(HeaderValue),
    /// `404`, the "link not found" page.
    NotFound,
}

static NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
static REFERRER_POLICY: HeaderValue = HeaderValue::from_static("no-referrer-when-downgrade");
static HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");

impl Answer {
    /// The status line's code.
    pub fn status(&self) -> StatusCode {
        match self {
            Answer::Found(_) => StatusCode::FOUND,
            Answer::NotFound => StatusCode::NOT_FOUND,
        }
    }

    /// Calls `f` with each header besides the framing ones, in the order
    /// they are sent.
    pub fn for_each_header(&self, mut f: impl FnMut(&'static str, &HeaderValue)) {
        match self {
            Answer::Found(location) => {
                f("location", location);
                f("cache-control", &NO_STORE);
                f("referrer-policy", &REFERRER_POLICY);
            }
            Answer::NotFound => {
                f("content-type", &HTML);
                f("cache-control", &NO_STORE);
            }
        }
    }

    /// The body.
    pub fn body(&self) -> &'static [u8] {
        match self {
            Answer::Found(_) => b"",
            Answer::NotFound => NOT_FOUND_PAGE.as_bytes(),
        }
    }

    /// As a hyper response.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(Bytes::from_static(self.body())));
        *resp.status_mut() = self.status();
        let headers = resp.headers_mut();
        self.for_each_header(|name, value| {
            headers.insert(name, value.clone());
        });
        resp
    }
}

/// Answers tracked redirects.
pub struct Redirector {
    cache: Arc<RouteCache>,
    codec: ClickIdCodec,
    sink: Arc<EventSink>,
    bots: BotDetector,
    proxies: TrustedProxies,
    limiter: Arc<ClickLimiter>,
    node: Arc<str>,
    /// Pre-built `Location` for unknown codes, when a fallback is set.
    fallback: Option<HeaderValue>,
    metrics: Arc<Metrics>,
}

impl Redirector {
    /// A redirector over `cache`, recording into `sink`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cache: Arc<RouteCache>,
        codec: ClickIdCodec,
        sink: Arc<EventSink>,
        proxies: TrustedProxies,
        limiter: Arc<ClickLimiter>,
        node: Arc<str>,
        fallback: Option<HeaderValue>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Redirector {
            cache,
            codec,
            sink,
            bots: BotDetector::default(),
            proxies,
            limiter,
            node,
            fallback,
            metrics,
        }
    }

    /// The client IP of a request.
    pub fn client_ip(&self, peer: SocketAddr, headers: Heads<'_>) -> IpAddr {
        const XFF: &str = "x-forwarded-for";
        match headers {
            Heads::Map(m) => {
                let xff = m.get_all(XFF).iter().filter_map(|v| v.to_str().ok());
                self.proxies.client_ip(peer.ip(), xff)
            }
            Heads::Raw(raw) => {
                let xff = raw
                    .iter()
                    .filter(|h| h.name.eq_ignore_ascii_case(XFF))
                    .filter_map(|h| std::str::from_utf8(h.value).ok());
                self.proxies.client_ip(peer.ip(), xff)
            }
        }
    }

    /// Answers one request and records its click or orphan hit.
    pub fn handle(&self, req: &ClickRequest<'_>) -> Answer {
        self.respond(req, |event| self.sink.record(event))
    }

    /// [`Redirector::handle`], recording through `record` (the sink, but
    /// for tests that watch what holds while a click is recorded).
    #[inline]
    fn respond(&self, req: &ClickRequest<'_>, record: impl FnOnce(&Event<'_>) -> bool) -> Answer {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let ts = now.as_secs() as u32;
        let user_agent = header_text(req.headers, "user-agent", MAX_UA_LEN);
        let referer = header_text(req.headers, "referer", MAX_REFERER_LEN);
        let (is_bot, device) = self.bots.classify_cached(req.is_head, &user_agent);
        let ip = self.client_ip(req.peer, req.headers);

        let mut subs = Subs::parse(req.query);
        // The verdict goes into the click id, which is issued under the
        // route guard; the limiter needs no route, so it runs before the
        // lookup rather than with the guard held. An orphan hit thus counts
        // toward its IP's rate too.
        let is_rate_limited = self.limiter.over_limit(ip);
        let route = self.cache.lookup(req.code);
        let mut ip_buf = IpText::default();
        let ip_text = ip_buf.format(ip);
        let Some(route) = route else {
            self.metrics.orphan_hits.inc();
            record(&Event::Orphan(OrphanRow {
                ts,
                code: truncate(req.code, MAX_ORPHAN_CODE_LEN),
                ip: ip_text,
                user_agent: &user_agent,
                referer: &referer,
                is_bot: is_bot as u8,
                node: &self.node,
            }));
            return self.not_found();
        };

        // Only what the route guard is needed for happens under it (see
        // `RouteCache::lookup`): the ids are copied out, the Location is
        // rendered, and the guard goes before the append.
        let (link_id, partner_id, offer_id) = (route.link_id, route.partner_id, route.offer_id);
        if let Some(defaults) = &route.default_subs {
            subs.or_defaults(defaults);
        }
        let flags = ClickFlags {
            bot: is_bot,
            rate_limited: is_rate_limited,
        };
        let click_id = self.codec.issue(link_id, now.as_millis() as u64, flags);
        let mut location = String::with_capacity(route.destination.len_hint() + 128);
        route.render_into(
            req.code,
            click_id.as_str(),
            [&subs.0[0], &subs.0[1], &subs.0[2], &subs.0[3], &subs.0[4]],
            &mut location,
        );
        drop(route);
        let location = match HeaderValue::from_maybe_shared(Bytes::from(location)) {
            Ok(v) => v,
            Err(_) => {
                // Templates escape everything a header cannot hold; reaching
                // this is a bug, and the user still deserves an answer.
                tracing::error!(code = req.code, "destination is not a valid header value");
                return self.not_found();
            }
        };
        let country = self.country(req);
        let [sub1, sub2, sub3, sub4, sub5] = &subs.0;
        // Recorded before the answer exists: a 302 always has its click.
        let recorded = record(&Event::Click(ClickRow {
            click_id: click_id.as_str(),
            ts,
            code: req.code,
            link_id,
            partner_id,
            offer_id,
            sub1,
            sub2,
            sub3,
            sub4,
            sub5,
            ip: ip_text,
            user_agent: &user_agent,
            referer: &referer,
            // The row says what the id says: both come from `flags`.
            is_bot: flags.bot as u8,
            is_rate_limited: flags.rate_limited as u8,
            country: &country,
            device: device.as_str(),
            node: &self.node,
        }));
        if recorded {
            self.metrics.clicks_recorded.inc();
        }
        if flags.bot {
            self.metrics.clicks_bot.inc();
        }
        if flags.rate_limited {
            self.metrics.clicks_rate_limited.inc();
        }
        Answer::Found(location)
    }

    /// 404 page, or 302 to the fallback URL.
    fn not_found(&self) -> Answer {
        match &self.fallback {
            Some(loc) => Answer::Found(loc.clone()),
            None => Answer::NotFound,
        }
    }

    /// The country a trusted proxy (a CDN) says the client is in.
    fn country(&self, req: &ClickRequest<'_>) -> String {
        if !self.proxies.contains(req.peer.ip()) {
            return String::new();
        }
        ["cf-ipcountry", "x-country-code"]
            .iter()
            .filter_map(|h| req.headers.get(h))
            .filter_map(|v| std::str::from_utf8(v).ok())
            .find(|v| v.len() == 2 && v.bytes().all(|b| b.is_ascii_alphabetic()))
            .map(|v| v.to_ascii_uppercase())
            .unwrap_or_default()
    }
}

/// An IP address as text in a stack buffer: no allocation per click.
struct IpText {
    buf: [u8; 48],
}

impl Default for IpText {
    fn default() -> Self {
        IpText { buf: [0; 48] }
    }
}

impl IpText {
    fn format(&mut self, ip: IpAddr) -> &str {
        use std::io::Write;
        let mut w = &mut self.buf[..];
        // The longest IPv6 text is 45 bytes; the buffer holds 48.
        write!(w, "{ip}").expect("an IP address fits in 48 bytes");
        let len = 48 - w.len();
        std::str::from_utf8(&self.buf[..len]).expect("IP text is ASCII")
    }
}

/// `sub1`..`sub5` of a query string, decoded and cut to [`MAX_SUB_LEN`];
/// borrowed from the query when nothing needed decoding.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Subs<'a>(pub [Cow<'a, str>; 5]);

impl<'a> Subs<'a> {
    /// Parses the query; the first occurrence of each sub-id wins.
    pub fn parse(query: Option<&'a str>) -> Subs<'a> {
        let mut subs = Subs::default();
        let Some(q) = query else {
            return subs;
        };
        let mut seen = [false; 5];
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            let idx = match k.as_ref() {
                "sub1" => 0,
                "sub2" => 1,
                "sub3" => 2,
                "sub4" => 3,
                "sub5" => 4,
                _ => continue,
            };
            if !seen[idx] {
                seen[idx] = true;
                subs.0[idx] = match v {
                    Cow::Borrowed(b) => Cow::Borrowed(truncate(b, MAX_SUB_LEN)),
                    Cow::Owned(o) => Cow::Owned(truncate(&o, MAX_SUB_LEN).to_string()),
                };
            }
        }
        subs
    }

    /// Fills each sub-id the query left empty from the link's `defaults`:
    /// one the click carries always wins.
    pub fn or_defaults(&mut self, defaults: &[Box<str>; 5]) {
        for (s, d) in self.0.iter_mut().zip(defaults.iter()) {
            if s.is_empty() && !d.is_empty() {
                *s = Cow::Owned(d.to_string());
            }
        }
    }
}

/// A header's value as text (invalid UTF-8 replaced), cut to `max` bytes.
fn header_text<'a>(headers: Heads<'a>, name: &str, max: usize) -> Cow<'a, str> {
    match headers.get(name) {
        Some(v) => match std::str::from_utf8(v) {
            Ok(s) => Cow::Borrowed(truncate(s, max)),
            Err(_) => Cow::Owned(truncate(&String::from_utf8_lossy(v), max).to_string()),
        },
        None => Cow::Borrowed(""),
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::routes::fixtures::{link, offer, partner};
    use crate::config::LimitsConfig;
    use crate::events::log::{EventLog, LogConfig};
    use crate::model::Status;

    /// A redirector over a cache routing `aaa`, and the cache itself.
    fn redirector(dir: &std::path::Path) -> (Redirector, Arc<RouteCache>) {
        redirector_limited(dir, &LimitsConfig::default())
    }

    /// [`redirector`] with the click rate limit `limits`.
    fn redirector_limited(
        dir: &std::path::Path,
        limits: &LimitsConfig,
    ) -> (Redirector, Arc<RouteCache>) {
        let metrics = Arc::new(Metrics::new());
        let cache = Arc::new(RouteCache::new(metrics.clone()));
        cache.load(
            vec![partner(1, Status::Active)],
            vec![offer(10, "https://m.com/?c={click_id}", Status::Active)],
            vec![link(100, "aaa", 1, 10, Status::Active)],
        );
        let log = EventLog::open(dir, LogConfig::new(1 << 16, 1 << 20).unwrap()).unwrap();
        let redirector = Redirector::new(
            cache.clone(),
            ClickIdCodec::new(b"test-secret-0123456789", &[], 1),
            Arc::new(EventSink::new(Arc::new(log), metrics.clone())),
            TrustedProxies::new(Vec::new()),
            Arc::new(ClickLimiter::new(limits)),
            "n".into(),
            None,
            metrics,
        );
        (redirector, cache)
    }

    #[test]
    fn the_route_guard_is_released_before_the_click_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let (redirector, cache) = redirector(dir.path());
        let headers = HeaderMap::new();
        let req = ClickRequest {
            code: "aaa",
            query: None,
            is_head: false,
            headers: Heads::Map(&headers),
            peer: "192.0.2.1:4000".parse().unwrap(),
        };
        let mut writable_while_recording = None;
        let resp = redirector.respond(&req, |event| {
            assert!(matches!(event, Event::Click(_)));
            writable_while_recording = Some(cache.writable("aaa"));
            true
        });
        assert_eq!(resp.status(), StatusCode::FOUND);
        assert_eq!(
            writable_while_recording,
            Some(true),
            "a change to the link would have waited for the click's append"
        );
    }

    #[test]
    fn the_click_id_carries_the_verdicts_its_row_records() {
        let dir = tempfile::tempdir().unwrap();
        // One click per IP and minute: an IP's second click is over it.
        let limits = LimitsConfig {
            clicks_per_ip_per_minute: 1,
            clicks_burst: 1,
            ..LimitsConfig::default()
        };
        let (redirector, _cache) = redirector_limited(dir.path(), &limits);
        let browser = "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0";
        // (peer, method is HEAD, user agent, expected flags), in order: the
        // limiter remembers earlier rows' IPs.
        let cases: &[(&str, bool, &str, ClickFlags)] = &[
            ("192.0.2.1:1", false, browser, ClickFlags::default()),
            (
                "192.0.2.2:1",
                false,
                "Googlebot/2.1",
                ClickFlags {
                    bot: true,
                    rate_limited: false,
                },
            ),
            (
                "192.0.2.1:1",
                false,
                browser,
                ClickFlags {
                    bot: false,
                    rate_limited: true,
                },
            ),
            (
                "192.0.2.2:1",
                true,
                browser,
                ClickFlags {
                    bot: true,
                    rate_limited: true,
                },
            ),
        ];
        for &(peer, is_head, ua, expected) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(
                hyper::header::USER_AGENT,
                HeaderValue::from_str(ua).unwrap(),
            );
            let req = ClickRequest {
                code: "aaa",
                query: None,
                is_head,
                headers: Heads::Map(&headers),
                peer: peer.parse().unwrap(),
            };
            let mut row = None;
            redirector.respond(&req, |event| {
                let Event::Click(c) = event else {
                    panic!("not a click: {peer}")
                };
                row = Some((c.click_id.to_string(), c.is_bot, c.is_rate_limited));
                true
            });
            let (click_id, is_bot, is_rate_limited) = row.expect("a click row");
            let flags = redirector.codec.verify(&click_id).unwrap().flags;
            assert_eq!(flags, expected, "{peer} {is_head} {ua}");
            assert_eq!(
                (is_bot, is_rate_limited),
                (flags.bot as u8, flags.rate_limited as u8),
                "{peer} {is_head} {ua}"
            );
        }
    }

    /// A link's default sub-ids fill what the click's URL leaves empty, in
    /// the destination and in the row alike; the click's own win.
    #[test]
    fn default_sub_ids_fill_what_the_click_leaves_empty() {
        let dir = tempfile::tempdir().unwrap();
        let (redirector, cache) = redirector(dir.path());
        let mut l = link(101, "bbb", 1, 10, Status::Active);
        l.default_subs = crate::model::DefaultSubs {
            sub1: Some("news".into()),
            sub3: Some("may".into()),
            ..Default::default()
        };
        cache.apply(crate::catalog::Change::Link {
            id: 101,
            data: Some(l),
        });
        let headers = HeaderMap::new();
        // (link, query) -> (sub1..sub5 recorded)
        let cases: &[(&str, Option<&str>, [&str; 5])] = &[
            ("bbb", None, ["news", "", "may", "", ""]),
            ("bbb", Some("sub1=own&sub2=x"), ["own", "x", "may", "", ""]),
            ("bbb", Some("sub3="), ["news", "", "may", "", ""]),
            ("aaa", None, ["", "", "", "", ""]),
        ];
        for &(code, query, expected) in cases {
            let req = ClickRequest {
                code,
                query,
                is_head: false,
                headers: Heads::Map(&headers),
                peer: "192.0.2.9:1".parse().unwrap(),
            };
            let mut row = None;
            let resp = redirector.respond(&req, |event| {
                let Event::Click(c) = event else {
                    panic!("not a click: {code}")
                };
                row = Some([c.sub1, c.sub2, c.sub3, c.sub4, c.sub5].map(|s| s.to_string()));
                true
            });
            assert_eq!(resp.status(), StatusCode::FOUND, "{code} {query:?}");
            assert_eq!(row.unwrap(), expected.map(String::from), "{code} {query:?}");
        }
    }

    fn check(query: Option<&str>, expected: [&str; 5]) {
        assert_eq!(
            Subs::parse(query).0,
            expected.map(Cow::Borrowed),
            "{query:?}"
        );
    }

    #[test]
    fn ip_text() {
        for ip in [
            "1.2.3.4",
            "255.255.255.255",
            "2001:db8::1",
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
            "::",
        ] {
            let addr: IpAddr = ip.parse().unwrap();
            assert_eq!(IpText::default().format(addr), addr.to_string());
        }
    }

    #[test]
    fn sub_ids() {
        let long = "x".repeat(300);
        let cases: &[(Option<&str>, [&str; 5])] = &[
            (None, ["", "", "", "", ""]),
            (Some(""), ["", "", "", "", ""]),
            (Some("sub1=a&sub5=e"), ["a", "", "", "", "e"]),
            (Some("sub1=a&sub1=b"), ["a", "", "", "", ""]),
            (Some("sub2=a+b%20c"), ["", "a b c", "", "", ""]),
            (Some("sub3=%0D%0Ax"), ["", "", "\r\nx", "", ""]),
            (Some("sub4=%C3%A9"), ["", "", "", "é", ""]),
            (Some("sub4=%FF"), ["", "", "", "\u{FFFD}", ""]),
            (Some("other=1&sub6=2&SUB1=3"), ["", "", "", "", ""]),
        ];
        for (q, expected) in cases {
            check(*q, *expected);
        }
        let q = format!("sub1={long}");
        assert_eq!(Subs::parse(Some(&q)).0[0].len(), MAX_SUB_LEN);
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
