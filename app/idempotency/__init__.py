"""Idempotency-Key on creating POSTs: the first response is kept and replayed to retries."""
