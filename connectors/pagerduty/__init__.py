"""PagerDuty REST v2 incidents."""
