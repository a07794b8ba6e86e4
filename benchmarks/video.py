"""/animate and /video speed: seconds per frame and per video, through the project's own code.

    python -m benchmarks.video                      # CPU smoke run on the tiny checkpoints
    python -m benchmarks.video --device cuda --size 768 --full-k3

What it measures, each through ``DiffusersBackend.render_video`` (the code the worker runs):

- the camera warp alone (depth -> 2.5D -> moved camera -> resampling) at ``--warp-size``, per frame;
- an animation of ``--scenes`` scenes at ``--fps`` with ``--cadence``: seconds per frame and per video
  (first frame by Flash, depth estimation, Flash image-to-image on every ``cadence``-th frame, warps and
  cross-fades between, H.264 encoding);
- a /video clip of ``--seconds`` at ``--video-fps``: seconds per video and per denoising step.

On CPU the models are the tiny random-weight checkpoints of ``python -m generation.tiny`` (the
figures check the code path and the share of the warp and the encoder, not GPU speed). With
``--full-k3`` on CUDA, the Kandinsky 3 family is the full-size architecture from the real configs
with random weights (as ``benchmarks.pipelines`` builds it). Kandinsky 5.0 Video Lite has no config in
this repository, so its full-size figure needs the real checkpoint: ``--k5-source`` (a hub id or a folder).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import torch

from generation.backend import GenerationRequest, Mode, ModelId
from generation.diffusers_backend import DiffusersBackend
from generation.motion import AnimationSettings, CameraMove
from generation.sources import GenerationConfig


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_warp(size: int, device: str, repeats: int = 5) -> float:
    from generation.warp import camera_path, warp

    settings = AnimationSettings()
    poses = camera_path([CameraMove.DRIFT], settings)
    image = torch.rand(1, 3, size, size, device=device)
    depth = torch.rand(size, size, device=device) * 5 + 1
    warp(image, depth, poses[0], poses[1])  # warm-up
    times = []
    for i in range(repeats):
        sync(device)
        start = time.perf_counter()
        warp(image, depth, poses[i], poses[i + 1])
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--size", type=int, default=128, help="animation frame side")
    parser.add_argument("--warp-size", type=int, default=768, help="frame side of the warp-only figure")
    parser.add_argument("--scenes", type=int, default=2)
    parser.add_argument("--fps", type=int, default=4, help="animation frame rate (the bot's default is 12)")
    parser.add_argument("--cadence", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=5, choices=[5, 10])
    parser.add_argument("--video-fps", type=int, default=4, help="video frame rate (the model's own is 24)")
    parser.add_argument("--video-side", type=int, default=32, help="video short side (the model's own is 512)")
    parser.add_argument("--video-steps", type=int, default=4, help="denoising steps (distilled: 16)")
    parser.add_argument("--full-k3", action="store_true", help="full-size Kandinsky 3 family (CUDA)")
    parser.add_argument("--k5-source", default=None, help="a real Kandinsky 5.0 Video Lite checkpoint")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    print(f"torch {torch.__version__}, device {args.device}, threads {args.threads}")
    print(f"camera warp alone, {args.warp_size}x{args.warp_size}: {time_warp(args.warp_size, args.device) * 1000:.1f} ms/frame")

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        from generation.tiny import write_all

        write_all(root / "models")
        config = GenerationConfig(
            models_dir=root / "models",
            device=args.device,
            cache_dir=root / "cache",
            video_fps=args.video_fps,
            video_short_side=args.video_side,
            animation=AnimationSettings(fps=args.fps, cadence=args.cadence),
        )
        backend = DiffusersBackend(config)
        if args.full_k3:
            from benchmarks.pipelines import build_backend

            backend, _ = build_backend(args.device, torch.float16, True, (ModelId.K31_FLASH,))
            backend.config = dataclasses.replace(config, device=args.device)
            backend.manager.config = backend.config

        moves = list(CameraMove)
        scenes = [{"prompt": f"scene {i + 1}: a lighthouse on a cliff", "move": moves[i % len(moves)]} for i in range(args.scenes)]
        request = GenerationRequest(
            mode=Mode.ANIMATE, model=ModelId.K31_FLASH, prompt=scenes[0]["prompt"], negative_prompt=None,
            width=args.size, height=args.size, num_images=1, seed=1, extra={"scenes": scenes},
        )
        backend.render_video(dataclasses.replace(request, extra={"scenes": scenes[:1]}), lambda *_: None, root / "warm.mp4")
        sync(args.device)
        start = time.perf_counter()
        video = backend.render_video(request, lambda *_: None, root / "anim.mp4")
        sync(args.device)
        spent = time.perf_counter() - start
        print(
            f"animation: {args.scenes} scenes x {config.animation.scene_seconds:g} s at {args.fps} fps, cadence {args.cadence}, "
            f"{args.size}x{args.size}: {video.frames} frames in {spent:.2f} s = {spent / video.frames * 1000:.0f} ms/frame, "
            f"{video.path.stat().st_size / 1024:.0f} KB"
        )

        if args.k5_source:
            config = dataclasses.replace(config, models_dir=None)
        width, height = __import__("generation.k5video", fromlist=["video_size"]).video_size("16:9", args.video_side)
        vrequest = GenerationRequest(
            mode=Mode.VIDEO, model=ModelId.K5_VIDEO_5S if args.seconds == 5 else ModelId.K5_VIDEO_10S,
            prompt="a red fox running through the snow at dusk", negative_prompt=None, width=width, height=height,
            num_images=1, seed=1, steps=args.video_steps,
        )
        backend.render_video(dataclasses.replace(vrequest, steps=1), lambda *_: None, root / "warm-v.mp4")
        sync(args.device)
        start = time.perf_counter()
        video = backend.render_video(vrequest, lambda *_: None, root / "video.mp4")
        sync(args.device)
        spent = time.perf_counter() - start
        print(
            f"video: {args.seconds} s at {args.video_fps} fps, {width}x{height}, {args.video_steps} steps: "
            f"{video.frames} frames in {spent:.2f} s ({spent / args.video_steps:.2f} s/step incl. decode and encode)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
