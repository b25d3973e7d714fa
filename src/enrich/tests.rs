//! The enricher without I/O: fixed day keys, no IP database.

use super::agent::tests::shared;
use super::visitor::DayKey;
use super::*;

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36";

/// 2024-03-11 12:00:00 UTC, day 19793.
const TS: u32 = 1_710_158_400;

fn facts(ts: u32) -> ClickFacts<'static> {
    ClickFacts {
        ts,
        ip: "203.0.113.7",
        user_agent: CHROME,
        country: "",
    }
}

fn enricher(metrics: &Metrics) -> Enricher {
    let key = DayKey::from_hex(&"01".repeat(32)).unwrap();
    Enricher::with_parts(
        None,
        Some(AgentCache::new(shared(), 64)),
        DayKeys::fixed([(day_of(TS), key)]),
        true,
        metrics,
    )
}

#[test]
fn a_day_without_its_key_has_unknown_visitors_counted() {
    let metrics = Metrics::new();
    let mut e = enricher(&metrics);
    let unknown = || metrics.visitor_unknown.with_label_values(&["redis"]).get();
    assert_eq!(e.enrich(facts(TS - 3 * 86_400)).visitor(), 0);
    assert_eq!(unknown(), 1);
    assert_ne!(e.enrich(facts(TS)).visitor(), 0);
    assert_eq!(unknown(), 1, "a known day counts nothing");
}

#[test]
fn user_agents_are_parsed_once() {
    let metrics = Metrics::new();
    let mut e = enricher(&metrics);
    for _ in 0..3 {
        let got = e.enrich(facts(TS));
        assert_eq!((got.os(), got.browser()), ("Windows", "Chrome"));
    }
    let count = |r: &str| metrics.agent_lookups.with_label_values(&[r]).get();
    assert_eq!((count("miss"), count("hit")), (1, 2));
}

#[test]
fn off_derives_nothing_and_counts_nothing() {
    let mut e = Enricher::off();
    let got = e.enrich(facts(TS));
    assert_eq!((got.os(), got.browser(), got.visitor()), ("", "", 0));
    assert_eq!(got.device("desktop"), "desktop");
    assert_eq!(got.country("FR"), "FR");
    assert!(e.store_ip());
}
