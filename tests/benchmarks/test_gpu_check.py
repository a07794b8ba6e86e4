"""The GPU check command (benchmarks/gpu_check.py) runs end to end in its CPU smoke mode."""

from benchmarks import gpu_check


def test_smoke_run_prints_the_table(capsys):
    assert gpu_check.main(["--smoke", "--models", "flash", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| kandinsky-3.1-flash |")]
    assert [row.split("|")[2].strip() for row in rows] == ["1", "4"]  # batch 1 and batch 4
    for row in rows:
        cells = [c.strip() for c in row.split("|")[1:-1]]
        seconds, tflop, achieved = float(cells[2]), float(cells[4]), float(cells[5])
        assert seconds > 0 and tflop > 0  # the FLOP counter saw the UNet and the decoder
        assert abs(achieved - tflop / seconds) <= 0.02 * achieved
    # Batching across users: 4 users' requests one at a time and as one batch, images/s and their ratio.
    batching = [line for line in out.splitlines() if line.startswith("| 4 | kandinsky-3.1-flash |")]
    assert len(batching) == 1
    alone, batched, ratio = (c.strip() for c in batching[0].split("|")[3:6])
    assert float(alone) > 0 and float(batched) > 0
    assert abs(float(ratio.rstrip("x")) - float(batched) / float(alone)) <= 0.02 * float(ratio.rstrip("x")) + 0.01
