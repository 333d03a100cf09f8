"""Item attributes into RecBole's ``.item`` atomic file, beside a converted ``.inter`` file.

The format ``attributes`` is the attribute JSON S3-Rec published beside the literature's Amazon
logs (``Beauty_item2attributes.json``): one object, item token -> list of attribute tokens
(strings or integers; e.g. a product's categories and brand in one id space). It becomes

    item_id:token    <field>:token_seq          (field ``attributes`` unless named)

with one row per item of the data set's ``.inter`` file, in first-seen order, attributes in
their listed order, repeats within an item kept once. Items of the log without attributes get a
row with none (RecBole's ``filter_inter_by_user_or_item`` would otherwise drop all their
interactions); attributes of items the log never names are left out (RecBole would add those
items to the catalogue every user is ranked against). Both are counted in the report.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ..core.files import atomic_open


def read_attribute_json(path: Path, error: type[ValueError]) -> dict[str, list[str]]:
    """The attribute JSON: item token -> its attribute tokens (as strings, each once, in order);
    ``error`` names the file, line and column of what does not parse."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as failure:
        line = path.read_bytes()[: failure.start].count(b"\n") + 1
        raise error(f"{path}, line {line}: bytes that are not UTF-8 ({failure.reason})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as failure:
        raise error(
            f"{path}, line {failure.lineno}, column {failure.colno}: not JSON ({failure.msg}); "
            f"allowed: one object, item token -> list of attribute tokens"
        ) from None
    if not isinstance(data, dict):
        raise error(
            f"{path}: a JSON {type(data).__name__}; allowed: one object, item token -> list of "
            f'attribute tokens, e.g. {{"4": [1, 2, 3]}}'
        )
    out = {}
    for item, values in data.items():
        if not isinstance(values, list) or not all(
            isinstance(v, (str, int)) and not isinstance(v, bool) for v in values
        ):
            raise error(
                f"{path}: item {item!r} has {json.dumps(values)[:60]}; allowed: a list of "
                f"attribute tokens (strings or integers)"
            )
        tokens = [str(v) for v in values]
        bad = next((t for t in [item, *tokens] if not t or any(c.isspace() for c in t)), None)
        if bad is not None:
            raise error(
                f"{path}: item {item!r}: token {bad!r} is empty or holds white space, which "
                f"RecBole's token_seq fields split on; allowed: tokens without spaces"
            )
        out[item] = list(dict.fromkeys(tokens))
    return out


def _log_items(inter: Path, error: type[ValueError]) -> list[str]:
    """The item tokens of a ``.inter`` file, in first-seen order."""
    with open(inter, encoding="utf-8-sig") as f:
        header = f.readline().rstrip("\r\n").split("\t")
        names = [h.split(":")[0] for h in header]
        if "item_id" not in names:
            raise error(f"{inter}, line 1: no item_id field in {header}")
        column = names.index("item_id")
        return list(dict.fromkeys(line.rstrip("\r\n").split("\t")[column] for line in f if line))


def write_item_file(
    input_file: str | Path,
    folder: Path,
    name: str,
    field: str,
    replace: bool,
    error: type[ValueError],
    report: Callable[[str], None] | None = None,
) -> Path:
    """Write ``folder/<name>.item`` from the attribute JSON ``input_file`` for the items of
    ``folder/<name>.inter``; returns its path."""
    inter, target = folder / f"{name}.inter", folder / f"{name}.item"
    if not inter.is_file():
        raise error(
            f"{inter}: no such file; the format 'attributes' writes the .item file beside a "
            f"converted log: convert the interactions first (e.g. --format sequences)"
        )
    if not field or any(c.isspace() or c == ":" for c in field) or field == "item_id":
        raise error(f"field={field!r}; allowed: a field name without spaces or ':', not item_id")
    if target.exists() and not replace:
        raise error(f"{target} exists; allowed: --replace (replace=True) to overwrite it")
    attributes = read_attribute_json(Path(input_file), error)
    items = _log_items(inter, error)
    without = sum(1 for item in items if not attributes.get(item))
    unseen = len(set(attributes) - set(items))
    try:
        with atomic_open(target, "w", encoding="utf-8") as f:
            f.write(f"item_id:token\t{field}:token_seq\n")
            f.writelines(f"{item}\t{' '.join(attributes.get(item, []))}\n" for item in items)
    except OSError as failure:
        raise error(f"{target}: cannot write the item file: {failure.strerror}") from None
    if report is not None:
        distinct = len({a for item in items for a in attributes.get(item, [])})
        report(
            f"{len(items)} items of {inter.name}, {distinct} distinct attributes; "
            f"{without} items without attributes (kept, empty); {unseen} items of "
            f"{Path(input_file).name} not in the log (left out)"
        )
    return target
