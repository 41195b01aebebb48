-- 002_secrets.sql - values every node of a cluster must share.
--
-- "sasl_fake_salt_key": the key from which SCRAM derives the salt it shows for a
-- username that is not an account, so that the answer for a given name is the
-- same on every node and after restarts (otherwise a changing salt would tell
-- that the name is not an account). parleyd creates the row at its first start
-- from OpenSSL's random generator; the value is base64.
CREATE TABLE parley_secrets (
	name       text PRIMARY KEY,
	value      text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);
