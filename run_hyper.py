"""Tune hyper-parameters, as RecBole's run_hyper.py: hyperopt (default) or Ray Tune.

    python run_hyper.py --params_file=hyper/sasrec.test                  # SASRec on ml-100k, grid
    python run_hyper.py --params_file=hyper/lightsans.test --algo=bayes --max_evals=20
    python run_hyper.py --params_file=hyper/sasrec.test --tool=Ray --cpus_per_trial=2
    python run_hyper.py --params_file=hyper/sasrec.test --tool=Ray --ray_address=10.0.0.1:6379

The model is the one the params file is named after (hyper/sasrec.test -> SASRec); --model must
agree with it. Any other --key=value fixes that configuration key for every trial (e.g.
--epochs=20); a key the params file tunes cannot also be fixed. Options of this command
(--output_file=..., ...) are taken literally; configuration values are typed as Python literals.
"""

import argparse
import sys

from recbole_sasrec import Config, ConfigError
from recbole_sasrec.core.files import NoSpaceError, exit_on_sigterm
from recbole_sasrec.integration.allocator import apply_allocator_setting
from recbole_sasrec.integration.inputs import parse_command_line
from recbole_sasrec.tuning import (
    ALGOS,
    DEFAULT_EARLY_STOP,
    DEFAULT_OUTPUT_FILE,
    parse_params_file,
    resolve_model,
    run_hyperopt,
    run_ray,
)

TOOLS = {"hyperopt": "Hyperopt", "ray": "Ray"}
HYPEROPT_ONLY = ("max_evals", "early_stop")
RAY_ONLY = ("num_samples", "cpus_per_trial", "gpus_per_trial", "ray_address")


def tool_name(text: str) -> str:
    try:
        return TOOLS[text.lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"allowed: {', '.join(TOOLS.values())}") from None


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params_file", required=True, help="search space, e.g. hyper/sasrec.test")
    parser.add_argument("--config_files", default=None, help="space-separated yaml files")
    parser.add_argument("--output_file", default=DEFAULT_OUTPUT_FILE)
    parser.add_argument("--display_file", default=None, help="HTML plot of the trials")
    parser.add_argument("--tool", type=tool_name, default="Hyperopt", help="Hyperopt or Ray")
    parser.add_argument("--model", default=None, help="default: the params file's model")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--algo", choices=ALGOS, default="exhaustive")
    # Tool-specific options default to None so that one given to the other tool is an error.
    parser.add_argument("--max_evals", type=int, default=None, help="Hyperopt: most trials")
    parser.add_argument(
        "--early_stop",
        type=int,
        default=None,
        help=f"Hyperopt: stop after this many trials without progress "
        f"({DEFAULT_EARLY_STOP}; 0 never stops)",
    )
    parser.add_argument("--num_samples", type=int, default=None, help="Ray: random/bayes trials")
    parser.add_argument("--cpus_per_trial", type=float, default=None, help="Ray: 1 by default")
    parser.add_argument("--gpus_per_trial", type=float, default=None, help="Ray: 0 by default")
    parser.add_argument("--ray_address", default=None, help="Ray: a running cluster, host:port")
    args, unknown = parser.parse_known_args()

    try:
        fixed = parse_command_line(unknown)  # configuration keys fixed for every trial
    except ConfigError as error:
        parser.error(str(error))
    other_tool = RAY_ONLY if args.tool == "Hyperopt" else HYPEROPT_ONLY
    given = [f"--{name}" for name in other_tool if getattr(args, name) is not None]
    if given:
        parser.error(f"{', '.join(given)} cannot be used with --tool={args.tool}")

    common = dict(
        params_file=args.params_file,
        model=args.model,
        dataset=args.dataset,
        config_file_list=args.config_files.split() if args.config_files else None,
        config_dict=fixed,
        algo=args.algo,
        output_file=args.output_file,
        display_file=args.display_file,
    )
    exit_on_sigterm()  # a checkpoint or result being written when the job is stopped is removed
    try:
        # The process is this command's: the allocator setting the configuration asks for
        # (keep_freed_memory) is made here, never inside the library's search.
        tuned = {p.key: p for p in parse_params_file(args.params_file)}
        for key, value in fixed.items():
            if key in tuned:  # a trial's own value would replace it without a word
                raise ConfigError(
                    f"--{key}={value} would be fixed for every trial, but {args.params_file} "
                    f"tunes {key!r} ({tuned[key].where}); allowed: one of the two"
                )
        model = resolve_model(args.params_file, args.model)
        apply_allocator_setting(Config(model, args.dataset, common["config_file_list"], fixed))
        if args.tool == "Hyperopt":
            early_stop = DEFAULT_EARLY_STOP if args.early_stop is None else args.early_stop
            run_hyperopt(**common, max_evals=args.max_evals, early_stop=early_stop)
        else:
            run_ray(
                **common,
                num_samples=args.num_samples,
                cpus_per_trial=1 if args.cpus_per_trial is None else args.cpus_per_trial,
                gpus_per_trial=0 if args.gpus_per_trial is None else args.gpus_per_trial,
                ray_address=args.ray_address,
            )
    except (ConfigError, NoSpaceError) as error:
        sys.exit(f"error: {error}")
