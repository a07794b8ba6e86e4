"""benchmarks/result_encoding.py runs end to end: a row per side, and both ways of finishing a result."""

from benchmarks import result_encoding


def test_it_prints_a_row_per_side_and_both_finishing_orders(capsys):
    result_encoding.main(["--repeats", "1", "--sides", "64", "128"])
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.split() and line.split()[0].isdigit()]
    assert [row[0] for row in rows] == ["64", "128"]
    assert all(row[-1].endswith("x") and float(row[-1][:-1]) > 0 for row in rows)
    assert "(before)" in out and "(now)" in out and "faster)" in out
