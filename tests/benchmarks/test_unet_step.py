"""benchmarks/unet_step.py runs end to end in its CPU smoke mode (the CUDA columns say n/a there)."""

from benchmarks import unet_step


def test_smoke_run_prints_a_row_per_batch(capsys):
    assert unet_step.main(["--smoke", "--rows", "2,4", "--repeats", "1"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [line.split("|")[1].strip() for line in lines] == ["2", "4"]
    for line in lines:
        eager, busy, channels_last, graph = (cell.strip() for cell in line.split("|")[2:6])
        assert float(eager) > 0 and busy == "n/a" and graph == "n/a"
        seconds, ratio = channels_last.split()
        assert abs(float(ratio.strip("()x")) - float(eager) / float(seconds)) < 0.01 + 0.01 * float(ratio.strip("()x"))


def test_the_layout_is_restored_after_the_channels_last_row():
    import torch

    unet, width = unet_step.build(True, "cpu", torch.float32)
    unet_step.measure(unet, width, 2, 64, "cpu", torch.float32, repeats=1)
    assert all(p.is_contiguous() for p in unet.parameters())
