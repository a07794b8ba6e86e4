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


def test_cpu_budget_at_the_target_share_of_the_echo(capsys):
    # The echo answered 2,000 updates a second; at 0.8x that is 1,600 a second: 0.625 ms of one
    # CPU per update, or 2 CPUs / 1,600 = 1.25 ms of both, less the emulator's 0.2 ms: 1.05 ms.
    echo = bot_overhead.Figures(handled=100, seconds=0.05)
    bot = bot_overhead.Figures(handled=100, seconds=0.2, cpu_seconds=0.12, emulator_cpu_seconds=0.02)
    bot_overhead.print_cpu_budget(echo, bot, cpus=2)
    out = capsys.readouterr().out
    assert "(1600 updates/s, 2 CPUs)" in out, out
    assert "at most 0.62 ms on one event loop, 1.05 ms over all CPUs" in out, out
    assert "the emulator and users take 0.20 ms" in out and "the kandinsky bot takes 1.20 ms" in out, out
