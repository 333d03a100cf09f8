"""Exhaustive grid search as a hyperopt ``algo``.

RecBole's ``exhaustive_search`` draws from ``np.random.RandomState``, which hyperopt >= 0.2.7
calls ``.integers`` on (RecBole issues 1081, 1240), and its grid size leaves ``quniform`` lines
out. This one visits every grid point once, ``quniform`` lines included, in a seeded random
order, so that a search cut short by ``max_evals`` or ``early_stop`` still spreads over the grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..core.keys import ConfigError
from .space import Param


class ExhaustiveSearch:
    """A hyperopt ``algo`` that proposes every point of the grid exactly once, then stops.

    The order is a permutation drawn once from ``np.random.default_rng(seed)``, so that a search
    cut short (``max_evals``, ``early_stop``) samples the whole grid rather than varying the
    last lines only. Points already in ``trials`` are skipped.
    """

    def __init__(self, params: Sequence[Param], seed: int):
        grids = [p.grid() for p in params]
        if any(g is None for g in grids):
            raise ConfigError("exhaustive search needs choice or quniform lines only")
        self.labels = [p.key for p in params]
        # hyperopt stores a choice as the index of its value, a quniform as the value itself
        self.stored = [
            list(range(len(g))) if p.kind == "choice" else [float(v) for v in g]
            for p, g in zip(params, grids, strict=True)
        ]
        self.size = math.prod(len(s) for s in self.stored)
        self.order = np.random.default_rng(seed).permutation(self.size)

    def point(self, index: int) -> tuple:
        """The grid point with flat index ``index`` (mixed radix, last line fastest)."""
        values = []
        for stored in reversed(self.stored):
            index, digit = divmod(index, len(stored))
            values.append(stored[digit])
        return tuple(reversed(values))

    def __call__(self, new_ids, domain, trials, seed) -> list:
        from hyperopt.base import miscs_update_idxs_vals

        seen = {
            tuple(trial["misc"]["vals"][label][0] for label in self.labels)
            for trial in trials.trials
        }
        candidates = (p for p in map(self.point, self.order) if p not in seen)
        docs = []
        for new_id, point in zip(new_ids, candidates, strict=False):
            misc = {"tid": new_id, "cmd": domain.cmd, "workdir": domain.workdir}
            idxs = {label: [new_id] for label in self.labels}
            vals = {label: [value] for label, value in zip(self.labels, point, strict=True)}
            miscs_update_idxs_vals([misc], idxs, vals)
            docs.extend(trials.new_trial_docs([new_id], [None], [domain.new_result()], [misc]))
        return docs  # empty once the grid is exhausted: fmin stops
