-- Sign-out everywhere: a token of this user issued before this time (whole seconds) is refused.
-- NULL: no token was ever revoked.
ALTER TABLE users ADD COLUMN tokens_valid_after TIMESTAMPTZ;
