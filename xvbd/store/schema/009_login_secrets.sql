-- Secrets are kept as hashes only.  A user's phone PIN becomes a scrypt hash (pin_hash,
-- the same self-describing form as the web passwords, at a cost modest enough for a call):
-- `xvbd-admin db upgrade` hashes every PIN kept in clear in the Python step that runs right
-- after this file (migrations.PYTHON_STEPS["login_secrets"]), then drops the old column.
ALTER TABLE users ADD COLUMN pin_hash VARCHAR(255) NOT NULL DEFAULT '';
