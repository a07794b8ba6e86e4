"""SQLAlchemy 2 async models and repositories; SQLite by default, PostgreSQL when scaled."""
