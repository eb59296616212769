"""Tenants and their API keys: every model, dataset and job belongs to one tenant."""
