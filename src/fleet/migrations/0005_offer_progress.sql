-- The config offer a device is checking now, and how far (its audit takes minutes), as the
-- device last reported it; NULL when it checks none.
ALTER TABLE devices ADD COLUMN config_checking text;
