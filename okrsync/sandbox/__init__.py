"""Local simulators of Jira, GitHub, ServiceNow and PagerDuty for the demo, e2e tests and benchmarks."""
