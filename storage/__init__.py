"""SQLAlchemy 2 async models and repositories; SQLite by default, PostgreSQL when scaled."""

# Every table on Base.metadata whichever storage module is imported first (Alembic, tests, the bot).
from storage import admin_models  # noqa: E402,F401
