"""Webhook write-back (JSON or Slack incoming-webhook format)."""
