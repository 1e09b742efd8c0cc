-- Each running xvbd (one process, named by an instance id made when it starts: two processes
-- may share a SERVER_ID) writes its heartbeat here every [TIMEOUT] HEARTBEAT seconds; a clean
-- stop sets stopped_at.  An xvbd silent for three heartbeats is taken for dead.
CREATE TABLE processes (
    instance VARCHAR(32) NOT NULL PRIMARY KEY,
    server_id VARCHAR(64) NOT NULL DEFAULT '',
    pid BIGINT NOT NULL DEFAULT 0,
    started_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL,
    stopped_at BIGINT NOT NULL DEFAULT 0
) {table_options};
-- A hold names the process that made it, and carries what the call's record needs if that
-- process dies with the call: when the call started, its prices, and its CDR fields.
-- held_at is when money was last added to the hold (proof the call was alive then).  A hold
-- being settled for a dead process has cut_by (the instance settling it), cut_cost and
-- cut_stop set in the transaction that moves the money; its row goes once the call's record
-- is written.  Rows made before this file have instance '' (unknown: settled by the same rule).
ALTER TABLE balance_holds ADD COLUMN instance VARCHAR(32) NOT NULL DEFAULT '';
ALTER TABLE balance_holds ADD COLUMN started_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE balance_holds ADD COLUMN held_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE balance_holds ADD COLUMN per_minute BIGINT NOT NULL DEFAULT 0;
ALTER TABLE balance_holds ADD COLUMN per_call BIGINT NOT NULL DEFAULT 0;
ALTER TABLE balance_holds ADD COLUMN call_type VARCHAR(32) NOT NULL DEFAULT '';
ALTER TABLE balance_holds ADD COLUMN currency_id BIGINT NOT NULL DEFAULT 0;
ALTER TABLE balance_holds ADD COLUMN access_code VARCHAR(32) NOT NULL DEFAULT '';
ALTER TABLE balance_holds ADD COLUMN caller_id VARCHAR(255) NOT NULL DEFAULT '';
ALTER TABLE balance_holds ADD COLUMN called_id VARCHAR(255) NOT NULL DEFAULT '';
ALTER TABLE balance_holds ADD COLUMN cut_by VARCHAR(32) NOT NULL DEFAULT '';
ALTER TABLE balance_holds ADD COLUMN cut_cost BIGINT NOT NULL DEFAULT 0;
ALTER TABLE balance_holds ADD COLUMN cut_stop BIGINT NOT NULL DEFAULT 0;
CREATE INDEX balance_holds_instance ON balance_holds (instance);
