-- Each partner's billable clicks (not a bot's) for partner health: the
-- last one's time, and how many in the 30 days before now and in the 30
-- days before those. GET /api/v1/partners/health and the link pauser.
-- Binds: now − 30 days, now − 60 days, now − 30 days (unix seconds).
-- params: UInt32, UInt32, UInt32
SELECT
    partner_id,
    toUInt32(max(ts)) AS last_click,
    countIf(ts >= toDateTime(?)) AS clicks_30d,
    countIf(ts >= toDateTime(?) AND ts < toDateTime(?)) AS clicks_prev_30d
FROM {database}.clicks
WHERE is_bot = 0
GROUP BY partner_id
