"""``python -m app.fetch`` against a local fake hub (tests/generation/fake_hub.py) that serves
the tiny checkpoints in the real repositories' layouts, plus files the bot must not download."""

from __future__ import annotations

import hashlib
import io
import math
import shutil
from pathlib import Path

import pytest
from safetensors import safe_open

from app.config import Settings
from app import fetch
from generation.backend import ModelId
from generation.sources import FOLDERS, HUB_IDS
from generation.superres import CONTEXT_FILES
from tests.fakes import TOKEN
from tests.generation.fake_hub import FakeHub

K3 = HUB_IDS["k31"]
BIG = "weights/kandinsky3.pt"
# KandiSuperRes' refiner context is in the authors' GitHub repository, not on the hub: served here
# under a repository of its own, with the checksums of the tiny stand-ins.
GITHUB = "github-ai-forever/KandiSuperRes"
# Files the real repositories also hold and the loaders never read.
DECOYS = {
    K3: ["weights/kandinsky3_unused_experiment.pt", "README.md", "assets/sample.png"],  # a UNet nobody loads
    HUB_IDS["k22-decoder"]: ["unet/diffusion_pytorch_model.bin"],
}


@pytest.fixture
def hub(tiny_models_dir: Path, tmp_path: Path):
    repos = {}
    for key, repo_id in HUB_IDS.items():
        source = tiny_models_dir / FOLDERS[key]
        if not source.is_dir():
            continue  # the beautifier LLM: not planned in these tests
        folder = tmp_path / "hub" / repo_id
        shutil.copytree(source, folder)
        for decoy in DECOYS.get(repo_id, []):
            (folder / decoy).parent.mkdir(parents=True, exist_ok=True)
            (folder / decoy).write_bytes(b"\0" * 2048)
        repos[repo_id] = folder
    github = tmp_path / "hub" / GITHUB
    for rel in CONTEXT_FILES:
        (github / rel).parent.mkdir(parents=True, exist_ok=True)
        (repos[HUB_IDS["superres"]] / rel).rename(github / rel)
    repos[GITHUB] = github
    fake = FakeHub(repos)
    fake.endpoint = fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def settings(tmp_path: Path, **overrides) -> Settings:
    values = dict(
        bot_token=TOKEN, data_dir=tmp_path / "data", kandinsky_models_dir=tmp_path / "models",
        beautify_backend="off", faceswap_describer=False, generation_device="cpu",
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)


def wanted_files(hub: FakeHub) -> dict[str, list[Path]]:
    """What the bot loads, listed here by hand from the layouts: everything but the decoys."""
    return {
        repo_id: sorted(p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).as_posix() not in DECOYS.get(repo_id, []))
        for repo_id, folder in hub.repos.items()
        # The image-prompt models' repositories are fetched only when asked for by name (app.fetch).
        if repo_id not in ("ai-forever/kandinsky3_ip_adapter", "ai-forever/kandinsky3_controlnet_hed", "lllyasviel/Annotators")
    }


def context_source(hub: FakeHub) -> dict:
    """``fetch.run``'s context arguments pointing at the fake GitHub repository."""
    folder = hub.repos[GITHUB]
    return dict(
        context_url=f"{hub.endpoint}/{GITHUB}/resolve/main/{{path}}",
        context_sha256={rel: hashlib.sha256((folder / rel).read_bytes()).hexdigest() for rel in CONTEXT_FILES},
    )


def safetensors_parameters(path: Path) -> int:
    with safe_open(str(path), "np") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())


def test_fetch_downloads_what_the_bot_loads_resumes_and_converts_flash(hub: FakeHub, tmp_path: Path, monkeypatch) -> None:
    from huggingface_hub import constants

    config = settings(tmp_path)
    # The connection drops 100 kB into the biggest K3 file; huggingface_hub writes 10 MB chunks, so
    # for these tiny files its chunk is made small enough that the received part reaches the disk.
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 4096)
    hub.cut_after[(K3, BIG)] = 100_000
    out = io.StringIO()
    status = fetch.run(config, endpoint=hub.endpoint, out=out, **context_source(hub))
    if status != 0:  # the interrupted file failed this run: the next run continues it
        assert "Run the command again: it continues where it stopped." in out.getvalue()
        out = io.StringIO()
        status = fetch.run(config, endpoint=hub.endpoint, out=out, **context_source(hub))
    assert status == 0, out.getvalue()
    resumed = [r for r in hub.requests if r.method == "GET" and r.path.endswith(BIG) and r.range == f"bytes={100_000 // 4096 * 4096}-"]
    assert resumed, [(r.method, r.path, r.range) for r in hub.requests if r.path.endswith(BIG)]

    # Every file the loaders read, byte for byte, in the bot's layout; none of the decoys.
    for repo_id, files in wanted_files(hub).items():
        folder = config.kandinsky_models_dir / repo_id.split("/", 1)[1]
        for source in files:
            rel = source.relative_to(hub.repos[repo_id])
            assert (folder / rel).read_bytes() == source.read_bytes(), rel
        for decoy in DECOYS.get(repo_id, []):
            assert not (folder / decoy).exists(), decoy
    # Flash converted where the bot looks for it.
    assert any((config.data_dir / "models").rglob("config.json"))  # converted where the bot looks

    # The summary: disk from the files of each model; GPU memory from parameter counts at fp16.
    text = out.getvalue()
    assert "Kandinsky 3.1 Flash" in text and "GPU memory, GB" in text
    rows = {name: (disk, vram) for name, disk, vram in fetch.summary_rows(_plans_after(config, hub), list(ModelId), 2)}
    k3 = hub.repos[K3]
    encoder = sum(p.stat().st_size for p in (k3 / "weights/flan_ul2_encoder").rglob("*") if p.is_file())
    movq, base, flash = ((k3 / f).stat().st_size for f in ("weights/movq.pt", "weights/kandinsky3.pt", "weights/kandinsky3_flash.pt"))
    assert rows["Kandinsky 3.1"][0] == pytest.approx((encoder + base + movq) / fetch.GB)
    assert rows["Kandinsky 3.1 Flash"][0] == pytest.approx((encoder + flash + movq) / fetch.GB)
    assert rows["Kandinsky 3.1 + Flash refiner"][1] > rows["Kandinsky 3.1"][1] > 0

    # A second run finds everything in place and downloads nothing.
    before = len([r for r in hub.requests if r.method == "GET" and "/resolve/" in r.path])
    out = io.StringIO()
    assert fetch.run(config, endpoint=hub.endpoint, out=out, **context_source(hub)) == 0
    assert "To download: 0.00 GB in 0 files" in out.getvalue()
    after = [r for r in hub.requests if r.method == "GET" and "/resolve/" in r.path][before:]
    assert all(r.range and r.range.startswith("bytes=0-") for r in after)  # only safetensors headers


def test_kandisuperres_alone_fetches_the_flash_unet_and_movq_not_the_text_encoder(hub: FakeHub, tmp_path: Path) -> None:
    """Its refiner is the Kandinsky 3.1 Flash UNet with a fixed context: no Flan-UL2, no base UNet."""
    config = settings(tmp_path, worker_models="kandisuperres")
    out = io.StringIO()
    assert fetch.run(config, endpoint=hub.endpoint, out=out, **context_source(hub)) == 0, out.getvalue()
    k31 = config.kandinsky_models_dir / FOLDERS["k31"]
    got = sorted(p.relative_to(k31).as_posix() for p in k31.rglob("*") if p.is_file())
    assert "weights/kandinsky3_flash.pt" in got and "weights/movq.pt" in got
    assert "weights/flan_ul2_encoder/projection_flash.pt" in got  # the converter reads it
    assert not [p for p in got if p.endswith((".safetensors", "tokenizer.json")) or p == BIG], got
    superres_dir = config.kandinsky_models_dir / FOLDERS["superres"]
    for rel in CONTEXT_FILES:
        assert (superres_dir / rel).read_bytes() == (hub.repos[GITHUB] / rel).read_bytes()


def test_a_context_with_the_wrong_checksum_is_refused(hub: FakeHub, tmp_path: Path) -> None:
    config = settings(tmp_path, worker_models="kandisuperres")
    source = context_source(hub)
    source["context_sha256"] = {rel: "0" * 64 for rel in CONTEXT_FILES}
    out = io.StringIO()
    assert fetch.run(config, endpoint=hub.endpoint, out=out, **source) == 1
    assert "SHA-256" in out.getvalue()
    assert not (config.kandinsky_models_dir / FOLDERS["superres"] / CONTEXT_FILES[0]).exists()


def _plans_after(config: Settings, hub: FakeHub) -> list[fetch.RepoPlan]:
    plans = fetch.plan_repos(config)
    fetch.inspect(plans, fetch.Hub(hub.endpoint))
    return plans


def test_not_enough_disk_space_stops_before_any_download(hub: FakeHub, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(fetch, "free_space", lambda path: 10 * 1024**2)
    out = io.StringIO()
    assert fetch.run(settings(tmp_path), endpoint=hub.endpoint, out=out) == 1
    assert "Not enough disk space" in out.getvalue()
    assert not [r for r in hub.requests if r.method == "GET" and "/resolve/" in r.path and not (r.range or "").startswith("bytes=0-")]
    assert not (tmp_path / "models").exists()


def test_the_hub_cache_and_a_subset_of_models(hub: FakeHub, tmp_path: Path) -> None:
    from huggingface_hub import try_to_load_from_cache

    config = settings(tmp_path, kandinsky_models_dir=None, worker_models="2.2")
    out = io.StringIO()
    assert fetch.run(config, endpoint=hub.endpoint, hf_cache=tmp_path / "hf", out=out) == 0, out.getvalue()
    decoder = HUB_IDS["k22-decoder"]
    cached = try_to_load_from_cache(decoder, "unet/diffusion_pytorch_model.safetensors", cache_dir=tmp_path / "hf")
    assert isinstance(cached, str) and Path(cached).read_bytes() == (hub.repos[decoder] / "unet/diffusion_pytorch_model.safetensors").read_bytes()
    assert try_to_load_from_cache(K3, BIG, cache_dir=tmp_path / "hf") is None  # Kandinsky 3.1 is not configured
    assert "Kandinsky 2.2" in out.getvalue() and "Kandinsky 3.1 Flash" not in out.getvalue()


def test_the_fake_backend_needs_nothing(tmp_path: Path) -> None:
    out = io.StringIO()
    assert fetch.run(settings(tmp_path, generation_backend="fake"), out=out) == 0
    assert "nothing to download" in out.getvalue()
