"""The database schema's history, as Alembic migrations (digest.core.database runs them)."""
