"""The one training loop. It knows no model by name: a model brings its optimisers and its
`train_step`; the loop brings the data, the budget, logging, checkpoints and sample grids."""

from __future__ import annotations

import json
import logging
import math
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from ..config_check import SEED, Checked, Device, Number, OneOf, Whole
from ..data import ImageSet
from ..errors import RankLost, RunError, TrainingDiverged, TrainingInterrupted
from ..models import GenerativeModel
from ..report.grid import make_grid, save_png
from .batches import batches, steps_per_epoch
from .checkpoint import load_checkpoint, save_checkpoint, save_weights
from .distributed import SINGLE, Group, rank_seed
from .divergence import DivergenceMonitor
from .metrics_log import MetricsLog
from .precision import DEFAULT_PRECISION, PRECISIONS, autocast, resolve_precision
from .run_dir import RunDir

logger = logging.getLogger("genforge")


@dataclass
class TrainConfig(Checked):
    steps: int | None = None  # budgets are totals over all sessions of a run; the first reached ends it
    epochs: float | None = None
    minutes: float | None = None
    batch_size: int | None = None  # None: the model's own default
    seed: int = 0
    log_every: int = 25  # steps between loss checks (NaN), log lines and progress updates
    sample_every: int = 500  # steps between sample grids
    checkpoint_minutes: float = 1.0
    eval_every: int | None = None  # steps between evaluations (needs an `evaluate` function)
    max_rollbacks: int = 2  # on divergence: back to the last checkpoint this many times, then stop
    rollback_lr_factor: float = 0.5  # ... each time with the learning rates multiplied by this
    device: str = "cpu"
    precision: str = DEFAULT_PRECISION  # fp32, bf16 or auto (bf16 where the hardware runs it fast): precision.py

    label = "training config"
    RULES = {"steps": Whole(min=1, optional=True), "epochs": Number(gt=0, optional=True),
             "minutes": Number(gt=0, optional=True),
             "batch_size": Whole(min=1, optional=True, none_means="the model's own"), "seed": SEED,
             "log_every": Whole(min=1), "sample_every": Whole(min=1), "checkpoint_minutes": Number(gt=0),
             "eval_every": Whole(min=1, optional=True, none_means="no evaluation"), "max_rollbacks": Whole(min=0),
             "rollback_lr_factor": Number(gt=0, le=1), "device": Device(), "precision": OneOf(*PRECISIONS)}

    def __post_init__(self):
        super().__post_init__()  # every field checked against RULES (config_check.py)
        if self.steps is None and self.epochs is None and self.minutes is None:
            self.epochs = 5

    def total_steps(self, n_images: int, batch_size: int) -> int | None:
        limits = [self.steps] if self.steps else []
        if self.epochs:
            limits.append(math.ceil(self.epochs * steps_per_epoch(n_images, batch_size)))
        return min(limits) if limits else None


@contextmanager
def _stop_on_sigint():
    """Turns the first Ctrl-C (or SIGTERM, which torchrun and job schedulers send) into a
    request to stop at the next step boundary, so the checkpoint written on the way out never
    holds a half-applied optimiser step. A second one interrupts at once."""
    flag = {"stop": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag["stop"]:
            raise KeyboardInterrupt
        flag["stop"] = True

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def train(model: GenerativeModel, data: ImageSet, out_dir: str | Path, config: TrainConfig, *,
          run_info: dict | None = None, resume: bool = False, progress: bool = True,
          evaluate: Callable[[GenerativeModel], dict] | None = None, group: Group = SINGLE) -> dict:
    """Trains `model` on `data`, writing a run directory; returns a summary dict.

    `run_info` is stored in config.json beside the model and training config (the data
    set's description, so `--resume` and reports can find it again). `evaluate`, called in
    eval mode every `config.eval_every` steps, returns metrics for `evals.jsonl`; it must
    draw its randomness from its own generators, so that evaluating never changes training.

    `group` (distributed.py) makes this one rank of a data-parallel job: `config.batch_size`
    is then this rank's batch, the global batch is that times the world size, gradients are
    averaged over the ranks at every optimiser step, and only rank 0 writes anything.
    """
    try:
        return _train(model, data, out_dir, config, run_info, resume, progress, evaluate, group)
    except RankLost as e:
        raise RankLost(f"{e}; training stopped, and the last checkpoint in {Path(out_dir)} stays loadable "
                       "(continue with --resume, with any number of ranks)") from None


def _train(model, data, out_dir, config, run_info, resume, progress, evaluate, group: Group) -> dict:
    run = RunDir(out_dir)
    device = torch.device(config.device)
    model.to(device).train()
    batch_size = config.batch_size or model.config.batch_size
    world = group.world_size
    if batch_size * world > len(data):
        raise RunError(f"batch size {batch_size}{f' x {world} ranks' if world > 1 else ''} is larger than "
                       f"the data set ({len(data)} images)")
    optimizers = model.configure_optimizers()
    precision = resolve_precision(config.precision, device)

    if resume:
        if not run.checkpoint.exists():
            raise RunError(f"nothing to resume: {run.checkpoint} does not exist")
        state = load_checkpoint(run.checkpoint, model, optimizers)
    else:
        if run.checkpoint.exists():
            raise RunError(f"{run.path} already holds a trained run; use --resume to continue it or choose another --out")
        torch.manual_seed(config.seed)
        state = {"step": 0, "elapsed_s": 0.0, "images_seen": 0}
    group.barrier()  # every rank has checked the run directory before rank 0 writes into it
    group.broadcast_module(model)  # the ranks start identical (as DDP makes them)
    if group.rank > 0:  # ... and then draw their own noise
        torch.manual_seed(rank_seed(config.seed, state["step"], group.rank))
    averaging = group.average_gradients(optimizers)
    writes = group.is_main  # only rank 0 writes files, logs and draws progress
    if writes:
        run.write_config({
            "genforge_version": _version(),
            "model": model.name,
            "model_config": asdict(model.config),
            "parameters": model.num_parameters(),
            **(run_info or {}),
            "train": {**asdict(config), "batch_size": batch_size, "precision_used": precision,
                      "world_size": world, "global_batch_size": batch_size * world},
        })
        run.samples.mkdir(parents=True, exist_ok=True)
        run.remove_stale_temp_files()

    total = config.total_steps(len(data), batch_size * world)
    budget_s = config.minutes * 60 if config.minutes else math.inf
    log = MetricsLog(run.metrics, tensorboard_dir=run.path / "tensorboard") if writes else None
    # The bar counts steps when the budget is in steps or epochs, else seconds of training.
    by_time = total is None
    bar = tqdm(total=round(budget_s) if by_time else total, disable=not (progress and writes), dynamic_ncols=True,
               unit="s" if by_time else "step", desc=f"{model.name} on {data.name or 'data'}",
               initial=round(state["elapsed_s"]) if by_time else state["step"])

    def checkpoint(last_losses: dict) -> None:
        state["losses"] = last_losses
        if not writes:
            return
        save_weights(run.weights, model, {"step": str(state["step"])})
        save_checkpoint(run.checkpoint, model, optimizers, state)

    def roll_back(reason: str) -> None:
        """Back to the last checkpoint with lower learning rates; the lost time stays spent."""
        nonlocal stream
        rollbacks = state.get("rollbacks", 0) + 1
        restored = load_checkpoint(run.checkpoint, model, optimizers)
        for opt in optimizers.values():
            for param_group in opt.param_groups:
                param_group["lr"] *= config.rollback_lr_factor
        event = {"step": state["step"], "time_s": round(state["elapsed_s"], 2), "event": "rollback",
                 "reason": reason, "back_to_step": restored["step"], "rollback": rollbacks,
                 "lr": {name: opt.param_groups[0]["lr"] for name, opt in optimizers.items()}}
        state.update(step=restored["step"], images_seen=restored["images_seen"], rollbacks=rollbacks)
        if group.rank > 0:
            torch.manual_seed(rank_seed(config.seed, state["step"], group.rank))
        stream = batches(data, batch_size, config.seed, start_step=state["step"], device=device,
                         rank=group.rank, world_size=world)
        monitor.reset()
        if not writes:
            return
        with open(run.events, "a", encoding="utf-8") as f:
            f.write(json.dumps(event) + "\n")
        logger.warning(f"{reason} at step {event['step']}: rolled back to step {restored['step']} with learning "
                       f"rates x{config.rollback_lr_factor} (rollback {rollbacks} of {config.max_rollbacks})")

    def run_evaluation() -> None:
        nonlocal t_session
        started = time.perf_counter()
        model.eval()
        result = evaluate(model)
        model.train()
        t_session += time.perf_counter() - started  # measuring is not training: keep it off the budget
        if not writes:
            return
        with open(run.evals, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": state["step"], "time_s": round(state["elapsed_s"], 2), **result}) + "\n")

    def sample_grid() -> None:
        if not writes:
            return
        model.eval()
        with torch.inference_mode():
            # The same noise for every grid of a run, so grids show training, not luck; a
            # conditional model draws class k in column k.
            nrow = min(model.config.num_classes, 16) if model.is_conditional else 8
            n = nrow * max(1, 64 // nrow)
            labels = torch.arange(n, device=device) % nrow if model.is_conditional else None
            images = model.sample(n, generator=torch.Generator().manual_seed(config.seed), labels=labels)
        model.train()
        save_png(make_grid(images, nrow=nrow), run.samples / f"step_{state['step']:07d}.png")

    sums: dict[str, torch.Tensor] = {}
    count, last_losses = 0, state.get("losses", {})
    t_session = t_window = time.perf_counter()
    elapsed_at_start = state["elapsed_s"]
    last_ckpt = t_session
    stream = batches(data, batch_size, config.seed, start_step=state["step"], device=device,
                     rank=group.rank, world_size=world)
    monitor = DivergenceMonitor()
    if not resume:
        checkpoint({})  # something to roll back to, even if the first minute goes wrong
    already_done = (total is not None and state["step"] >= total) or state["elapsed_s"] >= budget_s
    try:
        with _stop_on_sigint() as sigint:
            while not already_done:
                x, y = next(stream)
                # The model owns its step, so autocast wraps all of it: only the ops on autocast's
                # list (convolutions, matrix products) change dtype, their backward follows the
                # forward's, and the optimisers' float32 updates are not on the list.
                with autocast(precision, device):
                    losses = model.train_step(x, y, optimizers)
                group.broadcast_module(model, buffers_only=True)  # BatchNorm statistics: rank 0's, as DDP
                for k, v in losses.items():
                    sums[k] = sums[k] + v if k in sums else v.clone()
                count += 1
                state["step"] += 1
                state["images_seen"] += len(x) * world
                now = time.perf_counter()
                state["elapsed_s"] = elapsed_at_start + now - t_session
                steps_done = total is not None and state["step"] >= total
                out_of_time = state["elapsed_s"] >= budget_s
                # Ranks agree on the clock and on Ctrl-C only at a log boundary (below), so with
                # several ranks a time budget ends at the first boundary after it is spent.
                if count < config.log_every and not steps_done and (group.active or not (out_of_time or sigint["stop"])):
                    continue
                # Check and log: the only host sync, once per `log_every` steps.
                last_losses, (out_of_time, stop) = group.log_window(sums, count, out_of_time, sigint["stop"])
                sigint["stop"] = sigint["stop"] or stop
                done = steps_done or out_of_time
                stopping = done or sigint["stop"]
                row = {"step": state["step"], "time_s": round(state["elapsed_s"], 2),
                       "epoch": round(state["images_seen"] / len(data), 3), **last_losses,
                       "img_per_s": round(count * batch_size * world / max(now - t_window, 1e-9), 1)}
                if log:
                    log.write(row)
                diverged = monitor.check(last_losses)
                if diverged and state.get("rollbacks", 0) < config.max_rollbacks:
                    roll_back(diverged)
                    sums, count, t_window = {}, 0, time.perf_counter()
                    continue
                if diverged:
                    raise TrainingDiverged(
                        f"{diverged} by step {state['step']}; training stopped and the last good checkpoint in "
                        f"{run.path} was kept (lower the learning rate and --resume)")
                bar.set_postfix({**{k: f"{v:.3g}" for k, v in last_losses.items()},
                                 "img/s": f"{row['img_per_s']:.0f}", "step": state["step"]}, refresh=False)
                bar.update(min(round(state["elapsed_s"]), bar.total) - bar.n if by_time else state["step"] - bar.n)
                if state["step"] % config.sample_every < config.log_every or done:
                    sample_grid()
                if evaluate and config.eval_every and (state["step"] % config.eval_every < config.log_every or done):
                    run_evaluation()
                if stopping or now - last_ckpt >= config.checkpoint_minutes * 60:
                    checkpoint(last_losses)
                    last_ckpt = time.perf_counter()
                sums, count, t_window = {}, 0, time.perf_counter()
                if sigint["stop"] and not done:
                    raise TrainingInterrupted(
                        f"interrupted at step {state['step']}; checkpoint saved in {run.path} "
                        f"(continue with --resume)")
                if done:
                    break
    finally:
        bar.close()
        if log:
            log.close()
        for handle in averaging:
            handle.remove()
    return {"run_dir": str(run.path), "step": state["step"], "elapsed_s": state["elapsed_s"],
            "losses": last_losses, "batch_size": batch_size, "images_seen": state["images_seen"]}


def _version() -> str:
    from .. import __version__
    return __version__
