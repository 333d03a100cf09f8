"""A yardstick, not a feature: SASRec trained the way the paper's code and its popular PyTorch
ports (pmixer/SASRec.pytorch) train it, timed side by side with ours on the same data.

    python -m benchmarks.plain_sasrec --data ../shared/data/Beauty.txt --epochs 20 --seeds 2020 1 2

Plain: every user's most recent training items (at most L + 1) padded on the left to L, one
uniform negative outside the user's history per position, BCE, Adam (betas 0.9, 0.98), batches
of 128 users, the paper's architecture (hidden 50, 2 blocks, 1 head, dropout 0.5, item
embeddings times sqrt(D), pre-LN blocks with torch's MultiheadAttention). Ours: run_recbole with
presets/sasrec-paper.yaml and our packed batches, the same epochs. Both are validated after the
last epoch with full ranking without the user's earlier items (the literature's protocol); the
split is leave-one-out for both. Each run is a fresh process; seconds per epoch are the mean
over the epochs after the first (a warm-up in both). Ours sets the allocator as run_recbole does
(`keep_freed_memory`). Threads: torch's default unless OMP_NUM_THREADS says.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .common import add_output_options, machine, mean_sd, output_file, parse_sets, run_worker


class PlainSASRec(nn.Module):
    def __init__(self, n_items: int, L: int = 50, D: int = 50, blocks: int = 2, p: float = 0.5):
        super().__init__()
        self.item, self.pos = nn.Embedding(n_items, D, padding_idx=0), nn.Embedding(L, D)
        self.drop = nn.Dropout(p)
        self.ln_a = nn.ModuleList(nn.LayerNorm(D, eps=1e-8) for _ in range(blocks))
        self.attn = nn.ModuleList(
            nn.MultiheadAttention(D, 1, p, batch_first=True) for _ in range(blocks)
        )
        self.ln_f = nn.ModuleList(nn.LayerNorm(D, eps=1e-8) for _ in range(blocks))
        self.ffn = nn.ModuleList(
            nn.Sequential(nn.Linear(D, D), nn.Dropout(p), nn.ReLU(), nn.Linear(D, D), nn.Dropout(p))
            for _ in range(blocks)
        )
        self.last = nn.LayerNorm(D, eps=1e-8)
        self.register_buffer("causal", ~torch.ones(L, L, dtype=torch.bool).tril(), False)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:  # [B, L] -> [B, L, D]
        x = self.item(seq) * math.sqrt(self.item.embedding_dim)
        x = self.drop(x + self.pos.weight[None])
        x = x * (seq > 0).unsqueeze(-1)
        for ln_a, attn, ln_f, ffn in zip(self.ln_a, self.attn, self.ln_f, self.ffn, strict=True):
            q = ln_a(x)
            x = q + attn(q, x, x, attn_mask=self.causal, need_weights=False)[0]
            x = x + ffn(ln_f(x))
            x = x * (seq > 0).unsqueeze(-1)
        return self.last(x)


def read(path: Path) -> list[list[int]]:
    return [[int(t) for t in line.split()[1:]] for line in path.read_text().splitlines() if line]


def plain_run(users: list[list[int]], n_items: int, epochs: int, seed: int, L: int = 50):
    """Train on items[:-2] of every user; return (seconds per epoch, valid NDCG@10)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = PlainSASRec(n_items, L)
    for name, p in model.named_parameters():
        if p.dim() > 1 and "pos" not in name:
            nn.init.xavier_uniform_(p)
    opt = torch.optim.Adam(model.parameters(), lr=0.001, betas=(0.9, 0.98))
    train = [u[:-2] for u in users]
    owner = np.repeat(np.arange(len(users)), [len(u) for u in users])
    history = np.unique(owner * n_items + np.concatenate(users))  # sorted (user, item) keys
    seq = np.zeros((len(users), L), dtype=np.int64)
    pos = np.zeros((len(users), L), dtype=np.int64)
    for i, items in enumerate(train):
        window = items[-(L + 1) :]
        seq[i, L - len(window) + 1 :], pos[i, L - len(window) + 1 :] = window[:-1], window[1:]
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        for batch in np.array_split(rng.permutation(len(users)), math.ceil(len(users) / 128)):
            neg = rng.integers(1, n_items, (len(batch), L))
            while True:  # outside the user's history, as the paper draws them (vectorised)
                keys = batch[:, None] * n_items + neg
                at = np.searchsorted(history, keys).clip(max=len(history) - 1)
                clash = history[at] == keys
                if not clash.any():
                    break
                neg[clash] = rng.integers(1, n_items, int(clash.sum()))
            s, p, n = (torch.from_numpy(a) for a in (seq[batch], pos[batch], neg))
            h = model(s)
            pos_logit, neg_logit = (h * model.item(p)).sum(-1), (h * model.item(n)).sum(-1)
            real = p > 0
            loss = nn.functional.binary_cross_entropy_with_logits(
                pos_logit[real], torch.ones_like(pos_logit[real])
            ) + nn.functional.binary_cross_entropy_with_logits(
                neg_logit[real], torch.zeros_like(neg_logit[real])
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
        seconds.append(time.perf_counter() - start)
    return float(np.mean(seconds[1:] or seconds)), valid_ndcg(model, users, L)


@torch.no_grad()
def valid_ndcg(model: PlainSASRec, users: list[list[int]], L: int) -> float:
    """Valid NDCG@10: the second-to-last item, ranked over every item but the earlier ones."""
    model.eval()
    gains = []
    for lo in range(0, len(users), 1024):
        part = users[lo : lo + 1024]
        seq = np.zeros((len(part), L), dtype=np.int64)
        for i, u in enumerate(part):
            window = u[:-2][-L:]
            seq[i, L - len(window) :] = window
        h = model(torch.from_numpy(seq))[:, -1]  # [B, D]
        scores = h @ model.item.weight.T  # [B, items]
        scores[:, 0] = -np.inf
        for i, u in enumerate(part):
            scores[i, u[:-2]] = -np.inf
        target = torch.tensor([u[-2] for u in part])
        rank = (scores > scores[torch.arange(len(part)), target][:, None]).sum(1)
        gains += torch.where(rank < 10, 1 / torch.log2(rank.float() + 2), 0.0).tolist()
    return float(np.mean(gains))


def ours_run(data: Path, epochs: int, seed: int, sets: dict | None = None) -> tuple[float, float]:
    from benchmarks.common import timed_trainer
    from recbole_sasrec import Config, convert, get_trainer
    from recbole_sasrec.integration.allocator import apply_allocator_setting
    from recbole_sasrec.integration.logs import run_logging
    from recbole_sasrec.integration.quick_start import prepare

    with tempfile.TemporaryDirectory(prefix="plain-") as scratch:
        root = Path(scratch)
        convert(str(data), str(root), data.stem, "sequences")
        keys = {
            "data_path": str(root), "epochs": epochs, "stopping_step": epochs + 1, "seed": seed,
            "eval_args": {"mode": "full"}, "eval_exclude_history": True, "eval_step": epochs,
            "train_batching": "packed", "show_progress": False, "checkpoint_dir": str(root / "s"),
            "metrics": ["NDCG"], "topk": [10], "valid_metric": "NDCG@10",
        }  # fmt: skip
        keys.update(sets or {})
        config = Config("SASRec", data.stem, ["presets/sasrec-paper.yaml"], keys)
        with run_logging(config):
            _, train, valid, _, model = prepare(config)
            apply_allocator_setting(config)  # as run_recbole makes it: once the data is loaded
            trainer = timed_trainer(get_trainer(config["MODEL_TYPE"], config["model"]))(
                config, model
            )
            _, result = trainer.fit(train, valid, saved=False, show_progress=False)
        seconds = trainer.train_seconds[1:] or trainer.train_seconds
        return float(np.mean(seconds)), float(result["ndcg@10"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[2020, 1, 2])
    add_output_options(parser, "the JSON file to write")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="ours only")
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    data = Path(args.data)
    if args.worker:  # one run in this process: its JSON on the last line
        kind, seed = args.worker[0], int(args.worker[1])
        if kind == "ours":
            print(json.dumps(ours_run(data, args.epochs, seed, parse_sets(args.set))))
        else:
            users = read(data)
            print(json.dumps(plain_run(users, max(max(u) for u in users) + 1, args.epochs, seed)))
        return
    out = output_file("plain_sasrec", args.out, "plain_sasrec.json", args.replace)
    rows = []
    for seed in args.seeds:
        common = ["--data", str(data), "--epochs", str(args.epochs), "--set", *args.set, "--worker"]
        ours = run_worker("benchmarks.plain_sasrec", [*common, "ours", str(seed)])
        plain = run_worker("benchmarks.plain_sasrec", [*common, "plain", str(seed)])
        rows.append({"seed": seed, "ours": ours, "plain": plain})
        print(json.dumps(rows[-1]), flush=True)
    ratio = [r["plain"][0] / r["ours"][0] for r in rows]
    lines = [
        f"{date.today()}, {machine()}; {data.name}, {args.epochs} epochs, seeds {args.seeds}; "
        f"ours with {args.set or 'the preset'}",
        "| | s / epoch | valid NDCG@10 |",
        "| --- | ---: | ---: |",
        f"| plain PyTorch | {mean_sd([r['plain'][0] for r in rows], 2)} | "
        f"{mean_sd([r['plain'][1] for r in rows])} |",
        f"| ours | {mean_sd([r['ours'][0] for r in rows], 2)} | "
        f"{mean_sd([r['ours'][1] for r in rows])} |",
        f"| plain / ours | {mean_sd(ratio, 1)} | |",
    ]
    out.write_text(json.dumps({"rows": rows, "table": lines}, indent=1))
    print("\n".join(lines) + f"\nwrote {out}")


if __name__ == "__main__":
    sys.exit(main())
