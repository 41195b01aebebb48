-- 001_users.sql - accounts: SCRAM credentials per virtual host and username.
--
-- Migrations run in one transaction each, with their row in parley_schema, so
-- they must not contain BEGIN/COMMIT or anything that cannot run in a transaction
-- (CREATE INDEX CONCURRENTLY, VACUUM). Never edit a released migration: add one.
--
-- host and username are stored as the server normalizes them (nameprep and
-- nodeprep), so the primary key is the account's identity.
--
-- Passwords are never stored: only what SCRAM needs to verify a client and to
-- prove the server knows the password (RFC 5802, RFC 7677), for each of SHA-1 and
-- SHA-256. Binary values (salt, StoredKey, ServerKey) are base64 text (RFC 4648,
-- standard alphabet, with padding): the form SCRAM carries on the wire and that
-- parleyctl and admins can read, at a few bytes more than bytea. The key
-- lengths are those of the hash: 20 bytes (28 base64 characters) for SHA-1, 32
-- (44) for SHA-256.
CREATE TABLE users (
	host                text NOT NULL,
	username            text NOT NULL,
	sha1_salt           text NOT NULL,
	sha1_iterations     integer NOT NULL,
	sha1_stored_key     text NOT NULL,
	sha1_server_key     text NOT NULL,
	sha256_salt         text NOT NULL,
	sha256_iterations   integer NOT NULL,
	sha256_stored_key   text NOT NULL,
	sha256_server_key   text NOT NULL,
	created_at          timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (host, username),
	CHECK (host <> '' AND username <> ''),
	CHECK (sha1_iterations > 0 AND sha256_iterations > 0),
	CHECK (sha1_salt ~ '^[A-Za-z0-9+/]+={0,2}$'
	       AND sha256_salt ~ '^[A-Za-z0-9+/]+={0,2}$'),
	CHECK (sha1_stored_key ~ '^[A-Za-z0-9+/]{27}=$'
	       AND sha1_server_key ~ '^[A-Za-z0-9+/]{27}=$'),
	CHECK (sha256_stored_key ~ '^[A-Za-z0-9+/]{43}=$'
	       AND sha256_server_key ~ '^[A-Za-z0-9+/]{43}=$')
);
