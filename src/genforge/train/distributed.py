"""Data-parallel training on torch's distributed engine: who this process is in a job that
`torchrun` launched, and the few collectives the training loop needs.

`torchrun --nproc_per_node N -m genforge train ...` starts N processes (ranks) with RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT set; `start()` joins them into one process
group (gloo on CPUs, nccl on GPUs). Every rank holds the whole model and trains on its own
shard of every global batch (batches.py); at each optimiser step the gradients are averaged
over the ranks, so the ranks take identical steps and stay identical, as under
DistributedDataParallel.

Why not the DistributedDataParallel wrapper itself: DDP averages gradients from hooks that a
wrapped module's `forward()` arms for the one backward pass that follows it. A genforge model
owns its step (models/base.py) and calls its networks through its own methods: a GAN steps its
critic n times on one generator forward, freezes the critic for the generator's step, takes a
gradient penalty by double backward, and cvae-gan takes `torch.autograd.grad` of a decoder
layer, which DDP documents it does not support. Averaging where the optimiser steps (a step
pre-hook, `Optimizer.register_step_pre_hook`) works for every family unchanged, with the same
collective DDP uses (one all_reduce per step, the gradients flattened into one buffer per
dtype); what it gives up is overlapping that communication with the backward pass.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from ..errors import RankLost, RunError

DEFAULT_TIMEOUT_S = 300.0  # a dead or hung rank ends the job within this (`--dist-timeout`)


@dataclass(frozen=True)
class Group:
    """This process's place in the job. The default, one rank of one, is a plain run: every
    collective below is then a no-op, so the loop reads the same either way."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files, prints and draws progress bars."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    # --- the collectives the loop uses; each a no-op for a single process -------------------
    def barrier(self) -> None:
        if self.active:
            self._run(dist.barrier)

    def broadcast_module(self, module: nn.Module, buffers_only: bool = False) -> None:
        """Rank 0's parameters and buffers on every rank (DDP does this at construction, and
        its buffers again before every forward)."""
        if not self.active:
            return
        tensors = list(module.buffers()) if buffers_only else [*module.parameters(), *module.buffers()]
        for chunk in _by_kind(tensors):
            flat = _flatten(chunk)
            self._run(dist.broadcast, flat, src=0)
            _unflatten(flat, chunk)

    def average_gradients(self, optimizers: dict[str, torch.optim.Optimizer]) -> list:
        """Makes every optimiser average its gradients over the ranks just before it steps.
        Returns the hook handles (`.remove()` them to undo)."""
        if not self.active:
            return []

        def hook(optimizer, args, kwargs):
            grads = [p.grad for pg in optimizer.param_groups for p in pg["params"] if p.grad is not None]
            for chunk in _by_kind(grads):
                flat = _flatten(chunk)
                self._run(dist.all_reduce, flat)
                flat.div_(self.world_size)
                _unflatten(flat, chunk)

        return [opt.register_step_pre_hook(hook) for opt in optimizers.values()]

    def log_window(self, sums: dict[str, torch.Tensor], count: int, *flags: bool) -> tuple[dict[str, float], list[bool]]:
        """The window's mean losses over all ranks, and each flag true if it is on any rank.

        Ranks see different batches, so their losses differ; the divergence check and the
        log must see the same numbers on every rank, or one rank would roll back alone. Flags
        (the time budget spent, Ctrl-C) are each rank's own until agreed here: every rank
        then stops at the same step, which torch's collectives need."""
        keys = sorted(sums) if self.active else list(sums)  # sorted: the same order on every rank
        if not self.active:
            return {k: (sums[k] / count).item() for k in keys}, list(flags)
        device = self._device
        values = [sums[k].detach().float().reshape(()).to(device) / count for k in keys]
        packed = torch.stack(values) if values else torch.zeros(1, device=device)
        marks = torch.tensor([float(f) for f in flags] or [0.0], device=device)
        self._run(dist.all_reduce, packed)
        self._run(dist.all_reduce, marks, op=dist.ReduceOp.MAX)
        means = (packed[:len(keys)] / self.world_size).tolist()
        return dict(zip(keys, means, strict=True)), [bool(m) for m in marks.tolist()[:len(flags)]]

    def gather(self, tensor: torch.Tensor) -> torch.Tensor | None:
        """Every rank's `tensor` (same trailing shape, any length) concatenated in rank order
        on rank 0; None on the others."""
        if not self.active:
            return tensor
        device = self._device
        local = tensor.to(device).contiguous()
        lengths = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(self.world_size)]
        self._run(dist.all_gather, lengths, torch.tensor([len(local)], device=device))
        longest = int(max(n.item() for n in lengths))
        padded = torch.zeros((longest, *local.shape[1:]), dtype=local.dtype, device=device)
        padded[:len(local)] = local
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        self._run(dist.all_gather, parts, padded)
        if not self.is_main:
            return None
        return torch.cat([p[:int(n.item())] for p, n in zip(parts, lengths, strict=True)]).to(tensor.device)

    @property
    def _device(self) -> torch.device:
        """Where the collectives' own tensors live: nccl moves GPU memory only."""
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")

    def _run(self, collective, *args, **kwargs):
        """A collective, with a peer that died or hung turned into one readable line."""
        try:
            return collective(*args, **kwargs)
        except RuntimeError as e:  # gloo and nccl both raise RuntimeError (DistBackendError) subclasses
            raise RankLost(f"rank {self.rank} of {self.world_size} lost contact with another rank "
                           f"({_reason(e)}; --dist-timeout {self.timeout_s:g} s)") from None


SINGLE = Group()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def is_main_process() -> bool:
    """Rank 0 of a torchrun job, or a plain process."""
    return not launched_by_torchrun() or os.environ.get("RANK", "0") == "0"


def start(device: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> tuple[Group, str]:
    """Joins the job torchrun launched (its environment variables say which), or returns the
    single-process group when there is none. Returns the group and this rank's device: with
    `cuda`, each rank takes the GPU of its local rank."""
    if timeout_s <= 0:
        raise RunError(f"--dist-timeout must be a positive number of seconds, got {timeout_s:g}")
    if not launched_by_torchrun():
        return SINGLE, device
    try:
        rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    except KeyError as e:
        raise RunError(f"WORLD_SIZE is set but {e.args[0]} is not: launch distributed training with torchrun "
                       "(torchrun --nproc_per_node N -m genforge train ...)") from None
    except ValueError:
        raise RunError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers (torchrun sets them)") from None
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name):
            raise RunError(f"{name} is not set: launch distributed training with torchrun "
                           "(torchrun --nproc_per_node N -m genforge train ...)")
    on_gpu = torch.device(device).type == "cuda"
    if on_gpu:
        if torch.device(device).index is None:
            device = f"cuda:{local}"
        torch.cuda.set_device(torch.device(device))
    backend = "nccl" if on_gpu else "gloo"
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s),
                                    **({"device_id": torch.device(device)} if on_gpu else {}))
        except (RuntimeError, ValueError) as e:
            raise RunError(f"rank {rank} could not join the job at {os.environ['MASTER_ADDR']}:"
                           f"{os.environ['MASTER_PORT']} ({str(e).strip().splitlines()[0][:200]})") from None
    return Group(rank, world, local, backend, timeout_s), device


def stop(group: Group, finished: bool = False) -> None:
    """Leaves the process group (after the last collective of the job). `finished`: the job ended
    normally on every rank, so they wait for each other first and leave together: a rank that tore
    its connections down while rank 0 was still writing the run's files could abort at exit
    (gloo: "terminate called without an active exception", 1 job in 25 on a loaded 2-core
    machine). After an error no barrier: the other ranks may be gone."""
    if group.active and dist.is_initialized():
        if finished:
            try:
                group.barrier()
            except RankLost:
                pass
        try:
            dist.destroy_process_group()
        except RuntimeError:  # a peer already gone: nothing left to release
            pass


@contextmanager
def main_first(group: Group):
    """Rank 0 runs the block first (building a data cache, say), the others after it, so they
    find its work done rather than all doing it at once."""
    if group.active and not group.is_main:
        group.barrier()
    yield
    if group.active and group.is_main:
        group.barrier()


def rank_seed(seed: int, step: int, rank: int) -> int:
    """The seed of rank > 0's random numbers (noise, dropout) from `step` on; rank 0 keeps the
    run's own stream, so a one-rank job draws what a plain run draws."""
    return (seed * 1_000_003 + step * 7919 + rank * 104_729) % (2**63)


def _reason(error: Exception) -> str:
    """The backend's message without its source path and advice: "[.../pair.cc:537] Read error
    [127.0.0.1]:1461: Connection reset by peer. This is typically caused by ..." -> "Read error
    [127.0.0.1]:1461: Connection reset by peer"."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    text = re.sub(r"^\[[^\]]*\.(cc|cpp|h|py):\d+\]\s*", "", text)
    return text.split(". ")[0][:160]


def _by_kind(tensors: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """Tensors grouped by dtype and device: one flat buffer, so one collective, per group."""
    groups: dict[tuple, list[torch.Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.dtype, t.device), []).append(t)
    return list(groups.values())


def _flatten(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def _unflatten(flat: torch.Tensor, tensors: list[torch.Tensor]) -> None:
    offset = 0
    with torch.no_grad():
        for t in tensors:
            n = t.numel()
            t.copy_(flat[offset:offset + n].view_as(t))
            offset += n
