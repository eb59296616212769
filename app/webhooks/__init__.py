"""Job webhooks: Standard Webhooks deliveries of a job's events, with retries and an outbox."""
