"""Train and test a model, as RecBole's run_recbole.py.

    python run.py                                   # SASRec on ml-100k, the main job
    python run.py --model=LightSANs --dataset=ml-100k --config_files="a.yaml b.yaml" --n_layers=3

Any other ``--key=value`` overrides that configuration key (RecBole's command-line rule); a key
that neither the model nor RecBole reads is an error that names the closest known key.
"""

import argparse
import sys

from recbole_sasrec import ConfigError, run_recbole

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", "-m", default="SASRec", help="SASRec, LightSANs, or a RecBole model"
    )
    parser.add_argument("--dataset", "-d", default="ml-100k")
    parser.add_argument("--config_files", default=None, help="space-separated yaml files")
    args, configuration = parser.parse_known_args()
    config_files = args.config_files.split() if args.config_files else None
    try:
        run_recbole(
            model=args.model,
            dataset=args.dataset,
            config_file_list=config_files,
            command_line=configuration,
        )
    except ConfigError as error:
        sys.exit(f"error: {error}")
