"""benchmarks/gpu_utilization.py runs end to end, through the embedded queue and through a GPU worker
on Redis: every job is generated, the batched run puts several jobs in one GPU call."""

import re

import pytest

from benchmarks import gpu_utilization

QUICK = ["--jobs", "8", "--users", "4", "--gpu-seconds", "0.02", "--batch-image-seconds", "0.01",
         "--safety-seconds", "0.0", "--upload-seconds", "0.01", "--size", "64", "--warmup", "0"]


@pytest.mark.parametrize("where", [[], ["--worker"]], ids=["embedded", "worker"])
def test_both_runs_drain_the_queue_and_the_batched_one_batches(capsys, where, monkeypatch):
    from tests.scale.conftest import REDIS_URL

    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    assert gpu_utilization.main(QUICK + where) == 0
    out = capsys.readouterr().out
    one, batched = (line for line in out.splitlines() if "utilisation" in line)
    assert "8 GPU calls (jobs per call: 1 at most)" in one
    calls, most = map(int, re.search(r"(\d+) GPU calls \(jobs per call: (\d+) at most\)", batched).groups())
    assert calls < 8 and most > 1
    assert "images/s batched vs one at a time" in out
