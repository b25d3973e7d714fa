-- trackedge ClickHouse schema.
--
-- `trackedge migrate` runs these statements in order, with {database}
-- replaced by TRACKEDGE_CLICKHOUSE_DATABASE. Every statement is idempotent
-- and valid on ClickHouse 18.16 and on current releases (CI proves both).
-- Statements are separated by a line holding only `;`.

CREATE DATABASE IF NOT EXISTS {database}
;
-- One row per tracked redirect. ReplacingMergeTree collapses a row that a
-- retried batch inserted twice (same sorting key, same values); reports count
-- uniqExact(click_id) so they are exact before merges have run.
CREATE TABLE IF NOT EXISTS {database}.clicks
(
    click_id String,
    ts DateTime,
    code String,
    link_id UInt64,
    partner_id UInt64,
    offer_id UInt64,
    sub1 String,
    sub2 String,
    sub3 String,
    sub4 String,
    sub5 String,
    ip String,
    user_agent String,
    referer String,
    is_bot UInt8,
    is_rate_limited UInt8,
    country String,
    device String,
    os String,
    browser String,
    visitor UInt64,
    node String
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (partner_id, offer_id, ts, click_id)
;
-- Columns added to clicks after its first release (see the conversions
-- ALTERs below for why each is its own statement): derived by the shipper
-- off the redirect path. `visitor` is a keyed hash of IP and user agent
-- under a key that changes every UTC day (unique clicks; 0 = unknown).
ALTER TABLE {database}.clicks ADD COLUMN os String AFTER device
;
ALTER TABLE {database}.clicks ADD COLUMN browser String AFTER os
;
ALTER TABLE {database}.clicks ADD COLUMN visitor UInt64 AFTER browser
;
-- The clicks rollups: click counts per 15-minute UTC bucket. Every UTC
-- offset in use is a whole number of quarter hours, so a day, hour, week or
-- month in any time zone is a union of whole buckets: group by
-- toDate(bucket, 'Asia/Kathmandu') (toStartOfHour, toMonday,
-- toStartOfMonth) and the numbers are exact. `clicks` are billable (neither
-- bot nor rate limited), `rate_limited_clicks` are not bots. Read with
-- sum(): SummingMergeTree adds rows of one key up as it merges, not before.
-- No distinct visitors here: exact ones need every visitor of every bucket
-- (about one entry per click), and merging such states was measured
-- slower than counting them from `clicks` (README, "Stats").
--
-- clicks_15m: by partner, offer, link and the click's attributes.
CREATE TABLE IF NOT EXISTS {database}.clicks_15m
(
    bucket DateTime,
    partner_id UInt64,
    offer_id UInt64,
    link_id UInt64,
    country String,
    device String,
    os String,
    browser String,
    sub1 String,
    clicks UInt64,
    bot_clicks UInt64,
    rate_limited_clicks UInt64
)
ENGINE = SummingMergeTree()
PARTITION BY toYYYYMM(bucket)
ORDER BY (bucket, partner_id, offer_id, link_id, country, device, os, browser, sub1)
;
-- Feeds clicks_15m from every INSERT into clicks. Its SELECT lists the
-- rollup's columns in table order: when migrate first creates this view it
-- fills clicks_15m from the clicks already stored with the same SELECT
-- (INSERT INTO clicks_15m SELECT ...), then creates the view.
CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.clicks_15m_mv
TO {database}.clicks_15m
AS SELECT
    toDateTime(intDiv(toUInt32(ts), 900) * 900) AS bucket,
    partner_id,
    offer_id,
    link_id,
    country,
    device,
    os,
    browser,
    sub1,
    countIf(is_bot = 0 AND is_rate_limited = 0) AS clicks,
    countIf(is_bot != 0) AS bot_clicks,
    countIf(is_bot = 0 AND is_rate_limited != 0) AS rate_limited_clicks
FROM {database}.clicks
GROUP BY bucket, partner_id, offer_id, link_id, country, device, os, browser, sub1
;
-- clicks_15m_links: by partner, offer and link only, for reports by those
-- and by time: far fewer rows than clicks_15m where clicks are spread
-- thin over many attributes (in the 10-million-click benchmark, 4.3 times
-- fewer rows than clicks, where clicks_15m has nearly as many as clicks).
CREATE TABLE IF NOT EXISTS {database}.clicks_15m_links
(
    bucket DateTime,
    partner_id UInt64,
    offer_id UInt64,
    link_id UInt64,
    clicks UInt64,
    bot_clicks UInt64,
    rate_limited_clicks UInt64
)
ENGINE = SummingMergeTree()
PARTITION BY toYYYYMM(bucket)
ORDER BY (bucket, partner_id, offer_id, link_id)
;
-- Feeds clicks_15m_links, filled the same way when first created.
CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.clicks_15m_links_mv
TO {database}.clicks_15m_links
AS SELECT
    toDateTime(intDiv(toUInt32(ts), 900) * 900) AS bucket,
    partner_id,
    offer_id,
    link_id,
    countIf(is_bot = 0 AND is_rate_limited = 0) AS clicks,
    countIf(is_bot != 0) AS bot_clicks,
    countIf(is_bot = 0 AND is_rate_limited != 0) AS rate_limited_clicks
FROM {database}.clicks
GROUP BY bucket, partner_id, offer_id, link_id
;
-- Requests for unknown or disabled codes: not clicks, kept for diagnosis.
CREATE TABLE IF NOT EXISTS {database}.orphan_hits
(
    ts DateTime,
    code String,
    ip String,
    user_agent String,
    referer String,
    is_bot UInt8,
    node String
)
ENGINE = MergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (ts, code)
;
-- One row per pixel or postback hit, accepted or not. A later status change
-- (PATCH /api/v1/conversions/{id}) inserts the same conversion_id with a
-- higher version and the same ts and offer_id; read with FINAL or
-- argMax(..., version). The shipper inserts each (conversion_id, version)
-- exactly once. Money is Decimal(18, 4): exact, never a float.
CREATE TABLE IF NOT EXISTS {database}.conversions
(
    conversion_id String,
    ts DateTime,
    click_id String,
    click_ts DateTime,
    link_id UInt64,
    partner_id UInt64,
    offer_id UInt64,
    order_id String,
    event String,
    amount Decimal(18, 4),
    currency String,
    payout Decimal(18, 4),
    payout_currency String,
    status String,
    reason String,
    customer_id String,
    attribution String,
    payout_rule String,
    deal_id UInt64,
    displaced_partner_id UInt64,
    source String,
    ip String,
    version UInt64,
    prev_status String,
    prev_amount Decimal(18, 4),
    prev_payout Decimal(18, 4)
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(ts)
ORDER BY (offer_id, conversion_id)
;
-- Columns added to conversions after its first release. ClickHouse 18.16
-- has no ADD COLUMN IF NOT EXISTS: migrate runs each of these only when
-- system.columns lacks the column, and AFTER keeps an upgraded table's
-- column order the same as a fresh one's.
ALTER TABLE {database}.conversions ADD COLUMN payout_currency String AFTER payout
;
ALTER TABLE {database}.conversions ADD COLUMN customer_id String AFTER reason
;
ALTER TABLE {database}.conversions ADD COLUMN attribution String AFTER customer_id
;
ALTER TABLE {database}.conversions ADD COLUMN payout_rule String AFTER attribution
;
-- Deal registration: the deal credited (0: none) and the partner whose
-- click lost the conversion to it (0: none).
ALTER TABLE {database}.conversions ADD COLUMN deal_id UInt64 AFTER payout_rule
;
ALTER TABLE {database}.conversions ADD COLUMN displaced_partner_id UInt64 AFTER deal_id
;
-- The state this version replaces (empty and 0 in version 1): what the
-- conversions_15m view takes back when it counts this version's state.
ALTER TABLE {database}.conversions ADD COLUMN prev_status String AFTER version
;
ALTER TABLE {database}.conversions ADD COLUMN prev_amount Decimal(18, 4) AFTER prev_status
;
ALTER TABLE {database}.conversions ADD COLUMN prev_payout Decimal(18, 4) AFTER prev_amount
;
-- Every version of every conversion, never collapsed: the ledger's history
-- (GET /api/v1/conversions/{id}). `conversions` keeps only the latest
-- version once ClickHouse merges its parts; the view below copies each
-- version here as it is inserted there, so a status change never rewrites
-- or loses the history. Its columns are `conversions`' (created after
-- that table's upgrades above): one list to keep, not two. A column added
-- to `conversions` later must be added here in the same release, or the
-- view's `SELECT *` refuses every insert.
CREATE TABLE IF NOT EXISTS {database}.conversion_history AS {database}.conversions
ENGINE = MergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (conversion_id, version)
;
-- conversions' later columns, for a history table created before them
-- (a fresh one has them from the statement above).
ALTER TABLE {database}.conversion_history ADD COLUMN deal_id UInt64 AFTER payout_rule
;
ALTER TABLE {database}.conversion_history ADD COLUMN displaced_partner_id UInt64 AFTER deal_id
;
ALTER TABLE {database}.conversion_history ADD COLUMN prev_status String AFTER version
;
ALTER TABLE {database}.conversion_history ADD COLUMN prev_amount Decimal(18, 4) AFTER prev_status
;
ALTER TABLE {database}.conversion_history ADD COLUMN prev_payout Decimal(18, 4) AFTER prev_amount
;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.conversion_history_mv
TO {database}.conversion_history
AS SELECT * FROM {database}.conversions
;
-- The conversions rollup: conversions per 15-minute UTC bucket of their
-- own `ts` (whole buckets make any zone's day exact, as for clicks), by
-- partner, offer and link, counted in their LATEST state. Each version
-- row carries the state it replaces (prev_status, prev_amount,
-- prev_payout), so the view adds the new state and takes the old one
-- back: pending → approved is pending −1, approved +1. Signed columns,
-- read with sum(); SummingMergeTree adds rows of one key up as it merges
-- and drops rows that add up to zero. Revenue and payout are of approved
-- conversions, in ten-thousandths. `duplicate` and empty statuses count
-- nowhere. Exact while every (conversion_id, version) is inserted once
-- (the shipper drops repeats: README, "Deduplication") and a conversion's
-- ts, partner, offer and link stay the same in every version (a status
-- change carries them over).
CREATE TABLE IF NOT EXISTS {database}.conversions_15m
(
    bucket DateTime,
    partner_id UInt64,
    offer_id UInt64,
    link_id UInt64,
    approved Int64,
    pending Int64,
    rejected Int64,
    reversed Int64,
    revenue Int64,
    payout Int64
)
ENGINE = SummingMergeTree()
PARTITION BY toYYYYMM(bucket)
ORDER BY (bucket, partner_id, offer_id, link_id)
;
-- Feeds conversions_15m from every INSERT into conversions. When migrate
-- first creates it, it fills conversions_15m from the conversions already
-- stored in their latest state (src/sql/conversions_15m_backfill.sql: the
-- rows stored before prev_* existed carry no previous state, so this
-- SELECT cannot fill it), then creates the view.
CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.conversions_15m_mv
TO {database}.conversions_15m
AS SELECT
    toDateTime(intDiv(toUInt32(ts), 900) * 900) AS bucket,
    partner_id,
    offer_id,
    link_id,
    toInt64(countIf(status = 'approved')) - toInt64(countIf(prev_status = 'approved')) AS approved,
    toInt64(countIf(status = 'pending')) - toInt64(countIf(prev_status = 'pending')) AS pending,
    toInt64(countIf(status = 'rejected')) - toInt64(countIf(prev_status = 'rejected')) AS rejected,
    toInt64(countIf(status = 'reversed')) - toInt64(countIf(prev_status = 'reversed')) AS reversed,
    sumIf(toInt64(toDecimal128(amount, 4) * 10000), status = 'approved') - sumIf(toInt64(toDecimal128(prev_amount, 4) * 10000), prev_status = 'approved') AS revenue,
    sumIf(toInt64(toDecimal128(payout, 4) * 10000), status = 'approved') - sumIf(toInt64(toDecimal128(prev_payout, 4) * 10000), prev_status = 'approved') AS payout
FROM {database}.conversions
WHERE status IN ('approved', 'pending', 'rejected', 'reversed')
   OR prev_status IN ('approved', 'pending', 'rejected', 'reversed')
GROUP BY bucket, partner_id, offer_id, link_id
;
-- One row per attempt to call a partner's postback URL (at least once: a
-- retried batch may repeat an attempt's row).
CREATE TABLE IF NOT EXISTS {database}.postback_deliveries
(
    conversion_id String,
    partner_id UInt64,
    attempt UInt32,
    ts DateTime,
    url String,
    http_status UInt16,
    error String,
    duration_ms UInt32
)
ENGINE = MergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (partner_id, ts, conversion_id)
;
;
-- One row per partner payment (POST /api/v1/partners/{id}/payouts): the
-- partner was paid `amount` in `currency` for everything payable through
-- the UTC day `paid_through`. `amount` = `payable` (every approved
-- conversion whose hold ended by that day, as it stood when paid) −
-- `paid_before` (the partner's earlier payments in that currency): the
-- row records why it pays what it pays. Inserted directly by the admin
-- API, one INSERT per payment; read grouped by payment_id all the same.
CREATE TABLE IF NOT EXISTS {database}.partner_payments
(
    payment_id String,
    partner_id UInt64,
    currency String,
    paid_through Date,
    amount Decimal(18, 4),
    payable Decimal(18, 4),
    paid_before Decimal(18, 4),
    ts DateTime,
    note String
)
ENGINE = MergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (partner_id, currency, ts, payment_id)
;
-- One row per bonus (the tier round, `[[tiers.bonuses]]`): partner
-- `partner_id` reached rule `rule`'s threshold in the period starting
-- `period_start` and earned `amount` in `currency`, payable from the end
-- of the UTC day of `earned_at` (no hold). `bonus_id` is
-- `{rule}:{partner_id}:{period_start}`, the same on every node, and a
-- Redis claim lets one round insert it; should two rows of one id land
-- all the same, every reader groups by bonus_id and merges keep one.
CREATE TABLE IF NOT EXISTS {database}.partner_bonuses
(
    bonus_id String,
    partner_id UInt64,
    rule String,
    period_start Date,
    amount Decimal(18, 4),
    currency String,
    reason String,
    earned_at DateTime,
    ts DateTime
)
ENGINE = ReplacingMergeTree(ts)
PARTITION BY toYYYYMM(period_start)
ORDER BY (partner_id, bonus_id)
