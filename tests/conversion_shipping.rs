//! Conversions through the shipper, against a real ClickHouse: each
//! `(conversion_id, version)` is inserted once, after lost INSERT answers
//! and restarts (the batch's fate unknown) and when one version reaches
//! the log twice (a claim taken over), so `conversions_15m`, which counts
//! every inserted row as a change of state, stays exact.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::*;

/// Ships `events` through a fresh log with a shipper of its own, as a
/// restarted node would, until ClickHouse holds `expect` conversion rows.
async fn ship_conversions(
    events: &[trackedge::events::Event<'_>],
    clickhouse_url: &str,
    database: &str,
    expect: u64,
) -> trackedge::metrics::Metrics {
    use std::time::Duration;
    use trackedge::backoff::Backoff;
    use trackedge::events::log::{EventLog, LogConfig};
    use trackedge::events::rejected::Rejected;
    use trackedge::events::shipper::{Shipper, ShipperSettings};

    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(
        EventLog::open(
            &dir.path().join("log"),
            LogConfig::new(1 << 20, 1 << 22).unwrap(),
        )
        .unwrap(),
    );
    for e in events {
        let mut buf = Vec::new();
        e.encode(&mut buf);
        log.append(&buf).unwrap();
    }
    let metrics = Arc::new(trackedge::metrics::Metrics::new());
    let shipper = Shipper::new(
        Arc::clone(&log),
        log.reader(),
        clickhouse::Client::default()
            .with_url(clickhouse_url)
            .with_database(database)
            .with_validation(false),
        Rejected::open(&dir.path().join("rejected")).unwrap(),
        Arc::clone(&metrics),
        ShipperSettings {
            database: database.into(),
            batch_rows: 10_000,
            flush_interval: Duration::from_millis(10),
            retry: Backoff::constant(Duration::from_millis(10)),
            insert_timeout: Duration::from_secs(5),
        },
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(shipper.run(stop.clone(), Duration::from_secs(30)));
    let ch = &services().clickhouse;
    wait_for_async("the conversions in clickhouse", || async {
        let n = ch.count(&format!("SELECT count() FROM {database}.conversions"));
        (n >= expect).then_some(())
    })
    .await;
    stop.cancel();
    running.await.unwrap();
    Arc::try_unwrap(metrics).unwrap_or_else(|_| panic!("the shipper has ended"))
}

/// A fresh database named after `tag`, migrated, on the shared ClickHouse.
async fn migrated_database(tag: &str) -> String {
    let db = unique_name(tag);
    let direct = clickhouse::Client::default()
        .with_url(services().clickhouse.url())
        .with_validation(false);
    trackedge::schema::migrate(&direct, &db).await.unwrap();
    db
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversions_land_once_per_version_after_lost_answers_and_restarts() {
    use trackedge::events::{ConversionRow, Event, Money};

    let ch = &services().clickhouse;
    let db = migrated_database("conv").await;

    let ids: Vec<String> = (0..50).map(|i| format!("cv{i:04}")).collect();
    let row = |id: &'static str, version: u64| ConversionRow {
        conversion_id: id,
        ts: 1_790_000_000,
        click_id: "0A2b5nkX12I0sfAI8Qi4Oy2LGb50BiqH",
        click_ts: 1_789_999_000,
        link_id: 7,
        partner_id: 1,
        offer_id: 2,
        order_id: "o-ü",
        event: "sale",
        amount: Money::from_scaled(123_456).unwrap(), // 12.3456
        currency: "EUR",
        payout: Money::from_scaled(1).unwrap(), // 0.0001
        payout_currency: "USD",
        status: if version == 1 { "pending" } else { "approved" },
        reason: "ok",
        customer_id: "",
        attribution: "click",
        payout_rule: "offer",
        deal_id: 0,
        displaced_partner_id: 0,
        source: "postback",
        ip: "127.0.0.1",
        version,
        prev_status: if version == 1 { "" } else { "pending" },
        prev_amount: if version == 1 {
            Money::ZERO
        } else {
            Money::from_scaled(123_456).unwrap()
        },
        prev_payout: if version == 1 {
            Money::ZERO
        } else {
            Money::from_scaled(1).unwrap()
        },
    };
    let ids: &'static [String] = ids.leak();
    let first: Vec<Event> = ids.iter().map(|id| Event::Conversion(row(id, 1))).collect();

    // The first INSERT lands but its answer is lost: the retry must ask
    // before sending again.
    let proxy = DroppingProxy::start(ch.http_port);
    proxy.drops.store(1, Ordering::SeqCst);
    let m = ship_conversions(&first, &proxy.url(), &db, 50).await;
    assert_eq!(proxy.dropped.load(Ordering::SeqCst), 1);
    let flushed = |m: &trackedge::metrics::Metrics| {
        m.events_flushed.with_label_values(&["conversions"]).get()
    };
    assert_eq!(flushed(&m), 0, "the only INSERT's answer was lost");

    // A restart before the log was acknowledged finds the same records,
    // plus a status change: only the new version is sent.
    let mut again = first.clone();
    again.push(Event::Conversion(row(&ids[0], 2)));
    let m = ship_conversions(&again, &ch.url(), &db, 51).await;
    assert_eq!(flushed(&m), 1);

    let counts = ch.query(&format!(
        "SELECT count(), uniqExact(conversion_id, version), toString(sum(amount)), \
         toString(sum(payout)) FROM {db}.conversions FORMAT TabSeparated"
    ));
    assert_eq!(counts.trim(), "51\t51\t629.6256\t0.0051");
    let latest = ch.query(&format!(
        "SELECT status FROM {db}.conversions FINAL WHERE conversion_id = 'cv0000' FORMAT TabSeparated"
    ));
    assert_eq!(latest.trim(), "approved");
}

/// A version that reaches the log twice (a claim taken over: README,
/// "Deduplication"), within one batch or after an earlier batch shipped
/// it, is inserted once, with no unknown outcome involved: the shipper
/// asks before every conversion batch. So `conversions_15m`, which counts
/// every inserted row as a change of state, stays exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversion_versions_reaching_the_log_twice_are_inserted_once() {
    use trackedge::events::{ConversionRow, Event, Money};

    let ch = &services().clickhouse;
    let db = migrated_database("conv_twice").await;
    let amount = Money::from_scaled(250_000).unwrap(); // 25.0000
    let payout = Money::from_scaled(25_000).unwrap(); // 2.5000
    let row = |id: &'static str, version: u64, status: &'static str, prev: &'static str| {
        let (prev_amount, prev_payout) = if prev.is_empty() {
            (Money::ZERO, Money::ZERO)
        } else {
            (amount, payout)
        };
        Event::Conversion(ConversionRow {
            conversion_id: id,
            ts: 1_790_000_000,
            click_id: "",
            click_ts: 0,
            link_id: 7,
            partner_id: 1,
            offer_id: 2,
            order_id: id,
            event: "sale",
            amount,
            currency: "EUR",
            payout,
            payout_currency: "EUR",
            status,
            reason: "ok",
            customer_id: "",
            attribution: "click",
            payout_rule: "offer",
            deal_id: 0,
            displaced_partner_id: 0,
            source: "postback",
            ip: "",
            version,
            prev_status: prev,
            prev_amount,
            prev_payout,
        })
    };
    let flushed = |m: &trackedge::metrics::Metrics| {
        m.events_flushed.with_label_values(&["conversions"]).get()
    };
    let first = [
        row("cvt0", 1, "pending", ""),
        row("cvt1", 1, "approved", ""),
    ];
    let m = ship_conversions(&first, &ch.url(), &db, 2).await;
    assert_eq!(flushed(&m), 2);
    // Copies of shipped versions, a status change written twice and a
    // new conversion written twice, all in one batch.
    let second = [
        row("cvt0", 1, "pending", ""),
        row("cvt0", 2, "approved", "pending"),
        row("cvt1", 1, "approved", ""),
        row("cvt0", 2, "approved", "pending"),
        row("cvt2", 1, "approved", ""),
        row("cvt2", 1, "approved", ""),
    ];
    let m = ship_conversions(&second, &ch.url(), &db, 4).await;
    assert_eq!(flushed(&m), 2, "only cvt0's version 2 and cvt2 are new");
    let stored = ch.query(&format!(
        "SELECT count(), uniqExact(conversion_id, version) FROM {db}.conversions FORMAT TabSeparated"
    ));
    assert_eq!(stored.trim(), "4\t4");
    let rollup = ch.query(&format!(
        "SELECT sum(approved), sum(pending), sum(rejected), sum(reversed), sum(revenue), sum(payout) \
         FROM {db}.conversions_15m FORMAT TabSeparated"
    ));
    assert_eq!(rollup.trim(), "3\t0\t0\t0\t750000\t75000");

    // A batch larger than one query's ids (1,000): every copy is found.
    let ids: &'static [String] = (0..2_500)
        .map(|i| format!("cvm{i:05}"))
        .collect::<Vec<_>>()
        .leak();
    let many: Vec<Event> = ids.iter().map(|id| row(id, 1, "pending", "")).collect();
    let m = ship_conversions(&many, &ch.url(), &db, 4 + 2_500).await;
    assert_eq!(flushed(&m), 2_500);
    let mut again = many.clone();
    again.push(row("cvt3", 1, "pending", ""));
    let m = ship_conversions(&again, &ch.url(), &db, 4 + 2_500 + 1).await;
    assert_eq!(flushed(&m), 1, "only cvt3 is new");
    assert_eq!(
        ch.count(&format!("SELECT sum(pending) FROM {db}.conversions_15m")),
        2_501
    );
}
