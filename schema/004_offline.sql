-- 004_offline.sql - XEP-0160 offline storage: messages for an account that had
-- no available resource, kept until a session of the account has them.
--
-- id is the order the messages were stored in, which is the order they were
-- sent per sender (a sender's messages are stored through one connection of
-- the pool, in order); flushes go by id.
CREATE TABLE offline (
	id        bigserial PRIMARY KEY,
	host      text NOT NULL,
	username  text NOT NULL,
	stanza    text NOT NULL,
	created   timestamptz NOT NULL DEFAULT now(),
	FOREIGN KEY (host, username) REFERENCES users (host, username) ON DELETE CASCADE
);
CREATE INDEX offline_by_user ON offline (host, username, id);
CREATE INDEX offline_by_age ON offline (created);
