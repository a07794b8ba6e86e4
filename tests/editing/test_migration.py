"""Revision 0004: existing users get the "medium" restyle strength; down removes the column."""

from pathlib import Path

import sqlalchemy as sa

from storage import migrate


def test_edit_strength_column(tmp_path: Path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    engine = sa.create_engine(url.replace("+aiosqlite", ""))
    try:
        migrate.upgrade(url, "0001")
        with engine.begin() as connection:
            connection.execute(sa.text(
                "INSERT INTO users (id, language, banned, ban_notified, created_at, last_seen) "
                "VALUES (1, 'en', 0, 0, '2026-01-01', '2026-01-01')"
            ))
            connection.execute(sa.text(
                "INSERT INTO user_settings (user_id, model, aspect_ratio, style, beautify, num_images) "
                "VALUES (1, 'kandinsky-3.1', '1:1', 'DEFAULT', 0, 1)"
            ))
        migrate.upgrade(url, "0004")
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT edit_strength FROM user_settings")).scalar_one() == "medium"
        migrate.downgrade(url, "0001")
        columns = {c["name"] for c in sa.inspect(engine).get_columns("user_settings")}
        assert "edit_strength" not in columns and "fixed_seed" in columns
    finally:
        engine.dispose()


def test_editing_model_column(tmp_path: Path):
    """Revision 0012: existing users keep Kandinsky 2.2 for editing; down removes it."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    engine = sa.create_engine(url.replace("+aiosqlite", ""))
    try:
        migrate.upgrade(url, "0009")
        with engine.begin() as connection:
            connection.execute(sa.text(
                "INSERT INTO users (id, language, banned, ban_notified, created_at, last_seen) "
                "VALUES (1, 'en', 0, 0, '2026-01-01', '2026-01-01')"
            ))
            connection.execute(sa.text(
                "INSERT INTO user_settings (user_id, model, aspect_ratio, style, beautify, num_images) "
                "VALUES (1, 'kandinsky-3.1', '1:1', 'DEFAULT', 0, 1)"
            ))
        migrate.upgrade(url, "0012")
        with engine.connect() as connection:
            value = connection.execute(sa.text("SELECT editing_model FROM user_settings")).scalar_one()
            assert value == "kandinsky-2.2"
        migrate.downgrade(url, "0009")
        columns = {c["name"] for c in sa.inspect(engine).get_columns("user_settings")}
        assert "editing_model" not in columns and "edit_strength" in columns
    finally:
        engine.dispose()
