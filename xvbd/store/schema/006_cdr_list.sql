-- The operator's CDR list (/ai/cdrs) filters by each of these columns and reads the
-- matches newest first: with start_timestamp after the filtered column (and the row id that
-- every index carries last), a page is one range read in list order, never a sort of every
-- match.  The single-column cdrs_caller and cdrs_called of 001 are covered by these now; they
-- stay only because SQLite and MySQL have no common DROP INDEX statement.
CREATE INDEX cdrs_caller_start ON cdrs (caller_id, start_timestamp);
CREATE INDEX cdrs_called_start ON cdrs (called_id, start_timestamp);
CREATE INDEX cdrs_type_start ON cdrs (type, start_timestamp);
CREATE INDEX cdrs_call_type_start ON cdrs (call_type, start_timestamp);
CREATE INDEX cdrs_server_start ON cdrs (server_id, start_timestamp);

-- The admin's user search by phone number lists the matches by id, a page at a time; many
-- users share a public number (613#10001, 613#10002 ...), and the UNIQUE (voice_number,
-- access_code) index gives them in access code order, so a page had to sort every match or
-- walk the whole table by id.  This index carries the id after the number: an exact range.
CREATE INDEX users_voice_number ON users (voice_number);
