"""The property files (``properties/<Model>.yaml``) and the README's key table, written from the
key declarations; a test holds both equal to them.

    python -m recbole_sasrec.integration.properties          # rewrite them in the checkout
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from ..core.keys import Key
from .registry import MODELS, model_keys

ROOT = Path(__file__).resolve().parents[2]
TABLE_START = "<!-- key table: generated from the key declarations -->"
TABLE_END = "<!-- end of key table -->"
HEADERS = {
    "SASRec": "SASRec (Kang & McAuley, ICDM 2018): the keys and defaults of RecBole's SASRec.",
    "LightSANs": "LightSANs-style model (Fan et al., SIGIR 2021): low-rank, causal, linear in "
    "sequence length; the keys and defaults of RecBole's LightSANs (`num_layers` is an alias of "
    "n_layers).",
}


def yaml_value(value) -> str:
    if value is None:
        return "~"  # YAML's null; 'None' would read back as a string
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, float) and "e" in repr(value) and "." not in repr(value).split("e")[0]:
        mantissa, exponent = repr(value).split("e")  # 1e-12 -> 1.0e-12: a float in any YAML
        return f"{mantissa}.0e{exponent}"
    if isinstance(value, list):
        return "[" + ", ".join(yaml_value(v) for v in value) + "]"
    return repr(value)


def yaml_text(name: str) -> str:
    """The property file of model ``name``: every key it reads, its default and meaning."""
    lines = [f"# {line}" for line in textwrap.wrap(HEADERS[name], 98)]
    lines.append(
        "# Written from the key declarations: python -m recbole_sasrec.integration.properties"
    )
    for key in model_keys(MODELS[name]):
        head = f"{key.name}: {yaml_value(key.default)}"
        comment = f"({key.kind}) {key.meaning}; allowed: {key.allowed}."
        parts = textwrap.wrap(comment, 110 - 34) or [""]
        lines.append(f"{head:<32}  # {parts[0]}")
        lines += [f"{'':<32}  #   {part}" for part in parts[1:]]
    return "\n".join(lines) + "\n"


def _cell(key: Key) -> str:
    value = key.default
    return f"`{value}`" if isinstance(value, str) else str(value)


def readme_table() -> str:
    """The README's table of every key our models read."""
    rows, seen = [], {}
    for name, model in MODELS.items():
        for key in model_keys(model):
            seen.setdefault(key.name, (key, []))[1].append(name)
    rows.append("| key | default | allowed | meaning |")
    rows.append("| --- | --- | --- | --- |")
    for key, models in seen.values():
        only = f" ({models[0]})" if len(models) < len(MODELS) else ""
        rows.append(f"| `{key.name}`{only} | {_cell(key)} | {key.allowed} | {key.meaning} |")
    return "\n".join([TABLE_START, *rows, TABLE_END])


def readme_with_table(readme: str) -> str:
    start, end = readme.index(TABLE_START), readme.index(TABLE_END) + len(TABLE_END)
    return readme[:start] + readme_table() + readme[end:]


def write(root: Path = ROOT) -> list[Path]:
    """Rewrite the property files and the README's table; the paths that changed."""
    changed = []
    for name in MODELS:
        path = root / "properties" / f"{name}.yaml"
        if not path.exists() or path.read_text() != yaml_text(name):
            path.write_text(yaml_text(name))
            changed.append(path)
    readme = root / "README.md"
    text = readme.read_text()
    if readme_with_table(text) != text:
        readme.write_text(readme_with_table(text))
        changed.append(readme)
    return changed


if __name__ == "__main__":
    for path in write():
        print(f"wrote {path}")
    sys.exit(0)
