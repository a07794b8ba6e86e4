"""benchmarks/safety_check.py runs end to end: a row per thread setting and pattern, the same score in each."""

from benchmarks import safety_check


def test_it_prints_a_row_per_setting_and_pattern_with_one_score(capsys):
    safety_check.main(["--checks", "2", "--pause", "0.001"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.rstrip()[-6:].replace(".", "").isdigit()]
    assert len(rows) == 6
    assert len({row.split()[-1] for row in rows}) == 1  # the score does not depend on the threads
