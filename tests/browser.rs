//! `t.js` in a real browser: Debian's headless Chromium follows a tracked
//! link to a local merchant's landing page, whose tag stores the click id
//! in a first-party cookie; later, in the same browser profile, the
//! merchant's confirmation page fires the pixel, and the conversion lands
//! in ClickHouse.
//!
//! Chromium comes from Debian's `chromium` package (`scripts/test.sh`
//! installs it). Each page is one `chromium --headless --dump-dom` run with
//! a virtual time budget (`common::chromium`), so the page's async scripts
//! and the pixel finish before the DOM is printed and the browser exits.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use common::chromium::Browser;
use common::*;

/// A desktop Chrome's user agent: headless Chromium announces itself as
/// `HeadlessChrome`, which the redirect rightly judges a bot (never billed).
const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36";

/// A merchant's site on a loopback port: a landing page and a confirmation
/// page, both tagged with the tracker's `t.js`.
struct Merchant {
    port: u16,
    /// Request targets in the order they came, for failure messages and
    /// for the click id the redirect appended.
    seen: Arc<Mutex<Vec<String>>>,
}

impl Merchant {
    /// Starts serving on a free port; `tracker` is the public listener's
    /// origin, where the pages load `t.js` from.
    fn start(tracker: &str) -> Merchant {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let pages = Arc::new(Pages::new(tracker));
        let log = seen.clone();
        // Lives until the test process exits. A thread per connection: the
        // browser may open a connection it sends nothing on (a preconnect).
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (pages, log) = (pages.clone(), log.clone());
                std::thread::spawn(move || {
                    if let Some(target) = serve(stream, &pages) {
                        log.lock().unwrap().push(target);
                    }
                });
            }
        });
        Merchant { port, seen }
    }

    fn url(&self, target: &str) -> String {
        format!("http://127.0.0.1:{}{target}", self.port)
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// The merchant's HTML. Each tag's `onload` writes what the page can see
/// into `#out`, so the dumped DOM shows it.
struct Pages {
    landing: String,
    confirm: String,
}

impl Pages {
    fn new(tracker: &str) -> Pages {
        let landing = format!(
            r#"<!doctype html><html><body><p id="out">not loaded</p>
<script src="{tracker}/t.js" async data-days="7"
 onload="document.getElementById('out').textContent = 'cookie ' + document.cookie + ' api ' + typeof window.trackedge.convert"></script>
</body></html>"#
        );
        // The tag twice (as a tag manager might add it) and a call of the
        // API for the same order: still one pixel for this page load.
        let confirm = format!(
            r#"<!doctype html><html><body><p id="out">not loaded</p>
<script src="{tracker}/t.js" async data-order-id="ORDER-1" data-amount="19.90"></script>
<script src="{tracker}/t.js" async data-order-id="ORDER-1" data-amount="19.90"
 onload="document.getElementById('out').textContent = 'again ' + window.trackedge.convert({{order_id: 'ORDER-1', amount: '19.90'}})"></script>
</body></html>"#
        );
        Pages { landing, confirm }
    }
}

/// Answers one request on `stream`; returns its target.
fn serve(mut stream: TcpStream, pages: &Pages) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let target = head.split_whitespace().nth(1)?.to_string();
    let path = target.split('?').next().unwrap_or_default();
    let (status, body) = match path {
        "/landing" => ("200 OK", pages.landing.as_str()),
        "/confirm" => ("200 OK", pages.confirm.as_str()),
        _ => ("404 Not Found", "not found"),
    };
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(answer.as_bytes()).ok()?;
    Some(target)
}

/// The text of `<p id="out">` in a dumped DOM.
fn out(dom: &str) -> &str {
    let start = dom.find(r#"<p id="out">"#).expect("the out paragraph") + r#"<p id="out">"#.len();
    let len = dom[start..].find("</p>").expect("its end");
    &dom[start..start + len]
}

#[tokio::test]
async fn a_tracked_visit_converts_through_t_js_in_chromium() {
    let server = Server::start(ServerConfig::new("browser"));

    // The snippet as served.
    let url = format!("{}/t.js", server.public);
    let resp = client().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/javascript; charset=utf-8"
    );
    assert_eq!(resp.headers()["cache-control"], "public, max-age=3600");
    let body = resp.text().await.unwrap();
    assert!(body.contains("te_click_id"), "{body}");
    let resp = client().head(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-length"],
        body.len().to_string().as_str()
    );

    let merchant = Merchant::start(&server.public);
    let link = seed_link(
        &server,
        &merchant.url("/landing?click_id={click_id}"),
        Some("shoes"),
    )
    .await;
    let tracked = format!("{}/{}", server.public, link["code"].as_str().unwrap());

    // Without a tracked visit, the confirmation page fires nothing.
    let dom = Browser::new()
        .user_agent(USER_AGENT)
        .open(&merchant.url("/confirm"));
    assert_eq!(out(&dom), "again false", "{dom}");

    // The tracked link lands on the landing page, whose tag keeps the
    // click id the redirect appended.
    let mut shopper = Browser::new().user_agent(USER_AGENT);
    let dom = shopper.open(&tracked);
    let landing = merchant
        .seen()
        .into_iter()
        .find(|t| t.starts_with("/landing?"))
        .unwrap_or_else(|| panic!("no landing page visit: {:?}", merchant.seen()));
    let cid = landing
        .strip_prefix("/landing?click_id=")
        .expect("the click id in the landing URL")
        .to_string();
    assert_eq!(out(&dom), format!("cookie te_click_id={cid} api function"));

    // Back later, from the cookie alone: the confirmation page's tag fires
    // the pixel once.
    let dom = shopper.open(&merchant.url("/confirm"));
    assert_eq!(out(&dom), "again false", "{dom}");

    // The shipper writes conversions in the order they were answered: once
    // this later pixel's row is in, any pixel the pages fired is too.
    let resp = client()
        .get(format!(
            "{}/pixel?click_id={cid}&order_id=SENTINEL",
            server.public
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let ch = &services().clickhouse;
    let db = &server.config.database;
    let rows = wait_for("the pixel conversions in clickhouse", || {
        let text = ch
            .try_query(&format!(
                "SELECT order_id, source, status, reason, click_id, toInt64(amount * 10000) FROM {db}.conversions ORDER BY order_id FORMAT TSV"
            ))
            .ok()?;
        text.contains("SENTINEL").then_some(text)
    });
    assert_eq!(
        rows.lines().collect::<Vec<_>>(),
        [
            format!("ORDER-1\tpixel\tpending\tpixel_untrusted\t{cid}\t199000"),
            format!("SENTINEL\tpixel\tpending\tpixel_untrusted\t{cid}\t0"),
        ]
    );
}
