"""`genforge info RUN_DIR`: what a run holds."""

from __future__ import annotations

from ..train import RunDir


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="describe a run", description="Model, data, parameters, steps trained, last losses.")
    p.add_argument("run_dir")
    p.set_defaults(run=run)


def run(args) -> int:
    run_dir = RunDir(args.run_dir)
    cfg = run_dir.read_config()
    rows = run_dir.read_metrics()
    data, train = cfg.get("data", {}), cfg.get("train", {})
    print(f"run:        {run_dir.path}")
    print(f"model:      {cfg['model']}  ({cfg.get('parameters', 0):,} parameters)")
    print("config:     " + ", ".join(f"{k}={v}" for k, v in cfg["model_config"].items()))
    print(f"data:       {data.get('dataset')} ({data.get('num_images')} images, "
          f"{data.get('image_size')}x{data.get('image_size')}x{data.get('channels')})")
    if rows:
        last = rows[-1]
        print(f"trained:    {last['step']} steps, {last['epoch']} epochs, {last['time_s'] / 60:.1f} min, "
              f"batch {train.get('batch_size')}, seed {train.get('seed')}")
        losses = {k: v for k, v in last.items() if k not in ("step", "time_s", "epoch", "img_per_s")}
        print("last losses: " + ", ".join(f"{k}={v:.4g}" for k, v in losses.items()))
    else:
        print("trained:    not yet")
    for f in (run_dir.checkpoint, run_dir.weights, run_dir.report):
        print(f"{f.name + ':':24s}{'yes' if f.exists() else 'no'}")
    return 0
