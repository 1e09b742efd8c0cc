-- API keys a tenant makes on their Account page for the tenant API (/ui/api), sent as
-- "Authorization: Bearer <key>".  The key is 256 random bits shown once: only its SHA-256
-- (key_hash, hex) is kept, and its first characters (prefix) to find it by and for the
-- tenant to recognise it.  scope is 'read' (GET and HEAD only) or 'write' (everything).
-- last_used_at is moved at most once a minute; a revoked key (revoked_at) is refused and
-- kept in the list.  A user's keys go with the user.
CREATE TABLE api_keys (
    id {id},
    user_id BIGINT NOT NULL,
    name VARCHAR(64) NOT NULL DEFAULT '',
    scope VARCHAR(8) NOT NULL DEFAULT 'read',
    prefix VARCHAR(16) NOT NULL,
    key_hash VARCHAR(64) NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL DEFAULT 0,
    revoked_at BIGINT NOT NULL DEFAULT 0,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) {table_options};
CREATE UNIQUE INDEX api_keys_hash ON api_keys (key_hash);
CREATE INDEX api_keys_prefix ON api_keys (prefix);
CREATE INDEX api_keys_user ON api_keys (user_id, id);
