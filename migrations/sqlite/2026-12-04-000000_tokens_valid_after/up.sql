-- Sign-out everywhere (read migrations/postgres): microseconds since the Unix epoch, or NULL.
ALTER TABLE users ADD COLUMN tokens_valid_after BIGINT;
