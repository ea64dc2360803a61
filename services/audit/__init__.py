"""Audit: the append-only, hash-chained trace of every case (全程留痕)."""
