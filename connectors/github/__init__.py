"""GitHub and GitHub Enterprise: client, normalizers, write-back."""
