"""Training: stage `srresnet` (pixel loss) then stage `srgan` (pixel + content + adversarial), resumable.

Either stage trains on clean bicubic reductions (`degradation="bicubic"`, the `srgan` and `srresnet`
models) or on the real-world degradation pipeline of `model.degradations` (`"realworld"`, `srgan-real`).

A checkpoint (`last.pt` in the output folder) carries the config it was trained with, the
generator and discriminator, their optimisers, the generator's exponential moving average (when
`ema_decay` is set) and the iteration; `generator.safetensors` beside it is the exported generator (the
average, when there is one), rewritten at every checkpoint, and at the run's end with its BatchNorm
statistics recomputed over training batches (`precise_bn_batches`, `model.precise_bn`). Checkpoints are
loaded with `weights_only=True`, so even a tampered checkpoint cannot run code.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import platform
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from model.data import PatchSampler, RealWorldPairs, training_pairs
from model.discriminator import Discriminator
from model.evaluate import evaluate_generator
from model.generator import Generator
from model.inference import resolve_device
from model.losses import (
    EffNetFeatures,
    VGG19Features,
    discriminator_loss,
    effnet_content_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    subpixel_grid_loss,
    vgg_content_loss,
)
from model.precise_bn import DEFAULT_BATCHES, batch_norms, with_precise_bn
from model.weights import load_generator, save_generator

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything that defines a run; stored in every checkpoint."""

    stage: str = "srresnet"  # "srresnet": pixel loss only; "srgan": adversarial fine-tuning
    data: list[str] = field(default_factory=list)  # folders of HR training images
    val_data: str | None = None  # a folder (e.g. Set5) for periodic validation PSNR; None skips it
    init: str | None = None  # generator weights to start from: the srresnet result, for stage srgan
    # A new run that continues another run's networks with a new recipe (loss weights, schedule): its
    # last.pt's generator, moving average and, for two srgan stages, discriminator; the optimisers start
    # afresh (use warmup_iterations) and the iteration count from 0. Exclusive with `init`.
    init_checkpoint: str | None = None
    num_feat: int = 64  # paper
    num_block: int = 16  # paper
    scale: int = 4
    iterations: int = 100_000  # total, including those already done when resuming
    batch_size: int = 16  # paper
    patch_size: int = 96  # paper's HR crop; the discriminator is built for this side
    lr: float = 2e-4  # Adam; 2x the paper's 1e-4, stable with the cosine decay below and faster early
    min_lr_ratio: float = 0.01  # cosine decay floor as a fraction of lr: late iterations refine, not jump
    warmup_iterations: int = 0  # linear ramp to lr: a fresh Adam's first steps jolt a pretrained --init
    pixel_loss: str = "l1"  # "l1" or "mse": L1 converges to a higher PSNR for SR (Lim et al. 2017)
    # srgan stage: "dfeat" (discriminator features, no pretrained network), "effnet" (ImageNet
    # EfficientNet-Lite0 from the train extra) or "vgg19" (the paper's, needs vgg_weights)
    content_loss: str = "dfeat"
    vgg_weights: str | None = None  # local VGG19 weights for content_loss="vgg19"
    effnet_weights: str | None = None  # content_loss="effnet": None takes the train extra's packaged file
    gan_loss: str = "bce"  # "bce": the paper's; "ragan": ESRGAN's relativistic average
    # "bicubic": LR is the clean MATLAB bicubic reduction; "realworld": two-stage blur, resize, noise and
    # JPEG (model.degradations), for inputs that were not made by bicubic.
    degradation: str = "bicubic"
    # "realworld" only: the share of images degraded the way most web images are made (one resize, the
    # second order's noise, JPEG) instead of by the two orders (DegradationConfig.simple_prob).
    web_share: float = 0.5
    # srgan stage loss: pixel_weight x pixel + content_weight x content + adversarial_weight x adversarial.
    # These defaults are the recipe that was searched for a few hundred CPU iterations with `dfeat` and the
    # pixel term in charge; MODEL_CARD.md records that search and the weights of the later runs.
    pixel_weight: float = 1.0
    content_weight: float = 0.01
    adversarial_weight: float = 5e-4  # half the paper's 1e-3, which is relative to a VGG content loss
    # x the period-`scale` component of the error (losses.subpixel_grid_loss): a perceptual loss on a
    # pixel-shuffle generator otherwise draws a faint checkerboard before any texture.
    grid_weight: float = 0.0
    seed: int = 0
    log_every: int = 50
    val_every: int = 500
    checkpoint_every: int = 250  # CPU runs are slow: losing more than a few minutes hurts
    device: str = "auto"
    # Stop with a checkpoint after this long (lent GPUs are timed). The cosine then also reaches its
    # floor by this time (the lr is the lower of the iteration and the time schedule), so a run the
    # clock ends still ends annealed; the time schedule restarts with each invocation.
    time_limit_min: float | None = None
    amp: bool = True  # bf16 autocast on CUDA; ignored on the CPU
    # Exponential moving average of the generator's weights (Real-ESRGAN uses 0.999); 0 turns it off.
    # An adversarial run's weights swing from step to step (MODEL_CARD.md, `srgan_x4`); the
    # average is what validation scores and what is exported.
    ema_decay: float = 0.0
    # Validation and the final export recompute the BatchNorm statistics over this many training batches
    # (model.precise_bn): the running ones follow the last ten or so batches, which made validation swing
    # at a small batch. 0 keeps the running statistics.
    precise_bn_batches: int = DEFAULT_BATCHES
    # Fine-tuning: the generator's BatchNorm layers normalise by fixed statistics, in training as at
    # inference, instead of by each batch's own. They are recomputed once, at the start of a new run, over
    # `precise_bn_batches` batches of this run's data (model.precise_bn), and then held: the network learns
    # with the statistics it is exported with, so neither a batch's make-up (the real-world pipeline's
    # paths) nor which batches came last moves its output. Its affine weights still train.
    freeze_bn: bool = False

    def __post_init__(self) -> None:
        if self.stage not in ("srresnet", "srgan"):
            raise ValueError(f"stage must be srresnet or srgan, got {self.stage!r}")
        if self.pixel_loss not in ("l1", "mse"):
            raise ValueError(f"pixel_loss must be l1 or mse, got {self.pixel_loss!r}")
        if self.content_loss not in ("dfeat", "vgg19", "effnet"):
            raise ValueError(f"content_loss must be dfeat, vgg19 or effnet, got {self.content_loss!r}")
        if self.gan_loss not in ("bce", "ragan"):
            raise ValueError(f"gan_loss must be bce or ragan, got {self.gan_loss!r}")
        if self.degradation not in ("bicubic", "realworld"):
            raise ValueError(f"degradation must be bicubic or realworld, got {self.degradation!r}")
        if self.stage == "srgan" and self.content_loss == "vgg19" and not self.vgg_weights:
            raise ValueError("content_loss vgg19 needs vgg_weights: a local VGG19 weights file")
        if not self.data:
            raise ValueError("data: at least one folder of training images is needed")
        if self.init and self.init_checkpoint:
            raise ValueError("init and init_checkpoint are exclusive: give one starting point")
        if not 0.0 <= self.web_share <= 1.0:
            raise ValueError(f"web_share must be in [0, 1], got {self.web_share!r}")
        if self.precise_bn_batches < 0:
            raise ValueError(f"precise_bn_batches must be >= 0, got {self.precise_bn_batches!r}")
        if self.freeze_bn and not self.precise_bn_batches:
            raise ValueError("freeze_bn recomputes the statistics it freezes: precise_bn_batches must be > 0")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay!r}")

    @property
    def recomputed_bn_batches(self) -> int:
        """Batches that validation and the final export recompute the BatchNorm statistics over: none under
        `freeze_bn`, whose statistics are the ones the network trained with."""
        return 0 if self.freeze_bn else self.precise_bn_batches

    @property
    def arch(self) -> dict[str, int]:
        return {
            "num_in_ch": 3,
            "num_out_ch": 3,
            "num_feat": self.num_feat,
            "num_block": self.num_block,
            "upscale": self.scale,
        }


def _to_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC patches as float NCHW in [0, 1], channels_last (the layout the model runs in)."""
    return batch.permute(0, 3, 1, 2).float().div_(255).contiguous(memory_format=torch.channels_last)


@contextlib.contextmanager
def _sigterm_checkpoints() -> Iterator[None]:
    """Within this block SIGTERM stops training like Ctrl-C: with a checkpoint. Schedulers, container
    stops and `kill` send SIGTERM, and a job started in the background by a non-interactive shell
    ignores SIGINT, so without this the only way to stop it would lose the work since the last checkpoint."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers live on the main thread
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Trainer:
    """One training run in one output folder; `run()` resumes from `last.pt` when it exists."""

    def __init__(self, config: TrainConfig, out: str | Path) -> None:
        self.out = Path(out)
        self.checkpoint_path = self.out / "last.pt"
        self.state: dict[str, Any] | None = None
        if self.checkpoint_path.exists():
            self.state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
            saved = TrainConfig(**self.state["config"])
            # The stored config wins, except the run's length, time limit and averaging, which a resume may
            # change (an average switched on mid-run starts from the weights of the resumed iteration).
            config = dataclasses.replace(
                saved,
                iterations=config.iterations,
                time_limit_min=config.time_limit_min,
                ema_decay=config.ema_decay,
            )
        self.config = config
        self.device = resolve_device(config.device)
        torch.manual_seed(config.seed)
        cuda = self.device.type == "cuda"
        if cuda:
            torch.backends.cudnn.benchmark = True  # fixed patch shapes: pick the fastest conv kernels once
        self.generator = Generator(**config.arch).to(self.device)
        self.generator.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        # fused: one kernel per step for all parameters instead of several per tensor (CUDA only).
        self.g_opt = torch.optim.Adam(
            self.generator.parameters(), lr=config.lr, betas=(0.9, 0.999), fused=cuda
        )
        self.discriminator: Discriminator | None = None
        self.d_opt: torch.optim.Optimizer | None = None
        self.vgg: VGG19Features | None = None
        self.effnet: EffNetFeatures | None = None
        if config.stage == "srgan":
            self.discriminator = Discriminator(input_size=config.patch_size).to(self.device)
            self.discriminator.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            self.d_opt = torch.optim.Adam(
                self.discriminator.parameters(), lr=config.lr, betas=(0.9, 0.999), fused=cuda
            )
            if config.content_loss == "vgg19":
                assert config.vgg_weights is not None
                self.vgg = VGG19Features(config.vgg_weights).to(self.device)
            elif config.content_loss == "effnet":
                self.effnet = EffNetFeatures(config.effnet_weights).to(self.device)
        self.iteration = 0
        self.elapsed_s = 0.0
        self.best_val_psnr: float | None = None
        forked: dict[str, Any] | None = None
        if self.state is not None:
            self._restore(self.state)
        elif config.init_checkpoint:
            forked = self._fork(config.init_checkpoint)
        elif config.init:
            init_model, _ = load_generator(config.init)
            self.generator.load_state_dict(init_model.state_dict())
            logger.info("generator initialised from %s", config.init)
        self.ema: Generator | None = None
        self._pairs: PatchSampler | RealWorldPairs | None = None  # the run's, once loaded
        self._precise: tuple[int, torch.nn.Module] | None = None  # scored() at that iteration
        if config.ema_decay:
            self.ema = copy.deepcopy(self.generator).requires_grad_(False).eval()
            averaged = self.state if self.state is not None else forked
            if averaged is not None and "generator_ema" in averaged:
                self.ema.load_state_dict(averaged["generator_ema"])
        if config.freeze_bn and self.state is None:
            self._freeze_statistics()

    def _freeze_statistics(self) -> None:
        """A new `freeze_bn` run's statistics: recomputed over this run's training batches, for the
        generator and its average (which keeps its own weights), then held for the whole run."""
        c = self.config
        precise = with_precise_bn(self.generator, self._loaded_pairs(), batches=c.precise_bn_batches,
                                  batch_size=c.batch_size)
        statistics = dict(precise.named_buffers())
        for model in (self.generator, self.ema):
            if model is not None:
                for name, buffer in model.named_buffers():
                    buffer.copy_(statistics[name])
        logger.info("BatchNorm statistics recomputed over %d batches and frozen", c.precise_bn_batches)

    def _train_mode(self) -> None:
        """The generator in training mode, except its BatchNorm layers under `freeze_bn`."""
        self.generator.train()
        if self.config.freeze_bn:
            for norm in batch_norms(self.generator):
                norm.eval()

    def _restore(self, state: dict[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        self.g_opt.load_state_dict(state["g_opt"])
        if self.discriminator is not None and self.d_opt is not None:
            self.discriminator.load_state_dict(state["discriminator"])
            self.d_opt.load_state_dict(state["d_opt"])
        self.iteration = int(state["iteration"])
        self.elapsed_s = float(state["elapsed_s"])
        self.best_val_psnr = state.get("best_val_psnr")
        torch.set_rng_state(state["torch_rng"])
        logger.info(
            "resumed %s at iteration %d (%.1f h trained)",
            self.checkpoint_path,
            self.iteration,
            self.elapsed_s / 3600,
        )

    def _fork(self, path: str) -> dict[str, Any]:
        """Load another run's networks (not its optimisers or count) to start from; returns its state."""
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        self.generator.load_state_dict(state["generator"])
        # The discriminator is kept only when it was trained on patches of this run's size: its dense
        # head is built for one input side.
        same_patch = state["config"].get("patch_size") == self.config.patch_size
        kept = self.discriminator is not None and "discriminator" in state and same_patch
        if kept:
            assert self.discriminator is not None
            self.discriminator.load_state_dict(state["discriminator"])
        logger.info(
            "started from %s at its iteration %d (discriminator %s)",
            path,
            int(state["iteration"]),
            "kept" if kept else "fresh" if self.discriminator is not None else "none",
        )
        return state

    def _lr_at(self, iteration: int, run_seconds: float = 0.0) -> float:
        """Linear warm-up, then cosine decay to the floor by `iterations` or by the time limit, whichever
        comes first; `run_seconds` is the time spent in this invocation."""
        c = self.config
        progress = min(iteration / max(c.iterations, 1), 1.0)
        if c.time_limit_min:
            progress = max(progress, min(run_seconds / (c.time_limit_min * 60), 1.0))
        warmup = min((iteration + 1) / c.warmup_iterations, 1.0) if c.warmup_iterations else 1.0
        cosine = c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        return c.lr * warmup * cosine

    def _pixel_loss(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(sr, hr) if self.config.pixel_loss == "l1" else F.mse_loss(sr, hr)

    def _step(self, lr_img: torch.Tensor, hr_img: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimisation step; the losses stay on the device (reading them waits for the GPU)."""
        c = self.config
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=c.amp and self.device.type == "cuda")
        if self.discriminator is None:
            with autocast:
                loss = self._pixel_loss(self.generator(lr_img).float(), hr_img)
            self.g_opt.zero_grad(set_to_none=True)
            loss.backward()
            self.g_opt.step()
            self._update_ema()
            return {"pixel": loss.detach()}
        assert self.d_opt is not None
        # Generator: content + adversarial, with the discriminator frozen.
        self.discriminator.requires_grad_(False)
        with autocast:
            sr = self.generator(lr_img).float()
            pixel = self._pixel_loss(sr, hr_img)
            if self.vgg is not None:
                content = vgg_content_loss(self.vgg, sr, hr_img)
            elif self.effnet is not None:
                content = effnet_content_loss(self.effnet, sr, hr_img)
            else:
                content = feature_matching_loss(self.discriminator, sr, hr_img)
            fake_logits = self.discriminator(sr).float()
            if c.gan_loss == "ragan":
                with torch.no_grad():
                    real_logits = self.discriminator(hr_img).float()
            else:
                real_logits = fake_logits.detach()  # unused by the paper's loss
            adversarial = generator_adversarial_loss(c.gan_loss, fake_logits, real_logits)
            g_loss = c.pixel_weight * pixel + c.content_weight * content + c.adversarial_weight * adversarial
            if c.grid_weight:
                g_loss = g_loss + c.grid_weight * subpixel_grid_loss(sr, hr_img, c.scale)
        self.g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_opt.step()
        self._update_ema()
        # Discriminator: real patches against the (detached) generated ones.
        self.discriminator.requires_grad_(True)
        with autocast:
            d_loss = discriminator_loss(
                c.gan_loss, self.discriminator(hr_img).float(), self.discriminator(sr.detach()).float()
            )
        self.d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_opt.step()
        return {
            "pixel": pixel.detach(),
            "content": content.detach(),
            "adv": adversarial.detach(),
            "d": d_loss.detach(),
        }

    @torch.no_grad()
    def _update_ema(self) -> None:
        """ema <- decay * ema + (1 - decay) * generator, for every parameter; buffers are copied."""
        if self.ema is None:
            return
        ema_params: list[torch.Tensor] = list(self.ema.parameters())
        params: list[torch.Tensor] = list(self.generator.parameters())
        torch._foreach_lerp_(ema_params, params, 1.0 - self.config.ema_decay)
        for ema_buffer, buffer in zip(self.ema.buffers(), self.generator.buffers(), strict=True):
            ema_buffer.copy_(buffer)

    @property
    def exported(self) -> Generator:
        """The generator trained for export: the moving average when there is one. `scored()` is this with
        precise BatchNorm statistics: what validation and the final export see."""
        return self.ema if self.ema is not None else self.generator

    def run(self) -> None:
        c = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        if self.iteration >= c.iterations:
            logger.info("already at iteration %d of %d: nothing to do", self.iteration, c.iterations)
            return
        sampler = self._loaded_pairs()
        # A different seed per resume, so a resumed run does not replay the batches it already saw.
        patch_rng = torch.Generator(device=self.device).manual_seed(c.seed * 1_000_003 + self.iteration)
        self._train_mode()
        try:
            with _sigterm_checkpoints():
                self._loop(sampler, patch_rng)
        except KeyboardInterrupt:
            logger.warning("interrupted at iteration %d: writing a checkpoint", self.iteration)
            self._checkpoint()
            raise

    def training_pairs(self) -> PatchSampler | RealWorldPairs:
        """The (LR, HR) patch source of this run's `degradation`, loading the training images."""
        c = self.config
        return training_pairs(c.data, scale=c.scale, patch_size=c.patch_size, degradation=c.degradation,
                              web_share=c.web_share, device=self.device)

    def _loaded_pairs(self) -> PatchSampler | RealWorldPairs:
        """This run's pair source, shared by training and the BatchNorm recomputes; loaded on first use."""
        if self._pairs is None:
            self._pairs = self.training_pairs()
        return self._pairs

    def scored(self) -> torch.nn.Module:
        """What validation scores and the final export holds: `exported`, with its BatchNorm statistics
        recomputed over `precise_bn_batches` training batches (computed once per iteration). Under
        `freeze_bn` it is `exported` as it is: its statistics are the ones it trained with."""
        c = self.config
        if not c.recomputed_bn_batches:
            return self.exported
        if self._precise is None or self._precise[0] != self.iteration:
            model = with_precise_bn(self.exported, self._loaded_pairs(), batches=c.recomputed_bn_batches,
                                    batch_size=c.batch_size)
            self._precise = (self.iteration, model)
        return self._precise[1]

    def _loop(self, sampler: PatchSampler | RealWorldPairs, patch_rng: torch.Generator) -> None:
        c = self.config
        invocation_start = time.perf_counter()
        trained_before = self.elapsed_s
        stop_at = invocation_start + c.time_limit_min * 60 if c.time_limit_min else math.inf
        window_start, window_iters = time.perf_counter(), 0
        while self.iteration < c.iterations:
            if time.perf_counter() > stop_at:
                logger.info(
                    "time limit of %.1f min reached at iteration %d", c.time_limit_min, self.iteration
                )
                self._checkpoint(final=True)
                return
            lr_patches, hr_patches = sampler.sample(c.batch_size, patch_rng)
            lr_now = self._lr_at(self.iteration, time.perf_counter() - invocation_start)
            for opt in (self.g_opt, self.d_opt):
                if opt is not None:
                    for group in opt.param_groups:
                        group["lr"] = lr_now
            losses = self._step(_to_float(lr_patches), _to_float(hr_patches))
            self.iteration += 1
            window_iters += 1
            self.elapsed_s = trained_before + time.perf_counter() - invocation_start
            if self.iteration % c.log_every == 0:
                rate = window_iters / (time.perf_counter() - window_start)
                logger.info(
                    "%s it %d/%d %s lr %.2e %.2f it/s",
                    c.stage,
                    self.iteration,
                    c.iterations,
                    " ".join(f"{k} {v.item():.4f}" for k, v in losses.items()),
                    lr_now,
                    rate,
                )
                window_start, window_iters = time.perf_counter(), 0
            if c.val_data and (self.iteration % c.val_every == 0 or self.iteration == c.iterations):
                self._validate()
            if self.iteration % c.checkpoint_every == 0 or self.iteration == c.iterations:
                self._checkpoint()

    def _validate(self) -> None:
        assert self.config.val_data is not None
        self.generator.eval()
        result = evaluate_generator(self.scored(), self.config.val_data, self.config.scale)
        self._train_mode()
        self.best_val_psnr = max(result.psnr, self.best_val_psnr or -math.inf)
        logger.info(
            "validation %s it %d: PSNR %.3f dB SSIM %.4f grad %.3f NIQE %s",
            Path(self.config.val_data).name,
            self.iteration,
            result.psnr,
            result.ssim,
            result.gradient_ratio,
            "n/a" if result.niqe is None else f"{result.niqe:.2f}",
        )

    def _checkpoint(self, *, final: bool = False) -> None:
        state: dict[str, Any] = {
            "config": dataclasses.asdict(self.config),
            "generator": self.generator.state_dict(),
            "g_opt": self.g_opt.state_dict(),
            "iteration": self.iteration,
            "elapsed_s": self.elapsed_s,
            "best_val_psnr": self.best_val_psnr,
            "torch_rng": torch.get_rng_state(),
        }
        if self.discriminator is not None and self.d_opt is not None:
            state["discriminator"] = self.discriminator.state_dict()
            state["d_opt"] = self.d_opt.state_dict()
        if self.ema is not None:
            state["generator_ema"] = self.ema.state_dict()
        tmp = self.checkpoint_path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.checkpoint_path)
        # The export at the run's end, by its length or its time limit (and only there: recomputing costs
        # a few hundred forward passes), has the precise BatchNorm statistics; its metadata says so.
        final = final or self.iteration >= self.config.iterations
        exported = self.scored() if final else self.exported
        precise = self.config.recomputed_bn_batches if final else 0
        save_generator(self.out / "generator.safetensors", exported, self.config.arch,
                       {**self.summary(), "precise_bn_batches": precise})
        logger.info("checkpoint at iteration %d -> %s", self.iteration, self.checkpoint_path)

    def summary(self) -> dict[str, Any]:
        """What goes into the exported weights' metadata."""
        c = self.config
        hardware = (
            torch.cuda.get_device_name(self.device)
            if self.device.type == "cuda"
            else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
        )
        return {
            "stage": c.stage,
            # Where the weights this run started with came from: a weights file or another run's checkpoint.
            "started_from": (
                f"{Path(c.init_checkpoint).parent.name}/{Path(c.init_checkpoint).name}"
                if c.init_checkpoint
                else Path(c.init).name if c.init else None
            ),
            "iterations": self.iteration,
            "batch_size": c.batch_size,
            "patch_size": c.patch_size,
            "data": [Path(d).name for d in c.data],
            "pixel_loss": c.pixel_loss,
            "content_loss": c.content_loss if c.stage == "srgan" else None,
            "gan_loss": c.gan_loss if c.stage == "srgan" else None,
            "loss_weights": (
                [c.pixel_weight, c.content_weight, c.adversarial_weight] if c.stage == "srgan" else None
            ),
            "degradation": c.degradation,
            "web_share": c.web_share if c.degradation == "realworld" else None,
            "ema_decay": c.ema_decay or None,
            "freeze_bn": c.freeze_bn,
            "wall_time_h": round(self.elapsed_s / 3600, 3),
            "hardware": hardware,
            "best_val_psnr": self.best_val_psnr,
        }
