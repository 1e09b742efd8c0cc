-- The queue_members columns Asterisk's app_queue reads besides those of 003: it requires
-- reason_paused when it loads (without it every start logs a WARNING, on every realtime
-- driver), and takes a member's own wrapuptime where a row gives one (NULL or 0: the
-- queue's).  A member's own ringinuse is left out on purpose: res_config_sqlite3 hands a
-- NULL to app_queue as an empty value, which it logs as invalid on every call; the queue's
-- ringinuse holds for its members.
ALTER TABLE queue_members ADD COLUMN reason_paused VARCHAR(80) NULL;
ALTER TABLE queue_members ADD COLUMN wrapuptime INTEGER NULL;
