"""benchmarks/bot_overhead.py runs end to end with its three bots (the real one, the echo, and the
real one answering like the echo) and prints a line and a ratio for each."""

from benchmarks import bot_overhead


async def test_smoke_run_with_the_floor_bot_and_known_users(capsys):
    await bot_overhead.main(["--users", "3", "--rounds", "2", "--floor", "--known-users"])
    out = capsys.readouterr().out
    lines = {line.split("  ")[0].strip(): line for line in out.splitlines()}
    for name in ("echo bot", "floor bot", "kandinsky bot"):
        assert float(lines[name].split()[2]) > 0, out  # updates/s: every prompt got its answer
    assert "ratio (kandinsky / echo)" in out and "ratio (floor / echo)" in out
    assert "errors in the bot log" not in out
