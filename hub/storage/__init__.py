"""Hub storage: SQLAlchemy models, engine and migrations."""
