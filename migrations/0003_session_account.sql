-- A session carries a fingerprint of the account entry it was made from (hex SHA-256 of the
-- password hash and the role), so that every instance, at every request, ends a session whose
-- account was removed, got a new password (`add-agent NAME` after a compromise) or another
-- role since the login — also after a restart, or on an instance that has not reloaded its
-- accounts file. Sessions made before this column existed have none and end at their next
-- request (one more login; nobody keeps a right by omission).
ALTER TABLE agent_sessions ADD COLUMN account_fingerprint TEXT NOT NULL DEFAULT '';
