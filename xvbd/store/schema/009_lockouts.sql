-- Guessing refused for a while: a source (the peer address, the trunk, or the channel
-- technology and endpoint; see xvbd/engine/guard.py) that failed too often.  target is ''
-- when every code and PIN is refused from the source, else the account 'NUMBER#CODE' whose
-- PIN it may not try (user_id that account).  level is the how-manieth lockout of the source
-- in a row (each lasts longer); failures, what it had guessed wrong.  A lockout ends at
-- ends_at, or when the operator lifts it (lifted_at, lifted_by).
CREATE TABLE lockouts (
    id {id},
    source VARCHAR(255) NOT NULL,
    target VARCHAR(255) NOT NULL DEFAULT '',
    user_id BIGINT NULL,
    called_id VARCHAR(255) NOT NULL DEFAULT '',
    caller_id VARCHAR(255) NOT NULL DEFAULT '',
    level INTEGER NOT NULL DEFAULT 1,
    failures INTEGER NOT NULL DEFAULT 0,
    started_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    lifted_at BIGINT NOT NULL DEFAULT 0,
    lifted_by VARCHAR(64) NOT NULL DEFAULT ''
) {table_options};
CREATE INDEX lockouts_source ON lockouts (source, ends_at);
CREATE INDEX lockouts_ends ON lockouts (ends_at);
