"""Synthetic interaction logs with the shapes real logs have, as RecBole atomic files.

Real logs are long-tailed: most users have a handful of actions and a few have hundreds, and a
few items take most of the actions. A benchmark on users of uniform length hides what padding
and large catalogues cost, so every benchmark here draws from one of these shapes:

* ``amazon``: the Amazon-review logs most SASRec papers use (e.g. 31k users, 23.7k items, 287k
  actions; median user 6 actions, 1% of users 50 or more, the longest in the hundreds): user
  lengths log-normal with median 6 and sigma 0.95, at least 5 (the usual 5-core);
* ``ml20m``: MovieLens-20M (138k users, 27k items, 20M ratings; at least 20 ratings a user, mean
  about 140): user lengths log-normal with median 70 and sigma 1.0, at least 20.

Items are drawn from a Zipf-like popularity (probability of the r-th most popular item
proportional to r^-0.9), the item ids shuffled so that an id says nothing about popularity.
Timestamps increase within a user; users start at random times. Drawn this way, an action says
nothing about the next one (the best ranking is by popularity); ``--sequential P`` gives the
log an order to learn: each action after a user's first is, with probability P, one of the
previous item's 3 successors (fixed per item, drawn uniformly from the catalogue).

    python -m benchmarks.synthetic --shape amazon --users 31000 --items 20000 --out data
    python -m benchmarks.synthetic --shape ml20m --interactions 4000000 --out data
    python -m benchmarks.synthetic --shape amazon --users 10000 --items 5000 --sequential 0.5

writes ``<out>/<name>/<name>.inter`` and prints the name and the shape actually drawn.
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"


@dataclass(frozen=True)
class Shape:
    median: float  # median actions per user (before the minimum is applied)
    sigma: float  # log-normal spread of actions per user
    min_len: int
    items: int
    zipf: float = 0.9


SHAPES = {
    "amazon": Shape(median=6, sigma=0.95, min_len=5, items=20_000),
    "ml20m": Shape(median=70, sigma=1.0, min_len=20, items=27_000),
}


def user_lengths(shape: Shape, rng: np.random.Generator, users: int) -> np.ndarray:
    drawn = np.round(rng.lognormal(np.log(shape.median), shape.sigma, users))
    return np.maximum(shape.min_len, drawn).astype(np.int64)


def draw_log(
    shape: Shape,
    users: int | None = None,
    interactions: int | None = None,
    items: int | None = None,
    seed: int = 2020,
    sequential: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user, item, timestamp) arrays, users 1..U and items 1..I as ints, grouped by user in
    time order. Give ``users``, or ``interactions`` (users are drawn until the log has them;
    the last user is cut to fit). ``sequential``: the probability that an action is one of the
    previous item's successors (0: the same log as before the option existed)."""
    rng = np.random.default_rng(seed)
    if users is not None:
        lengths = user_lengths(shape, rng, users)
    else:
        mean = np.mean(user_lengths(shape, np.random.default_rng(seed + 1), 100_000))
        lengths = user_lengths(shape, rng, int(interactions / mean * 1.2) + 10)
        cut = int(np.searchsorted(np.cumsum(lengths), interactions))
        lengths = lengths[: cut + 1].copy()
        lengths[-1] -= int(lengths.sum()) - interactions
        lengths = lengths[lengths > 0]
    n_items = items or shape.items
    popularity = np.arange(1, n_items + 1, dtype=np.float64) ** -shape.zipf
    popularity /= popularity.sum()
    ids = rng.permutation(n_items) + 1  # rank -> item id
    n = int(lengths.sum())
    item = ids[rng.choice(n_items, size=n, p=popularity)]
    user = np.repeat(np.arange(1, len(lengths) + 1), lengths)
    offsets = np.repeat(np.cumsum(lengths) - lengths, lengths)
    starts = rng.integers(0, 10**8, len(lengths))
    stamp = np.repeat(starts, lengths) + (np.arange(n) - offsets) * 60
    if sequential > 0:  # drawn after everything above, so the rest of the log is unchanged
        successors = rng.integers(1, n_items + 1, size=(n_items + 1, 3))  # [items + 1, 3]
        follows = rng.random(n) < sequential
        pick = rng.integers(0, 3, n)
        position = np.arange(n) - offsets
        at = np.flatnonzero(follows & (position > 0))
        at = at[np.argsort(position[at], kind="stable")]  # by position: a step reads the last
        ends = np.searchsorted(position[at], np.arange(1, int(lengths.max()) + 1), side="right")
        for lo, hi in itertools.pairwise([0, *ends]):  # position j of every user that long
            item[at[lo:hi]] = successors[item[at[lo:hi] - 1], pick[at[lo:hi]]]
    return user, item, stamp


def write_item_file(root: Path, name: str, items: int) -> Path:
    """``<root>/<name>/<name>.item`` listing items 1..items: RecBole then knows the whole
    catalogue, also the (long-tail) items no user happened to draw."""
    path = root / name / f"{name}.item"
    path.write_text("item_id:token\n" + "\n".join(map(str, range(1, items + 1))) + "\n")
    return path


def write_atomic_file(root: Path, name: str, user, item, stamp) -> Path:
    """``<root>/<name>/<name>.inter`` in RecBole's atomic format, written in chunks."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.inter"
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        f.write(HEADER)
        step = 1_000_000
        for lo in range(0, len(user), step):
            block = np.stack([user[lo : lo + step], item[lo : lo + step], stamp[lo : lo + step]])
            f.write("\n".join("\t".join(map(str, row)) for row in block.T.tolist()) + "\n")
    tmp.replace(path)
    return path


def describe(user: np.ndarray, item: np.ndarray) -> str:
    lengths = np.bincount(user)[1:]
    lengths = lengths[lengths > 0]
    return (
        f"{len(lengths)} users, {len(np.unique(item))} items, {len(user)} interactions; "
        f"actions per user: median {np.median(lengths):.0f}, mean {lengths.mean():.1f}, "
        f"{100 * np.mean(lengths >= 50):.1f}% with 50 or more, longest {lengths.max()}"
    )


def popularity_ndcg(user: np.ndarray, item: np.ndarray, k: int = 10) -> float:
    """Leave-one-out test NDCG@k of ranking every item by its count in the training split (each
    user's actions but the last two), seen items not removed, as RecBole's full ranking scores
    sequential models: what a model reaches on a log without order. (RecBole's ``Pop`` counts an
    item at most once per batch, ``cnt[item] = cnt[item] + 1``, so it ranks popular items lower.)"""
    last = np.r_[user[1:] != user[:-1], True]  # the test action of each user (grouped, in order)
    valid = np.r_[last[1:], False]  # the one before it
    train = item[~last & ~valid]
    counts = np.bincount(train, minlength=int(item.max()) + 1).astype(np.float64)
    counts[0] = -1  # padding id, never ranked
    order = np.argsort(-counts, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    r = rank[item[last]]
    return float(np.where(r < k, 1 / np.log2(r + 2), 0.0).mean())


def dataset_name(
    shape: str, users=None, interactions=None, items=None, seed=2020, sequential=0.0
) -> str:
    size = f"{users}u" if users is not None else f"{interactions}i"
    order = f"_seq{sequential:g}" if sequential else ""
    return f"{shape}_{size}" + (f"_{items}items" if items else "") + order + f"_s{seed}"


def make(
    root: Path,
    shape: str,
    users: int | None = None,
    interactions: int | None = None,
    items: int | None = None,
    seed: int = 2020,
) -> str:
    """Write the log (unless a file of that name exists) and return its data set name."""
    name = dataset_name(shape, users, interactions, items, seed)
    if not (root / name / f"{name}.inter").is_file():
        user, item, stamp = draw_log(SHAPES[shape], users, interactions, items, seed)
        if items:  # a catalogue of exactly this size (written first: .inter marks it done)
            (root / name).mkdir(parents=True, exist_ok=True)
            write_item_file(root, name, items)
        write_atomic_file(root, name, user, item, stamp)
    return name


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="amazon")
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--users", type=int)
    size.add_argument("--interactions", type=int)
    parser.add_argument("--items", type=int, default=None, help="catalogue size")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument(
        "--sequential", type=float, default=0.0, help="probability an action follows the last"
    )
    parser.add_argument("--out", default="dataset")
    args = parser.parse_args(argv)
    if not 0 <= args.sequential <= 1:
        parser.error(f"--sequential={args.sequential}: allowed: a probability in [0, 1]")
    sizes = (args.users, args.interactions, args.items, args.seed)
    name = dataset_name(args.shape, *sizes, args.sequential)
    user, item, stamp = draw_log(SHAPES[args.shape], *sizes, args.sequential)
    path = write_atomic_file(Path(args.out), name, user, item, stamp)
    if args.items:
        write_item_file(Path(args.out), name, args.items)
    print(f"{path}: {describe(user, item)}")
    print(f"ranked by popularity: test NDCG@10 {popularity_ndcg(user, item):.4f}")
    print(f"train with: run_recbole('SASRec', '{name}', config_dict={{'data_path': '{args.out}'}})")


if __name__ == "__main__":
    main()
