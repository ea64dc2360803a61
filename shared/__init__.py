"""Contracts and plumbing shared by every OneWindow service (never imports a service)."""
