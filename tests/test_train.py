import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from snakeaudio import from_pretrained
from snakeaudio.train import AudioDataset, PeriodicToneDataset, ToneSpec, TrainConfig

TINY = {
    "generator": {"preset": "tiny_16khz_80band", "upsample_initial_channel": 32,
                  "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3]]},
    "data": {"kind": "tones", "f0_min": 100, "f0_max": 1000},
    "training": {"discriminator_channel_mult": 0.125, "batch_size": 2, "segment_size": 4096, "max_steps": 4,
                 "checkpoint_every": 2, "log_every": 1, "validate_every": 1000},
}  # fmt: skip


def write_config(tmp_path: Path, **training) -> Path:
    config = json.loads(json.dumps(TINY))
    config["training"].update(training)
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(config))
    return path


def snakeaudio(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakeaudio.cli", *map(str, args)], capture_output=True, text=True, timeout=600, **kwargs)


def test_train_end_to_end_and_load(tmp_path):
    out = tmp_path / "run"
    result = snakeaudio("train", write_config(tmp_path), "-o", out)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_00000002", "step_00000004"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss_mel" in r] == [1, 2, 3, 4]
    assert all(np.isfinite(r["loss_g"]) for r in records if "loss_g" in r)
    assert any(k.startswith("alpha_mean/") for k in records[0])
    vocoder = from_pretrained(out)
    assert vocoder(torch.zeros(1, 80, 3)).shape == (1, 1, 768)


def checkpoint_steps(out: Path) -> list[int]:
    folder = out / "checkpoints"
    return sorted(int(p.name[5:]) for p in folder.glob("step_*")) if folder.is_dir() else []


def test_resume_after_sigkill_loses_nothing(tmp_path):
    out = tmp_path / "run"
    config = write_config(tmp_path, max_steps=200, checkpoint_every=2, keep_checkpoints=3)
    proc = subprocess.Popen([sys.executable, "-m", "snakeaudio.cli", "train", str(config), "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 300
    while (not checkpoint_steps(out) or checkpoint_steps(out)[-1] < 6) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    steps = checkpoint_steps(out)
    assert steps and steps[-1] >= 6, steps
    for step in steps:  # every checkpoint left behind is whole and loadable
        folder = out / "checkpoints" / f"step_{step:08d}"
        state = torch.load(folder / "state.pt", weights_only=True)
        assert state["step"] == step
    last = steps[-1]
    result = snakeaudio("train", config, "-o", out, "--max-steps", last + 2)
    assert result.returncode == 0, result.stderr
    assert f"resuming {out} from step {last}" in result.stdout
    assert checkpoint_steps(out)[-1] == last + 2
    assert not list((out / "checkpoints").glob(".step_*"))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"loss_mel"' in line]
    assert [r["step"] for r in records] == list(range(1, last + 3))  # steps after the checkpoint were redone, not doubled


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_the_step_and_checkpoints_it(tmp_path, signum):
    """A scheduler's SIGTERM or a Ctrl-C between checkpoints: the run stops after the step in
    progress with a checkpoint of it, exits 128 + the signal, and resumes there."""
    out = tmp_path / "run"
    config = write_config(tmp_path, max_steps=200, checkpoint_every=1000, num_workers=1)
    proc = subprocess.Popen([sys.executable, "-m", "snakeaudio.cli", "train", str(config), "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    metrics, deadline = out / "metrics.jsonl", time.time() + 300
    while not (metrics.is_file() and metrics.read_text().count('"loss_mel"') >= 3) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signum, stderr[-2000:]
    (step,) = checkpoint_steps(out)
    assert 3 <= step < 200 and f"stopped by {signum.name} at step {step}" in stderr and "Traceback" not in stderr
    state = torch.load(out / "checkpoints" / f"step_{step:08d}" / "state.pt", weights_only=True)
    assert state["step"] == step
    result = snakeaudio("train", config, "-o", out, "--max-steps", step + 1)
    assert result.returncode == 0 and f"resuming {out} from step {step}" in result.stdout, result.stderr


def test_torchrun_two_processes_gloo(tmp_path):
    out = tmp_path / "ddp"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29531",
         "-m", "snakeaudio.cli", "train", str(write_config(tmp_path, max_steps=2)), "-o", str(out)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert checkpoint_steps(out) == [2]
    assert result.stdout.count("trained to step 2") == 1  # only rank 0 reports


def test_config_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown keys in the 'training' section: speed"):
        TrainConfig.from_dict({**TINY, "training": {"speed": 11}})
    with pytest.raises(ValueError, match="unknown sections in the training config: extra"):
        TrainConfig.from_dict({**TINY, "extra": {}})
    with pytest.raises(ValueError, match="unknown keys in the 'generator' section: colour"):
        TrainConfig.from_dict({**TINY, "generator": {"preset": "tiny_16khz_80band", "colour": 1}})
    with pytest.raises(ValueError, match="segment_size must be a multiple of hop_size"):
        TrainConfig.from_dict({**TINY, "training": {"segment_size": 1000}})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        TrainConfig.from_json(tmp_path / "missing.json")
    missing = {**TINY, "data": {"kind": "folder", "path": str(tmp_path / "nowhere")}}
    result = snakeaudio("train", write_json(tmp_path / "m.json", missing), "-o", tmp_path / "o")
    assert result.returncode != 0 and "data folder" in result.stderr and "does not exist" in result.stderr


@pytest.mark.parametrize(
    "section, misspelt, meant, also_known",
    [("training", "batch_sise", "batch_size", "learning_rate"), ("data", "f0_mn", "f0_min", "validation"),
     ("generator", "upsample_initial_chanel", "upsample_initial_channel", "preset")],
)  # fmt: skip
def test_a_misspelt_key_is_named_with_the_valid_ones(tmp_path, section, misspelt, meant, also_known):
    config = json.loads(json.dumps(TINY))
    config[section][misspelt] = 1
    with pytest.raises(ValueError, match=f"unknown keys in the '{section}' section: {misspelt} \\(did you mean {meant}\\?\\)") as error:
        TrainConfig.from_json(write_json(tmp_path / "typo.json", config))
    known = str(error.value).split("(known: ")[1]
    assert meant in known and also_known in known


def write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def audio_folder(tmp_path):
    folder = tmp_path / "audio"
    (folder / "sub").mkdir(parents=True)
    t = np.arange(8000) / 8000
    sf.write(folder / "mono.wav", 0.5 * np.sin(2 * np.pi * 220 * t), 8000)
    sf.write(folder / "sub" / "stereo_44k.flac", np.stack([np.sin(2 * np.pi * 440 * np.arange(44100) / 44100)] * 2, 1) * 0.3, 44100)
    sf.write(folder / "short.ogg", 0.2 * np.sin(2 * np.pi * 300 * np.arange(1000) / 16000), 16000)
    sf.write(folder / "silent.wav", np.zeros(4000), 16000)
    sf.write(folder / "empty.wav", np.zeros(0), 16000)
    (folder / "corrupt.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    return folder


def test_audio_folder_skips_bad_files_with_one_warning(audio_folder):
    with pytest.warns(UserWarning, match=r"skipped 3 of 6 audio files in .*: 1 empty, 1 silent, 1 unreadable") as caught:
        data = AudioDataset.from_folder(audio_folder, 16000, 4000)
    assert len(caught) == 1
    assert sorted(p.name for p in data.files) == ["mono.wav", "short.ogg", "stereo_44k.flac"]
    for i in range(len(data)):
        item = data[i]
        assert item.shape == (1, 4000) and item.dtype == torch.float32
    stereo = AudioDataset([audio_folder / "sub" / "stereo_44k.flac"], 16000, None)[0]
    assert stereo.shape == (1, 16000)  # mixed down and resampled 44.1 kHz -> 16 kHz
    spectrum = torch.fft.rfft(stereo[0]).abs()
    assert abs(int(spectrum.argmax()) - 440) <= 1  # the tone is still at 440 Hz
    short = AudioDataset([audio_folder / "short.ogg"], 16000, 4000)[0]
    assert short[0, 1000:].abs().max() == 0  # zero padding


def test_no_readable_file_names_the_folder(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "x.wav").write_bytes(b"nope")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=f"no readable audio file in {folder}"):
        AudioDataset.from_folder(folder, 16000, 100)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        AudioDataset.from_folder(tmp_path / "nowhere", 16000, 100)


def test_bigvgan_filelist_format(audio_folder, tmp_path):
    filelist = tmp_path / "train.txt"
    filelist.write_text("mono|some text|normalized text\nsub/stereo_44k.flac|more\n")
    data = AudioDataset.from_filelist(filelist, audio_folder, 16000, 2048)
    assert [p.name for p in data.files] == ["mono.wav", "stereo_44k.flac"]


def test_periodic_tones_reproducible_and_periodic():
    data = PeriodicToneDataset(16000, 8192, spec=ToneSpec(f0_min=100, f0_max=400, max_notes=1), seed=7)
    again = PeriodicToneDataset(16000, 8192, spec=ToneSpec(f0_min=100, f0_max=400, max_notes=1), seed=7)
    assert torch.equal(data[5], again[5]) and not torch.equal(data[5], data[6])
    for i in range(5):
        wav, (note,) = data[i][0], data.describe(i)
        assert 100 <= note["f0"] <= 400 and 0 < wav.abs().max() <= 0.9 + 1e-6
        spectrum = torch.fft.rfft(wav * torch.hann_window(8192)).abs()
        peak_hz = int(spectrum[20:].argmax() + 20) * 16000 / 8192
        assert min(abs(peak_hz - k * note["f0"]) for k in range(1, 20)) < note["f0"] * 0.1
    with pytest.raises(ValueError, match="below Nyquist"):
        PeriodicToneDataset(1000, 100, spec=ToneSpec(f0_min=100, f0_max=600))


def test_validation_metrics_on_real_speech(tmp_path):
    clips = Path(__file__).resolve().parent / "data" / "audio"
    training = {
        **TINY["training"], "validation_clips": 1, "validation_seconds": 1.0, "validate_every": 1, "max_steps": 1, "checkpoint_every": 1
    }
    config = TrainConfig.from_dict({**TINY, "training": training, "data": {**TINY["data"], "validation": str(clips)}})
    from snakeaudio.train import Trainer

    out = tmp_path / "run"
    Trainer(config, out).fit()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    metrics = next(r for r in records if "val_mel_l1" in r)
    assert {"val_mel_l1", "val_mrstft", "val_cents_error", "val_periodicity_error", "val_vuv_f1"} <= set(metrics)
    assert metrics["val_mel_l1"] > 0 and 0 <= metrics["val_vuv_f1"] <= 1  # an untrained generator: poor but finite
    if importlib.util.find_spec("pesq"):
        assert 1.0 <= metrics["val_pesq"] <= 4.7
    if importlib.util.find_spec("tensorboard"):
        assert list((out / "tensorboard").glob("events.out.tfevents.*"))


def test_fine_tune_from_a_run_and_sample_rate_mismatch(tmp_path):
    base = tmp_path / "base"
    assert snakeaudio("train", write_config(tmp_path, max_steps=2), "-o", base).returncode == 0
    from snakeaudio.train import Trainer

    tuned = Trainer(TrainConfig.from_json(write_config(tmp_path, max_steps=2)), tmp_path / "tuned")
    tuned.initialize_from(base)
    reference = from_pretrained(base)
    mel = torch.randn(1, 80, 4)
    tuned.generator.eval()
    torch.testing.assert_close(tuned.generator(mel), reference(mel), atol=1e-5, rtol=1e-5)
    saved = load_file(str(next((base / "checkpoints").iterdir()) / "discriminator.safetensors"))
    assert all(torch.equal(saved[k], v) for k, v in tuned.discriminator.state_dict().items())
    other = json.loads(json.dumps(TINY))
    other["generator"]["sampling_rate"] = 22050
    with pytest.raises(ValueError, match="trained with sampling_rate=16000, this config has 22050"):
        Trainer(TrainConfig.from_dict(other), tmp_path / "other").initialize_from(base)


def test_fine_tune_on_mel_files(tmp_path):
    folder = tmp_path / "mels"
    folder.mkdir()
    from snakeaudio.dsp import mel_spectrogram
    from snakeaudio.models import preset

    features = preset("tiny_16khz_80band").mel_config
    for i in range(3):
        wav = PeriodicToneDataset(16000, 16000, seed=i)[0][0]
        sf.write(folder / f"utt{i}.wav", wav.numpy(), 16000)
        predicted = mel_spectrogram(wav, features)[0] + 0.1 * torch.randn(80, 62)  # an imperfect acoustic model
        np.save(folder / f"utt{i}.npy", predicted.numpy())
    np.save(folder / "orphan.npy", np.zeros((80, 4), dtype=np.float32))  # no audio: ignored
    config = json.loads(json.dumps(TINY))
    config["data"] = {"kind": "mels", "path": str(folder)}
    out = tmp_path / "run"
    result = snakeaudio("train", write_json(tmp_path / "mels.json", config), "-o", out, "--max-steps", 2)
    assert result.returncode == 0, result.stderr
    from snakeaudio.train import MelAudioDataset

    data = MelAudioDataset(folder, 16000, 256, 80, 16)
    assert len(data) == 3
    mel, wav = data[0]
    assert mel.shape == (80, 16) and wav.shape == (1, 4096)
    with pytest.raises(ValueError, match="has 80 mel bands, the model expects 100"):
        MelAudioDataset(folder, 16000, 256, 100, 16)[0]


def test_official_bigvgan_config_as_training_config_and_multiscale_step(tmp_path):
    from snakeaudio.train import DataConfig, Trainer

    official = Path(__file__).resolve().parent / "data" / "bigvgan-configs" / "bigvgan_v2_24khz_100band_256x.json"
    config = TrainConfig.from_bigvgan(official, DataConfig())
    t = config.training
    assert (t.batch_size, t.segment_size, t.lambda_mel, t.mel_loss) == (4, 65536, 15, "multiscale")
    assert t.discriminators == ("mpd", "cqtd") and config.generator.upsample_initial_channel == 1536
    small = json.loads(json.dumps(TINY))
    small["training"]["mel_loss"] = "multiscale"
    trainer = Trainer(TrainConfig.from_dict(small), tmp_path / "run")
    assert len(trainer.validation_set) == 4  # held-out tones of another seed
    values = trainer.train_step(torch.stack([trainer.train_set[i] for i in range(2)]))
    assert np.isfinite(values["loss_mel"]) and values["loss_mel"] > 0


def test_discriminators_join_after_the_mel_only_warm_up(tmp_path):
    from snakeaudio.train import Trainer

    config = json.loads(json.dumps(TINY))
    config["training"]["discriminator_start"] = 1
    trainer = Trainer(TrainConfig.from_dict(config), tmp_path / "run")
    batch = torch.stack([trainer.train_set[i] for i in range(2)])
    before = {k: v.clone() for k, v in trainer.discriminator.state_dict().items()}
    warm_up = trainer.train_step(batch)
    assert warm_up["loss_d"] == warm_up["loss_adv"] == warm_up["loss_fm"] == 0 and warm_up["loss_mel"] > 0
    assert all(torch.equal(v, trainer.discriminator.state_dict()[k]) for k, v in before.items())
    # Warm-up checkpoints leave out the untouched discriminators; a resumed run re-creates them.
    assert not (trainer.save_checkpoint() / "discriminator.safetensors").exists()
    trainer = Trainer(TrainConfig.from_dict(config), tmp_path / "run")
    assert trainer.step == 1
    assert all(torch.equal(v, trainer.discriminator.state_dict()[k]) for k, v in before.items())
    adversarial = trainer.train_step(batch)
    assert adversarial["loss_d"] > 0 and adversarial["loss_fm"] > 0
    assert any(not torch.equal(v, trainer.discriminator.state_dict()[k]) for k, v in before.items())
    assert (trainer.save_checkpoint() / "discriminator.safetensors").is_file()
    with pytest.raises(ValueError, match="discriminator_start"):
        TrainConfig.from_dict({**TINY, "training": {"discriminator_start": -1}})


def test_checkpoints_get_the_usual_permissions(tmp_path):
    from snakeaudio.train import Trainer

    trainer = Trainer(TrainConfig.from_dict(TINY), tmp_path / "run")
    trainer.train_step(torch.stack([trainer.train_set[i] for i in range(2)]))
    folder = trainer.save_checkpoint()
    mask = os.umask(0)
    os.umask(mask)
    assert folder.stat().st_mode & 0o777 == 0o777 & ~mask
    for path in [*folder.iterdir(), tmp_path / "run" / "model.safetensors"]:
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask, path


def test_generator_update_leaves_the_discriminator_gradients_alone(tmp_path):
    """The generator's adversarial loss back-propagates through the discriminators to the
    generator only: after a step, their gradients are still the discriminator update's."""
    from snakeaudio.train import Trainer

    trainer = Trainer(TrainConfig.from_dict(TINY), tmp_path / "run")
    at_d_step = {}
    trainer.opt_d.register_step_pre_hook(
        lambda *_: at_d_step.update({n: p.grad.clone() for n, p in trainer.discriminator.named_parameters()})
    )
    generator_before = [p.detach().clone() for p in trainer.generator.parameters()]
    metrics = trainer.train_step(torch.stack([trainer.train_set[i] for i in range(2)]))
    assert metrics["loss_adv"] > 0 and len(at_d_step) > 0
    for name, p in trainer.discriminator.named_parameters():
        assert p.requires_grad and torch.equal(p.grad, at_d_step[name]), name
    assert any(not torch.equal(a, b) for a, b in zip(generator_before, trainer.generator.parameters()))


def test_the_vocoder_sees_the_training_mel_at_inference(tmp_path):
    """A clip read by the training data set and vocoded in a training step gives the mel,
    bit for bit, that copy synthesis (``snakeaudio synthesize``/``evaluate``) feeds the vocoder."""
    from snakeaudio.dsp import read_audio
    from snakeaudio.inference import copy_synthesize
    from snakeaudio.train.trainer import Trainer

    sr, n = 16000, 4096
    t = np.arange(n) / sr
    sf.write(tmp_path / "clip.wav", (0.3 * np.sin(2 * np.pi * 220 * t) * np.hanning(n)).astype(np.float32), sr, subtype="PCM_16")
    config = json.loads(json.dumps(TINY))
    config["data"] = {"kind": "folder", "path": str(tmp_path)}
    config["training"].update(batch_size=1, segment_size=n)
    trainer = Trainer(TrainConfig.from_dict(config), tmp_path / "run")
    seen = []
    hook = trainer.generator.conv_pre.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    trainer.train_step(trainer.train_set[0][None])  # the whole clip: one segment of its length
    trainer.generator.eval()
    copy_synthesize(trainer.generator, read_audio(tmp_path / "clip.wav", sr))
    hook.remove()
    training, inference = seen
    assert torch.equal(training, inference)


def test_augmentation_gain_and_noise_stay_in_their_ranges(tmp_path):
    sr, n = 16000, 8000
    sf.write(tmp_path / "tone.wav", (0.5 * np.sin(2 * np.pi * 440 * np.arange(n) / sr)).astype(np.float32), sr, subtype="FLOAT")
    plain = AudioDataset([tmp_path / "tone.wav"], sr, n)[0]
    gained = AudioDataset([tmp_path / "tone.wav"], sr, n, gain_db=(-6.0, -3.0))
    noisy = AudioDataset([tmp_path / "tone.wav"], sr, n, noise_db=(-40.0, -40.0))
    for _ in range(5):
        ratio_db = 20 * np.log10(gained[0].abs().max().item() / plain.abs().max().item())
        assert -6.01 <= ratio_db <= -2.99
        noise_db = 10 * np.log10((noisy[0] - plain).pow(2).mean().item())
        assert abs(noise_db + 40) < 0.5
    with pytest.raises(ValueError, match="gain_db must be a range"):
        TrainConfig.from_dict({**TINY, "data": {"kind": "folder", "path": "x", "gain_db": [0, -6]}})
    with pytest.raises(ValueError, match="noise_db must be a range"):
        TrainConfig.from_dict({**TINY, "data": {"kind": "folder", "path": "x", "noise_db": -60}})


def test_discriminators_see_a_window_and_the_new_losses_are_logged(tmp_path):
    from snakeaudio.train.trainer import Trainer

    config = json.loads(json.dumps(TINY))
    config["training"].update(discriminator_segment=2048, lambda_stft=1.0, lambda_phase=1.0)
    trainer = Trainer(TrainConfig.from_dict(config), tmp_path / "run")
    lengths = []
    hook = trainer.discriminator.register_forward_pre_hook(lambda module, args: lengths.append(args[0].shape[-1]))
    values = trainer.train_step(torch.randn(2, 1, 4096) * 0.1)
    hook.remove()
    assert lengths == [2048, 2048, 2048]  # the discriminator's update, then real and fake features for the generator's
    assert values["loss_stft"] > 0 and values["loss_phase"] > 0
    with pytest.raises(ValueError, match="discriminator_segment must be >= 0"):
        TrainConfig.from_dict({**TINY, "training": {"discriminator_segment": -1}})


def test_init_from_only_when_there_is_nothing_to_resume(tmp_path, caplog):
    from snakeaudio.train import Trainer

    config = TrainConfig.from_dict(TINY)
    base = Trainer(TrainConfig.from_dict({**TINY, "training": {**TINY["training"], "seed": 99}}), tmp_path / "base")
    base.save_checkpoint()
    fresh = Trainer(config, tmp_path / "run", init_from=tmp_path / "base")
    mel = torch.randn(1, 80, 4)
    with torch.no_grad():
        torch.testing.assert_close(fresh.generator(mel), base.generator(mel), atol=1e-5, rtol=1e-5)
    fresh.train_step(torch.stack([fresh.train_set[i] for i in range(2)]))
    fresh.save_checkpoint()
    caplog.set_level(logging.INFO, logger="snakeaudio.train.trainer")
    resumed = Trainer(config, tmp_path / "run", init_from=tmp_path / "base")
    assert resumed.step == 1
    assert all(torch.equal(v, fresh.generator.state_dict()[k]) for k, v in resumed.generator.state_dict().items())
    assert f"{tmp_path / 'base'} not used: {tmp_path / 'run'} resumes from its own checkpoint" in caplog.text
    with pytest.raises(ValueError, match="resumed at step 1: initialising it from .* would undo that"):
        resumed.initialize_from(tmp_path / "base")  # what the CLI did on every rank but the first


@pytest.mark.parametrize(
    "device, calls", [(None, ["set_device cuda:1", "init nccl"]), ("cuda", ["set_device cuda:1", "init nccl"]), ("cpu", ["init gloo"])]
)
def test_the_rank_gpu_is_current_before_nccl_starts(tmp_path, monkeypatch, device, calls):
    """torchrun's rank 1 on a CUDA machine: NCCL's communicators and collectives of Python
    objects use the current device, which must be the rank's own GPU by then."""
    from snakeaudio.train import Trainer

    seen = []

    class Started(Exception):
        pass

    def init_process_group(backend):
        seen.append(f"init {backend}")
        raise Started

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: seen.append(f"set_device {d}"))
    monkeypatch.setattr(torch.distributed, "init_process_group", init_process_group)
    with pytest.raises(Started):
        Trainer(TrainConfig.from_dict(TINY), tmp_path / "run", device=device)
    assert seen == calls


def test_input_checks_run_once_per_batch_shape(tmp_path, monkeypatch):
    """Checking a batch for NaN makes the host wait for the GPU: done at every step, it
    stalls training. The first batch of each shape is checked; a later non-finite one still
    ends its step with an error."""
    from snakeaudio.train import Trainer

    trainer = Trainer(TrainConfig.from_dict(TINY), tmp_path / "run")
    batch = torch.stack([trainer.train_set[i] for i in range(2)])
    checked, isfinite = [], torch.isfinite
    monkeypatch.setattr(torch, "isfinite", lambda x: checked.append(x.shape) or isfinite(x))
    trainer.train_step(batch)
    first = len(checked)
    assert first >= 1
    trainer.train_step(batch.flip(0))
    assert len(checked) == first
    with pytest.raises(FloatingPointError, match="non-finite loss at step 3"):
        trainer.train_step(torch.full_like(batch, float("nan")))
    with pytest.raises(ValueError, match="the waveform contains NaN"):
        trainer.train_step(torch.full((2, 1, 2048), float("nan")))


def test_tell_when_tensorboard_is_off_nothing_is_left_to_do_or_the_config_changed(tmp_path, monkeypatch, caplog):
    from snakeaudio.train import Trainer

    caplog.set_level(logging.INFO, logger="snakeaudio.train.trainer")
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # not installed
    assert Trainer(TrainConfig.from_json(write_config(tmp_path, max_steps=1)), tmp_path / "run").fit() == 1
    assert 'TensorBoard logging is off: the tensorboard package is missing (install the "train" extra: pip install -e ".[train]")' in (
        caplog.text
    )
    caplog.clear()
    changed = TrainConfig.from_json(write_config(tmp_path, max_steps=1, batch_size=1, learning_rate=2e-4))
    assert Trainer(changed, tmp_path / "run").fit() == 1
    differs = "training.batch_size: 2 -> 1; training.learning_rate: 0.0001 -> 0.0002"
    assert f"the config differs from the one step_00000001 was trained with: {differs}" in caplog.text
    assert f"nothing to do: {tmp_path / 'run'} is at step 1 and max_steps is 1" in caplog.text


def test_a_resumed_run_follows_its_configs_learning_rate(tmp_path):
    from snakeaudio.train import Trainer

    run = tmp_path / "run"
    straight = Trainer(TrainConfig.from_json(write_config(tmp_path, max_steps=2, lr_decay=0.9)), tmp_path / "straight")
    straight.fit()
    Trainer(TrainConfig.from_json(write_config(tmp_path, max_steps=1, lr_decay=0.9)), run).fit()
    resumed = Trainer(TrainConfig.from_json(write_config(tmp_path, max_steps=2, lr_decay=0.9)), run)
    assert resumed.opt_g.param_groups[0]["lr"] == pytest.approx(1e-4 * 0.9)
    resumed.fit()
    for trainer in (straight, resumed):  # an unchanged config continues the schedule it was on
        assert trainer.opt_g.param_groups[0]["lr"] == pytest.approx(1e-4 * 0.9**2)
    lowered = Trainer(TrainConfig.from_json(write_config(tmp_path, max_steps=3, learning_rate=2e-5, lr_decay=0.5)), run)
    for optimizer in (lowered.opt_g, lowered.opt_d):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(2e-5 * 0.5**2)
    lowered.fit()
    assert lowered.opt_g.param_groups[0]["lr"] == pytest.approx(2e-5 * 0.5**3)
    assert lowered.sched_g.get_last_lr() == [pytest.approx(2e-5 * 0.5**3)]


def test_snake_init_draws_alpha_in_its_regime_only_for_a_fresh_run(tmp_path):
    from snakeaudio.nn import PERIODIC_ALPHA, STANDARD_ALPHA, Snake, SnakeBeta
    from snakeaudio.train import Trainer

    def alphas(trainer):
        return torch.cat([m.alpha.detach().exp() for m in trainer.generator.modules() if isinstance(m, (Snake, SnakeBeta))])

    for regime, (low, high) in (("standard", STANDARD_ALPHA), ("periodic", PERIODIC_ALPHA)):
        trainer = Trainer(TrainConfig.from_json(write_config(tmp_path, max_steps=1, snake_init=regime)), tmp_path / regime)
        assert low <= alphas(trainer).min() and alphas(trainer).max() <= high and alphas(trainer).std() > 0
        trainer.fit()
        trained = alphas(trainer)
        resumed = Trainer(TrainConfig.from_json(write_config(tmp_path, max_steps=1, snake_init=regime)), tmp_path / regime)
        torch.testing.assert_close(alphas(resumed), trained, rtol=0, atol=0)
    with pytest.raises(ValueError, match="snake_init must be 'standard', 'periodic' or null, got 'fast'"):
        TrainConfig.from_json(write_config(tmp_path, snake_init="fast"))
