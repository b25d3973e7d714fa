-- Not sent by the code: assertions on the ClickHouse functions the stats
-- API relies on, which CI runs on 18.16 (tests/stats.rs) and on a current
-- release (scripts/chdb-check.sh). Each statement throws when they fail.
--
-- The rollup's promise: a time and the start of its 15-minute UTC bucket
-- have the same local day, hour, week and month in every zone, daylight
-- saving changes included. Checked for every minute of 2026 (seconds
-- varied) in zones with quarter- and half-hour offsets, a half-hour
-- daylight saving shift (Lord Howe) and a change at midnight (Havana).
SELECT throwIf(count() > 0)
FROM
(
    SELECT
        toDateTime(1767225600 + number * 60 + number % 60) AS t,
        toDateTime(intDiv(toUInt32(t), 900) * 900) AS b
    FROM system.numbers
    LIMIT 525600
)
WHERE toDate(t, 'Asia/Kathmandu') != toDate(b, 'Asia/Kathmandu')
   OR toStartOfHour(t, 'Asia/Kathmandu') != toStartOfHour(b, 'Asia/Kathmandu')
   OR toMonday(t, 'Asia/Kathmandu') != toMonday(b, 'Asia/Kathmandu')
   OR toStartOfMonth(t, 'Asia/Kathmandu') != toStartOfMonth(b, 'Asia/Kathmandu')
   OR toDate(t, 'America/St_Johns') != toDate(b, 'America/St_Johns')
   OR toStartOfHour(t, 'America/St_Johns') != toStartOfHour(b, 'America/St_Johns')
   OR toMonday(t, 'America/St_Johns') != toMonday(b, 'America/St_Johns')
   OR toStartOfMonth(t, 'America/St_Johns') != toStartOfMonth(b, 'America/St_Johns')
   OR toDate(t, 'America/New_York') != toDate(b, 'America/New_York')
   OR toStartOfHour(t, 'America/New_York') != toStartOfHour(b, 'America/New_York')
   OR toMonday(t, 'America/New_York') != toMonday(b, 'America/New_York')
   OR toStartOfMonth(t, 'America/New_York') != toStartOfMonth(b, 'America/New_York')
   OR toDate(t, 'Europe/Berlin') != toDate(b, 'Europe/Berlin')
   OR toStartOfHour(t, 'Europe/Berlin') != toStartOfHour(b, 'Europe/Berlin')
   OR toMonday(t, 'Europe/Berlin') != toMonday(b, 'Europe/Berlin')
   OR toStartOfMonth(t, 'Europe/Berlin') != toStartOfMonth(b, 'Europe/Berlin')
   OR toDate(t, 'America/Havana') != toDate(b, 'America/Havana')
   OR toStartOfHour(t, 'America/Havana') != toStartOfHour(b, 'America/Havana')
   OR toMonday(t, 'America/Havana') != toMonday(b, 'America/Havana')
   OR toStartOfMonth(t, 'America/Havana') != toStartOfMonth(b, 'America/Havana')
   OR toDate(t, 'Australia/Lord_Howe') != toDate(b, 'Australia/Lord_Howe')
   OR toStartOfHour(t, 'Australia/Lord_Howe') != toStartOfHour(b, 'Australia/Lord_Howe')
   OR toMonday(t, 'Australia/Lord_Howe') != toMonday(b, 'Australia/Lord_Howe')
   OR toStartOfMonth(t, 'Australia/Lord_Howe') != toStartOfMonth(b, 'Australia/Lord_Howe')
   OR toDate(t, 'Pacific/Chatham') != toDate(b, 'Pacific/Chatham')
   OR toStartOfHour(t, 'Pacific/Chatham') != toStartOfHour(b, 'Pacific/Chatham')
   OR toMonday(t, 'Pacific/Chatham') != toMonday(b, 'Pacific/Chatham')
   OR toStartOfMonth(t, 'Pacific/Chatham') != toStartOfMonth(b, 'Pacific/Chatham')
   OR toDate(t, 'Australia/Eucla') != toDate(b, 'Australia/Eucla')
   OR toStartOfHour(t, 'Australia/Eucla') != toStartOfHour(b, 'Australia/Eucla')
   OR toMonday(t, 'Australia/Eucla') != toMonday(b, 'Australia/Eucla')
   OR toStartOfMonth(t, 'Australia/Eucla') != toStartOfMonth(b, 'Australia/Eucla')
   OR toDate(t, 'Asia/Kolkata') != toDate(b, 'Asia/Kolkata')
   OR toStartOfHour(t, 'Asia/Kolkata') != toStartOfHour(b, 'Asia/Kolkata')
   OR toMonday(t, 'Asia/Kolkata') != toMonday(b, 'Asia/Kolkata')
   OR toStartOfMonth(t, 'Asia/Kolkata') != toStartOfMonth(b, 'Asia/Kolkata')
;
-- Kathmandu (+05:45) starts 2026-01-15 at 18:15 UTC the day before.
SELECT throwIf(
    toDate(toDateTime(1768414499), 'Asia/Kathmandu') != toDate('2026-01-14')
    OR toDate(toDateTime(1768414500), 'Asia/Kathmandu') != toDate('2026-01-15')
    OR toUInt32(toStartOfHour(toDateTime(1768414500 + 3599), 'Asia/Kathmandu')) != 1768414500
)
