-- 005_offline_counts.sql - how many messages each account has in offline
-- storage, kept by statement triggers, so that checking the per-account limit
-- is one index look-up instead of counting the account's rows (a count that
-- grew with the queue: 1,000 stored messages made each store 1,000 times
-- dearer).
CREATE TABLE offline_counts (
	host      text NOT NULL,
	username  text NOT NULL,
	n         integer NOT NULL,
	PRIMARY KEY (host, username),
	FOREIGN KEY (host, username) REFERENCES users (host, username) ON DELETE CASCADE
);

INSERT INTO offline_counts (host, username, n)
	SELECT host, username, count(*) FROM offline GROUP BY host, username;

CREATE FUNCTION offline_counts_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO offline_counts AS c (host, username, n)
		SELECT host, username, count(*) FROM added GROUP BY host, username
		ON CONFLICT (host, username) DO UPDATE SET n = c.n + EXCLUDED.n;
	RETURN NULL;
END $$;

CREATE FUNCTION offline_counts_remove() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE offline_counts AS c SET n = greatest(c.n - r.k, 0)
		FROM (SELECT host, username, count(*) AS k FROM removed
		      GROUP BY host, username) r
		WHERE c.host = r.host AND c.username = r.username;
	RETURN NULL;
END $$;

CREATE TRIGGER offline_counts_add AFTER INSERT ON offline
	REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION offline_counts_add();
CREATE TRIGGER offline_counts_remove AFTER DELETE ON offline
	REFERENCING OLD TABLE AS removed FOR EACH STATEMENT
	EXECUTE FUNCTION offline_counts_remove();
