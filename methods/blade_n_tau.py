"""BLADE-N (τ tuned): BLADE-N (methods/blade_n.py) trained once per τ in {0.1, 0.3, 0.5, 1.0}, keeping the policy with
the best NDCG@5 on the alignment-validation windows, as the paper's §4.1.4 tunes τ ("within {0.1, 0.3, 0.5, 1.0}").

Its own row, apart from BLADE-N: the main comparison (BLADE-N against static BoN alignment) gives both methods one
training run and no validation-selected trial, so BLADE-N there has a fixed τ (0.3, the figures' value). This row
spends four trainings and a selection on the alignment-validation split; read it against BLADE-N to see what the search
adds, not against static BoN. The smoke profile searches two values to keep tests fast.

Four trainings make it the costliest row (steam, seed 0, 2026-12-05 on the 2-core CPU: 634 s of the 2,242 s the
16 runs of the former `--methods all` recorded, the machine shared with tests), so `--methods all` leaves it out
(`in_all = False`): name it (`--methods blade_n_tau`), or run `--experiment table3`, which names it.
"""

from __future__ import annotations

from dataclasses import dataclass

from methods.blade_n import BladeN
from methods.common.configs import BON_PROFILE_OVERRIDES
from methods.registry import register_method

TAU_GRID = (0.1, 0.3, 0.5, 1.0)  # paper §4.1.4


@register_method("blade_n_tau")
class BladeNTau(BladeN):
    display_name = "BLADE-N (τ tuned)"
    in_all = False
    profile_overrides = {**BON_PROFILE_OVERRIDES, "smoke": {**BON_PROFILE_OVERRIDES["smoke"], "tau_grid": (0.3, 1.0)}}

    @dataclass
    class Config(BladeN.Config):
        """BLADE-N's config with the τ search on: `tau` is unused, `tau_grid` is searched."""

        tau_grid: tuple[float, ...] = TAU_GRID
