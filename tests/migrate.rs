//! `trackedge migrate` on installs of earlier versions, against a real
//! ClickHouse: columns added where a table lacks them, views kept, and a
//! second run changing nothing.

mod common;

use common::*;

/// An install from before deal registration, whose `conversion_history`
/// already exists: migrate adds the deal columns to both tables, and the
/// history's view copies them from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_adds_the_deal_columns_to_an_existing_history() {
    use trackedge::schema;

    let ch = &services().clickhouse;
    let client = clickhouse::Client::default()
        .with_url(ch.url())
        .with_validation(false);
    let db = unique_name("predeal");
    schema::migrate(&client, &db).await.unwrap();
    // Back to the schema before deals: both tables without the columns.
    for table in ["conversions", "conversion_history"] {
        for column in ["displaced_partner_id", "deal_id"] {
            ch.query(&format!("ALTER TABLE {db}.{table} DROP COLUMN {column}"));
        }
    }
    let fresh = schema::migrate(&client, &unique_name("dealfresh"))
        .await
        .unwrap();
    assert_eq!(
        schema::migrate(&client, &db).await.unwrap(),
        fresh + 4,
        "two columns added to each table"
    );
    ch.query(&format!(
        "INSERT INTO {db}.conversions (conversion_id, ts, offer_id, amount, deal_id, displaced_partner_id, version) \
         VALUES ('c1', toDateTime('2026-01-01 00:00:00'), 2, toDecimal64('1', 4), 5, 7, 1)"
    ));
    assert_eq!(
        ch.query(&format!(
            "SELECT deal_id, displaced_partner_id FROM {db}.conversion_history FORMAT TabSeparated"
        ))
        .trim(),
        "5\t7"
    );
}

/// The event tables' columns in `database`, in order, as `table\tname\ttype`
/// lines (18.16's system.columns has no position: DESCRIBE keeps the order).
fn columns_of(ch: &ClickHouse, database: &str) -> String {
    let mut out = String::new();
    for table in [
        "clicks",
        "orphan_hits",
        "conversions",
        "postback_deliveries",
    ] {
        let described = ch.query(&format!(
            "DESCRIBE TABLE {database}.{table} FORMAT TabSeparated"
        ));
        for line in described.lines() {
            let mut fields = line.split('\t');
            let (name, ty) = (fields.next().unwrap(), fields.next().unwrap_or(""));
            out.push_str(&format!("{table}\t{name}\t{ty}\n"));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_is_idempotent_and_upgrades_an_old_install() {
    use trackedge::schema;

    let ch = &services().clickhouse;
    let client = clickhouse::Client::default()
        .with_url(ch.url())
        .with_validation(false);

    // A fresh install, migrated twice: the second run adds nothing.
    let fresh = unique_name("fresh");
    let first = schema::migrate(&client, &fresh).await.unwrap();
    let second = schema::migrate(&client, &fresh).await.unwrap();
    let added = schema::statements(&fresh)
        .iter()
        .filter(|s| schema::added_column(s).is_some())
        .count();
    assert!(added >= 4);
    assert_eq!(first, second, "a second migrate runs the same CREATEs");
    assert_eq!(first + added, schema::statements(&fresh).len());

    // An install of the first schema, holding a conversion, then migrated.
    let old = unique_name("old");
    for s in schema::statements_of(include_str!("fixtures/schema-v1.sql"), &old) {
        client.query(&s).execute().await.unwrap();
    }
    ch.query(&format!(
        "INSERT INTO {old}.conversions (conversion_id, ts, offer_id, amount, version) \
         VALUES ('c1', toDateTime('2026-01-01 00:00:00'), 2, toDecimal64('12.5', 4), 1)"
    ));
    let upgraded = schema::migrate(&client, &old).await.unwrap();
    // The first schema had no conversion_history: it is created whole,
    // so none of its own ALTERs runs.
    let added_to_history = schema::statements(&old)
        .iter()
        .filter(|s| schema::added_column(s).is_some_and(|(t, _)| t == "conversion_history"))
        .count();
    assert_eq!(
        upgraded,
        first + added - added_to_history,
        "every column added once"
    );
    assert_eq!(schema::migrate(&client, &old).await.unwrap(), first);

    assert_eq!(
        columns_of(ch, &old),
        columns_of(ch, &fresh),
        "an upgraded install has a fresh install's columns"
    );
    for column in [
        "customer_id",
        "attribution",
        "payout_rule",
        "payout_currency",
        "deal_id",
        "displaced_partner_id",
    ] {
        assert!(columns_of(ch, &old).contains(&format!("conversions\t{column}\t")));
    }
    assert_eq!(
        ch.query(&format!(
            "SELECT conversion_id, amount, customer_id = '' FROM {old}.conversions FORMAT TabSeparated"
        ))
        .trim(),
        "c1\t12.5000\t1"
    );
}
