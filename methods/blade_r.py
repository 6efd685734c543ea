"""BLADE-R: BLADE (methods/blade_n.py) with Recall@10 instead of NDCG@10 as the list reward; everything else,
training and decoding included, is BLADE-N's.

Reference: "Beyond Static Best-of-N: Bayesian List-wise Alignment for LLM-based Recommendation", SIGIR'26
(Eq. 11-15, Algorithm 1; Table 3's BLADE-R row).
"""

from __future__ import annotations

from dataclasses import dataclass

from methods.blade_n import BladeN
from methods.registry import register_method


@register_method("blade_r")
class BladeR(BladeN):
    display_name = "BLADE-R"

    @dataclass
    class Config(BladeN.Config):
        """BLADE with R = Recall@10."""

        reward: str = "recall"
