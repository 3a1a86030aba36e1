-- Spreadsheet imports are bulk jobs with a file reader in front: the job
-- keeps how to read its file (sheet, header row, column mapping), and each
-- result the row number the spreadsheet shows.

ALTER TABLE bulk_jobs ADD COLUMN import_spec JSONB;
ALTER TABLE bulk_results ADD COLUMN sheet_row BIGINT NOT NULL DEFAULT 0;
