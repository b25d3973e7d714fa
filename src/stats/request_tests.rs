//! The stats request's table: what each query string reads as, and which
//! parameter a bad one names.

use super::*;

/// 2026-01-10 12:00 UTC.
const NOW: i64 = 1_768_046_400;

fn parse(query: &str) -> Result<StatsRequest, FieldError> {
    StatsRequest::parse(query, &StatsConfig::default(), NOW)
}

/// `query` is refused, naming `field`.
fn check_err(query: &str, field: &str) {
    match parse(query) {
        Ok(r) => panic!("{query} was accepted: {r:?}"),
        Err(e) => {
            assert_eq!(e.field, field, "{query}: {e}");
            assert!(!e.message.is_empty());
        }
    }
}

#[test]
fn bad_input_names_the_parameter() {
    let cases = [
        ("group_by=partner,campaign", "group_by"),
        ("group_by=day,day", "group_by"),
        ("metrics=clicks,profit", "metrics"),
        ("metrics=", "metrics"),
        ("partner_id=abc", "partner_id"),
        ("offer_id=-1", "offer_id"),
        ("link_id=1.5", "link_id"),
        ("country=D%20E", "country"),
        ("country=ABCDEFGHI", "country"),
        ("from=2026-01-31&to=2026-01-01", "from"),
        ("from=2026-01-01T00:00:01Z&to=2026-01-01T00:00:00Z", "from"),
        ("from=2025-01-01&to=2026-03-01", "to"),
        ("from=01/02/2026", "from"),
        ("to=tomorrow", "to"),
        ("tz=Mars/Olympus", "tz"),
        ("tz=", "tz"),
        ("sort=profit", "sort"),
        ("sort=-day", "sort"),
        ("sort=", "sort"),
        ("limit=0", "limit"),
        ("limit=10001", "limit"),
        ("limit=ten", "limit"),
        ("cursor=abc", "cursor"),
        ("cursor=00000000000000010000000000000000", "cursor"),
        ("source=cache", "source"),
        ("format=xml", "format"),
        ("groupby=day", "groupby"),
        ("partner_id=1&partner_id=2", "partner_id"),
    ];
    for (query, field) in cases {
        check_err(query, field);
    }
}

#[test]
fn requests_read_as_asked() {
    let r = parse("").unwrap();
    assert!(r.group_by.is_empty());
    assert_eq!(r.metrics, Metric::ALL.to_vec());
    assert_eq!(r.tz, chrono_tz::UTC);
    // The last 30 days in UTC, today (2026-01-10) included.
    assert_eq!((r.from, r.to), (1_765_497_600, 1_768_089_600));
    assert_eq!(
        (r.limit, r.offset, r.source, r.format),
        (1000, 0, Source::Auto, None)
    );

    let r = parse(
        "group_by=partner_id,day,sub3&metrics=epc,clicks&partner_id=1,%202&country=de\
         &from=2026-01-01&to=2026-01-31&tz=Asia/Kathmandu&sort=-clicks&limit=50&source=raw&format=csv",
    )
    .unwrap();
    assert_eq!(
        r.group_by,
        vec![Dimension::Partner, Dimension::Day, Dimension::Sub(3)]
    );
    // Metrics come in answer order, whatever order they were asked in.
    assert_eq!(r.metrics, vec![Metric::Clicks, Metric::Epc]);
    assert_eq!(r.filters.partners, vec![1, 2]);
    assert_eq!(r.filters.countries, vec!["DE".to_string()]);
    assert_eq!((r.from, r.to), (1_767_204_900, 1_769_883_300));
    assert_eq!(
        r.sort,
        Some(Sort {
            key: SortKey::Metric(Metric::Clicks),
            descending: true
        })
    );
    assert_eq!(
        (r.limit, r.source, r.format),
        (50, Source::Raw, Some(Format::Csv))
    );

    // A key sorts by either of its names.
    let r = parse("group_by=partner&sort=partner_id").unwrap();
    assert_eq!(r.sort.unwrap().key, SortKey::Dimension(Dimension::Partner));
    // 400 days is the default maximum.
    assert!(parse("from=2025-01-01&to=2026-02-04").is_ok());
    assert!(parse("from=2025-01-01&to=2026-02-05").is_err());
}

#[test]
fn cursors_belong_to_their_query() {
    let first = parse("group_by=day&limit=2").unwrap();
    let cursor = first.next_cursor(2);
    let second = parse(&format!("group_by=day&limit=5&cursor={cursor}")).unwrap();
    assert_eq!(second.offset, 2);
    assert_eq!(second.next_cursor(5), first.next_cursor(7));
    // Another query, another fingerprint: its cursor means nothing here.
    check_err(&format!("group_by=partner&cursor={cursor}"), "cursor");
    check_err(
        &format!("group_by=day&tz=Asia/Kathmandu&cursor={cursor}"),
        "cursor",
    );
    // The metrics shown and the source do not change the rows.
    assert!(parse(&format!(
        "group_by=day&metrics=clicks&source=raw&cursor={cursor}"
    ))
    .is_ok());
}
