-- WEB-Request and web variables: the longest a group's fetch of a URL may take, in
-- seconds (the body's size is held to max_tts_download_bytes, the original's "Maximum TTS
-- download size", which its documentation gives to WebRequest).
ALTER TABLE user_groups ADD COLUMN max_web_request_seconds INTEGER NOT NULL DEFAULT 10;
