"""Where should the Flash refiner start? How much of Kandinsky 3.1's latent each choice keeps.

    python -m benchmarks.refiner_start            # tiny random-weight models, CPU, about a minute

For each candidate schedule (suffixes of Flash's distilled timesteps 979, 729, 479, 229) it prints the
share of the variance that is still the first stage's image at the first step (``a_t``, exact) and, on
the tiny checkpoints of ``generation.tiny``, the relative change of the latent the refiner returns,
``|refined - first| / |first|`` (mean over prompts and seeds). The authors' own use of Flash as a
refiner (KandiSuperRes ``diffusion_refine.refine``) is one step at 229; this shows why: every earlier
start keeps less of the image than it replaces.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from generation.backend import ModelId
from generation.k31 import FLASH_TIMESTEPS, encode_text
from generation.manager import ModelManager
from generation.sources import GenerationConfig
from generation.tiny import write_k31

PROMPTS = ("a lighthouse on a cliff at sunset", "a bowl of ramen, studio photo", "an owl in a snowy forest")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="Kandinsky 3.1 steps of the first stage")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        write_k31(Path(tmp))
        manager = ModelManager(GenerationConfig(models_dir=Path(tmp), device="cpu", cache_dir=Path(tmp) / "cache"))
        pipes = manager.k3_pipelines(ModelId.K31_REFINER)
        candidates = [FLASH_TIMESTEPS[i:] for i in range(1, len(FLASH_TIMESTEPS))]
        changes: dict[tuple[int, ...], list[float]] = {c: [] for c in candidates}
        for prompt in PROMPTS:
            text = encode_text(pipes.base, prompt, None, "cpu")
            for seed in range(args.seeds):
                gen = torch.Generator().manual_seed(seed)
                first = pipes.base(text=text, num_inference_steps=args.steps, height=128, width=128, generator=gen, output_type="latent").images
                for schedule in candidates:
                    refined = pipes.flash(text=text, timesteps=schedule, image_latents=first, generator=torch.Generator().manual_seed(100 + seed), output_type="latent").images
                    changes[schedule].append(float((refined - first).norm() / first.norm()))
        alphas = pipes.flash.scheduler.alphas_cumprod
        print(f"{'refiner steps':<18}{'image share a_t':>16}{'latent change':>15}")
        for schedule in candidates:
            share = float(alphas[schedule[0]])
            print(f"{', '.join(map(str, schedule)):<18}{share:>16.2f}{statistics.mean(changes[schedule]):>15.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
