//! Prometheus metrics: one struct, registered once into a registry that is
//! passed down, never a global. No label ever holds a code, click id or IP:
//! label values come from small fixed sets.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// The routes a request can take, as metric label values.
pub const ROUTES: &[&str] = &[
    "redirect",
    "conversion",
    "health",
    "admin",
    "metrics",
    "dashboard",
    "partner",
    "apply",
    "other",
];

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    /// Requests by listener, route and status class.
    pub requests: IntCounterVec,
    /// Time from request to answer on the redirect path.
    pub redirect_seconds: Histogram,
    /// Clicks written to the spool.
    pub clicks_recorded: IntCounter,
    /// Clicks flagged as bots.
    pub clicks_bot: IntCounter,
    /// Clicks flagged as rate limited.
    pub clicks_rate_limited: IntCounter,
    /// Requests for unknown or disabled codes.
    pub orphan_hits: IntCounter,
    /// Clicks redirected but not recorded: the spool was full.
    pub clicks_dropped: IntCounter,
    /// Orphan hits not recorded: the spool was full.
    pub orphans_dropped: IntCounter,
    /// Events inserted into ClickHouse, by table.
    pub events_flushed: IntCounterVec,
    /// Events ClickHouse refused as bad data, written to the spool's
    /// rejected files, by table.
    pub events_failed: IntCounterVec,
    /// Bytes of spool segment files on disk.
    pub spool_bytes: IntGauge,
    /// Age of the oldest event not yet in ClickHouse.
    pub spool_oldest_age_seconds: IntGauge,
    /// Damaged spool records skipped (torn or corrupted bytes).
    pub spool_corrupt_records: IntGauge,
    /// Spool records that passed their checksum but did not decode.
    pub events_undecodable: IntCounter,
    /// Rows per INSERT.
    pub batch_rows: Histogram,
    /// Time per INSERT, by outcome.
    pub flush_seconds: HistogramVec,
    /// ClickHouse errors by kind (`transient`, `data`).
    pub clickhouse_errors: IntCounterVec,
    /// Links in the redirect cache.
    pub links_cached: IntGauge,
    /// Catalog change messages applied, full reloads, and Redis errors.
    pub catalog_events: IntCounterVec,
    /// Conversions recorded, by status and reason (closed lists).
    pub conversions: IntCounterVec,
    /// Conversion reports that got no verdict, by kind (`bad_input`,
    /// `unauthorized`, `unavailable`, `not_recorded`).
    pub conversion_errors: IntCounterVec,
    /// Payout of approved and pending conversions, in ten-thousandths of
    /// the offer's currency, by status (money is never a float, even here).
    pub conversion_payout: IntCounterVec,
    /// Order claims in Redis by outcome (`fresh`, `taken_over`: a retry of
    /// an attempt that died between claim and record, `duplicate`,
    /// `released`: the log refused the row).
    pub conversion_claims: IntCounterVec,
    /// Partner postback attempts and jobs by outcome (`delivered`,
    /// `failed_retrying`, `gave_up`, `refused_address`, `not_queued`;
    /// before a call, `waiting_for_click`: put back because the click whose
    /// sub-ids the URL names is not in ClickHouse yet, and
    /// `sent_without_subs`: past the age limit, sent without them).
    pub postback_deliveries: IntCounterVec,
    /// Partner postbacks waiting in the shared queue (every node's).
    pub postback_queue_depth: IntGauge,
    /// Clicks shipped with `visitor` 0 (unknown), by reason (`expired`:
    /// the day's key is gone; `redis`: Redis did not answer).
    pub visitor_unknown: IntCounterVec,
    /// User agent lookups of the shipper's enrichment, by `hit` or `miss`
    /// of its cache.
    pub agent_lookups: IntCounterVec,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("trackedge".into()), None)
            .expect("a fixed prefix is a valid registry");
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric name");
            registry
                .register(Box::new(c.clone()))
                .expect("metric registered once");
            c
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("metric registered once");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric name");
            registry
                .register(Box::new(g.clone()))
                .expect("metric registered once");
            g
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("metric registered once");
            h
        };
        let flush_seconds = HistogramVec::new(
            HistogramOpts::new("flush_duration_seconds", "Time per ClickHouse INSERT")
                .buckets(prometheus::exponential_buckets(0.001, 2.0, 16).expect("valid buckets")),
            &["outcome"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(flush_seconds.clone()))
            .expect("metric registered once");
        Metrics {
            requests: counter_vec(
                "http_requests_total",
                "HTTP requests by listener, route and status class",
                &["listener", "route", "class"],
            ),
            redirect_seconds: histogram(
                "redirect_duration_seconds",
                "Time to answer a tracked redirect",
                vec![
                    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001,
                    0.002_5, 0.01,
                ],
            ),
            clicks_recorded: counter("clicks_recorded_total", "Clicks written to the spool"),
            clicks_bot: counter("clicks_bot_total", "Clicks flagged as bots"),
            clicks_rate_limited: counter(
                "clicks_rate_limited_total",
                "Clicks flagged as over the per-IP rate limit",
            ),
            orphan_hits: counter(
                "orphan_hits_total",
                "Requests for unknown or disabled codes",
            ),
            clicks_dropped: counter(
                "clicks_dropped_total",
                "Clicks redirected but not recorded because the spool was full",
            ),
            orphans_dropped: counter(
                "orphan_hits_dropped_total",
                "Orphan hits not recorded because the spool was full",
            ),
            events_flushed: counter_vec(
                "events_flushed_total",
                "Events inserted into ClickHouse",
                &["table"],
            ),
            events_failed: counter_vec(
                "events_failed_total",
                "Events ClickHouse refused as bad data (kept in rejected files)",
                &["table"],
            ),
            spool_bytes: gauge("spool_bytes", "Bytes of spool segment files on disk"),
            spool_oldest_age_seconds: gauge(
                "spool_oldest_event_age_seconds",
                "Age of the oldest event not yet in ClickHouse (0 when none waits)",
            ),
            spool_corrupt_records: gauge(
                "spool_corrupt_records",
                "Damaged spool records skipped since start",
            ),
            events_undecodable: counter(
                "events_undecodable_total",
                "Spool records with a valid checksum that did not decode",
            ),
            batch_rows: histogram(
                "flush_batch_rows",
                "Rows per ClickHouse INSERT",
                prometheus::exponential_buckets(1.0, 4.0, 10).expect("valid buckets"),
            ),
            flush_seconds,
            clickhouse_errors: counter_vec(
                "clickhouse_errors_total",
                "ClickHouse errors by kind",
                &["kind"],
            ),
            links_cached: gauge("links_cached", "Active links in the redirect cache"),
            catalog_events: counter_vec(
                "catalog_events_total",
                "Catalog changes applied, full reloads and Redis errors",
                &["event"],
            ),
            conversions: counter_vec(
                "conversions_total",
                "Conversions recorded, by status and reason",
                &["status", "reason"],
            ),
            conversion_errors: counter_vec(
                "conversion_errors_total",
                "Conversion reports refused or not recorded, by kind",
                &["kind"],
            ),
            conversion_payout: counter_vec(
                "conversion_payout_ten_thousandths_total",
                "Payout of recorded conversions in ten-thousandths of the offer currency, by status",
                &["status"],
            ),
            conversion_claims: counter_vec(
                "conversion_claims_total",
                "Order claims by outcome: fresh, taken over from a dead attempt, duplicate, released",
                &["outcome"],
            ),
            postback_deliveries: counter_vec(
                "postback_deliveries_total",
                "Partner postback attempts by outcome",
                &["outcome"],
            ),
            postback_queue_depth: gauge(
                "postback_queue_depth",
                "Partner postbacks waiting in the shared queue",
            ),
            visitor_unknown: counter_vec(
                "clicks_visitor_unknown_total",
                "Clicks shipped with an unknown visitor: the day's key expired, or Redis did not answer",
                &["reason"],
            ),
            agent_lookups: counter_vec(
                "enrich_agent_lookups_total",
                "User agent lookups of the shipper's enrichment, by cache hit or miss",
                &["result"],
            ),
            registry,
        }
    }

    /// Everything in Prometheus text format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into a Vec cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// `2xx`, `3xx`, ... for a status code.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Pre-resolved counters of one listener, so the hot path does no label
/// lookup: indexed by route, then status class.
pub struct RequestCounters {
    by_route: Vec<[IntCounter; 5]>,
}

impl RequestCounters {
    /// Resolves every (route, class) counter of `listener` once.
    pub fn new(metrics: &Metrics, listener: &str) -> Self {
        let classes = ["1xx", "2xx", "3xx", "4xx", "5xx"];
        let by_route = ROUTES
            .iter()
            .map(|route| {
                classes.map(|class| {
                    metrics
                        .requests
                        .with_label_values(&[listener, route, class])
                })
            })
            .collect();
        RequestCounters { by_route }
    }

    /// Counts one request on `route` answered with `status`.
    pub fn inc(&self, route: &str, status: u16) {
        let r = ROUTES
            .iter()
            .position(|x| *x == route)
            .unwrap_or(ROUTES.len() - 1);
        let c = (status / 100).clamp(1, 5) as usize - 1;
        self.by_route[r][c].inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_fixed_labels() {
        let m = Metrics::new();
        let rc = RequestCounters::new(&m, "public");
        rc.inc("redirect", 302);
        rc.inc("redirect", 302);
        rc.inc("nonsense", 404);
        m.clicks_recorded.inc();
        let text = String::from_utf8(m.render()).unwrap();
        assert!(text.contains(
            "trackedge_http_requests_total{class=\"3xx\",listener=\"public\",route=\"redirect\"} 2"
        ));
        assert!(text.contains(
            "trackedge_http_requests_total{class=\"4xx\",listener=\"public\",route=\"other\"} 1"
        ));
        assert!(text.contains("trackedge_clicks_recorded_total 1"));
    }

    #[test]
    fn classes() {
        for (s, c) in [
            (101, "1xx"),
            (200, "2xx"),
            (302, "3xx"),
            (431, "4xx"),
            (503, "5xx"),
        ] {
            assert_eq!(status_class(s), c);
        }
    }
}
