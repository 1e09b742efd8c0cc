-- Secrets are kept as hashes only.  A user's phone PIN becomes a scrypt hash (pin_hash,
-- the same self-describing form as the web passwords, at a cost modest enough for a call):
-- `xvbd-admin db upgrade` hashes every PIN kept in clear in the Python step that runs right
-- after this file (migrations.PYTHON_STEPS["login_secrets"]), then drops the old column.
ALTER TABLE users ADD COLUMN pin_hash VARCHAR(255) NOT NULL DEFAULT '';
-- A one-time link the operator issues for a tenant to set a new web password (there is no
-- e-mail yet: the operator hands it on).  Only the SHA-256 of the link's random token is
-- kept; one live link a user (a new one replaces it); used once, or over at expires_at.
CREATE TABLE web_password_resets (
    user_id BIGINT NOT NULL PRIMARY KEY,
    token_hash VARCHAR(64) NOT NULL,
    issued_by VARCHAR(64) NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
) {table_options};
CREATE UNIQUE INDEX web_password_resets_token ON web_password_resets (token_hash);
