"""ServiceNow Table API incidents."""
