"""The training loop on accelerate: DDP, FSDP or DeepSpeed come from `accelerate launch` configs.

Every sample's noise and noise levels come from a generator seeded by (seed, global sample number),
and the data order is a pure function of (seed, epoch); so N processes with global batch G compute
the same update as one process with batch G, and a resumed run continues exactly.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..kernels import PackedPrompts  # noqa: TID252 - package-relative
from ..nodes.core.df_schedule import DFSchedule
from .checkpoint import (
    latest_checkpoint,
    load_training_state,
    read_trainer_state,
    remove_partial_checkpoints,
    save_checkpoint,
    save_training_state,
)
from .config import ConfigError, TrainConfig, config_to_dict
from .data.dataset import BatchPlan, CachedData, TrainBatch, collate, pack_batch_prompts, shard
from .distributed import (
    check_deepspeed_config,
    check_fsdp_on_cpu,
    enable_fsdp2_on_cpu,
    fill_deepspeed_config,
    is_deepspeed,
    is_fsdp,
)
from .export import export_full, export_lora
from .modeling import build_optimizer, build_scheduler, trainable_model, trainable_parameters
from .objective import FrameNoise, frame_loss, noisy_input, sample_frame_noise, velocity_target
from .sample import df_sample


class TrainingDiverged(RuntimeError):
    """Loss or gradient norm became NaN/inf."""


@dataclass
class StepResult:
    loss: float
    grad_norm: float
    df_share: float


def sample_generator(seed: int, sample_id: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + sample_id) % (2**63 - 1))


@dataclass(frozen=True)
class StepInputs:
    """One micro-batch ready for the model: every disk read and random draw already done (on CPU, in
    the prefetch thread), so the step itself only copies to the device and computes."""

    x_t: torch.Tensor  # noisy latents [B, C, F, H, W]
    target: torch.Tensor  # velocity noise - x0
    levels: FrameNoise
    frame_text: PackedPrompts
    df_share: float

    def to(self, device, non_blocking: bool = False) -> StepInputs:
        def move(t):
            return t.to(device, non_blocking=non_blocking)

        levels = FrameNoise(*(move(t) for t in (self.levels.sigma, self.levels.u, self.levels.loss_mask,
                                                self.levels.is_df)))
        text = type(self.frame_text)(*(move(t) for t in (self.frame_text.rows, self.frame_text.seg_start,
                                                          self.frame_text.seg_len, self.frame_text.key_bias,
                                                          self.frame_text.frame_prompt)))
        return StepInputs(move(self.x_t), move(self.target), levels, text, self.df_share)

    def pin_memory(self) -> StepInputs:
        return StepInputs(self.x_t.pin_memory(), self.target.pin_memory(), self.levels, self.frame_text,
                          self.df_share)


def prepare_inputs(batch: TrainBatch, config: TrainConfig) -> StepInputs:
    """Noise levels, noise and the noisy input of a micro-batch; each sample from its own generator."""
    generators = [sample_generator(config.train.seed, i) for i in batch.sample_ids]
    x0 = batch.latents
    levels = sample_frame_noise(x0.shape[0], x0.shape[2], config.objective, generators)
    noise = torch.stack([torch.randn(x0.shape[1:], generator=g) for g in generators])
    return StepInputs(noisy_input(x0, noise, levels.sigma), velocity_target(x0, noise), levels, batch.frame_text,
                      float(levels.is_df.float().mean()))


def inputs_loss(model, inputs: StepInputs, config: TrainConfig) -> torch.Tensor:
    """The model's loss on device-resident inputs (what a bare step computes too)."""
    prediction = model(inputs.x_t, inputs.levels.timesteps, frame_text=inputs.frame_text)
    return frame_loss(prediction, inputs.target, inputs.levels, config.objective.loss_weighting)


def micro_batch_loss(model, batch: TrainBatch, config: TrainConfig, device) -> tuple[torch.Tensor, float]:
    inputs = prepare_inputs(batch, config)
    return inputs_loss(model, inputs.to(device), config), inputs.df_share


def diverged_message(step: int, what: str, values: list[float], config: TrainConfig) -> str:
    return (f"step {step}: {what} is {values} (per process) - training stopped. Lower "
            f"optim.learning_rate (now {config.optim.learning_rate}), keep optim.max_grad_norm > 0, or "
            f"use train.mixed_precision = 'bf16' instead of 'fp16'; resume from the last checkpoint in "
            f"{Path(config.train.output_dir) / 'checkpoints'}")


class Prefetcher:
    """Yields (global batch number, prepared micro-batches), preparing the next global batch (cache
    reads, collation, noise, pinned copies) in one background thread while the current step runs."""

    def __init__(self, prepare, batches):
        from concurrent.futures import ThreadPoolExecutor

        self._prepare, self._batches = prepare, batches
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="framelevel-prefetch")
        self._pending = self._submit()

    def _submit(self):
        global_index, clip_indices = next(self._batches)
        return global_index, self._pool.submit(self._prepare, global_index, clip_indices)

    def __iter__(self):
        return self

    def __next__(self):
        global_index, future = self._pending
        self._pending = self._submit()  # queued behind this one: ready before the next step asks
        return global_index, future.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class Trainer:
    def __init__(self, config: TrainConfig, accelerator=None):
        self.config = config
        run = config.train
        self.tracking = run.tensorboard and _has_tensorboard()
        self.accelerator = accelerator or make_accelerator(config, self.tracking)
        acc = self.accelerator
        _check_world(acc)
        if is_fsdp(acc) and config.validation.every:
            raise ConfigError(f"validation.every = {config.validation.every}: validation samples run on the main "
                              f"process only, which FSDP's sharded weights do not allow; set it to 0")
        if is_deepspeed(acc):
            ds = acc.state.deepspeed_plugin.deepspeed_config
            check_deepspeed_config(config, ds, acc.num_processes)
            fill_deepspeed_config(config, ds, acc.num_processes)
        self.data = CachedData(config.data.cache_dir)
        self.plan = BatchPlan([self.data.bucket(i) for i in range(len(self.data))], run.global_batch_size, run.seed)
        model = trainable_model(config)
        optimizer = build_optimizer(config, trainable_parameters(model))
        self.scheduler = build_scheduler(config, optimizer)
        self.model, self.optimizer = acc.prepare(model, optimizer)
        # the scheduler is not registered with accelerate (which pickles it): checkpoint.py stores it as JSON
        self.step, self.batches_consumed = 0, 0

    # -------------------------------------------------------------------------------------
    def resume_if_possible(self) -> bool:
        acc = self.accelerator
        if acc.is_main_process:
            remove_partial_checkpoints(self.config.train.output_dir)
        acc.wait_for_everyone()
        path = latest_checkpoint(self.config.train.output_dir)
        if path is None:
            return False
        state = read_trainer_state(path)
        kind = state.get("checkpoint")  # absent: written before adapter-only checkpoints (full accelerate state)
        if kind == "adapters":
            if self.config.lora is None:
                raise RuntimeError(f"{path} holds LoRA adapters but the config has no [lora] section; add the "
                                   f"[lora] section it was trained with, or use another train.output_dir")
            self._check_base_model(path, state.get("base_model", {}))
        elif kind == "full" and self.config.lora is not None:
            raise RuntimeError(f"{path} is a full fine-tuning checkpoint but the config has a [lora] section; "
                               f"remove [lora] to continue it, or use another train.output_dir")
        load_training_state(acc, self.model, self.optimizer, self.scheduler, path, state,
                            trust=self.config.train.trust_pickled_state)
        self.step, self.batches_consumed = state["step"], state["batches_consumed"]
        acc.print(f"resumed from {path} at step {self.step}")
        return True

    def base_model_record(self) -> dict:
        """Where the frozen base comes from; an adapter checkpoint is only valid on the same base."""
        m = self.config.model
        if m.weights:
            source = {"weights": Path(m.weights).name, "bytes": Path(m.weights).stat().st_size}
        else:
            source = {"size": m.size, "init_seed": m.init_seed, "num_heads": m.num_heads, "text_dim": m.text_dim}
        return {**source, "base_dtype": m.base_dtype}

    def _check_base_model(self, path, recorded: dict) -> None:
        current = self.base_model_record()
        if recorded != current:
            raise RuntimeError(f"{path} holds LoRA adapters trained on base model {recorded}, but the config "
                               f"loads {current}; point [model] at the base the run started with")

    def save(self) -> Path:
        """A checkpoint of the current step (adapters only under LoRA, see checkpoint.py)."""
        acc, run = self.accelerator, self.config.train
        state = {"batches_consumed": self.batches_consumed, "checkpoint": "full", "accelerate_step": acc.step}
        if self.config.lora is not None:
            state.update(checkpoint="adapters", base_model=self.base_model_record())

        def write(directory):
            save_training_state(acc, self.model, self.optimizer, self.scheduler, directory,
                                adapters=self.config.lora is not None)
        return save_checkpoint(acc, run.output_dir, self.step, state, run.keep_checkpoints, write)

    def prepare(self, global_index: int, clip_indices: list[int]) -> list[StepInputs]:
        """This process's micro-batches of a global batch, on CPU (pinned when the device is a GPU)."""
        acc, run = self.accelerator, self.config.train
        mine, rows = shard(clip_indices, acc.process_index, acc.num_processes)
        ids = [global_index * run.global_batch_size + r for r in rows]
        size = len(mine) // run.gradient_accumulation_steps
        pin = acc.device.type == "cuda"
        micro = []
        for start in range(0, len(mine), size):
            batch = collate(self.data, mine[start:start + size], ids[start:start + size], self.config.data.text_len)
            inputs = prepare_inputs(batch, self.config)
            micro.append(inputs.pin_memory() if pin else inputs)
        return micro

    def train_step(self, global_index: int, clip_indices: list[int] | None = None,
                   prepared: list[StepInputs] | None = None) -> StepResult:
        """One optimizer step. The NaN/inf check of loss and gradient norm is one collective and the
        step's only host sync, before the optimizer touches the weights."""
        acc = self.accelerator
        micro = prepared if prepared is not None else self.prepare(global_index, clip_indices)
        total, result = None, None
        for inputs in micro:
            with acc.accumulate(self.model):
                loss = inputs_loss(self.model, inputs.to(acc.device, non_blocking=True), self.config)
                acc.backward(loss)
                total = loss.detach() if total is None else total + loss.detach()
                if acc.sync_gradients:
                    result = self._checked_result(total / len(micro), self._clip(), micro)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return result

    def _checked_result(self, loss: torch.Tensor, norm: torch.Tensor | None, micro) -> StepResult:
        acc = self.accelerator
        norm = torch.zeros((), device=acc.device) if norm is None else norm.to(acc.device)
        values = acc.gather(torch.stack([loss.float(), norm.float()]).reshape(1, 2)).reshape(-1, 2).tolist()
        losses, norms = [v[0] for v in values], [v[1] for v in values]
        for what, seen in (("the loss", losses), ("the gradient norm", norms)):
            if not all(math.isfinite(v) for v in seen):
                raise TrainingDiverged(diverged_message(self.step + 1, what, seen, self.config))
        return StepResult(sum(losses) / len(losses), norms[0], sum(m.df_share for m in micro) / len(micro))

    def _clip(self) -> torch.Tensor | None:
        """Clip and return the global gradient norm (None where DeepSpeed has not computed one)."""
        max_norm = self.config.optim.max_grad_norm or math.inf
        norm = self.accelerator.clip_grad_norm_(trainable_parameters(self.model), max_norm)
        if norm is None:
            return None
        if hasattr(norm, "full_tensor"):  # FSDP2: a replicated DTensor
            norm = norm.full_tensor()
        return norm.detach() if isinstance(norm, torch.Tensor) else torch.tensor(float(norm))

    # -------------------------------------------------------------------------------------
    def fit(self, stop_after: int | None = None) -> None:
        for _ in self.steps(stop_after):
            pass

    def steps(self, stop_after: int | None = None):
        """Train, yielding each step's result after its bookkeeping (fit runs this to the end)."""
        acc, run = self.accelerator, self.config.train
        if self.tracking:
            acc.init_trackers("framelevel", config=_flat_scalars(config_to_dict(self.config)))
        bar = _progress(acc, run, self.step)
        batches = Prefetcher(self.prepare, self.plan.from_position(self.batches_consumed))
        try:
            while self.step < run.max_steps and (stop_after is None or stop_after > 0):
                global_index, micro = next(batches)
                result = self.train_step(global_index, prepared=micro)
                self.step, self.batches_consumed = self.step + 1, global_index + 1
                stop_after = None if stop_after is None else stop_after - 1
                self._after_step(result, bar)
                yield result
        finally:
            batches.close()
            if bar is not None:
                bar.close()

    def close(self) -> None:
        """Finish the trackers and leave the process group: last, since exports under FSDP need it, and
        a process that exits inside the group can abort its peers ("terminate called without an
        active exception")."""
        self.accelerator.wait_for_everyone()
        self.accelerator.end_training()

    def _after_step(self, result: StepResult, bar) -> None:
        run, acc = self.config.train, self.accelerator
        if bar is not None:
            bar.set_postfix(loss=f"{result.loss:.4f}", refresh=False)  # drawn by update, at most 10/s
            bar.update(1)
        elif self.step % run.log_every == 0 or self.step == run.max_steps:
            acc.print(step_line(self.step, run.max_steps, result, self.scheduler.get_last_lr()[0]))
        if self.tracking and self.step % run.log_every == 0:
            acc.log({"loss": result.loss, "grad_norm": result.grad_norm, "df_share": result.df_share,
                     "lr": self.scheduler.get_last_lr()[0]}, step=self.step)
        if self.step % run.checkpoint_every == 0 or self.step == run.max_steps:
            self.save()
        every = self.config.validation.every
        if every and self.step % every == 0:
            self.validate()

    # -------------------------------------------------------------------------------------
    def validate(self) -> list[Path]:
        """Samples for each validation caption file with the pack's DF sampler, saved as latents
        (main process)."""
        acc, v = self.accelerator, self.config.validation
        written = []
        if acc.is_main_process and self.data.validation:
            from ..nodes.core.files import save_safetensors_atomic

            model = acc.unwrap_model(self.model)
            height, width = (s // 8 for s in self.config.data.resolutions[0])
            for record in self.data.validation:
                frame_text = pack_batch_prompts(self.data, [record], self.config.data.text_len)
                gen = torch.Generator().manual_seed(v.seed)
                noise = torch.randn(1, model.config.in_dim, record["frames"], height, width, generator=gen)
                with acc.autocast():
                    latent = df_sample(model, noise.to(acc.device), v.steps, v.shift,
                                       DFSchedule(v.step_size, v.causal_block_size), v.solver, frame_text=frame_text)
                path = Path(self.config.train.output_dir) / "samples" / f"step-{self.step:08d}" / f"{record['name']}.safetensors"
                written.append(save_safetensors_atomic({"latent": latent.float().cpu()}, path))
        acc.wait_for_everyone()
        return written

    def export(self, path=None) -> Path | None:
        """Final weights in ComfyUI format: LoRA (config's key style) or full original-named weights."""
        acc, run = self.accelerator, self.config.train
        state = acc.get_state_dict(self.model)
        if not acc.is_main_process:
            return None
        model = trainable_model(self.config)
        model.load_state_dict(state)
        out = Path(path or Path(run.output_dir) / ("lora.safetensors" if self.config.lora else "model.safetensors"))
        meta = {"framelevel_step": str(self.step)}
        if self.config.lora is not None:
            return export_lora(model, out, run.export_format, run.export_dtype, meta)
        return export_full(model, out, run.export_dtype, meta)


def make_accelerator(config: TrainConfig, tracking: bool = False):
    """The Accelerator for `accelerate launch`'s setup; on CPU an FSDP launch really becomes FSDP2."""
    from accelerate import Accelerator

    run = config.train
    cpu = not _has_accelerator_device()
    if cpu:
        check_fsdp_on_cpu()
        if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
            raise RuntimeError("DeepSpeed was launched on a machine without GPUs; accelerate ignores DeepSpeed "
                               "on CPU and would train plain DDP. Use training/configs/cpu_2proc.yaml (DDP) or "
                               "cpu_2proc_fsdp.yaml (FSDP2) for CPU dry runs.")
    acc = Accelerator(cpu=cpu, mixed_precision=run.mixed_precision,
                      gradient_accumulation_steps=run.gradient_accumulation_steps,
                      step_scheduler_with_optimizer=False, log_with="tensorboard" if tracking else None,
                      project_dir=run.output_dir)
    if cpu:
        enable_fsdp2_on_cpu(acc)
    return acc


def _has_accelerator_device() -> bool:
    mps = getattr(torch.backends, "mps", None)
    xpu = getattr(torch, "xpu", None)
    return torch.cuda.is_available() or bool(mps and mps.is_available()) or bool(xpu and xpu.is_available())


def step_line(step: int, max_steps: int, result: StepResult, lr: float) -> str:
    """The console line of a step, printed every `log_every` steps when the progress bar is off
    (a log file, a cluster job)."""
    return (f"step {step}/{max_steps}  loss {result.loss:.4f}  grad_norm {result.grad_norm:.3g}  "
            f"df_share {result.df_share:.2f}  lr {lr:.3g}")


def _check_world(accelerator) -> None:
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != accelerator.num_processes:
        raise RuntimeError(f"launched with WORLD_SIZE={launched} but accelerate formed a group of "
                           f"{accelerator.num_processes}; the processes would train independently. Check "
                           f"the accelerate config (distributed_type, num_processes).")


def _has_tensorboard() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        try:
            import tensorboardX  # noqa: F401
        except ImportError:
            print("note: TensorBoard is not installed (pip install tensorboard); the loss goes to the console only "
                  "(progress bar, or a line every train.log_every steps without it)")
            return False
    return True


def _progress(acc, run, start):
    if not (run.progress_bar and acc.is_main_process):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=run.max_steps, initial=start, desc="train", dynamic_ncols=True)


def _flat_scalars(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flat_scalars(value, name + "."))
        elif isinstance(value, (int, float, str, bool)):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


def run_training(config: TrainConfig, stop_after: int | None = None) -> Trainer:
    trainer = Trainer(config)
    trainer.resume_if_possible()
    trainer.fit(stop_after)
    if trainer.step >= config.train.max_steps:
        trainer.export()
    trainer.close()
    return trainer
