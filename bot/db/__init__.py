"""Persistence: SQLAlchemy 2.x tables, the unit of work, and repositories."""
