-- Fills conversions_15m from the conversions already stored, when migrate
-- first creates its view (deploy/clickhouse/schema.sql): each conversion
-- in its latest version (argMax by version: exact before merges, and a
-- version stored twice is one version), counted by that state. Not the
-- view's SELECT: rows stored before prev_* existed carry no previous
-- state to take back. Its columns are the rollup's, in table order.
SELECT
    toDateTime(intDiv(toUInt32(c_ts), 900) * 900) AS bucket,
    c_partner_id AS partner_id,
    c_offer_id AS offer_id,
    c_link_id AS link_id,
    toInt64(countIf(c_status = 'approved')) AS approved,
    toInt64(countIf(c_status = 'pending')) AS pending,
    toInt64(countIf(c_status = 'rejected')) AS rejected,
    toInt64(countIf(c_status = 'reversed')) AS reversed,
    sumIf(c_amount, c_status = 'approved') AS revenue,
    sumIf(c_payout, c_status = 'approved') AS payout
FROM
(
    SELECT
        conversion_id,
        argMax(ts, version) AS c_ts,
        argMax(partner_id, version) AS c_partner_id,
        argMax(offer_id, version) AS c_offer_id,
        argMax(link_id, version) AS c_link_id,
        argMax(status, version) AS c_status,
        toInt64(toDecimal128(argMax(amount, version), 4) * 10000) AS c_amount,
        toInt64(toDecimal128(argMax(payout, version), 4) * 10000) AS c_payout
    FROM {database}.conversions
    GROUP BY conversion_id
)
WHERE c_status IN ('approved', 'pending', 'rejected', 'reversed')
GROUP BY bucket, partner_id, offer_id, link_id
