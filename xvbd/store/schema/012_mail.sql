-- The mail outbox: one row per e-mail, written in the transaction of what it reports (the
-- voicemail's message row, the Dtmf2Email entry, a day's statistics), sent by any xvbd of
-- the installation (xvbd/mail/sender.py).  A sender claims a row with one conditional
-- UPDATE (claimed_by, claimed_until) and marks it sent only after the relay's 250 for the
-- DATA.  status: queued (due at next_at), sent (at sent_at), dead (tried tries times, or
-- refused with a 5xx; last_error says why).  kind: voicemail | dtmf | stats; ref_id is the
-- message or Dtmf2Email row.  The attachment is read when the mail is built, and attached
-- when its bytes (attach_as wav or mp3) fit attach_limit (the group's
-- max_email_attachment_bytes; -1 no limit); otherwise the mail says notice instead of body.
CREATE TABLE mail_outbox (
    id {id},
    user_id BIGINT NOT NULL,
    kind VARCHAR(16) NOT NULL,
    ref_id BIGINT NULL,
    recipients TEXT NOT NULL,
    subject VARCHAR(998) NOT NULL,
    body TEXT NOT NULL,
    notice TEXT NOT NULL,
    attachment VARCHAR(255) NOT NULL DEFAULT '',
    attach_format VARCHAR(16) NOT NULL DEFAULT '',
    attach_as VARCHAR(8) NOT NULL DEFAULT '',
    attach_limit BIGINT NOT NULL DEFAULT -1,
    message_id VARCHAR(255) NOT NULL,
    status VARCHAR(16) NOT NULL DEFAULT 'queued',
    tries INTEGER NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL DEFAULT 0,
    claimed_by VARCHAR(64) NOT NULL DEFAULT '',
    claimed_until BIGINT NOT NULL DEFAULT 0,
    last_error VARCHAR(1000) NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    sent_at BIGINT NOT NULL DEFAULT 0,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) {table_options};
CREATE INDEX mail_outbox_due ON mail_outbox (status, next_at);
CREATE INDEX mail_outbox_user ON mail_outbox (user_id, id);

-- A tenant's choices for its mail: the recording attached as wav (as recorded) or mp3, and
-- the daily CDR statistics (opt-in; stats_day is the last day, YYYY-MM-DD in the tenant's
-- time zone, whose statistics were queued).  The addresses are users.email (several,
-- comma separated).
CREATE TABLE mail_prefs (
    user_id BIGINT NOT NULL PRIMARY KEY,
    attach_as VARCHAR(8) NOT NULL DEFAULT 'wav',
    daily_stats SMALLINT NOT NULL DEFAULT 0,
    stats_day VARCHAR(10) NOT NULL DEFAULT '',
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) {table_options};
