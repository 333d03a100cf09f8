"""Training and evaluation on GPUs: one GPU, and N GPUs as ``recbole_sasrec.run(nproc=N)`` runs
them (one process per GPU, DistributedDataParallel over NCCL), in float32 and with AMP.

    python -m benchmarks.gpu                                  # every GPU count up to all, both models
    python -m benchmarks.gpu --gpus 1 2 --data ml-100k ml20m:20000000 --epochs 3
    python -m benchmarks.gpu --device cpu --gpus 1 2 --data ml-100k --epochs 1   # a dry run on CPU

For each data set (``ml-100k``, or ``ml20m:<N>``: a MovieLens-20M-shaped log of N interactions
drawn by ``benchmarks.synthetic``), model, GPU count and precision (``enable_amp`` False/True),
``--epochs`` epochs are trained with our defaults and the validation users evaluated with full
ranking after each; reported: seconds per training epoch (the mean after the first, which
includes start-up), seconds per evaluation, and the peak GPU memory of any process
(``torch.cuda.max_memory_allocated``). With N processes each window is trained by one of them
and every process evaluates its share of the users.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

from recbole_sasrec.integration.allocator import apply_allocator_setting

from .common import free_port, machine, timed_trainer
from .synthetic import make

DEFAULT_DATA = Path("/tmp/recbole_sasrec_synthetic")


def worker(local_rank: int, model: str, dataset: str, config_dict: dict, out: str) -> None:
    """One process: train and evaluate as run_recbole does, timing each pass."""
    from recbole_sasrec import Config
    from recbole_sasrec.integration.logs import run_logging
    from recbole_sasrec.integration.quick_start import prepare
    from recbole_sasrec.integration.trainer import get_trainer

    if "world_size" in config_dict:
        config_dict = dict(config_dict, local_rank=local_rank)
    config = Config(model, dataset, config_dict=config_dict)
    with run_logging(config):
        _, train, valid, _, net = prepare(config)
        apply_allocator_setting(config)  # as run_recbole makes it: once the data is loaded
        trainer = timed_trainer(get_trainer(config["MODEL_TYPE"], config["model"]))(config, net)
        if config["device"].type == "cuda":
            torch.cuda.reset_peak_memory_stats(config["device"])
        trainer.fit(train, valid, saved=False, show_progress=False)
        peak = (
            torch.cuda.max_memory_allocated(config["device"]) / 2**20
            if config["device"].type == "cuda"
            else None
        )
    epochs = trainer.train_seconds
    result = {
        "epoch_s": statistics.mean(epochs[1:] or epochs),
        "first_epoch_s": epochs[0],
        "eval_s": statistics.mean(trainer.eval_seconds),
        "peak_gpu_mib": peak,
        "valid_ndcg@10": trainer.curve[-1][1]["ndcg@10"],
        "device": str(config["device"]),
    }
    Path(out, f"rank{local_rank}.json").write_text(json.dumps(result))


def measure(model: str, dataset: str, config_dict: dict, gpus: int) -> dict:
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as out:
        if gpus == 1:
            worker(0, model, dataset, config_dict, out)
        else:
            distributed = {
                "world_size": gpus,
                "nproc": gpus,
                "ip": "127.0.0.1",
                "port": free_port(),
            }
            mp.spawn(
                worker, args=(model, dataset, {**config_dict, **distributed}, out), nprocs=gpus
            )
        ranks = [json.loads(p.read_text()) for p in sorted(Path(out).glob("rank*.json"))]
    first = ranks[0]
    peaks = [r["peak_gpu_mib"] for r in ranks if r["peak_gpu_mib"] is not None]
    return {**first, "peak_gpu_mib": max(peaks) if peaks else None}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    available = torch.cuda.device_count()
    parser.add_argument(
        "--gpus", nargs="+", type=int, default=sorted({1, available}) if available else [1]
    )
    parser.add_argument("--models", nargs="+", default=["SASRec", "LightSANs"])
    parser.add_argument("--data", nargs="+", default=["ml-100k", "ml20m:20000000"])
    parser.add_argument("--amp", nargs="+", default=["off", "on"], choices=["off", "on"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--synthetic", default=str(DEFAULT_DATA), help="where ml20m logs go")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not available:
        sys.exit("no CUDA GPU here: run on a GPU machine, or --device cpu for a dry run")
    command = "python -m benchmarks.gpu " + " ".join(sys.argv[1:] if argv is None else argv)
    rows = []
    for data in args.data:
        dataset, _, size = data.partition(":")
        extra = {}
        if dataset == "ml20m":
            dataset = make(Path(args.synthetic), "ml20m", interactions=int(size))
            extra["data_path"] = args.synthetic
        for model in args.models:
            for amp in args.amp:
                for gpus in args.gpus:
                    config_dict = {
                        **extra,
                        "epochs": args.epochs,
                        "stopping_step": args.epochs + 1,
                        "show_progress": False,
                        "state": "WARNING",
                        "enable_amp": amp == "on",
                        "enable_scaler": amp == "on",
                        "gpu_id": ",".join(map(str, range(gpus))) if args.device == "cuda" else "",
                        "metrics": ["NDCG", "Hit"],
                        "valid_metric": "NDCG@10",
                    }
                    start = time.perf_counter()
                    r = measure(model, dataset, config_dict, gpus)
                    r.update(
                        data=data,
                        model=model,
                        amp=amp,
                        gpus=gpus,
                        wall_s=time.perf_counter() - start,
                    )
                    rows.append(r)
                    print(json.dumps(r), flush=True)
    lines = [
        "| data | model | AMP | processes | s / epoch | first epoch s | s / eval | peak GPU MiB | valid NDCG@10 |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        peak = "-" if r["peak_gpu_mib"] is None else f"{r['peak_gpu_mib']:.0f}"
        lines.append(
            f"| {r['data']} | {r['model']} | {r['amp']} | {r['gpus']} | {r['epoch_s']:.2f} | "
            f"{r['first_epoch_s']:.2f} | {r['eval_s']:.2f} | {peak} | {r['valid_ndcg@10']:.4f} |"
        )
    print(f"\nMeasured {date.today()} on {machine()}.\nCommand: {command}\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
