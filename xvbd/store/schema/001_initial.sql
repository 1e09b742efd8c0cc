-- xvbd schema 1: every object of SPEC sections 5-8.
-- Portable SQL for SQLite and MariaDB/MySQL.  {id} and {table_options} are filled in by
-- the dialect (xvbd/store/db.py).  Times are Unix seconds (BIGINT), money is BIGINT in
-- 1/10000 of the currency unit, flags are SMALLINT 0/1.  Statements end with ';' at the
-- end of a line.  Never edit an applied schema file: add the next one.

-- ------------------------------------------------------------------ operator's objects

CREATE TABLE nodes (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    download_ip VARCHAR(64) NOT NULL DEFAULT '',
    asterisk_ip VARCHAR(64) NOT NULL DEFAULT '',
    comment VARCHAR(255) NOT NULL DEFAULT '',
    limit_calls INTEGER NOT NULL DEFAULT 0,
    limit_la_1 DOUBLE NOT NULL DEFAULT 0,
    limit_la_5 DOUBLE NOT NULL DEFAULT 0,
    limit_la_10 DOUBLE NOT NULL DEFAULT 0,
    stat_url VARCHAR(255) NOT NULL DEFAULT '',
    stat_calls INTEGER NOT NULL DEFAULT 0,
    stat_la_1 DOUBLE NOT NULL DEFAULT 0,
    stat_la_5 DOUBLE NOT NULL DEFAULT 0,
    stat_la_10 DOUBLE NOT NULL DEFAULT 0,
    stat_at BIGINT NOT NULL DEFAULT 0
) {table_options};

CREATE TABLE currencies (
    id {id},
    code VARCHAR(8) NOT NULL,
    name VARCHAR(64) NOT NULL DEFAULT '',
    digits SMALLINT NOT NULL DEFAULT 2,
    UNIQUE (code)
) {table_options};

CREATE TABLE tariffs (
    id {id},
    name VARCHAR(100) NOT NULL,
    currency_id BIGINT NOT NULL,
    monthly_fee BIGINT NOT NULL DEFAULT 0,
    daily_fee BIGINT NOT NULL DEFAULT 0,
    ivr_minute BIGINT NOT NULL DEFAULT 0,
    ivr_call BIGINT NOT NULL DEFAULT 0,
    callblast_minute BIGINT NOT NULL DEFAULT 0,
    callblast_call BIGINT NOT NULL DEFAULT 0,
    callback_minute BIGINT NOT NULL DEFAULT 0,
    callback_call BIGINT NOT NULL DEFAULT 0,
    UNIQUE (name),
    FOREIGN KEY (currency_id) REFERENCES currencies (id)
) {table_options};

CREATE TABLE user_groups (
    id {id},
    name VARCHAR(100) NOT NULL,
    tariff_id BIGINT NOT NULL,
    server_id VARCHAR(64) NOT NULL DEFAULT 'DEFAULT_NODE',
    dialout_context VARCHAR(80) NOT NULL DEFAULT '',
    conference_context VARCHAR(80) NOT NULL DEFAULT '',
    language VARCHAR(32) NOT NULL DEFAULT 'xvb.EN-Female',
    template_prefix VARCHAR(32) NOT NULL DEFAULT '',
    sound_prefix VARCHAR(32) NOT NULL DEFAULT '',
    preferred_codec VARCHAR(16) NOT NULL DEFAULT '',
    phone_features VARCHAR(255) NOT NULL DEFAULT '',
    hooks VARCHAR(255) NOT NULL DEFAULT '',
    max_inbound_calls INTEGER NOT NULL DEFAULT 0,
    max_messages_per_ext INTEGER NOT NULL DEFAULT 100,
    max_messages_total INTEGER NOT NULL DEFAULT 1000,
    max_extensions INTEGER NOT NULL DEFAULT 1000,
    max_cid_filters INTEGER NOT NULL DEFAULT 200,
    max_routes INTEGER NOT NULL DEFAULT 200,
    max_peers INTEGER NOT NULL DEFAULT 50,
    max_registrations INTEGER NOT NULL DEFAULT 10,
    max_phones INTEGER NOT NULL DEFAULT 10,
    max_macros INTEGER NOT NULL DEFAULT 100,
    max_callblast_items INTEGER NOT NULL DEFAULT 100,
    max_gotoif_items INTEGER NOT NULL DEFAULT 10,
    max_followme_phones INTEGER NOT NULL DEFAULT 20,
    max_callblast_phones INTEGER NOT NULL DEFAULT 10,
    max_schedule_items INTEGER NOT NULL DEFAULT 10,
    max_podcasts INTEGER NOT NULL DEFAULT 10,
    max_calendar_events INTEGER NOT NULL DEFAULT 100,
    max_queues INTEGER NOT NULL DEFAULT 10,
    max_email_attachment_bytes BIGINT NOT NULL DEFAULT 1000000,
    max_tts_download_bytes BIGINT NOT NULL DEFAULT 300000,
    max_tts_string_bytes INTEGER NOT NULL DEFAULT 1024,
    max_call_duration INTEGER NOT NULL DEFAULT 0,
    max_message_duration INTEGER NOT NULL DEFAULT 14400,
    max_name_duration INTEGER NOT NULL DEFAULT 120,
    max_greeting_duration INTEGER NOT NULL DEFAULT 14400,
    max_announcement_duration INTEGER NOT NULL DEFAULT 300,
    max_retrydial_duration INTEGER NOT NULL DEFAULT 300,
    max_moh_duration INTEGER NOT NULL DEFAULT 900,
    allow_tts SMALLINT NOT NULL DEFAULT 1,
    allow_macros SMALLINT NOT NULL DEFAULT 1,
    allow_direct_dialout SMALLINT NOT NULL DEFAULT 1,
    allow_custom_routes SMALLINT NOT NULL DEFAULT 1,
    allow_phones SMALLINT NOT NULL DEFAULT 1,
    allow_custom_system_files SMALLINT NOT NULL DEFAULT 1,
    advanced_callblast SMALLINT NOT NULL DEFAULT 1,
    google_analytics SMALLINT NOT NULL DEFAULT 0,
    allow_api SMALLINT NOT NULL DEFAULT 1,
    allow_icecast SMALLINT NOT NULL DEFAULT 1,
    UNIQUE (name),
    FOREIGN KEY (tariff_id) REFERENCES tariffs (id)
) {table_options};

-- Per-type extension limits of a group: -1 unlimited, 0 not allowed, N at most N.
-- A type with no row here is unlimited.
CREATE TABLE group_type_limits (
    group_id BIGINT NOT NULL,
    type_name VARCHAR(32) NOT NULL,
    max_count INTEGER NOT NULL DEFAULT -1,
    PRIMARY KEY (group_id, type_name),
    FOREIGN KEY (group_id) REFERENCES user_groups (id) ON DELETE CASCADE
) {table_options};

CREATE TABLE users (
    id {id},
    voice_number VARCHAR(64) NOT NULL,
    access_code VARCHAR(32) NOT NULL,
    pin VARCHAR(32) NOT NULL DEFAULT '',
    name VARCHAR(255) NOT NULL DEFAULT '',
    email VARCHAR(255) NOT NULL DEFAULT '',
    language VARCHAR(32) NOT NULL DEFAULT 'xvb.EN-Female',
    timezone VARCHAR(64) NOT NULL DEFAULT 'UTC',
    group_id BIGINT NOT NULL,
    status VARCHAR(16) NOT NULL DEFAULT 'active',
    read_only SMALLINT NOT NULL DEFAULT 0,
    balance BIGINT NOT NULL DEFAULT 0,
    max_inbound_calls INTEGER NOT NULL DEFAULT 0,
    web_password_hash VARCHAR(255) NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL DEFAULT 0,
    UNIQUE (voice_number, access_code),
    FOREIGN KEY (group_id) REFERENCES user_groups (id)
) {table_options};
CREATE INDEX users_group ON users (group_id);
CREATE INDEX users_access_code ON users (access_code);

-- Private DIDs: a number that goes straight to one user (no access code asked).
CREATE TABLE dids (
    did VARCHAR(64) NOT NULL PRIMARY KEY,
    user_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL DEFAULT 0,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) {table_options};
CREATE INDEX dids_user ON dids (user_id);

-- DIDs attr: the language of a public number's prompts (access code / PIN).
CREATE TABLE did_attrs (
    did VARCHAR(64) NOT NULL PRIMARY KEY,
    language VARCHAR(32) NOT NULL
) {table_options};

CREATE TABLE partners (
    id {id},
    login VARCHAR(64) NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    group_id BIGINT NOT NULL,
    description VARCHAR(255) NOT NULL DEFAULT '',
    can_change_balance SMALLINT NOT NULL DEFAULT 0,
    balance_limit BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL DEFAULT 0,
    UNIQUE (login),
    FOREIGN KEY (group_id) REFERENCES user_groups (id)
) {table_options};

CREATE TABLE admins (
    login VARCHAR(64) NOT NULL PRIMARY KEY,
    password_hash VARCHAR(255) NOT NULL,
    updated_at BIGINT NOT NULL DEFAULT 0
) {table_options};

CREATE TABLE web_sessions (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    kind VARCHAR(16) NOT NULL,
    principal VARCHAR(64) NOT NULL,
    csrf_token VARCHAR(64) NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
) {table_options};
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);

-- Money moved on a balance by a person or by billing: the journal of the balance.
CREATE TABLE balance_ops (
    id {id},
    user_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    amount BIGINT NOT NULL,
    balance_after BIGINT NOT NULL,
    reason VARCHAR(255) NOT NULL DEFAULT '',
    actor_kind VARCHAR(16) NOT NULL DEFAULT 'system',
    actor VARCHAR(64) NOT NULL DEFAULT '',
    call_id VARCHAR(64) NOT NULL DEFAULT '',
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) {table_options};
CREATE INDEX balance_ops_user ON balance_ops (user_id, created_at);

-- Daily and monthly fees: the primary key makes "charged once per period" a fact of the
-- database, whatever number of xvbd processes try.
CREATE TABLE fee_charges (
    user_id BIGINT NOT NULL,
    kind VARCHAR(16) NOT NULL,
    period VARCHAR(16) NOT NULL,
    amount BIGINT NOT NULL,
    charged_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, kind, period),
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) {table_options};

-- ------------------------------------------------------------------ the tenant's IVR

-- The extension tree.  path is the DTMF path from the root: '' for the root (shown as 0 in
-- CDRs), '9' for the root's item 9, '9*3' for item 3 under it.  settings is a JSON document
-- checked by the extension type's own settings class.
CREATE TABLE extensions (
    id {id},
    user_id BIGINT NOT NULL,
    parent_id BIGINT NULL,
    path VARCHAR(128) NOT NULL,
    type VARCHAR(32) NOT NULL,
    name VARCHAR(255) NOT NULL DEFAULT '',
    settings TEXT NOT NULL,
    position INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL DEFAULT 0,
    UNIQUE (user_id, path),
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    FOREIGN KEY (parent_id) REFERENCES extensions (id) ON DELETE CASCADE
) {table_options};
CREATE INDEX extensions_parent ON extensions (parent_id);

CREATE TABLE messages (
    id {id},
    user_id BIGINT NOT NULL,
    extension_id BIGINT NULL,
    call_id VARCHAR(64) NOT NULL DEFAULT '',
    caller_id VARCHAR(128) NOT NULL DEFAULT '',
    called_id VARCHAR(128) NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    duration INTEGER NOT NULL DEFAULT 0,
    file_name VARCHAR(255) NOT NULL,
    file_format VARCHAR(16) NOT NULL,
    size_bytes BIGINT NOT NULL DEFAULT 0,
    is_read SMALLINT NOT NULL DEFAULT 0,
    emailed_at BIGINT NOT NULL DEFAULT 0,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    FOREIGN KEY (extension_id) REFERENCES extensions (id) ON DELETE SET NULL
) {table_options};
CREATE INDEX messages_user ON messages (user_id, created_at);
CREATE INDEX messages_extension ON messages (extension_id);

-- Company directory entries (employees list) of a Directory extension.
CREATE TABLE directory_entries (
    id {id},
    user_id BIGINT NOT NULL,
    extension_id BIGINT NOT NULL,
    number VARCHAR(16) NOT NULL,
    name VARCHAR(255) NOT NULL,
    name_keys VARCHAR(64) NOT NULL DEFAULT '',
    phones TEXT NOT NULL,
    recording VARCHAR(255) NOT NULL DEFAULT '',
    position INTEGER NOT NULL DEFAULT 0,
    UNIQUE (extension_id, number),
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    FOREIGN KEY (extension_id) REFERENCES extensions (id) ON DELETE CASCADE
) {table_options};
CREATE INDEX directory_entries_user ON directory_entries (user_id);

-- One vote per caller id per poll (a Voting extension).
CREATE TABLE votes (
    id {id},
    user_id BIGINT NOT NULL,
    extension_id BIGINT NOT NULL,
    caller_id VARCHAR(128) NOT NULL,
    choice VARCHAR(8) NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (extension_id, caller_id),
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    FOREIGN KEY (extension_id) REFERENCES extensions (id) ON DELETE CASCADE
) {table_options};
CREATE INDEX votes_user ON votes (user_id);

-- Stored variables (the original's DBVar), kept across calls per tenant.
CREATE TABLE stored_vars (
    user_id BIGINT NOT NULL,
    name VARCHAR(64) NOT NULL,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, name),
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) {table_options};

CREATE TABLE callback_requests (
    id {id},
    user_id BIGINT NOT NULL,
    extension_id BIGINT NULL,
    phone VARCHAR(64) NOT NULL,
    target_path VARCHAR(128) NOT NULL DEFAULT '',
    status VARCHAR(16) NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_result VARCHAR(32) NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL DEFAULT 0,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    FOREIGN KEY (extension_id) REFERENCES extensions (id) ON DELETE SET NULL
) {table_options};
CREATE INDEX callback_requests_status ON callback_requests (status, created_at);
CREATE INDEX callback_requests_user ON callback_requests (user_id);

-- Digits collected by a Dtmf2Email extension, kept until mailed.
CREATE TABLE dtmf_messages (
    id {id},
    user_id BIGINT NOT NULL,
    extension_id BIGINT NULL,
    caller_id VARCHAR(128) NOT NULL DEFAULT '',
    digits VARCHAR(255) NOT NULL,
    created_at BIGINT NOT NULL,
    emailed_at BIGINT NOT NULL DEFAULT 0,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    FOREIGN KEY (extension_id) REFERENCES extensions (id) ON DELETE SET NULL
) {table_options};
CREATE INDEX dtmf_messages_user ON dtmf_messages (user_id, created_at);

-- ------------------------------------------------------------------ CallBlast

CREATE TABLE callblast_items (
    id {id},
    user_id BIGINT NOT NULL,
    extension_id BIGINT NOT NULL,
    name VARCHAR(255) NOT NULL DEFAULT '',
    message VARCHAR(255) NOT NULL DEFAULT '',
    settings TEXT NOT NULL,
    status VARCHAR(16) NOT NULL DEFAULT 'active',
    position INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL DEFAULT 0,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    FOREIGN KEY (extension_id) REFERENCES extensions (id) ON DELETE CASCADE
) {table_options};
CREATE INDEX callblast_items_user ON callblast_items (user_id);
CREATE INDEX callblast_items_status ON callblast_items (status);

CREATE TABLE callblast_phones (
    id {id},
    item_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    phone VARCHAR(64) NOT NULL,
    status VARCHAR(16) NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_result VARCHAR(16) NOT NULL DEFAULT '',
    last_attempt_at BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL DEFAULT 0,
    locked_by VARCHAR(64) NOT NULL DEFAULT '',
    locked_until BIGINT NOT NULL DEFAULT 0,
    UNIQUE (item_id, phone),
    FOREIGN KEY (item_id) REFERENCES callblast_items (id) ON DELETE CASCADE,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) {table_options};
CREATE INDEX callblast_phones_due ON callblast_phones (status, next_attempt_at);
CREATE INDEX callblast_phones_user ON callblast_phones (user_id);

CREATE TABLE callblast_results (
    id {id},
    user_id BIGINT NOT NULL,
    item_id BIGINT NOT NULL,
    phone VARCHAR(64) NOT NULL,
    result VARCHAR(16) NOT NULL,
    call_id VARCHAR(64) NOT NULL DEFAULT '',
    duration INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    FOREIGN KEY (item_id) REFERENCES callblast_items (id) ON DELETE CASCADE
) {table_options};
CREATE INDEX callblast_results_user ON callblast_results (user_id, created_at);
CREATE INDEX callblast_results_item ON callblast_results (item_id);

-- ------------------------------------------------------------------ accounting

-- One row per CDR record (the text line's keys, lower-cased).  record_id makes a replayed
-- record a no-op instead of a duplicate.
CREATE TABLE cdrs (
    id {id},
    record_id VARCHAR(96) NOT NULL,
    call_id VARCHAR(64) NOT NULL,
    server_id VARCHAR(64) NOT NULL DEFAULT '',
    subscr_id BIGINT NOT NULL DEFAULT 0,
    access_code VARCHAR(32) NOT NULL DEFAULT '',
    caller_id VARCHAR(255) NOT NULL DEFAULT '',
    called_id VARCHAR(255) NOT NULL DEFAULT '',
    ext_number VARCHAR(128) NOT NULL DEFAULT '',
    type VARCHAR(32) NOT NULL,
    call_type VARCHAR(32) NOT NULL DEFAULT '',
    create_timestamp BIGINT NOT NULL,
    start_timestamp BIGINT NOT NULL,
    stop_timestamp BIGINT NOT NULL,
    process_timestamp BIGINT NOT NULL DEFAULT 0,
    cost BIGINT NOT NULL DEFAULT 0,
    sys_cost BIGINT NOT NULL DEFAULT 0,
    currency_id BIGINT NOT NULL DEFAULT 0,
    data TEXT NOT NULL,
    UNIQUE (record_id)
) {table_options};
CREATE INDEX cdrs_start ON cdrs (start_timestamp);
CREATE INDEX cdrs_subscr ON cdrs (subscr_id, start_timestamp);
CREATE INDEX cdrs_access_code ON cdrs (access_code, start_timestamp);
CREATE INDEX cdrs_called ON cdrs (called_id);
CREATE INDEX cdrs_caller ON cdrs (caller_id);
CREATE INDEX cdrs_call ON cdrs (call_id);

-- Who changed what, when (kept [COMMON] JOURNAL_STORE days).
CREATE TABLE journal (
    id {id},
    created_at BIGINT NOT NULL,
    actor_kind VARCHAR(16) NOT NULL,
    actor VARCHAR(64) NOT NULL,
    address VARCHAR(64) NOT NULL DEFAULT '',
    user_id BIGINT NULL,
    object_kind VARCHAR(32) NOT NULL,
    object_id VARCHAR(64) NOT NULL DEFAULT '',
    field VARCHAR(64) NOT NULL DEFAULT '',
    old_value TEXT NOT NULL,
    new_value TEXT NOT NULL
) {table_options};
CREATE INDEX journal_user ON journal (user_id, created_at);
CREATE INDEX journal_created ON journal (created_at);

CREATE TABLE reports (
    id {id},
    name VARCHAR(255) NOT NULL,
    sql_text TEXT NOT NULL,
    default_start VARCHAR(255) NOT NULL DEFAULT '',
    default_stop VARCHAR(255) NOT NULL DEFAULT '',
    cache_ttl INTEGER NOT NULL DEFAULT 0,
    owner VARCHAR(64) NOT NULL DEFAULT 'admin',
    access VARCHAR(16) NOT NULL DEFAULT 'admin',
    created_at BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL DEFAULT 0
) {table_options};

-- ------------------------------------------------------------------ Asterisk realtime

-- SIP peers in the column names of Asterisk's realtime `sippeers` table, so
-- res_config_mysql / res_odbc read it directly.  Which tenant owns a peer is kept in
-- user_sip_peers, outside the table Asterisk reads.
CREATE TABLE sippeers (
    id {id},
    name VARCHAR(80) NOT NULL,
    ipaddr VARCHAR(45) NULL,
    port INTEGER NULL,
    regseconds INTEGER NULL,
    defaultuser VARCHAR(80) NULL,
    fullcontact VARCHAR(255) NULL,
    regserver VARCHAR(64) NULL,
    useragent VARCHAR(255) NULL,
    lastms INTEGER NULL,
    host VARCHAR(255) NULL,
    type VARCHAR(16) NULL,
    context VARCHAR(80) NULL,
    permit VARCHAR(255) NULL,
    deny VARCHAR(255) NULL,
    secret VARCHAR(80) NULL,
    md5secret VARCHAR(80) NULL,
    remotesecret VARCHAR(80) NULL,
    transport VARCHAR(16) NULL,
    dtmfmode VARCHAR(16) NULL,
    directmedia VARCHAR(16) NULL,
    nat VARCHAR(32) NULL,
    callgroup VARCHAR(64) NULL,
    pickupgroup VARCHAR(64) NULL,
    language VARCHAR(32) NULL,
    allow VARCHAR(128) NULL,
    disallow VARCHAR(128) NULL,
    insecure VARCHAR(40) NULL,
    trustrpid VARCHAR(3) NULL,
    progressinband VARCHAR(5) NULL,
    promiscredir VARCHAR(3) NULL,
    useclientcode VARCHAR(3) NULL,
    accountcode VARCHAR(80) NULL,
    setvar VARCHAR(255) NULL,
    callerid VARCHAR(128) NULL,
    amaflags VARCHAR(40) NULL,
    callcounter VARCHAR(3) NULL,
    busylevel INTEGER NULL,
    allowoverlap VARCHAR(3) NULL,
    allowsubscribe VARCHAR(3) NULL,
    videosupport VARCHAR(3) NULL,
    maxcallbitrate INTEGER NULL,
    rfc2833compensate VARCHAR(3) NULL,
    mailbox VARCHAR(80) NULL,
    `session-timers` VARCHAR(10) NULL,
    `session-expires` INTEGER NULL,
    `session-minse` INTEGER NULL,
    `session-refresher` VARCHAR(3) NULL,
    t38pt_usertpsource VARCHAR(40) NULL,
    regexten VARCHAR(40) NULL,
    fromdomain VARCHAR(255) NULL,
    fromuser VARCHAR(80) NULL,
    qualify VARCHAR(40) NULL,
    defaultip VARCHAR(45) NULL,
    rtptimeout INTEGER NULL,
    rtpholdtimeout INTEGER NULL,
    sendrpid VARCHAR(3) NULL,
    outboundproxy VARCHAR(255) NULL,
    callbackextension VARCHAR(80) NULL,
    registertrying VARCHAR(3) NULL,
    timert1 INTEGER NULL,
    timerb INTEGER NULL,
    qualifyfreq INTEGER NULL,
    constantssrc VARCHAR(3) NULL,
    contactpermit VARCHAR(255) NULL,
    contactdeny VARCHAR(255) NULL,
    usereqphone VARCHAR(3) NULL,
    textsupport VARCHAR(3) NULL,
    faxdetect VARCHAR(3) NULL,
    buggymwi VARCHAR(3) NULL,
    auth VARCHAR(80) NULL,
    fullname VARCHAR(128) NULL,
    trunkname VARCHAR(80) NULL,
    cid_number VARCHAR(80) NULL,
    callingpres VARCHAR(32) NULL,
    mohinterpret VARCHAR(80) NULL,
    mohsuggest VARCHAR(80) NULL,
    parkinglot VARCHAR(80) NULL,
    hasvoicemail VARCHAR(3) NULL,
    subscribemwi VARCHAR(3) NULL,
    vmexten VARCHAR(40) NULL,
    autoframing VARCHAR(3) NULL,
    rtpkeepalive INTEGER NULL,
    `call-limit` INTEGER NULL,
    g726nonstandard VARCHAR(3) NULL,
    ignoresdpversion VARCHAR(3) NULL,
    allowtransfer VARCHAR(3) NULL,
    dynamic VARCHAR(3) NULL,
    UNIQUE (name)
) {table_options};
CREATE INDEX sippeers_ipaddr ON sippeers (ipaddr, port);
CREATE INDEX sippeers_host ON sippeers (host, port);

CREATE TABLE user_sip_peers (
    peer_id BIGINT NOT NULL PRIMARY KEY,
    user_id BIGINT NOT NULL,
    kind VARCHAR(16) NOT NULL DEFAULT 'phone',
    created_at BIGINT NOT NULL DEFAULT 0,
    FOREIGN KEY (peer_id) REFERENCES sippeers (id) ON DELETE CASCADE,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) {table_options};
CREATE INDEX user_sip_peers_user ON user_sip_peers (user_id);

-- SIP provider templates: declarative overrides (sippeers column -> value, as JSON) applied
-- when a tenant's provider host matches `host`.  Never code.
CREATE TABLE sip_templates (
    id {id},
    host VARCHAR(255) NOT NULL,
    name VARCHAR(100) NOT NULL,
    overrides TEXT NOT NULL,
    UNIQUE (host)
) {table_options};

-- Music on hold, in the columns of Asterisk's realtime `musiconhold` table.
CREATE TABLE musiconhold (
    name VARCHAR(80) NOT NULL PRIMARY KEY,
    mode VARCHAR(16) NULL,
    directory VARCHAR(255) NULL,
    application VARCHAR(255) NULL,
    digit CHAR(1) NULL,
    sort VARCHAR(10) NULL,
    format VARCHAR(10) NULL,
    stamp BIGINT NULL
) {table_options};

CREATE TABLE musiconhold_entry (
    name VARCHAR(80) NOT NULL,
    position INTEGER NOT NULL,
    entry VARCHAR(1024) NOT NULL,
    PRIMARY KEY (name, position),
    FOREIGN KEY (name) REFERENCES musiconhold (name) ON DELETE CASCADE
) {table_options};

-- A tenant's own music-on-hold classes (system classes have no row here).
CREATE TABLE user_moh (
    name VARCHAR(80) NOT NULL PRIMARY KEY,
    user_id BIGINT NOT NULL,
    description VARCHAR(255) NOT NULL DEFAULT '',
    FOREIGN KEY (name) REFERENCES musiconhold (name) ON DELETE CASCADE,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) {table_options};
CREATE INDEX user_moh_user ON user_moh (user_id);

-- ------------------------------------------------------------------ first rows

INSERT INTO nodes (id, download_ip, asterisk_ip, comment) VALUES ('DEFAULT_NODE', '127.0.0.1', '127.0.0.1', 'default node');
INSERT INTO currencies (id, code, name, digits) VALUES (1, 'RUB', 'Russian rouble', 2);
INSERT INTO currencies (id, code, name, digits) VALUES (2, 'USD', 'US dollar', 2);
INSERT INTO currencies (id, code, name, digits) VALUES (3, 'EUR', 'Euro', 2);
INSERT INTO tariffs (id, name, currency_id) VALUES (1, 'Free', 1);
INSERT INTO user_groups (id, name, tariff_id, dialout_context, conference_context) VALUES (1, 'default', 1, 'xvb-dialout-default', 'xvb-conf-default');
