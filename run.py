"""Train and test a model, as RecBole's run_recbole.py (and run.py's distributed options).

    python run.py                                   # SASRec on ml-100k, the main job
    python run.py --model=LightSANs --dataset=ml-100k --config_files="a.yaml b.yaml" --n_layers=3
    python run.py --nproc=2                         # 2 processes on this machine (gloo on CPU)
    python run.py --nproc=4 --world_size=8 --ip=10.0.0.1 --port=5678 --group_offset=4  # 2nd machine
    torchrun --nproc_per_node=2 run.py              # torchrun's rendezvous (env://)

Any other ``--key=value`` overrides that configuration key (RecBole's command-line rule); a key
that neither the model nor RecBole reads is an error that names the closest known key.
"""

import argparse
import os
import sys

from recbole_sasrec import ConfigError, run, run_recbole
from recbole_sasrec.core.files import NoSpaceError, exit_on_sigterm
from recbole_sasrec.integration.distributed import port_number


def port(text: str) -> int:
    """--port, checked before anything runs."""
    try:
        return port_number(text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def torchrun_keys() -> dict:
    """Under torchrun (its environment variables set): this process's place in the group."""
    if "TORCHELASTIC_RUN_ID" not in os.environ:
        return {}
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    return {
        "local_rank": local_rank,
        "world_size": int(os.environ["WORLD_SIZE"]),
        "nproc": int(os.environ["LOCAL_WORLD_SIZE"]),
        "offset": rank - local_rank,
        "init_method": "env://",
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", "-m", default="SASRec", help="SASRec, LightSANs, or a RecBole model"
    )
    parser.add_argument("--dataset", "-d", default="ml-100k")
    parser.add_argument("--config_files", default=None, help="space-separated yaml files")
    parser.add_argument("--nproc", type=int, default=1, help="processes on this machine")
    parser.add_argument("--world_size", type=int, default=-1, help="processes in all")
    parser.add_argument("--ip", default="localhost", help="address of rank 0's machine")
    parser.add_argument("--port", type=port, default=5678, help="port on rank 0's machine")
    parser.add_argument("--group_offset", type=int, default=0, help="rank of this machine's first")
    args, configuration = parser.parse_known_args()
    config_files = args.config_files.split() if args.config_files else None
    exit_on_sigterm()  # a checkpoint being written when the job is stopped is removed
    try:
        if torchrun_keys():
            run_recbole(
                args.model,
                args.dataset,
                config_files,
                torchrun_keys(),
                command_line=configuration,
            )
        elif args.nproc == 1 and args.world_size <= 0:
            run_recbole(args.model, args.dataset, config_files, command_line=configuration)
        else:
            from recbole_sasrec.integration.inputs import parse_command_line

            run(
                args.model,
                args.dataset,
                config_files,
                parse_command_line(configuration),
                nproc=args.nproc,
                world_size=args.world_size,
                ip=args.ip,
                port=args.port,
                group_offset=args.group_offset,
            )
    except (ConfigError, NoSpaceError) as error:
        sys.exit(f"error: {error}")
