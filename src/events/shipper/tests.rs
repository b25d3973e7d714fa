//! Retry classification, and a TLS failure retried without rejecting rows.

use super::retry::server_code;
use super::*;

fn check(e: &clickhouse::error::Error, expected: ErrorKind) {
    assert_eq!(classify(e), expected, "{e}");
}

#[test]
fn classification() {
    use clickhouse::error::Error as E;
    let cases: Vec<(E, ErrorKind)> = vec![
        (
            E::BadResponse("Code: 53, e.displayText() = DB::Exception: Type mismatch".into()),
            ErrorKind::Data,
        ),
        (
            E::BadResponse("Code: 117. DB::Exception: Incorrect data".into()),
            ErrorKind::Data,
        ),
        (
            E::BadResponse("Code: 60. DB::Exception: Table x doesn't exist".into()),
            ErrorKind::Transient,
        ),
        (
            E::BadResponse("Code: 241. Memory limit exceeded".into()),
            ErrorKind::Transient,
        ),
        (
            E::BadResponse("502 Bad Gateway".into()),
            ErrorKind::Transient,
        ),
        (E::TimedOut, ErrorKind::Transient),
        (
            E::Network("invalid peer certificate: UnknownIssuer".into()),
            ErrorKind::Transient,
        ),
        (
            E::Unsupported("invalid URL, scheme is not http".into()),
            ErrorKind::Transient,
        ),
        // Errors of our own making are not the rows' fault.
        (E::Custom("bad serde".into()), ErrorKind::Transient),
        (E::NotEnoughData, ErrorKind::Transient),
        (E::SchemaMismatch("clicks".into()), ErrorKind::Transient),
        (E::Other("unknown".into()), ErrorKind::Transient),
    ];
    for (e, kind) in cases {
        check(&e, kind);
    }
}

/// A ClickHouse URL that cannot work (here `https://` to a server that
/// speaks plain HTTP) is transient: the batch waits in the log, retried,
/// and nothing goes to the rejected files.
#[tokio::test]
async fn a_tls_failure_is_retried_and_rejects_nothing() {
    use std::io::{Read, Write};

    use crate::events::log::LogConfig;

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = CancellationToken::new();
    // Each attempt connects anew: a second connection means the first
    // attempt failed and was retried, so the test may stop there.
    let server = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut first_bytes = Vec::new();
            for attempt in 1..=2 {
                let (mut conn, _) = listener.accept().unwrap();
                let mut byte = [0u8; 1];
                first_bytes.push(conn.read_exact(&mut byte).map(|()| byte[0]).ok());
                // What a ClickHouse without TLS answers a ClientHello with.
                let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
                if attempt == 2 {
                    stop.cancel();
                }
            }
            first_bytes
        })
    };

    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(
        EventLog::open(&dir.path().join("log"), LogConfig::new(4096, 8192).unwrap()).unwrap(),
    );
    let reader = log.reader();
    let client = Client::default().with_url(format!("https://127.0.0.1:{port}"));
    let rejected_dir = dir.path().join("rejected");
    let metrics = Arc::new(Metrics::new());
    let mut shipper = Shipper::new(
        Arc::clone(&log),
        reader,
        client,
        Rejected::open(&rejected_dir).unwrap(),
        Arc::clone(&metrics),
        ShipperSettings {
            database: "trackedge".into(),
            batch_rows: 1000,
            flush_interval: Duration::from_millis(10),
            retry: Backoff::constant(Duration::from_millis(1)),
            insert_timeout: Duration::from_secs(5),
        },
    );
    let mut event = Vec::new();
    Event::Click(crate::events::tests::click()).encode(&mut event);
    log.append(&event).unwrap();
    let records = lock(&shipper.reader).read(10).unwrap();
    assert_eq!(records.len(), 1);

    let shipped = shipper.ship(&records, false, &stop).await;
    assert!(
        shipped.is_err(),
        "shipping must wait for a working clickhouse"
    );
    // 0x16: a TLS handshake record, so the client does speak TLS.
    assert_eq!(server.join().unwrap(), vec![Some(0x16); 2]);
    let errors = |kind: &str| metrics.clickhouse_errors.with_label_values(&[kind]).get();
    assert!(errors("transient") >= 1);
    assert_eq!(errors("data"), 0);
    assert_eq!(
        metrics.events_failed.with_label_values(&["clicks"]).get(),
        0
    );
    let kept: Vec<_> = std::fs::read_dir(&rejected_dir).unwrap().collect();
    assert!(kept.is_empty(), "rejected files: {kept:?}");
}

#[test]
fn server_codes() {
    assert_eq!(server_code("Code: 53, e.displayText()"), Some(53));
    assert_eq!(server_code("Code: 117."), Some(117));
    assert_eq!(server_code("no code"), None);
}
