-- What each supervision clock counts in (docs/router.md, "How limits are counted"): wall hours,
-- calendar days, or working days of the PRC calendar. Clocks started before this were all in hours.
ALTER TABLE clocks ADD COLUMN limit_unit text NOT NULL DEFAULT 'hours'
    CHECK (limit_unit IN ('hours', 'calendar_days', 'working_days'));
