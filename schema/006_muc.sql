-- 006_muc.sql - XEP-0045 group chat: persistent rooms, their affiliations, and
-- the room archive (XEP-0313 on the room's JID).
--
-- A room is keyed by its service (conference.HOST) and its local part. Its
-- configuration is kept as the muc#roomconfig form it would submit (XML), so
-- that reading it back is the same code as an owner's submit and a new field
-- needs no migration.
CREATE TABLE muc_rooms (
	service   text NOT NULL,
	name      text NOT NULL,
	config    text NOT NULL,	-- <x xmlns='jabber:x:data' type='submit'>
	subject   text,			-- the <message/> that set it, with its <delay/>
	salt      text NOT NULL,	-- hex; XEP-0421 occupant ids are HMACs with it
	created   timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (service, name)
);

-- A bare JID's standing in a persistent room (§5.2), and its reserved nick.
CREATE TABLE muc_affiliations (
	service     text NOT NULL,
	name        text NOT NULL,
	jid         text NOT NULL,
	affiliation text NOT NULL CHECK (affiliation IN ('owner', 'admin', 'member', 'outcast')),
	nick        text,
	PRIMARY KEY (service, name, jid),
	FOREIGN KEY (service, name) REFERENCES muc_rooms (service, name) ON DELETE CASCADE
);

-- Groupchat messages of the rooms with archiving on. id is the room's order
-- (one connection writes a service's messages, in order); stanza_id is the
-- XEP-0359 id the room stamped, which clients page by. A temporary room's
-- rows go with the room.
CREATE TABLE muc_archive (
	id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	service    text NOT NULL,
	name       text NOT NULL,
	stanza_id  text NOT NULL,
	at         timestamptz NOT NULL DEFAULT now(),
	nick       text NOT NULL,
	occupant   text NOT NULL,	-- the sender's real bare JID, for moderators
	message    text NOT NULL,	-- as occupants got it, without 'to'
	UNIQUE (service, name, stanza_id)
);
CREATE INDEX muc_archive_by_room ON muc_archive (service, name, id);
CREATE INDEX muc_archive_by_time ON muc_archive (service, name, at);
