-- The API connects as a plain role that owns its tables: superusers and
-- BYPASSRLS roles skip row-level security, so never run the app as one.
CREATE ROLE inventory LOGIN PASSWORD 'inventory' NOSUPERUSER NOBYPASSRLS;
CREATE DATABASE inventory OWNER inventory;
