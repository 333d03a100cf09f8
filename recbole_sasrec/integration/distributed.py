"""Training in several processes (``torch.distributed``): gloo on CPU, NCCL on GPUs.

``join`` enters the process group a configuration describes (``Config`` only chooses the
device); ``own_rows`` gives a process the rows of its own users and ``shared_steps`` the steps
every process takes over its windows (``data.batching``); ``DistributedMixin`` wraps RecBole's
trainer; ``spawn`` starts the processes of ``run(nproc=...)``.
"""

from __future__ import annotations

import copy
import os

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from ..core.processes import world_and_rank
from ..data.arrays import take
from ..data.packing import steps_per_epoch


def join(config) -> None:
    """Join the process group of a configuration with ``local_rank`` set (``run(nproc=...)``,
    torchrun), at ``init_method`` (``env://`` under torchrun) or ``tcp://ip:port``; pin the
    process's GPU. Nothing in a single process, or once joined."""
    if config["single_spec"]:
        return
    world, rank = world_and_rank(config)
    cuda = config["device"].type == "cuda"
    if not dist.is_initialized():
        init = config["init_method"] or f"tcp://{config['ip']}:{config['port']}"
        backend = "nccl" if cuda else "gloo"
        dist.init_process_group(backend=backend, init_method=init, rank=rank, world_size=world)
    if cuda:
        torch.cuda.set_device(config["device"])


def leave(was_joined: bool, finished: bool = True) -> None:
    """Leave the process group that ``join`` entered for one run, so that the process ends
    without live gloo threads (left alive, they can abort the interpreter at exit); a group the
    caller had joined before the run stays. A run that ``finished`` first waits for the other
    processes, so that none closes its connections while a peer is still using them (a gloo
    peer that loses its connections mid-use aborts); after a failure nobody waits for it."""
    if was_joined or not (dist.is_available() and dist.is_initialized()):
        return
    if finished:
        dist.barrier()
    dist.destroy_process_group()


def single_process_view(config):
    """A copy of ``config`` that builds loaders as one process would (for a process's share)."""
    local = copy.copy(config)
    local.final_config_dict = dict(config.final_config_dict, single_spec=True)
    return local


def own_rows(part, owners: np.ndarray | None, rank: int):
    """This process's share of a split: the rows of the users it owns (``owners``: the process
    of each user id, ``dataset.user_owners``); all of them when the process read only its own
    users (a prepared log)."""
    if owners is None:
        return part
    uid = part.inter_feat[part.uid_field].numpy()
    return part.copy(take(part.inter_feat, np.flatnonzero(owners[uid] == rank)))


def shared_steps(lengths: np.ndarray, config) -> int:
    """The training steps per epoch every process takes, each over its own windows (their
    ``lengths``): about what one process would take over all of them, and no more than the
    process with the fewest windows can fill (``ValueError`` when one has none)."""
    world, rank = world_and_rank(config)
    mine = (len(lengths), int(np.sum(lengths)))
    shares = [None] * world
    dist.all_gather_object(shares, mine)
    empty = [r for r, (windows, _) in enumerate(shares) if windows == 0]
    if empty:
        raise ValueError(
            f"process {empty[0]} of {world} holds no training windows (fewer users than "
            f"processes, or a prepared log whose partitions of that process are empty); "
            f"allowed: fewer processes"
        )
    windows, positions = (sum(column) for column in zip(*shares, strict=True))
    steps = steps_per_epoch(
        windows,
        positions,
        config["train_batch_size"],
        config["MAX_ITEM_LIST_LENGTH"],
        config["train_batching"],
        config["train_batch_positions"],
    )
    return max(1, min(steps, min(w for w, _ in shares)))


def together(config, build):
    """``build()`` in every process; when it fails in one, every process fails naming it.

    A process that fails alone leaves its peers waiting in their next collective until its
    connection drops, and the launcher (``mp.spawn``, torchrun) may then report a peer's
    "connection closed" first; so the processes compare outcomes before going on. ``build``
    must make no collective call of its own. The failed process raises its own error, the
    others a ``RuntimeError`` naming its rank and error."""
    world, rank = world_and_rank(config)
    if world == 1:
        return build()
    result, caught, failure = None, None, None
    try:
        result = build()
    except Exception as error:
        caught, failure = error, f"{type(error).__name__}: {error}"
    failures = [None] * world
    dist.all_gather_object(failures, failure)
    if caught is not None:
        raise caught
    for other, message in enumerate(failures):
        if message is not None:
            raise RuntimeError(f"process {other} of {world} failed: {message}")
    return result


def port_number(port) -> int:
    """``port`` as an int (an int, or a string of digits: the command line's), else
    ``ConfigError``: a float, a bool or a name is never truncated or guessed into a port."""
    from ..core.keys import ConfigError

    number = None
    if isinstance(port, int | np.integer) and not isinstance(port, bool | np.bool_):
        number = int(port)
    elif isinstance(port, str) and port.strip().isdigit():
        number = int(port)
    if number is None or not 1 <= number <= 65535:
        raise ConfigError(
            f"port={port!r} is not a port number; allowed: an integer from 1 to 65535, e.g. "
            f"5678 (command line: --port=5678)"
        )
    return number


def check_port(ip: str, port) -> None:
    """``ConfigError`` naming the port when it is not a port number, or when rank 0's address
    on this machine is taken (torch would fail after its rendezvous timeout, the cause at the
    bottom of a nested traceback)."""
    import errno
    import socket

    from ..core.keys import ConfigError

    number = port_number(port)
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((ip, number))
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                return  # not an address of this machine: rank 0 runs elsewhere
            raise ConfigError(
                f"port={port!r} on {ip} is in use (another run, or another program); allowed: "
                f"a free port, e.g. port={number + 1} (command line: --port=...)"
            ) from None


def spawn(target, nproc: int, args: tuple) -> None:
    """``target(local_rank, *args)`` in ``nproc`` fresh processes, until all end."""
    import torch.multiprocessing as mp

    mp.spawn(target, args=args, nprocs=nproc, join=True)


PER_ROW = ("rec.items", "rec.topk", "rec.meta")  # one row per evaluated sample, in order
PER_CANDIDATE = ("rec.score", "data.label")  # value metrics: one row per scored candidate


class _GatheringEvaluator:
    """RecBole's ``Evaluator`` over the rows of every process: each process evaluated the rows
    of its own users (``own_rows``), so the rows are gathered, process after process, before
    the metrics are computed; every process then reports the metrics of all rows (RecBole
    averages the processes' metrics, weighted by their batches). The metrics are means over
    rows: those one process computes over all rows, up to the order of a sum."""

    def __init__(self, evaluator, world: int):
        self.evaluator, self.world = evaluator, world

    def evaluate(self, struct):
        for key in PER_ROW + PER_CANDIDATE:
            if key not in struct:
                continue
            local = struct[key]
            parts = [None] * self.world
            dist.all_gather_object(parts, local.cpu())
            struct[key] = torch.cat(parts).to(local.device)
        return self.evaluator.evaluate(struct)


class DistributedMixin:
    """Several processes (``torch.distributed``), on CPU (gloo) as on GPU (NCCL).

    RecBole wraps the model in ``DistributedDataParallel(model, device_ids=[local_rank])``, which
    a CPU model refuses; here ``device_ids`` is the process's GPU, or None on CPU. Training then
    runs RecBole's loop (its reduce hook all-reduces every gradient). Every process waits for
    the others after training, so that none reads the best checkpoint before rank 0 has written
    it, and evaluation gathers the rows of all processes (``_GatheringEvaluator``)."""

    def __init__(self, config, model):
        distributed = not config["single_spec"]
        config["single_spec"] = True  # let RecBole's __init__ build no DDP of its own
        # RecBole's ensure_dir checks, then creates: processes starting together race on it
        os.makedirs(config["checkpoint_dir"], exist_ok=True)
        try:
            super().__init__(config, model)
        finally:
            config["single_spec"] = not distributed
        if distributed:
            device = config["device"]
            # gradients as views of DDP's buckets: one copy of them, not two (the item table's
            # is the largest tensor a step makes); the same values either way
            self.distributed_model = DistributedDataParallel(
                self.model,
                device_ids=[device] if device.type == "cuda" else None,
                gradient_as_bucket_view=True,
            )
            self.evaluator = _GatheringEvaluator(self.evaluator, config["world_size"])
            names = [self.saved_model_file]  # rank 0 writes the checkpoint every rank reads
            dist.broadcast_object_list(names, src=0)
            self.saved_model_file = names[0]

    def fit(self, train_data, valid_data=None, *args, **kwargs):
        result = super().fit(train_data, valid_data, *args, **kwargs)
        if not self.config["single_spec"]:
            dist.barrier()  # rank 0 has written its last checkpoint
        return result

    def _map_reduce(self, result, num_sample):
        return result  # already the metrics of all processes' rows
