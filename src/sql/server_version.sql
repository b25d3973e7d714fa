-- The server's version, e.g. 18.16.1 or 24.8.4.13: migrate sets a TTL
-- only where the server has them (19.6 and later).
SELECT version()
