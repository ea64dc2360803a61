-- 并单: a merged case names the case it follows, so that case's timeline shows both reports.
ALTER TABLE case_summaries ADD COLUMN merged_into text;
CREATE INDEX case_summaries_merged_into ON case_summaries (merged_into) WHERE merged_into IS NOT NULL;
