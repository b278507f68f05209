"""The one trainer every recipe uses: generator + discriminators, resumable, data-parallel.

Output folder layout::

    DIR/config.json, DIR/model.safetensors     the latest generator, loadable by from_pretrained
    DIR/training.json                          the full training configuration
    DIR/checkpoints/step_00001000/             generator.safetensors, discriminator.safetensors, state.pt
    DIR/metrics.jsonl                          one JSON line per log and validation event

Checkpoints are written into a temporary folder and renamed into place, so a run killed at
any moment leaves the previous checkpoints whole; running again on the same folder resumes
from the newest one. SIGINT (Ctrl-C) or SIGTERM (a scheduler's preemption) stops a run after
the step in progress, with a checkpoint of that step; a second one stops it at once.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from ..dsp.io import atomic_write
from ..inference.scores import VALIDATION_KEYS, copy_synthesis_scores
from ..models.checkpoint import from_pretrained, save_pretrained
from ..models.discriminators import (
    CombinedDiscriminator,
    MultiPeriodDiscriminator,
    MultiResolutionDiscriminator,
    MultiScaleSubbandCQTDiscriminator,
)
from ..models.generator import Generator
from ..nn.activations import Snake, SnakeBeta, init_snake_
from .config import TrainConfig
from .data import AudioDataset, MelAudioDataset, PeriodicToneDataset, ToneSpec
from .losses import (
    MultiScaleMelLoss,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    multi_resolution_stft_distance,
    phase_loss,
)

__all__ = ["Trainer", "build_datasets", "build_discriminator", "latest_checkpoint", "load_folded_weights"]

log = logging.getLogger(__name__)

_STEP_DIR = "step_{:08d}"


def latest_checkpoint(output: Path) -> Path | None:
    """The newest complete checkpoint folder under ``output/checkpoints``."""
    folder = output / "checkpoints"
    if not folder.is_dir():
        return None
    steps = sorted(p for p in folder.iterdir() if p.name.startswith("step_") and (p / "state.pt").is_file())
    return steps[-1] if steps else None


def build_discriminator(config: TrainConfig) -> CombinedDiscriminator:
    sr, mult = config.generator.sampling_rate, config.training.discriminator_channel_mult
    parts = {
        "mpd": lambda: MultiPeriodDiscriminator(channel_mult=mult),
        "mrd": lambda: MultiResolutionDiscriminator(channels=max(1, round(32 * mult))),
        "cqtd": lambda: MultiScaleSubbandCQTDiscriminator(
            sr, filters=max(1, round(128 * mult)), max_filters=max(1, round(1024 * mult))
        ),
    }
    return CombinedDiscriminator(*(parts[name]() for name in config.training.discriminators))


def build_datasets(config: TrainConfig) -> tuple[Dataset, Dataset | None]:
    """Training dataset and (optional) validation dataset of whole clips."""
    data, sr, segment = config.data, config.generator.sampling_rate, config.training.segment_size
    if data.kind == "tones":
        train: Dataset = PeriodicToneDataset(sr, segment, spec=ToneSpec(data.f0_min, data.f0_max), seed=data.seed)
    elif data.kind == "folder":
        train = AudioDataset.from_folder(data.path, sr, segment, gain_db=data.gain_db, noise_db=data.noise_db)
    elif data.kind == "mels":
        g = config.generator
        train = MelAudioDataset(data.path, sr, g.hop_size, g.num_mels, segment // g.hop_size)
    else:
        train = AudioDataset.from_filelist(data.filelist, data.path, sr, segment, gain_db=data.gain_db, noise_db=data.noise_db)
    validation: Dataset | None = None
    if data.kind == "tones":  # held-out tones: another seed
        seconds = int(config.training.validation_seconds * sr)
        validation = PeriodicToneDataset(
            sr, seconds, size=config.training.validation_clips, spec=ToneSpec(data.f0_min, data.f0_max), seed=data.seed + 1
        )
    elif data.validation_filelist:
        validation = AudioDataset.from_filelist(data.validation_filelist, data.validation or data.path, sr, None, random_segments=False)
    elif data.validation:
        validation = AudioDataset.from_folder(data.validation, sr, None, random_segments=False)
    return train, validation


def load_folded_weights(model: nn.Module, state: dict[str, Tensor]) -> None:
    """Load a state dict with plain ``weight`` tensors into a model whose convolutions may be
    weight-normalised: assigning a parametrised weight sets its magnitude and direction."""
    plain = {}
    with torch.no_grad():
        for name, tensor in state.items():
            prefix, _, leaf = name.rpartition(".")
            module = model.get_submodule(prefix) if prefix else model
            if leaf == "weight" and parametrize.is_parametrized(module, "weight"):
                module.weight = tensor.to(module.weight.device)
            else:
                plain[name] = tensor
    missing, unexpected = model.load_state_dict(plain, strict=False)
    missing = [k for k in missing if ".parametrizations.weight.original" not in k]
    if missing or unexpected:
        raise ValueError(f"weights do not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")


def _atomic_replace_dir(build, target: Path) -> None:
    """Write a folder with ``build(tmp_dir)`` and rename it to ``target`` in one step."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}"
    tmp.mkdir()  # with the usual permissions (mkdtemp's are private)
    try:
        build(tmp)
        for f in tmp.iterdir():  # make the data durable before the rename publishes it
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class _Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device: str | torch.device | None) -> tuple[_Distributed, torch.device]:
    """This process's place in a torchrun job (``WORLD_SIZE`` > 1: join its process group) and
    its device: the given one, else CUDA when available, else the CPU; a CUDA device without
    an index is the local rank's GPU."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return _Distributed(), device
    if device.type == "cuda":
        torch.cuda.set_device(device)  # before NCCL starts: its communicators use the current device
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return _Distributed(dist.get_rank(), dist.get_world_size(), local_rank), device


def snake_statistics(model: nn.Module) -> dict[str, float]:
    """Mean and minimum |α| (and β) of every Snake layer, in linear scale."""
    stats: dict[str, float] = {}
    for name, m in model.named_modules():
        if isinstance(m, (Snake, SnakeBeta)):
            alpha = m.frequency().detach().abs()
            stats[f"alpha_mean/{name}"] = alpha.mean().item()
            stats[f"alpha_min/{name}"] = alpha.min().item()
            if isinstance(m, SnakeBeta):
                stats[f"beta_min/{name}"] = m.magnitude().detach().abs().min().item()
    return stats


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def _stop_requests() -> Iterator[list[signal.Signals]]:
    """While inside, SIGINT and SIGTERM are appended to the yielded list instead of ending the
    process, so the step in progress can finish and be checkpointed; a second one raises
    KeyboardInterrupt (the checkpoints on disk stay whole). Outside the main thread, where
    handlers cannot be set, the list stays empty."""
    requested: list[signal.Signals] = []
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def record(signum: int, frame: object) -> None:
        if requested:
            raise KeyboardInterrupt
        requested.append(signal.Signals(signum))

    previous = {s: signal.signal(s, record) for s in _STOP_SIGNALS}
    try:
        yield requested
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers leave SIGINT and SIGTERM to the trainer, which shuts them down itself."""
    for s in _STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)


def _tensorboard(folder: Path):
    """A TensorBoard writer when the ``tensorboard`` package is installed (extra ``train``), else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.info(
            "TensorBoard logging is off: the tensorboard package is missing"
            ' (install the "train" extra: pip install -e ".[train]"); metrics.jsonl has every record'
        )
        return None
    return SummaryWriter(str(folder))


def _config_changes(old: dict, new: dict) -> list[str]:
    """``section.key: old -> new`` for every setting that differs, ``max_steps`` aside (raising it is how a run goes on)."""
    changes = []
    for section in new:
        before, after = old.get(section, {}), new[section]
        for key in sorted(set(before) | set(after)):
            if key != "max_steps" and before.get(key) != after.get(key):
                changes.append(f"{section}.{key}: {before.get(key)} -> {after.get(key)}")
    return changes


class Trainer:
    """Trains a generator against discriminators; see the module docstring for the folder layout.

    Args:
        config: what and how to train.
        output: run folder; an existing one is resumed.
        device: defaults to CUDA (the local rank's GPU) when available, else CPU.
        init_from: a run or pretrained folder to start from (:meth:`initialize_from`) when
            ``output`` has no checkpoint to resume; every rank of a torchrun job takes the
            same decision, rank 0's.

    Under torchrun the trainer joins the job's process group; :meth:`fit` leaves it when it
    ends, also on error.
    """

    def __init__(
        self, config: TrainConfig, output: str | Path, device: str | torch.device | None = None, init_from: str | Path | None = None
    ) -> None:
        self.config = config
        self.output = Path(output)
        self._writer = None
        self.stopped_by: signal.Signals | None = None  # the signal that stopped fit() early, if one did
        self.dist, self.device = _init_distributed(device)
        try:
            if self.device.type == "cpu":
                # Early in training, values in the discriminators' passes fall to denormals,
                # which CPUs process ~100x slower. Flushing them is per thread and inherited by
                # threads started later: call torch.set_flush_denormal(True) before the first
                # parallel torch op of the process (the CLI does) to cover torch's worker threads.
                torch.set_flush_denormal(True)
            opt = config.training
            torch.manual_seed(opt.seed + self.dist.rank)
            self.generator = Generator(config.generator).to(self.device)
            self.discriminator = build_discriminator(config).to(self.device)
            betas = (opt.adam_b1, opt.adam_b2)
            self.opt_g = torch.optim.AdamW(self.generator.parameters(), opt.learning_rate, betas=betas)
            self.opt_d = torch.optim.AdamW(self.discriminator.parameters(), opt.learning_rate, betas=betas)
            self.sched_g = torch.optim.lr_scheduler.ExponentialLR(self.opt_g, opt.lr_decay)
            self.sched_d = torch.optim.lr_scheduler.ExponentialLR(self.opt_d, opt.lr_decay)
            self.step = 0
            self._checked_batches: set[tuple] = set()
            self.train_set, self.validation_set = build_datasets(config)
            self.multiscale_mel = (
                MultiScaleMelLoss(config.generator.sampling_rate).to(self.device) if opt.mel_loss == "multiscale" else None
            )
            self._start(init_from)  # before DDP wraps the models: it does not all-reduce weights initialize_from assigns later
            self._g, self._d = self.generator, self.discriminator
            if self.dist.world_size > 1:
                ids = [self.device.index] if self.device.type == "cuda" else None
                self._g = nn.parallel.DistributedDataParallel(self._g, device_ids=ids)
                self._d = nn.parallel.DistributedDataParallel(self.discriminator, device_ids=ids)
        except BaseException:
            self.close()
            raise

    # -- checkpoints -----------------------------------------------------------------

    def initialize_from(self, source: str | Path) -> None:
        """Start a fine-tuning run from another run folder or a pretrained vocoder folder.

        The generator takes the folder's ``model.safetensors`` (or an official BigVGAN
        checkpoint); the discriminators take those of the folder's newest training
        checkpoint when it has one. Optimiser state and step count start afresh. The
        folder's features (sample rate, mel bands, hop) must equal this run's.
        """
        source = Path(source)
        if self.step:
            raise ValueError(
                f"{self.output} resumed at step {self.step}: initialising it from {source} would undo that;"
                " pass init_from to Trainer, which initialises only a run with nothing to resume"
            )
        pretrained = from_pretrained(source)
        ours, theirs = self.config.generator, pretrained.config
        for key in ("sampling_rate", "num_mels", "hop_size", "n_fft", "win_size", "fmin", "fmax"):
            if getattr(ours, key) != getattr(theirs, key):
                raise ValueError(f"{source} was trained with {key}={getattr(theirs, key)}, this config has {getattr(ours, key)}")
        load_folded_weights(self.generator, pretrained.state_dict())
        checkpoint = latest_checkpoint(source)
        if checkpoint is not None and (checkpoint / "discriminator.safetensors").is_file():
            self.discriminator.load_state_dict(load_file(str(checkpoint / "discriminator.safetensors"), device=str(self.device)))
            log.info("initialised from %s (discriminators from %s)", source, checkpoint.name)
        else:
            log.info("initialised from %s", source)

    def _load_discriminator(self, checkpoint: Path, step: int) -> None:
        """Load the checkpoint's discriminators; a checkpoint of the mel-only warm-up (at or
        before ``discriminator_start``) has none, and this run's freshly initialised ones,
        seeded as that run's were, stand in for them."""
        path = checkpoint / "discriminator.safetensors"
        if path.is_file():
            self.discriminator.load_state_dict(load_file(str(path), device=str(self.device)))
        elif step > self.config.training.discriminator_start:
            raise FileNotFoundError(f"{checkpoint} has no discriminator.safetensors")

    def _start(self, init_from: str | Path | None) -> None:
        """Resume the newest checkpoint, else initialise from ``init_from`` when given, else draw
        Snake α as the config's ``snake_init`` says. Rank 0 decides for every rank: replicas that
        started differently would drift apart."""
        checkpoint = None
        if self.dist.main:
            for leftover in (self.output / "checkpoints").glob(".step_*"):  # from a run killed mid-write
                shutil.rmtree(leftover, ignore_errors=True)
            checkpoint = latest_checkpoint(self.output)
        if self.dist.world_size > 1:
            decision = [checkpoint]
            dist.broadcast_object_list(decision)
            checkpoint = decision[0]
        if checkpoint is not None:
            self._resume(checkpoint)
            if init_from is not None and self.dist.main:
                log.info("%s not used: %s resumes from its own checkpoint", init_from, self.output)
        elif init_from is not None:
            self.initialize_from(init_from)
        elif self.config.training.snake_init:
            init_snake_(self.generator, self.config.training.snake_init)

    def _resume(self, checkpoint: Path) -> None:
        device = str(self.device)
        self.generator.load_state_dict(load_file(str(checkpoint / "generator.safetensors"), device=device))
        state = torch.load(checkpoint / "state.pt", map_location=self.device, weights_only=True)
        self._load_discriminator(checkpoint, int(state["step"]))
        for obj, key in ((self.opt_g, "opt_g"), (self.opt_d, "opt_d"), (self.sched_g, "sched_g"), (self.sched_d, "sched_d")):
            obj.load_state_dict(state[key])
        self.step = int(state["step"])
        self._apply_learning_rate()
        torch.set_rng_state(state["rng"].cpu())
        self._truncate_metrics()
        log.info("resumed from %s at step %d", checkpoint, self.step)
        changes = _config_changes(state["config"], self.config.to_dict()) if "config" in state else []
        if changes and self.dist.main:
            log.warning("the config differs from the one %s was trained with: %s", checkpoint.name, "; ".join(changes))

    def _apply_learning_rate(self) -> None:
        """The config's schedule at the current step, ``learning_rate · lr_decay^step``: a
        resumed run follows its config's learning rate, as a fresh run would at this step."""
        opt = self.config.training
        lr = opt.learning_rate * opt.lr_decay**self.step
        for optimizer, scheduler in ((self.opt_g, self.sched_g), (self.opt_d, self.sched_d)):
            scheduler.gamma = opt.lr_decay
            scheduler.base_lrs = [opt.learning_rate] * len(optimizer.param_groups)
            for group in optimizer.param_groups:
                group["initial_lr"], group["lr"] = opt.learning_rate, lr
            scheduler._last_lr = [lr] * len(optimizer.param_groups)

    def _truncate_metrics(self) -> None:
        """Drop the records of steps after the checkpoint being resumed: they will be redone."""
        path = self.output / "metrics.jsonl"
        if not self.dist.main or not path.is_file():
            return
        lines = [line for line in path.read_text().splitlines() if line and json.loads(line).get("step", 0) <= self.step]
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(line + "\n" for line in lines))
        os.replace(tmp, path)

    def save_checkpoint(self) -> Path:
        """Write the checkpoint of the current step (rank 0) and drop the oldest ones."""
        target = self.output / "checkpoints" / _STEP_DIR.format(self.step)

        def build(tmp: Path) -> None:
            def weights(module: nn.Module, name: str) -> None:  # via atomic_write for the usual file permissions
                atomic_write(tmp / name, lambda p: save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(p)))

            weights(self.generator, "generator.safetensors")
            if self.step > self.config.training.discriminator_start:  # before, they are as initialised: not worth 40 MB
                weights(self.discriminator, "discriminator.safetensors")
            state = {
                "step": self.step, "rng": torch.get_rng_state(), "config": self.config.to_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "sched_g": self.sched_g.state_dict(), "sched_d": self.sched_d.state_dict(),
            }  # fmt: skip
            torch.save(state, tmp / "state.pt")

        _atomic_replace_dir(build, target)
        save_pretrained(self.generator, self.output)
        old = sorted(p for p in (self.output / "checkpoints").iterdir() if p.name.startswith("step_"))
        for stale in old[: -self.config.training.keep_checkpoints]:
            shutil.rmtree(stale, ignore_errors=True)
        return target

    # -- one step ----------------------------------------------------------------------

    def train_step(self, batch: Tensor | tuple[Tensor, Tensor]) -> dict[str, float]:
        """One discriminator and one generator update on a batch of audio (B, 1, T), or of
        given mels with their audio ((B, n_mels, F), (B, 1, F·hop)). Before the config's
        ``discriminator_start`` step the generator learns from the mel loss alone."""
        opt = self.config.training
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else nullcontext()
        given_mel, wav = (t.to(self.device) for t in batch) if isinstance(batch, (tuple, list)) else (None, batch.to(self.device))
        check = self._first_of_its_shape(wav, given_mel)
        with torch.no_grad():
            target = self.generator.mel(wav, check=check)  # (B, 1, T) -> (B, n_mels, F): the mel loss compares with the real audio's
        mel = target if given_mel is None else given_mel
        with autocast:
            fake = self._g(mel, check=check)  # (B, n_mels, F) -> (B, 1, F·hop)
        wav = wav[..., : fake.shape[-1]]
        fake = fake.float()

        adversarial = self.step >= opt.discriminator_start
        zero = torch.zeros((), device=self.device)
        loss_d, loss_adv, loss_fm, grad_d = zero, zero, zero, 0.0
        if adversarial:
            batch = wav.shape[0]
            wav_d, fake_d = self._discriminator_window(wav, fake)  # (B, 1, T) -> (B, 1, T_d)
            with autocast:  # real and fake through the discriminators as one batch: one forward per backward
                logits, _ = self._d(torch.cat([wav_d, fake_d.detach()]))  # (2B, 1, T_d) -> [(2B, N_k)]
                loss_d, _ = discriminator_loss([x[:batch] for x in logits], [x[batch:] for x in logits], kind=opt.gan_loss)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            grad_d = nn.utils.clip_grad_norm_(self.discriminator.parameters(), opt.clip_grad_norm)
            self.opt_d.step()

        if self.multiscale_mel is None:
            loss_mel = nn.functional.l1_loss(self.generator.mel(fake, check=False), target)
        else:
            loss_mel = self.multiscale_mel(wav, fake)
        if adversarial:
            with autocast:
                with torch.no_grad():
                    _, real_fmaps = self.discriminator(wav_d)
                # the generator's update needs gradients through the discriminators, not for
                # their weights: frozen, they skip those weight gradients (and their all-reduce)
                self.discriminator.requires_grad_(False)
                fake_logits, fake_fmaps = self.discriminator(fake_d)
                self.discriminator.requires_grad_(True)
                loss_adv, _ = generator_adversarial_loss(fake_logits, kind=opt.gan_loss)
                loss_fm = feature_matching_loss(real_fmaps, fake_fmaps)
        loss_g = loss_adv + opt.lambda_feature * loss_fm + opt.lambda_mel * loss_mel
        extra = {}
        if opt.lambda_stft:
            extra["loss_stft"] = multi_resolution_stft_distance(wav, fake)
            loss_g = loss_g + opt.lambda_stft * extra["loss_stft"]
        if opt.lambda_phase:
            g = self.config.generator
            absolute = g.istft_phase != "vocoder"  # a vocoder's phase starts turning where the segment does
            extra["loss_phase"] = phase_loss(wav, fake, g.n_fft, g.hop_size, absolute=absolute)
            loss_g = loss_g + opt.lambda_phase * extra["loss_phase"]
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        grad_g = nn.utils.clip_grad_norm_(self.generator.parameters(), opt.clip_grad_norm)
        self.opt_g.step()
        self.sched_g.step()
        if adversarial:
            self.sched_d.step()
        self.step += 1
        values = {"loss_d": loss_d, "loss_g": loss_g, "loss_mel": loss_mel, "loss_adv": loss_adv, "loss_fm": loss_fm, **extra}
        values = {k: v.item() for k, v in values.items()}
        if not all(math.isfinite(v) for v in values.values()):
            raise FloatingPointError(f"non-finite loss at step {self.step}: {values}")
        return {**values, "grad_norm_g": float(grad_g), "grad_norm_d": float(grad_d), "lr": self.sched_g.get_last_lr()[0]}

    def _first_of_its_shape(self, wav: Tensor, mel: Tensor | None) -> bool:
        """Whether the model checks this batch's values: the first batch of each shape only, as
        their reductions over the data (finite values, peak) make the host wait for the GPU at
        every step. A later non-finite batch still ends the step with a non-finite loss, which
        is reported."""
        key = (wav.shape, wav.dtype, None if mel is None else (mel.shape, mel.dtype))
        if key in self._checked_batches:
            return False
        self._checked_batches.add(key)
        return True

    def _discriminator_window(self, wav: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        """The same random window of the real and generated batch, ``discriminator_segment``
        samples long (the whole segment when 0 or longer): the discriminators' cost grows with
        their input, the reconstruction losses keep the whole segment. Shape: (B, 1, T) -> (B, 1, T_d)."""
        length = self.config.training.discriminator_segment
        if not length or length >= wav.shape[-1]:
            return wav, fake
        start = int(torch.randint(0, wav.shape[-1] - length + 1, ()))
        return wav[..., start : start + length], fake[..., start : start + length]

    # -- validation --------------------------------------------------------------------

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Copy-synthesis scores on the validation clips (:mod:`snakeaudio.inference.scores`,
        the ones ``snakeaudio evaluate`` reports), averaged over clips."""
        if self.validation_set is None:
            return {}
        opt, sr = self.config.training, self.config.generator.sampling_rate
        self.generator.eval()
        totals: dict[str, list[float]] = {}
        count = min(len(self.validation_set), opt.validation_clips)
        for n, i in enumerate(np.linspace(0, len(self.validation_set) - 1, count).round().astype(int).tolist()):  # spread over the set
            wav = self.validation_set[i][..., : int(opt.validation_seconds * sr)].to(self.device)[None]  # (1, 1, T)
            mel = self.generator.mel(wav)
            fake = self.generator(mel)
            wav = wav[..., : fake.shape[-1]]
            scores = copy_synthesis_scores(wav[0, 0], fake[0, 0], self.generator)
            values = {VALIDATION_KEYS[k]: v for k, v in scores.as_dict().items()}
            for key, value in values.items():
                totals.setdefault(key, []).append(value)
            if n == 0 and self._writer is not None:
                self._writer.add_audio("validation/generated", fake[0, 0].cpu(), self.step, sample_rate=sr)
                spec = self.generator.mel(fake)[0].flip(0)  # (n_mels, F), low frequencies at the bottom
                self._writer.add_image("validation/mel", ((spec - spec.min()) / (spec.max() - spec.min() + 1e-9))[None].cpu(), self.step)
        self.generator.train()
        return {key: float(np.nanmean(v)) if not all(np.isnan(v)) else float("nan") for key, v in totals.items()}

    # -- the loop ----------------------------------------------------------------------

    def _log(self, record: dict) -> None:
        with open(self.output / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._writer is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, float) and math.isfinite(value):
                    self._writer.add_scalar(key, value, record["step"])

    def close(self) -> None:
        """Close the TensorBoard writer and leave the torchrun job's process group."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self.dist.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()

    def fit(self, max_steps: int | None = None) -> int:
        """Train until ``max_steps`` (default: the config's), or until SIGINT or SIGTERM stops
        it after a step, with a checkpoint (:attr:`stopped_by` names the signal). Returns the
        final step. Closes the trainer (:meth:`close`) when it ends, also on error."""
        try:
            return self._fit(max_steps or self.config.training.max_steps)
        finally:
            self.close()

    def _fit(self, max_steps: int) -> int:
        opt = self.config.training
        if self.step >= max_steps:
            if self.dist.main:
                log.warning("nothing to do: %s is at step %d and max_steps is %d (raise it to train on)", self.output, self.step, max_steps)
            return self.step
        if self.dist.main:
            self.output.mkdir(parents=True, exist_ok=True)
            (self.output / "training.json").write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
            if self.step:
                log.info("resuming at step %d of %d", self.step, max_steps)
        sampler = DistributedSampler(self.train_set, seed=opt.seed) if self.dist.world_size > 1 else None
        loader = DataLoader(
            self.train_set, batch_size=opt.batch_size, shuffle=sampler is None, sampler=sampler,
            num_workers=opt.num_workers, drop_last=True, persistent_workers=opt.num_workers > 0,
            worker_init_fn=_ignore_stop_signals,
        )  # fmt: skip
        if len(loader) == 0:
            raise ValueError(f"the training set has {len(self.train_set)} items, fewer than one batch of {opt.batch_size}")
        self._writer = _tensorboard(self.output / "tensorboard") if self.dist.main else None
        bar = tqdm(total=max_steps, initial=self.step, desc="training", unit="step", disable=not self.dist.main)
        epoch = 0
        start = time.time()
        with _stop_requests() as requested:
            while self.step < max_steps and self.stopped_by is None:
                if sampler is not None:
                    sampler.set_epoch(epoch)
                self._epoch(loader, bar, start, max_steps, requested)
                epoch += 1
        bar.close()
        if self.dist.world_size > 1:
            dist.barrier()
        return self.step

    def _epoch(self, loader: DataLoader, bar: tqdm, start: float, max_steps: int, requested: list[signal.Signals]) -> None:
        """Steps over one pass of ``loader``, until ``max_steps`` or a stop request."""
        opt = self.config.training
        for wav in loader:
            values = self.train_step(wav)
            bar.update(1)
            bar.set_postfix(loss_mel=f"{values['loss_mel']:.3f}", loss_d=f"{values['loss_d']:.3f}")
            if self.dist.main and self.step % opt.log_every == 0:
                stats = snake_statistics(self.generator)
                collapsed = [k for k, v in stats.items() if k.startswith("alpha_min") and v < 1e-3]
                if collapsed:
                    warnings.warn(f"Snake α collapsing toward zero at step {self.step}: {', '.join(collapsed[:4])}", stacklevel=2)
                self._log({"step": self.step, "time": time.time() - start, **values, **stats})
            if self.dist.main and self.step % opt.validate_every == 0:
                metrics = self.validate()
                if metrics:
                    self._log({"step": self.step, **metrics})
            stop = self._agreed_stop(requested)
            if self.dist.main and (stop or self.step % opt.checkpoint_every == 0 or self.step == max_steps):
                self.save_checkpoint()
            if stop:
                if self.dist.main:
                    log.warning("stopped by %s at step %d; checkpoint saved in %s: run the same command to resume",
                                self.stopped_by.name, self.step, self.output / "checkpoints")  # fmt: skip
                return
            if self.step >= max_steps:
                return

    def _agreed_stop(self, requested: list[signal.Signals]) -> bool:
        """Whether any rank was asked to stop (every rank must stop after the same step)."""
        signum = int(requested[0]) if requested else 0
        if self.dist.world_size > 1:
            flag = torch.tensor([signum], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            signum = int(flag)
        if signum:
            self.stopped_by = signal.Signals(signum)
        return bool(signum)
