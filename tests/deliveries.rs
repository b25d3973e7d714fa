//! Partner postbacks end to end: a local HTTP listener stands in for the
//! partner; a click, then a merchant's postback, and the partner's URL is
//! called with its macros filled (the click's sub-ids read from ClickHouse,
//! waited for while the click is not there), retried until it answers 2xx
//! (across a restart of trackedge), every attempt recorded in
//! `postback_deliveries`; loopback addresses are refused unless allowed.

mod common;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::sync::{mpsc, Arc, Mutex};

use common::*;
use serde_json::{json, Value};

/// The partner's server: bound from the start (so its port is known and
/// kept), listening only once [`Partner::up`] is called; every request goes
/// to a channel, answered with the next scripted status (200 once the
/// script is used up).
struct Partner {
    socket: Option<socket2::Socket>,
    port: u16,
    answers: Arc<Mutex<VecDeque<u16>>>,
    requests: mpsc::Receiver<Received>,
    sender: mpsc::Sender<Received>,
}

/// One request the partner received.
#[derive(Debug)]
struct Received {
    /// Method and target.
    line: String,
    /// Header names (lower case) and values.
    headers: Vec<(String, String)>,
    /// The body, as `content-length` says.
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Partner {
    /// A partner whose server is down: connections are refused.
    fn down(answers: &[u16]) -> Partner {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("creating a socket");
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        socket.bind(&any.into()).expect("binding a loopback port");
        let port = socket.local_addr().unwrap().as_socket().unwrap().port();
        let (sender, requests) = mpsc::channel();
        Partner {
            socket: Some(socket),
            port,
            answers: Arc::new(Mutex::new(answers.iter().copied().collect())),
            requests,
            sender,
        }
    }

    /// A partner whose server answers.
    fn up(answers: &[u16]) -> Partner {
        let mut p = Partner::down(answers);
        p.start();
        p
    }

    /// Starts listening on the partner's port.
    fn start(&mut self) {
        let socket = self.socket.take().expect("not listening yet");
        socket.listen(16).expect("listening");
        let listener: std::net::TcpListener = socket.into();
        let (answers, sender) = (self.answers.clone(), self.sender.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let mut headers = Vec::new();
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    if let Some((name, value)) = line.trim_end().split_once(':') {
                        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
                    }
                    line.clear();
                }
                let length = headers
                    .iter()
                    .find(|(n, _)| n == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let status = answers.lock().unwrap().pop_front().unwrap_or(200);
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = conn.flush();
                let mut words = request_line.split_whitespace();
                let line = format!(
                    "{} {}",
                    words.next().unwrap_or(""),
                    words.next().unwrap_or("")
                );
                if sender
                    .send(Received {
                        line,
                        headers,
                        body,
                    })
                    .is_err()
                {
                    return;
                }
            }
        });
    }

    /// The partner's postback URL template at `path_and_query`.
    fn url(&self, host: &str, path_and_query: &str) -> String {
        format!("http://{host}:{}{path_and_query}", self.port)
    }

    /// The next request the partner received: method and target.
    fn next_request(&self) -> String {
        self.next_received().line
    }

    /// The next request the partner received, whole.
    fn next_received(&self) -> Received {
        self.requests
            .recv_timeout(PATIENCE)
            .expect("the partner to be called")
    }

    /// True when no request arrived beyond those taken.
    fn no_more_requests(&self) -> bool {
        matches!(self.requests.try_recv(), Err(mpsc::TryRecvError::Empty))
    }
}

/// A server taking postbacks to loopback partners (when `allow_private`),
/// retrying after 50 ms doubling to 200 ms.
fn server_config(tag: &str, allow_private: bool) -> ServerConfig {
    ServerConfig::new(tag)
        .with(
            "TRACKEDGE_POSTBACKS_ALLOW_PRIVATE_ADDRESSES",
            if allow_private { "true" } else { "false" },
        )
        .with("TRACKEDGE_POSTBACKS_RETRY_INITIAL_MS", "50")
        .with("TRACKEDGE_POSTBACKS_RETRY_MAX_MS", "200")
}

/// A partner with `postback_url`, a CPA 5.00 offer and a link between
/// them; answers the link and the offer's postback token.
async fn seed(server: &Server, postback_url: &str) -> (Value, String) {
    let partner = json!({"name": "Partner", "kind": "affiliate", "postback_url": postback_url});
    let (link, token, _) = seed_partner(server, partner).await;
    (link, token)
}

/// Like [`seed`], for the partner `partner` (the create body); answers the
/// partner as created too.
async fn seed_partner(server: &Server, partner: Value) -> (Value, String, Value) {
    let (l, o, p) = seed_partner_link(
        server,
        partner,
        "https://shop.example.com/?cid={click_id}",
        None,
    )
    .await;
    (l, o["postback_token"].as_str().unwrap().to_string(), p)
}

/// An approved postback for `cid`; answers the conversion id.
async fn convert(server: &Server, token: &str, cid: &str, order: &str) -> String {
    let resp = client()
        .post(format!("{}/postback", server.public))
        .header("content-type", "application/json")
        .body(json!({"click_id": cid, "order_id": order, "token": token}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["status"], "approved", "{v}");
    v["conversion_id"].as_str().unwrap().to_string()
}

/// The `postback_deliveries` rows of `conversion_id` as
/// `attempt\thttp_status\terror\turl`, once there are at least `n`.
fn deliveries(server: &Server, conversion_id: &str, n: usize) -> Vec<String> {
    deliveries_until(server, conversion_id, |rows| rows.len() >= n)
}

/// Like [`deliveries`], once `done` says so.
fn deliveries_until(
    server: &Server,
    conversion_id: &str,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let ch = &services().clickhouse;
    let db = &server.config.database;
    wait_for("postback deliveries in clickhouse", || {
        let text = ch
            .try_query(&format!(
                "SELECT attempt, http_status, error, url FROM {db}.postback_deliveries \
                 WHERE conversion_id = '{conversion_id}' ORDER BY attempt FORMAT TSV"
            ))
            .ok()?;
        let rows: Vec<String> = text.lines().map(str::to_string).collect();
        done(&rows).then_some(rows)
    })
}

/// A browser's click on `link` with sub-ids `subs` (name, value; the
/// values URL-encoded into the query); answers the click id.
async fn click_with_subs(server: &Server, link: &Value, subs: &[(&str, &str)]) -> String {
    let url = reqwest::Url::parse_with_params(
        &format!("{}/{}", server.public, link["code"].as_str().unwrap()),
        subs,
    )
    .unwrap();
    let resp = client()
        .get(url)
        .header("user-agent", BROWSER_UA)
        .send()
        .await
        .unwrap();
    click_id_of(&resp)
}

/// Waits until metric `name` reads `value`.
fn wait_for_metric(server: &Server, name: &str, value: f64) {
    wait_for(&format!("{name} to be {value}"), || {
        (metric_if_any(server, name) == Some(value)).then_some(())
    });
}

#[tokio::test]
async fn the_partner_is_called_once_with_its_macros_filled() {
    let partner = Partner::up(&[]);
    let server = Server::start(server_config("pb", true));
    let template = partner.url(
        "127.0.0.1",
        "/pb?cid={click_id}&st={status}&p={payout}&token=s3cret",
    );
    let (link, token) = seed(&server, &template).await;
    let cid = click(&server, &link).await;
    let conversion = convert(&server, &token, &cid, "A-1").await;

    assert_eq!(
        partner.next_request(),
        format!("GET /pb?cid={cid}&st=approved&p=5.00&token=s3cret")
    );
    let rows = deliveries(&server, &conversion, 1);
    let url = partner.url(
        "127.0.0.1",
        &format!("/pb?cid={cid}&st=approved&p=5.00&token=***"),
    );
    assert_eq!(rows, [format!("1\t200\t\t{url}")]);
    wait_for_metric(
        &server,
        "trackedge_postback_deliveries_total{outcome=\"delivered\"}",
        1.0,
    );
    assert!(partner.no_more_requests());
}

#[tokio::test]
async fn a_failed_postback_is_retried_until_the_partner_answers_2xx() {
    let partner = Partner::up(&[500]);
    let server = Server::start(server_config("pbretry", true));
    let (link, token) = seed(&server, &partner.url("127.0.0.1", "/pb?cid={click_id}")).await;
    let cid = click(&server, &link).await;
    let conversion = convert(&server, &token, &cid, "A-1").await;

    let expected = format!("GET /pb?cid={cid}");
    assert_eq!(partner.next_request(), expected);
    assert_eq!(partner.next_request(), expected);
    let rows = deliveries(&server, &conversion, 2);
    let url = partner.url("127.0.0.1", &format!("/pb?cid={cid}"));
    assert_eq!(
        rows,
        [
            format!("1\t500\tanswered 500\t{url}"),
            format!("2\t200\t\t{url}")
        ]
    );
    wait_for_metric(
        &server,
        "trackedge_postback_deliveries_total{outcome=\"failed_retrying\"}",
        1.0,
    );
}

#[tokio::test]
async fn a_postback_queued_before_a_restart_is_delivered_after_it() {
    let mut partner = Partner::down(&[]);
    let config = server_config("pbrestart", true);
    let mut server = Server::start(config.clone());
    let (link, token) = seed(&server, &partner.url("127.0.0.1", "/pb?cid={click_id}")).await;
    let cid = click(&server, &link).await;
    let conversion = convert(&server, &token, &cid, "A-1").await;

    // The partner refuses connections: an attempt without an answer.
    let rows = deliveries(&server, &conversion, 1);
    assert!(rows[0].starts_with("1\t0\t"), "{rows:?}");
    assert!(server.terminate().success());

    partner.start();
    let server = Server::start(config);
    assert_eq!(partner.next_request(), format!("GET /pb?cid={cid}"));
    let rows = deliveries_until(&server, &conversion, |rows| {
        rows.iter().any(|r| r.split('\t').nth(1) == Some("200"))
    });
    // Every attempt is recorded once, numbered in order across the restart.
    let attempts: Vec<String> = rows
        .iter()
        .map(|r| r.split('\t').next().unwrap().to_string())
        .collect();
    let expected: Vec<String> = (1..=rows.len()).map(|n| n.to_string()).collect();
    assert_eq!(attempts, expected);
    assert!(rows
        .last()
        .unwrap()
        .starts_with(&format!("{}\t200\t", rows.len())));
}

#[tokio::test]
async fn loopback_partners_are_refused_unless_allowed() {
    let partner = Partner::up(&[]);
    let server = Server::start(server_config("pbrefuse", false));
    // An address literal, and a name resolving to loopback.
    for (order, host) in [("A-1", "127.0.0.1"), ("A-2", "localhost")] {
        let (link, token) = seed(&server, &partner.url(host, "/pb?cid={click_id}")).await;
        let cid = click(&server, &link).await;
        let conversion = convert(&server, &token, &cid, order).await;
        let rows = deliveries(&server, &conversion, 1);
        let fields: Vec<&str> = rows[0].split('\t').collect();
        assert_eq!(&fields[..2], ["1", "0"], "{rows:?}");
        assert!(fields[2].starts_with("refused: "), "{rows:?}");
        assert!(
            fields[2].contains("127.0.0.1") || fields[2].contains("::1"),
            "{rows:?}"
        );
    }
    wait_for_metric(
        &server,
        "trackedge_postback_deliveries_total{outcome=\"refused_address\"}",
        2.0,
    );
    assert!(partner.no_more_requests());
}

#[tokio::test]
async fn a_reversal_is_announced_to_the_partner_too() {
    let partner = Partner::up(&[]);
    let server = Server::start(server_config("pbrev", true));
    let template = partner.url("127.0.0.1", "/pb?cid={click_id}&st={status}");
    let (link, token) = seed(&server, &template).await;
    let cid = click(&server, &link).await;
    let conversion = convert(&server, &token, &cid, "R-1").await;
    assert_eq!(
        partner.next_request(),
        format!("GET /pb?cid={cid}&st=approved")
    );
    // The change needs the conversion in ClickHouse.
    wait_for_async("the conversion in clickhouse", || async {
        let (s, _) = admin(
            &server,
            "GET",
            &format!("/api/v1/conversions/{conversion}"),
            None,
        )
        .await;
        (s == 200).then_some(())
    })
    .await;
    let (s, v) = admin(
        &server,
        "PATCH",
        &format!("/api/v1/conversions/{conversion}"),
        Some(serde_json::json!({"status": "reversed", "reason": "refund"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        partner.next_request(),
        format!("GET /pb?cid={cid}&st=reversed")
    );
}

#[tokio::test]
async fn the_partner_gets_the_sub_ids_of_the_original_click() {
    let partner = Partner::up(&[]);
    let server = Server::start(
        server_config("pbsubs", true).with("TRACKEDGE_POSTBACKS_CLICK_LOOKUP_RETRY_MS", "50"),
    );
    let template = partner.url(
        "127.0.0.1",
        "/pb/{sub3}?cid={click_id}&s1={sub1}&s2={sub2}&s5={sub5}",
    );
    let (link, token) = seed(&server, &template).await;
    let cid = click_with_subs(
        &server,
        &link,
        &[("sub1", "a b/ü"), ("sub2", "x&y=z"), ("sub3", "camp 7")],
    )
    .await;
    // Queued at once, while the click may still be on its way to
    // ClickHouse: the worker waits for it rather than send empty sub-ids.
    let conversion = convert(&server, &token, &cid, "S-1").await;

    let expected = format!("GET /pb/camp%207?cid={cid}&s1=a%20b%2F%C3%BC&s2=x%26y%3Dz&s5=");
    assert_eq!(partner.next_request(), expected);
    let rows = deliveries(&server, &conversion, 1);
    assert_eq!(
        rows,
        [format!(
            "1\t200\t\t{}",
            partner.url("127.0.0.1", &expected[4..])
        )]
    );
    assert_eq!(
        metric_if_any(
            &server,
            "trackedge_postback_deliveries_total{outcome=\"sent_without_subs\"}"
        ),
        None
    );
    assert!(partner.no_more_requests());
}

#[tokio::test]
async fn a_click_never_shipped_leaves_the_sub_ids_empty_once_the_age_limit_passes() {
    use trackedge::click_id::{ClickFlags, ClickIdCodec};

    let partner = Partner::up(&[]);
    let server = Server::start(
        server_config("pbnoclick", true)
            .with("TRACKEDGE_POSTBACKS_CLICK_LOOKUP_RETRY_MS", "50")
            .with("TRACKEDGE_POSTBACKS_GIVE_UP_AFTER_SECS", "1"),
    );
    let template = partner.url("127.0.0.1", "/pb?cid={click_id}&s1={sub1}");
    let (link, token) = seed(&server, &template).await;
    // A valid id for the link whose click was never recorded: its row
    // never reaches ClickHouse.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let codec = ClickIdCodec::new(SECRET.as_bytes(), &[], 0);
    let link_id = link["id"].as_u64().unwrap();
    let cid = codec
        .issue(link_id, now_ms, ClickFlags::default())
        .as_str()
        .to_string();
    let conversion = convert(&server, &token, &cid, "N-1").await;

    assert_eq!(partner.next_request(), format!("GET /pb?cid={cid}&s1="));
    let rows = deliveries(&server, &conversion, 1);
    assert!(rows[0].starts_with("1\t200\t"), "{rows:?}");
    wait_for_metric(
        &server,
        "trackedge_postback_deliveries_total{outcome=\"sent_without_subs\"}",
        1.0,
    );
    // It looked, and waited, before it gave up on the click.
    assert!(
        metric(
            &server,
            "trackedge_postback_deliveries_total{outcome=\"waiting_for_click\"}"
        ) >= 1.0
    );
    let log = server.log_text();
    assert!(
        log.contains("partner postback sent without the click's sub-ids")
            && log.contains("the click is not in clickhouse"),
        "{log}"
    );
}

#[tokio::test]
async fn a_job_queued_by_an_earlier_version_is_still_delivered() {
    let partner = Partner::up(&[]);
    let config = server_config("pbold", true);
    let key = format!("{}postbacks", config.prefix);
    let server = Server::start(config);
    // The job layout before jobs carried their facts: the URL rendered
    // when queued.
    let url = partner.url("127.0.0.1", "/pb?cid=old-click&st=approved");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let job = json!({
        "id": 1, "conversion_id": "old-conversion", "partner_id": 1,
        "url": url, "attempt": 1, "first_ms": now_ms,
    });
    let _: i64 = redis::cmd("ZADD")
        .arg(&key)
        .arg(0)
        .arg(job.to_string())
        .query(&mut services().redis.connection())
        .unwrap();

    assert_eq!(partner.next_request(), "GET /pb?cid=old-click&st=approved");
    assert_eq!(
        deliveries(&server, "old-conversion", 1),
        [format!("1\t200\t\t{url}")]
    );
}

#[tokio::test]
async fn a_json_partner_gets_a_signed_post_of_the_facts() {
    use trackedge::conversions::auth::verify_signature;

    let partner = Partner::up(&[]);
    let server = Server::start(
        server_config("pbjson", true).with("TRACKEDGE_POSTBACKS_CLICK_LOOKUP_RETRY_MS", "50"),
    );
    let url = partner.url("127.0.0.1", "/hook?cid={click_id}&key=k1");
    let (link, token, p) = seed_partner(
        &server,
        json!({"name": "Hooked", "kind": "affiliate", "postback_url": url, "postback_format": "json"}),
    )
    .await;
    assert_eq!(p["postback_format"], "json");
    let secret = p["webhook_secret"].as_str().unwrap().to_string();
    assert!(secret.len() >= 20, "{p}");
    let cid = click_with_subs(&server, &link, &[("sub1", "a b"), ("sub4", "x")]).await;
    let conversion = convert(&server, &token, &cid, "J-1").await;

    let got = partner.next_received();
    assert_eq!(got.line, format!("POST /hook?cid={cid}&key=k1"));
    assert_eq!(got.header("content-type"), Some("application/json"));
    let signature = got.header("x-trackedge-signature").expect("a signature");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert_eq!(verify_signature(signature, &got.body, &secret, now), Ok(()));
    assert!(verify_signature(signature, &got.body, "another secret", now).is_err());
    let mut body: Value = serde_json::from_slice(&got.body).unwrap();
    let timestamp = body["timestamp"].take();
    assert!(timestamp.as_str().unwrap().ends_with('Z'), "{timestamp}");
    assert_eq!(
        body,
        json!({
            "conversion_id": conversion, "status": "approved", "reason": "ok",
            "event": "sale", "order_id": "J-1", "payout": "5.00", "currency": "USD",
            "offer_id": link["offer_id"],
            "partner_id": p["id"], "click_id": cid,
            "sub1": "a b", "sub2": "", "sub3": "", "sub4": "x", "sub5": "",
            "timestamp": null,
        })
    );
    let rows = deliveries(&server, &conversion, 1);
    let recorded = partner.url("127.0.0.1", &format!("/hook?cid={cid}&key=***"));
    assert_eq!(rows, [format!("1\t200\t\t{recorded}")]);
    assert!(partner.no_more_requests());
}

#[tokio::test]
async fn the_postback_format_changes_keeping_the_secret_and_a_bad_one_is_named() {
    let server = Server::start(server_config("pbjsonpatch", true));
    let (s, p) = admin(
        &server,
        "POST",
        "/api/v1/partners",
        Some(json!({"name": "P", "kind": "affiliate"})),
    )
    .await;
    assert_eq!(s, 201, "{p}");
    assert_eq!(p["postback_format"], "get");
    let path = format!("/api/v1/partners/{}", p["id"]);
    let (s, changed) = admin(
        &server,
        "PATCH",
        &path,
        Some(json!({"postback_format": "json"})),
    )
    .await;
    assert_eq!(s, 200, "{changed}");
    assert_eq!(changed["postback_format"], "json");
    assert_eq!(changed["webhook_secret"], p["webhook_secret"]);
    let (s, e) = admin(
        &server,
        "PATCH",
        &path,
        Some(json!({"postback_format": "xml"})),
    )
    .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["error"]["field"], "postback_format", "{e}");
}
