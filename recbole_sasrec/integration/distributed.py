"""Training in several processes (``torch.distributed``): gloo on CPU, NCCL on GPUs.

``join`` enters the process group a configuration describes (``Config`` only chooses the
device); ``shard`` gives a process its share of the evaluation rows; ``DistributedMixin`` wraps
RecBole's trainer; ``spawn`` starts the processes of ``run(nproc=...)``. Every process builds
the same training batches and takes its rows of each (``data.batching.WindowBatchSampler``).
"""

from __future__ import annotations

import copy
import os

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from ..data.arrays import take


def world_and_rank(config) -> tuple[int, int]:
    """(processes in all, this process's rank); (1, 0) in a single process."""
    if config["single_spec"]:
        return 1, 0
    return config["world_size"], config["local_rank"] + (config["offset"] or 0)


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


def shard(part, by_user: bool, world: int, rank: int):
    """This process's share of evaluation rows: every ``world``-th sample, or of whole users in
    user order (sampled evaluation groups a user's samples)."""
    if world == 1:
        return part
    if not by_user:
        return part.copy(take(part.inter_feat, np.arange(rank, len(part), world)))
    uid = part.inter_feat[part.uid_field].numpy()
    mine = np.unique(uid)[rank::world]
    return part.copy(take(part.inter_feat, np.flatnonzero(np.isin(uid, mine))))


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
    """RecBole's ``Evaluator`` over the rows of every process: each process evaluated every
    ``world``-th sample, or user (``shard``), so the rows are gathered and put back in the
    single-process order before the metrics are computed; every process then reports the metrics
    of all samples (RecBole averages the processes' metrics, weighted by their batches)."""

    def __init__(self, evaluator, world: int):
        self.evaluator, self.world = evaluator, world

    def evaluate(self, struct):
        for key in PER_ROW + PER_CANDIDATE:
            if key not in struct:
                continue
            local = struct[key]
            parts = [None] * self.world
            dist.all_gather_object(parts, local.cpu())
            if key in PER_ROW:  # rank r held samples r, r + world, ...
                total = sum(len(p) for p in parts)
                merged = torch.empty((total, *local.shape[1:]), dtype=local.dtype)
                for rank, part in enumerate(parts):
                    merged[np.arange(rank, total, self.world)] = part
            else:
                merged = torch.cat(parts)
            struct[key] = merged.to(local.device)
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
            self.distributed_model = DistributedDataParallel(
                self.model, device_ids=[device] if device.type == "cuda" else None
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
