"""The layout of a run directory, and reading a trained model back from one.

    RUN_DIR/
      config.json              model name and config, data, training options
      checkpoint.safetensors   weights + optimiser + RNG + step (for --resume)
      model.safetensors        weights only (for sampling, sharing)
      metrics.jsonl            one line of losses and throughput per log interval
      evals.jsonl              metrics of samples during training (train --eval-every)
      events.jsonl             divergences and the rollbacks they caused
      prior.safetensors        an autoencoder's latent prior fitted after training (genforge prior)
      prior.json               which prior it is and its options
      samples/step_XXXXXXX.png sample grids during training, from fixed noise
      eval.json                the last `genforge eval RUN_DIR` (shown in the report)
      edits/NAME.png, .json    edit pictures added to the report (`genforge edit --report`)
      report.md, *.png         the run report
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..config_check import all_rules, check_value
from ..errors import ConfigError, RunError
from ..models import GenerativeModel, build_model, model_class
from .checkpoint import atomic_write, load_weights, read_safetensors


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    config = property(lambda self: self.path / "config.json")
    checkpoint = property(lambda self: self.path / "checkpoint.safetensors")
    weights = property(lambda self: self.path / "model.safetensors")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    evals = property(lambda self: self.path / "evals.jsonl")
    events = property(lambda self: self.path / "events.jsonl")
    prior = property(lambda self: self.path / "prior.safetensors")  # and prior.json beside it
    samples = property(lambda self: self.path / "samples")
    report = property(lambda self: self.path / "report.md")
    eval = property(lambda self: self.path / "eval.json")
    edits = property(lambda self: self.path / "edits")

    def is_run(self) -> bool:
        return self.config.is_file()

    def write_config(self, config: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write(self.config, (json.dumps(config, indent=2) + "\n").encode())

    def read_config(self) -> dict:
        if not self.path.exists():
            raise RunError(f"run directory {self.path} does not exist")
        if not self.is_run():
            raise RunError(f"{self.path} is not a genforge run (no config.json); train one with `genforge train`")
        try:
            cfg = json.loads(self.config.read_text())
            cfg["model"], cfg["model_config"]  # noqa: B018 - the keys every run has
        except (ValueError, KeyError, TypeError):
            raise RunError(f"{self.config} is damaged or not a genforge run config") from None
        self._check_values(cfg)
        return cfg

    def _check_values(self, cfg: dict) -> None:
        """The model and training configs of a (perhaps hand-edited) config.json, checked as a
        user's values are: a bad one is one ConfigError line naming the file and the field."""
        from .loop import TrainConfig
        try:
            if not isinstance(cfg["model_config"], dict):
                raise RunError(f"{self.config}: model_config must be a JSON object")
            model_class(cfg["model"]).Config.from_dict(cfg["model_config"])
            rules, train = all_rules(TrainConfig), cfg.get("train") or {}
            for name in rules.keys() & (train.keys() if isinstance(train, dict) else set()):
                check_value(TrainConfig.label, name, rules[name], train[name])
        except ConfigError as e:
            raise type(e)(f"{self.config}: {e}") from None

    def remove_stale_temp_files(self) -> None:
        """Temp files of a writer killed mid-write (never renamed, so never used)."""
        for tmp in self.path.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)

    def read_metrics(self, evals: bool = False) -> list[dict]:
        """Log lines (of evals.jsonl with `evals`); a line cut short by a crash is skipped."""
        path = self.evals if evals else self.metrics
        if not path.exists():
            return []
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
        return rows

    def load_model(self, device: str | torch.device = "cpu") -> tuple[GenerativeModel, dict]:
        """The trained model in eval mode, and the metadata stored with its weights."""
        cfg = self.read_config()
        model = build_model(cfg["model"], **cfg["model_config"])
        source = self.weights if self.weights.exists() else self.checkpoint
        if not source.exists():
            raise RunError(f"{self.path} has no weights yet (neither model.safetensors nor checkpoint.safetensors)")
        tensors, meta = read_safetensors(source)
        if source == self.checkpoint:
            tensors = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        load_weights(model, tensors, source)
        return model.to(device).eval(), meta
