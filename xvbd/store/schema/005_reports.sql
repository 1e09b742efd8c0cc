-- The standard SQL reports of the original's list, written to run on SQLite and on
-- MariaDB/MySQL alike: times are Unix seconds, [% DATE_START %] / [% DATE_STOP %] are the
-- period (bound as parameters), [% DAY(x) %] / [% TIME(x) %] are the UTC date / date and
-- time of a Unix time on either backend (xvbd/store/report_runner.py), and the default
-- period is in xvbd's own moment language (xvbd/store/reports.py).  Column names that start
-- with = are centred, those that end with = right-aligned.  Every admin login may run them.

INSERT INTO reports (name, sql_text, default_start, default_stop, cache_ttl, owner, access, created_at, updated_at) VALUES ('Daily summary (previous day)', 'SELECT [% DAY(start_timestamp) %] AS "Date",
       server_id AS "Node",
       COUNT(*) AS "Calls=",
       ROUND(SUM(stop_timestamp - start_timestamp) / 60.0, 1) AS "Minutes=",
       ROUND(SUM(stop_timestamp - start_timestamp) / 60.0 / COUNT(*), 1) AS "Minutes AVG=",
       ROUND(SUM(sys_cost) / 10000.0, 2) AS "Cost="
  FROM cdrs
 WHERE type = ''XVB''
   AND start_timestamp >= [% DATE_START %] AND start_timestamp < [% DATE_STOP %]
 GROUP BY [% DAY(start_timestamp) %], server_id
 ORDER BY 1, 2', 'yesterday', 'today', 3600, 'admin', 'all', 1795651200, 1795651200);

INSERT INTO reports (name, sql_text, default_start, default_stop, cache_ttl, owner, access, created_at, updated_at) VALUES ('Call type summary (previous day)', 'SELECT call_type AS "Call type",
       COUNT(*) AS "Calls=",
       ROUND(SUM(stop_timestamp - start_timestamp) / 60.0, 1) AS "Minutes=",
       ROUND(SUM(cost) / 10000.0, 2) AS "Cost="
  FROM cdrs
 WHERE type = ''XVB''
   AND start_timestamp >= [% DATE_START %] AND start_timestamp < [% DATE_STOP %]
 GROUP BY call_type
 ORDER BY 1', 'yesterday', 'today', 3600, 'admin', 'all', 1795651200, 1795651200);

INSERT INTO reports (name, sql_text, default_start, default_stop, cache_ttl, owner, access, created_at, updated_at) VALUES ('Unknown calls (previous day)', 'SELECT called_id AS "Called number",
       caller_id AS "Caller",
       COUNT(*) AS "Calls=",
       [% TIME(MAX(start_timestamp)) %] AS "Last call (UTC)"
  FROM cdrs
 WHERE type = ''XVB'' AND subscr_id = 0
   AND start_timestamp >= [% DATE_START %] AND start_timestamp < [% DATE_STOP %]
 GROUP BY called_id, caller_id
 ORDER BY 3 DESC, 1, 2', 'yesterday', 'today', 3600, 'admin', 'all', 1795651200, 1795651200);

INSERT INTO reports (name, sql_text, default_start, default_stop, cache_ttl, owner, access, created_at, updated_at) VALUES ('Phone call direction (previous day)', 'SELECT called_id AS "Called number",
       COUNT(*) AS "Calls=",
       COUNT(DISTINCT caller_id) AS "Callers=",
       ROUND(SUM(stop_timestamp - start_timestamp) / 60.0, 1) AS "Minutes="
  FROM cdrs
 WHERE type = ''XVB'' AND subscr_id <> 0
   AND start_timestamp >= [% DATE_START %] AND start_timestamp < [% DATE_STOP %]
 GROUP BY called_id
 ORDER BY 2 DESC, 1', 'yesterday', 'today', 3600, 'admin', 'all', 1795651200, 1795651200);

INSERT INTO reports (name, sql_text, default_start, default_stop, cache_ttl, owner, access, created_at, updated_at) VALUES ('Extensions type summary', 'SELECT type AS "Type",
       COUNT(*) AS "Extensions=",
       COUNT(DISTINCT user_id) AS "Users="
  FROM extensions
 GROUP BY type
 ORDER BY 1', '', '', 300, 'admin', 'all', 1795651200, 1795651200);

INSERT INTO reports (name, sql_text, default_start, default_stop, cache_ttl, owner, access, created_at, updated_at) VALUES ('Messages size group by nodes', 'SELECT n.id AS "Node",
       COUNT(m.id) AS "Messages=",
       COALESCE(SUM(m.size_bytes), 0) AS "Bytes=",
       ROUND(COALESCE(SUM(m.size_bytes), 0) / 1048576.0, 1) AS "MB="
  FROM nodes n
  LEFT JOIN user_groups g ON g.server_id = n.id
  LEFT JOIN users u ON u.group_id = g.id
  LEFT JOIN messages m ON m.user_id = u.id
 GROUP BY n.id
 ORDER BY 1', '', '', 300, 'admin', 'all', 1795651200, 1795651200);

INSERT INTO reports (name, sql_text, default_start, default_stop, cache_ttl, owner, access, created_at, updated_at) VALUES ('Tariffs stat', 'SELECT t.name AS "Tariff",
       c.code AS "Currency",
       COUNT(DISTINCT g.id) AS "Groups=",
       COUNT(u.id) AS "Users=",
       ROUND(COALESCE(SUM(u.balance), 0) / 10000.0, 2) AS "Balance="
  FROM tariffs t
  JOIN currencies c ON c.id = t.currency_id
  LEFT JOIN user_groups g ON g.tariff_id = t.id
  LEFT JOIN users u ON u.group_id = g.id
 GROUP BY t.id, t.name, c.code
 ORDER BY 1', '', '', 300, 'admin', 'all', 1795651200, 1795651200);

INSERT INTO reports (name, sql_text, default_start, default_stop, cache_ttl, owner, access, created_at, updated_at) VALUES ('Languages stat', 'SELECT language AS "Language",
       COUNT(*) AS "Users="
  FROM users
 GROUP BY language
 ORDER BY 2 DESC, 1', '', '', 300, 'admin', 'all', 1795651200, 1795651200);

INSERT INTO reports (name, sql_text, default_start, default_stop, cache_ttl, owner, access, created_at, updated_at) VALUES ('VoiceNumbers stat', 'SELECT voice_number AS "VoiceNumber",
       COUNT(*) AS "Users=",
       SUM(CASE WHEN status = ''active'' THEN 1 ELSE 0 END) AS "Active="
  FROM users
 GROUP BY voice_number
 ORDER BY 2 DESC, 1', '', '', 300, 'admin', 'all', 1795651200, 1795651200);

INSERT INTO reports (name, sql_text, default_start, default_stop, cache_ttl, owner, access, created_at, updated_at) VALUES ('Groups stat', 'SELECT g.id AS "N=",
       g.name AS "Group",
       g.server_id AS "Node",
       t.name AS "Tariff",
       COUNT(u.id) AS "Users=",
       SUM(CASE WHEN u.status = ''active'' THEN 1 ELSE 0 END) AS "Active=",
       ROUND(COALESCE(SUM(u.balance), 0) / 10000.0, 2) AS "Balance="
  FROM user_groups g
  JOIN tariffs t ON t.id = g.tariff_id
  LEFT JOIN users u ON u.group_id = g.id
 GROUP BY g.id, g.name, g.server_id, t.name
 ORDER BY 1', '', '', 300, 'admin', 'all', 1795651200, 1795651200);

INSERT INTO reports (name, sql_text, default_start, default_stop, cache_ttl, owner, access, created_at, updated_at) VALUES ('DB version', 'SELECT version AS "Version=",
       name AS "Migration",
       [% TIME(applied_at) %] AS "Applied (UTC)"
  FROM schema_version
 ORDER BY 1 DESC', '', '', 240, 'admin', 'all', 1795651200, 1795651200);
