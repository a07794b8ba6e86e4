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
    # the FP8 row: on a machine without an FP8 GPU it says so instead of failing
    fp8 = [line for line in out.splitlines() if line.startswith("| FP8 |")]
    assert len(fp8) == 1 and "skipped: no FP8 GPU" in fp8[0]


def test_psnr_of_8_bit_images():
    import math

    import numpy as np

    a = np.zeros((4, 4, 3), dtype=np.uint8)
    b = a.copy()
    assert gpu_check.psnr(a, b) == math.inf
    b[0, 0, 0] = 255  # one channel of one pixel fully wrong: MSE = 255^2 / 48
    assert abs(gpu_check.psnr(a, b) - 10 * math.log10(48)) < 1e-9


def tiny_flash_backend():
    import torch

    from benchmarks.pipelines import build_backend

    torch.manual_seed(0)
    backend, _ = build_backend("cpu", torch.float32, full=False, models=(gpu_check.ModelId.K31_FLASH,), shrink=gpu_check.tiny)
    return backend


def test_counted_tflop_includes_the_prompt_encoding_every_time():
    # The first GPU run counted Flash after Kandinsky 3.1 had encoded the same prompt: the cached
    # encoding left the text encoder out of Flash's figure.
    backend = tiny_flash_backend()
    flash = gpu_check.ModelId.K31_FLASH
    first = gpu_check.counted_tflop(backend, flash, 64)
    backend.generate(gpu_check.request(flash, 64, 1), lambda s, t: None)  # the prompt is cached now
    assert gpu_check.counted_tflop(backend, flash, 64) == first


def test_sample_tells_a_decoder_that_made_nan():
    import torch

    from generation.manager import MOVQ

    backend = tiny_flash_backend()
    flash = gpu_check.ModelId.K31_FLASH
    req = gpu_check.request(flash, 64, 1)
    first = gpu_check.sample(backend, flash, req)
    assert first.finite and first.image.size == (64, 64)
    assert first.first_step.shape == (1, 4, 8, 8)  # Flash: one row, no guidance; a 64 px latent
    with torch.no_grad():
        backend.manager.parts[MOVQ].obj.decoder.conv_out.bias.fill_(float("nan"))
    broken = gpu_check.sample(backend, flash, req)
    assert not broken.finite
    assert torch.equal(broken.first_step, first.first_step)  # the UNet's first step still compares


def test_fp8_check_compares_images_and_the_first_unet_step(monkeypatch):
    # The FP8 flow on the CPU: a stand-in "quantizer" rounds the attention projections' weights to
    # bfloat16 (an 8-bit mantissa), which moves the outputs a little; an identity one moves nothing.
    import torch

    from generation.precision import _attention_linear

    def round_to_bf16(unet, device, label):
        with torch.no_grad():
            for name, module in unet.named_modules():
                if _attention_linear(module, name):
                    module.weight.copy_(module.weight.to(torch.bfloat16).float())
        return True

    flash = gpu_check.ModelId.K31_FLASH
    monkeypatch.setattr(gpu_check, "fp8_unavailable", lambda device: None)
    rows = [{"model": flash.value, "batch": 1, "s_per_image": 0.5}]
    monkeypatch.setattr(gpu_check, "quantize_fp8", lambda unet, device, label: True)
    same = gpu_check.fp8_check(tiny_flash_backend(), "cpu", 64, (flash,), 1, rows)["rows"][0]
    assert same["step_psnr_min"] == same["psnr_min"] == float("inf") and same["finite"]
    monkeypatch.setattr(gpu_check, "quantize_fp8", round_to_bf16)
    moved = gpu_check.fp8_check(tiny_flash_backend(), "cpu", 64, (flash,), 1, rows)["rows"][0]
    assert 20 < moved["step_psnr_min"] < float("inf") and moved["finite"]
    assert moved["fp16_s_per_image"] == 0.5 and moved["s_per_image"] > 0
    line = gpu_check.fp8_table({"rows": [moved]}).splitlines()[-1]
    assert line.startswith("| kandinsky-3.1-flash |") and f"| {moved['step_psnr_mean']:.1f} / {moved['step_psnr_min']:.1f} |" in line


def test_fp8_table_gives_no_psnr_for_pictures_with_nan():
    row = {"model": "kandinsky-3.1-flash", "s_per_image": 1.2, "fp16_s_per_image": 0.9, "psnr_mean": 12.2,
           "psnr_min": 12.0, "finite": False, "step_psnr_mean": 41.5, "step_psnr_min": 40.2, "peak_gib": 31.1}
    line = gpu_check.fp8_table({"rows": [row]}).splitlines()[-1]
    assert "n/a: NaN or infinity" in line and line.startswith("| kandinsky-3.1-flash | 1.200 | 0.900 |")
    assert line.endswith("| 41.5 / 40.2 | 31.1 |")  # the first UNet step still compares
    assert "| 12.2 / 12.0 |" in gpu_check.fp8_table({"rows": [dict(row, finite=True)]})


def test_the_benchmark_backend_keeps_the_movq_in_fp32_as_the_bot_does():
    import torch

    from benchmarks.pipelines import build_backend
    from generation.manager import FLASH_UNET, MOVQ

    backend, _ = build_backend("cpu", torch.bfloat16, full=False, models=(gpu_check.ModelId.K31_FLASH,), shrink=gpu_check.tiny)
    assert next(backend.manager.parts[MOVQ].obj.parameters()).dtype == torch.float32
    assert next(backend.manager.parts[FLASH_UNET].obj.parameters()).dtype == torch.bfloat16
    image = backend.generate(gpu_check.request(gpu_check.ModelId.K31_FLASH, 64, 1), lambda s, t: None)[0]
    assert image.size == (64, 64)  # bf16 latents decode through the fp32 MoVQ


def test_compile_runs_the_rows_through_compiled_unets(capsys, monkeypatch):
    # --compile MODE: the UNets are compiled as TORCH_COMPILE_MODE=MODE compiles them (dynamo's eager
    # backend here: Inductor's C++ build would take minutes on this CPU); the FLOPs are counted eagerly.
    from generation.compiled import CompiledForward

    seen = []
    original = gpu_check.compile_unets
    monkeypatch.setattr(gpu_check, "compile_unets", lambda *args: (seen.append(args), original(*args)))
    assert gpu_check.main(["--smoke", "--models", "flash", "--repeats", "1", "--users", "0", "--no-fp8",
                           "--compile", "reduce-overhead", "--compiler", "eager"]) == 0
    out = capsys.readouterr().out
    assert "UNets compiled (reduce-overhead)" in out.splitlines()[0]
    backend, size, mode, compiler = seen[0]
    assert (size, mode, compiler) == (64, "reduce-overhead", "eager")
    from generation.manager import FLASH_UNET

    assert isinstance(backend.manager.parts[FLASH_UNET].obj.forward, CompiledForward)
    rows = [line for line in out.splitlines() if line.startswith("| kandinsky-3.1-flash |")]
    assert len(rows) == 2 and all(float(row.split("|")[5]) > 0 for row in rows)  # TFLOP counted
