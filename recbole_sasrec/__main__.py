"""Command line: ``python -m recbole_sasrec {recommend,attention,convert,prepare,export} ...``.

python -m recbole_sasrec recommend --model-file saved/SASRec-....pth --user 196 --k 10
python -m recbole_sasrec recommend --model-file saved/SASRec-....pth --items 50,172,133
python -m recbole_sasrec recommend --model-file saved/SASRec-....pth --all-users --out top10.parquet
python -m recbole_sasrec attention --model-file saved/SASRec-....pth --user 196 --out attention.png
python -m recbole_sasrec convert --input ratings.txt --format sasrec --name mydata --out data/
python -m recbole_sasrec convert --input item2attributes.json --format attributes --name mydata \
    --out data/                                  # the .item file beside mydata.inter
python -m recbole_sasrec prepare --data-path data/ --dataset mydata --partitions 8 \
    --out prepared/                              # each process then reads only its share
python -m recbole_sasrec export --model-file saved/SASRec-....pth --out model_dir/ [--ann]
python -m recbole_sasrec export --model-file saved/SASRec-....pth --out model_dir/ \
    --items new.item                             # with items never seen in training
"""

from __future__ import annotations

import argparse
import sys

from .data.convert import FORMATS, convert


def _items(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _recommender(args):
    from .inference.recommender import Recommender

    return Recommender(args.model_file, args.data_path, args.allow_pickle)


def _read_users(path: str) -> list[str]:
    """The users of a file, one a line, each once (in first-seen order)."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            listed = [line.strip() for line in f if line.strip()]
    except OSError as error:
        raise ValueError(f"--users-file {path}: {error.strerror}") from None
    users = list(dict.fromkeys(listed))
    if len(users) < len(listed):
        print(f"--users-file {path}: {len(listed) - len(users)} repeated users left out")
    return users


def _given_items(args) -> list[str] | None:
    """--items as tokens, refused before anything loads when it names none."""
    if args.items is None:
        return None
    items = _items(args.items)
    if not items:
        raise ValueError(f"--items {args.items!r} names no item token; e.g. --items 50,172,133")
    return items


def _recommend(args) -> None:
    import time

    from .inference import checks
    from .inference.output import check_output

    checks.count("--k", args.k)  # before anything is loaded
    checks.count("--batch-size", args.batch_size)
    items = _given_items(args)
    batch = args.all_users or args.users_file
    if batch and not args.out:
        raise ValueError(
            "--all-users and --users-file write a file: give --out top.csv or .parquet"
        )
    if batch:
        check_output(args.out, args.replace)
        users = None if args.all_users else _read_users(args.users_file)
    rec = _recommender(args)
    if batch:
        start = time.perf_counter()
        n = rec.write_recommendations(
            args.out,
            users,
            k=args.k,
            exclude_seen=not args.keep_seen,
            batch_size=args.batch_size,
            replace=args.replace,
        )
        print(
            f"wrote {args.out}: top {args.k} for {n} users in {time.perf_counter() - start:.1f} s"
        )
        return
    if args.user is not None:
        results = rec.recommend(users=[args.user], k=args.k, exclude_seen=not args.keep_seen)
        source = f"user {args.user}"
    else:
        results = rec.recommend(item_sequences=[items], k=args.k, exclude_seen=not args.keep_seen)
        source = f"items {','.join(items)}"
    print(f"top {args.k} for {source} ({rec.config['model']} on {rec.config['dataset']}):")
    has_titles = any(r.title for r in results[0])
    print(f"{'rank':>4}  {'item':>8}  {'score':>9}" + ("  title" if has_titles else ""))
    for r in results[0]:
        line = f"{r.rank:>4}  {r.item:>8}  {r.score:>9.4f}"
        print(line + (f"  {r.title or ''}" if has_titles else ""))


def _attention(args) -> None:
    from .inference.attention import check_figure_output, plot_attention

    check_figure_output(args.out, args.replace)  # before anything is loaded
    items = _given_items(args)
    rec = _recommender(args)
    if args.user is not None:
        tokens, maps = rec.attention(user=args.user)
        who = f"user {args.user}"
    else:
        tokens, maps = rec.attention(items=items)
        who = "the given items"
    labels = [rec.title(t) or t for t in tokens]
    title = f"{rec.config['model']}: attention for {who}"
    panels = plot_attention(tokens, maps, args.out, labels, title, replace=args.replace)
    print(f"wrote {args.out}: {panels} panels, {len(tokens)} positions")


def _convert(args) -> None:
    path = convert(
        args.input,
        args.out,
        args.name,
        args.format,
        args.user_col,
        args.item_col,
        args.time_col,
        args.sep,
        replace=args.replace,
        report=print,
        field=args.field,
    )
    print(f"wrote {path}")
    features = f", 'selected_features': ['{args.field}']" if args.format == "attributes" else ""
    print(
        f"train with: run_recbole(model='SASRec', dataset='{args.name}', "
        f"config_dict={{'data_path': '{args.out}'{features}}})"
    )


def _prepare(args) -> None:
    from .data.partitions import prepare

    prepare(
        args.data_path,
        args.dataset,
        args.out,
        args.partitions,
        args.chunk_rows,
        replace=args.replace,
        report=print,
    )
    print(
        f"train with: run_recbole(model='SASRec', dataset='{args.dataset}', "
        f"config_dict={{'data_path': '{args.out}'}}) (several processes: nproc=..., torchrun)"
    )


def _export(args) -> None:
    from .inference.export import export

    path = export(
        args.model_file,
        args.out,
        args.data_path,
        args.allow_pickle,
        args.ann,
        args.replace,
        args.items,
        args.items_format,
        args.boost,
    )
    print(f"wrote {path}: " + ", ".join(sorted(p.name for p in path.iterdir())))
    print(f"serve with: Artifact.load({str(path)!r}) (recbole_sasrec.inference.artifact)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recbole_sasrec", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    for name, help_text in (
        ("recommend", "top-k items from a saved model"),
        ("attention", "draw the attention weights as heatmaps"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--model-file", required=True, help="checkpoint written by run_recbole")
        p.add_argument("--data-path", default=None, help="read the data from here instead")
        p.add_argument(
            "--allow-pickle",
            action="store_true",
            help="also load a checkpoint that needs full unpickling (RecBole's format): it can "
            "run code, so only for a file you trust",
        )
        who = p.add_mutually_exclusive_group(required=True)
        who.add_argument("--user", help="a user token of the training data")
        who.add_argument("--items", help="comma-separated item tokens, oldest first")
        if name == "recommend":
            who.add_argument("--all-users", action="store_true", help="every user, to --out")
            who.add_argument("--users-file", help="a file of user tokens, one a line, to --out")
            p.add_argument("--k", type=int, default=10)
            p.add_argument("--keep-seen", action="store_true", help="keep items of the history")
            p.add_argument("--out", default=None, help="batch output: .csv or .parquet")
            p.add_argument("--batch-size", type=int, default=1024, help="users per batch")
            p.add_argument("--replace", action="store_true", help="overwrite an existing --out")
        else:
            p.add_argument(
                "--out", default="attention.png", help="the figure: .png, .pdf, .svg, ..."
            )
            p.add_argument("--replace", action="store_true", help="overwrite an existing --out")

    p = sub.add_parser("convert", help="make RecBole atomic files from a log")
    p.add_argument("--input", required=True)
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="sasrec",
        help="sasrec: 'user item' lines; sequences: 'user item item ...' lines, one per user, "
        "oldest first; csv: a header and columns; attributes: item -> attribute tokens as JSON, "
        "written as <name>.item beside a converted <name>.inter",
    )
    p.add_argument(
        "--name", required=True, help="data set name: writes <out>/<name>/<name>.inter (.item)"
    )
    p.add_argument("--out", default="dataset", help="data_path to train with")
    p.add_argument("--user-col", default="user_id")
    p.add_argument("--item-col", default="item_id")
    p.add_argument("--time-col", default=None)
    p.add_argument("--sep", default=None, help="csv separator (default: tab if the header has one)")
    p.add_argument("--field", default="attributes", help="attributes: the .item field's name")
    p.add_argument("--replace", action="store_true", help="overwrite an existing data set")

    p = sub.add_parser("prepare", help="a log in partitions by user, each process its share")
    p.add_argument("--data-path", required=True, help="holds <dataset>/<dataset>.inter")
    p.add_argument("--dataset", required=True)
    p.add_argument("--partitions", type=int, required=True, help="a multiple of the processes")
    p.add_argument("--out", required=True, help="the data_path to train with")
    p.add_argument("--chunk-rows", type=int, default=1_000_000, help="rows read at a time")
    p.add_argument("--replace", action="store_true", help="overwrite an earlier preparation")

    p = sub.add_parser("export", help="a folder that serves without RecBole (ONNX encoder)")
    p.add_argument("--model-file", required=True, help="checkpoint written by run_recbole")
    p.add_argument("--out", required=True, help="the folder to write")
    p.add_argument("--data-path", default=None, help="read the data from here instead")
    p.add_argument("--allow-pickle", action="store_true", help="as for recommend")
    p.add_argument("--ann", action="store_true", help="also a faiss index (approximate top-k)")
    p.add_argument(
        "--replace", action="store_true", help="overwrite --out if it is an earlier export"
    )
    p.add_argument(
        "--items",
        default=None,
        help="new items' attributes (.item file, or attribute JSON): added to the table",
    )
    p.add_argument(
        "--items-format", choices=("item", "json"), default=None, help="default: by suffix"
    )
    p.add_argument(
        "--boost",
        type=float,
        default=0.0,
        help="added to the --items' scores when ranking (exact ranking only, not with --ann)",
    )

    args = parser.parse_args(argv)
    handlers = {
        "recommend": _recommend,
        "attention": _attention,
        "convert": _convert,
        "prepare": _prepare,
        "export": _export,
    }
    try:
        handlers[args.command](args)
    except ValueError as error:  # ConfigError and ConvertError included
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
