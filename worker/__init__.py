"""The Celery worker: the app and thin tasks that call into `app/`."""
