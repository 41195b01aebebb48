-- 003_roster.sql - rosters (RFC 6121 §2), subscription states (§3, Appendix A)
-- and last activity (XEP-0012).
--
-- One row per (account, contact). The subscription is the RFC's state split
-- in its parts: sub is none/to/from/both; ask_out is "Pending Out" (we asked
-- the contact); pending_in is "Pending In" (the contact asked us), with the
-- request stanza kept so it can be shown again at the next login;
-- approved is a pre-approval (§3.4). A row may exist without being a roster
-- item for the client (pending_in only): in_roster says whether it is shown.
-- groups holds the item's group names separated by U+001F, a character XML 1.0
-- cannot carry, so no group name can contain it.
CREATE TABLE roster (
	host          text NOT NULL,
	username      text NOT NULL,
	contact       text NOT NULL,
	name          text,
	groups        text NOT NULL DEFAULT '',
	sub           text NOT NULL DEFAULT 'none'
	              CHECK (sub IN ('none', 'to', 'from', 'both')),
	ask_out       boolean NOT NULL DEFAULT false,
	pending_in    text,
	approved      boolean NOT NULL DEFAULT false,
	in_roster     boolean NOT NULL DEFAULT true,
	PRIMARY KEY (host, username, contact),
	FOREIGN KEY (host, username) REFERENCES users (host, username) ON DELETE CASCADE
);

-- Roster versioning (XEP-0237): one counter per account, bumped with each change.
CREATE TABLE roster_version (
	host      text NOT NULL,
	username  text NOT NULL,
	version   bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (host, username),
	FOREIGN KEY (host, username) REFERENCES users (host, username) ON DELETE CASCADE
);

-- XEP-0012: when each account last logged out, and its last status text.
CREATE TABLE last_activity (
	host      text NOT NULL,
	username  text NOT NULL,
	seen      timestamptz NOT NULL,
	status    text NOT NULL DEFAULT '',
	PRIMARY KEY (host, username),
	FOREIGN KEY (host, username) REFERENCES users (host, username) ON DELETE CASCADE
);
