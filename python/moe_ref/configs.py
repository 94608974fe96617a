"""Configurations: tiny ones for tests and the published MoEUT table
(shared/spec/models.md section 4)."""
from dataclasses import dataclass


@dataclass(frozen=True)
class MoEUTConfig:
    d_model: int
    n_layers: int
    group: int          # G distinct layers
    ff_experts: int
    expert_size: int    # Ge
    ff_k: int
    n_heads: int
    head_dim: int
    att_experts: int
    att_k: int
    vocab: int = 8000

    @property
    def repeats(self):
        if self.n_layers % self.group:
            raise ValueError(f"G={self.group} does not divide L={self.n_layers}")
        return self.n_layers // self.group


def moeut_parameter_count(cfg):
    """Parameters of MoEUT(cfg), counted from the architecture (the test
    checks it against the torch module and the published table)."""
    d, h, e_att = cfg.d_model, cfg.n_heads, cfg.att_experts
    att = 2 * d * h * cfg.head_dim                      # wq, wk
    att += 2 * h * e_att * d * cfg.head_dim             # wv, wo
    att += (2 if e_att > 1 else 1) * h * e_att * d      # selectors
    ffn = cfg.ff_experts * d + 2 * cfg.ff_experts * d * cfg.expert_size
    layer = att + ffn + 2 * 2 * d                       # two LayerNorms
    return (cfg.vocab * d + cfg.group * layer + 2 * d   # embedding, LN_out
            + d * cfg.vocab + cfg.vocab)                # output projection


# Published configurations, with the parameter counts of the paper.
PUBLISHED = {
    "MoEUT-44M": (MoEUTConfig(412, 16, 2, 155, 128, 12, 4, 82, 8, 2), 44.3e6),
    "MoEUT-126M": (MoEUTConfig(768, 18, 2, 254, 128, 12, 4, 96, 10, 2), 125.7e6),
    "MoEUT-244M": (MoEUTConfig(1024, 18, 2, 387, 128, 16, 4, 128, 10, 2), 243.3e6),
    "MoEUT-318M": (MoEUTConfig(1024, 24, 3, 338, 128, 16, 4, 128, 10, 2), 318.1e6),
    "MoEUT-727M": (MoEUTConfig(1280, 36, 4, 467, 128, 20, 5, 128, 13, 2), 727.4e6),
    "MoEUT-1B": (MoEUTConfig(1536, 36, 4, 565, 128, 24, 6, 128, 12, 2), 1040e6),
}

# Tiny MoEUT for fixtures: G = 2, R = 2.
TINY_MOEUT = MoEUTConfig(d_model=32, n_layers=4, group=2, ff_experts=6,
                         expert_size=16, ff_k=2, n_heads=2, head_dim=8,
                         att_experts=3, att_k=2, vocab=50)
