-- 007_upload.sql - XEP-0363 HTTP upload: the bytes stored once per hash.
--
-- An object is a file in the storage directory, named by the SHA-256 of its
-- bytes; a file is one upload's URL (its slot id), pointing to an object. Two
-- people uploading the same bytes make two files and one object; the object
-- goes when the last file pointing to it expires or is deleted.
CREATE TABLE upload_objects (
	sha256   text PRIMARY KEY,		-- hex, also the name on disk
	size     bigint NOT NULL,
	created  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE upload_files (
	id       text PRIMARY KEY,		-- the slot's id, in the URL
	host     text NOT NULL,
	owner    text NOT NULL,		-- the uploader's bare JID
	sha256   text NOT NULL REFERENCES upload_objects (sha256),
	name     text NOT NULL,		-- as the client named it
	type     text NOT NULL,		-- its content-type
	size     bigint NOT NULL,
	created  timestamptz NOT NULL DEFAULT now(),
	expires  timestamptz NOT NULL
);
CREATE INDEX upload_files_by_owner ON upload_files (host, owner, created);
CREATE INDEX upload_files_by_expiry ON upload_files (expires);
CREATE INDEX upload_files_by_object ON upload_files (sha256);
