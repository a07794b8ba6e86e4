"""benchmarks/prompt_cpu.py runs end to end and prints its figures for both rounds."""

from benchmarks import prompt_cpu


async def test_smoke_run_prints_both_rounds(capsys):
    await prompt_cpu.main(["--users", "5", "--rounds", "2"])
    lines = [line for line in capsys.readouterr().out.splitlines() if "ms per prompt" in line]
    assert [line.split()[0] for line in lines] == ["new", "known"]
    for line in lines:
        assert float(line.split("durable echo")[1].split()[0]) > 0
        assert float(line.split("bot")[1].split()[0]) > 0
