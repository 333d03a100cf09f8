"""The record of a search: every trial in the order it ran, written to the output file as each
one finishes, and the best completed trial.

RecBole keys its results by the parameter string, so a repeated draw overwrites the earlier
trial, and writes its output file only when the search ends; here every trial is listed, the
file is rewritten atomically after each one (a crash, a failing trial or Ctrl-C loses nothing
that finished), and a trial that failed is listed with its error.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

from recbole.trainer.hyper_tuning import HyperTuning
from recbole.utils.utils import dict2str

from ..core.files import write_text_atomic

COMPLETED = "completed"


@dataclass
class TrialResult:
    """One trial: its parameters, validation score and metrics (the best epoch's; for a trial
    ASHA stopped, its last validation's), test metrics (None when stopped or failed), and
    status (``completed``, ``stopped early by ASHA ...`` or ``failed: <error>``)."""

    params: dict[str, Any]
    valid_score: float
    valid_result: dict[str, float]
    test_result: dict[str, float] | None
    status: str = COMPLETED

    @property
    def params_str(self) -> str:
        return HyperTuning.params2str(self.params)

    @classmethod
    def failed(cls, params: dict[str, Any], error: BaseException) -> TrialResult:
        reason = f"{type(error).__name__}: {error}".splitlines()[0]
        return cls(dict(params), math.nan, {}, None, status=f"failed: {reason}")


@dataclass
class SearchResult:
    """Every trial of a search, in the order they were run, and the best completed one.

    With ``output_file`` set, ``add`` rewrites that file after every trial."""

    model: str
    dataset: str
    tool: str
    algo: str
    valid_metric: str
    bigger: bool
    trials: list[TrialResult] = field(default_factory=list)
    output_file: str | os.PathLike | None = None

    def add(self, trial: TrialResult) -> None:
        self.trials.append(trial)
        if self.output_file is not None:
            self.write(self.output_file)

    @property
    def completed(self) -> list[TrialResult]:
        return [t for t in self.trials if t.test_result is not None]

    @property
    def best(self) -> TrialResult:
        """The completed trial with the best validation score (the first of equals)."""
        if not self.completed:
            raise RuntimeError(f"no trial of the {self.tool} search completed")
        choose = max if self.bigger else min
        return choose(self.completed, key=lambda t: t.valid_score)

    def describe(self, trial: TrialResult) -> str:
        lines = [f"{trial.params_str} ({trial.status})"]
        if trial.valid_result:
            lines.append(f"Valid result:\n{dict2str(trial.valid_result)}")
        if trial.test_result is not None:
            lines.append(f"Test result:\n{dict2str(trial.test_result)}")
        return "\n".join(lines)

    def write(self, output_file: str | os.PathLike) -> None:
        """Every trial's parameters with its valid and test metrics, then the best trial."""
        header = (
            f"# {self.model} on {self.dataset}: {self.tool} {self.algo} search, "
            f"{len(self.trials)} trials, valid_metric {self.valid_metric} "
            f"({'bigger' if self.bigger else 'smaller'} is better)\n\n"
        )
        body = "".join(
            f"trial {i}: {self.describe(t)}\n\n" for i, t in enumerate(self.trials, start=1)
        )
        if self.completed:
            best = self.best
            footer = f"best trial {self.trials.index(best) + 1}: {self.describe(best)}\n"
        else:
            footer = "best trial: none completed yet\n"
        write_text_atomic(output_file, header + body + footer)

    def print_best(self) -> None:
        best = self.best
        print("best params: ", best.params)
        print("best result: ")
        print({"best_valid_result": best.valid_result, "test_result": best.test_result})

    def plot(self, display_file: str | os.PathLike) -> None:
        """RecBole's interactive HTML plot of the trials' validation scores."""
        import plotly.graph_objs as go
        from plotly.offline import plot

        # RecBole's plot_hyper does the same with astype(np.str), gone since numpy 1.24, and
        # opens a browser (auto_open=True), which a search on a server must not try.
        numbers = [str(i) for i in range(1, len(self.trials) + 1)]
        trace = go.Scatter(
            x=numbers,
            y=[t.valid_score for t in self.trials],
            text=[t.params_str for t in self.trials],
            mode="lines+markers",
            marker={"color": "green"},
            showlegend=True,
            textposition="top center",
            name=f"{self.model} tuning process",
        )
        layout = go.Layout(
            title="hyperparams_tuning",
            xaxis={"title": "trials"},
            yaxis={"title": f"valid_score ({self.valid_metric})"},
        )
        plot(go.Figure(data=[trace], layout=layout), filename=str(display_file), auto_open=False)
