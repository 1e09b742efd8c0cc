-- Outbound calls (CallBlast and Callback) through AMI: an attempt is claimed by a token
-- (locked_by) until locked_until; the call that answers proves the token.
ALTER TABLE callback_requests ADD COLUMN locked_by VARCHAR(64) NOT NULL DEFAULT '';
ALTER TABLE callback_requests ADD COLUMN locked_until BIGINT NOT NULL DEFAULT 0;
ALTER TABLE callback_requests ADD COLUMN next_attempt_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE callback_requests ADD COLUMN call_id VARCHAR(64) NOT NULL DEFAULT '';
CREATE INDEX callback_requests_due ON callback_requests (status, next_attempt_at);

-- Why an attempt ended as it did (Asterisk's originate reason, or what xvbd saw).
ALTER TABLE callblast_results ADD COLUMN detail VARCHAR(255) NOT NULL DEFAULT '';
CREATE INDEX callblast_phones_item ON callblast_phones (item_id, status, next_attempt_at);
