-- Money held for calls in progress: taken from the balance when a priced call starts (and
-- in further steps while it lasts), given back less the call's cost when it ends.  A row
-- outliving its call (its xvbd died) is cleared by the billing janitor, the hold kept.
CREATE TABLE balance_holds (
    call_id VARCHAR(64) NOT NULL PRIMARY KEY,
    user_id BIGINT NOT NULL,
    amount BIGINT NOT NULL,
    covers_until BIGINT NOT NULL,
    server_id VARCHAR(64) NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) {table_options};
CREATE INDEX balance_holds_until ON balance_holds (covers_until);
