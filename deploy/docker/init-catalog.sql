-- The project catalog lives in its own database beside Dagster's (SHORTS_CATALOG_DB in .env).
CREATE DATABASE shorts_catalog;
