"""Jira Cloud and Data Center: client, normalizers, write-back."""
