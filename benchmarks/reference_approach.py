"""The reference system's approach, built from cmkt's parts for a like-for-like timing: the first
release's model (MLP predictor, mastery read from step 1, linear accumulation, gains from the value
stream, attention dropout, torch's dropout masks, float32) at a preset's size, every window padded
to 200 steps in random batches, and the cumulative mastery computed with a Python loop over time,
as the reference's GainAKT2Monitored does. Used by benchmarks/speed.py only."""
from __future__ import annotations

import time

REF_LEN = 200   # the reference pads every sequence to 200 steps

FIRST_RELEASE = {"predictor": "mlp", "base": "context", "accumulation": "linear", "momentary_bound": "1",
                 "mastery_loss": "0", "readout": "none", "recurrent": "0", "recurrent_head": "none",
                 "gain_encoder": "value", "members": "1", "stack": "none", "attn_dropout": "none",
                 "dropout_kernel": "torch", "amp": "off", "ema": "0", "mastery_epochs": "0",
                 "select_on": "auc", "loss_weights": "plain", "max_len": str(REF_LEN)}


def loop_model(cfg):
    """GainAKT2 whose cumulative mastery is m_t = clamp(m_{t-1} + scale * g_t, 0, 1), one step at a time."""
    import torch
    import torch.nn.functional as F
    from cmkt.model import GainAKT2
    from cmkt.model.gainakt2 import GainAKT2Output

    class LoopGainAKT2(GainAKT2):
        def forward(self, skills, responses, start=None, keep_from=None):
            B, T = skills.shape
            tokens = skills + self.cfg.num_skills * responses
            pos = torch.arange(T, device=skills.device)
            ctx = self.emb_drop(self.ctx_embed(tokens) + self.ctx_pos(pos))
            val = self.emb_drop(self.val_embed(tokens) + self.val_pos(pos))
            for block in self.blocks:
                ctx, val = block(ctx, val)
            prev_ctx = torch.cat([self.start[0].expand(B, 1, -1), ctx[:, :-1]], dim=1)   # (B, T, D)
            prev_val = torch.cat([self.start[1].expand(B, 1, -1), val[:, :-1]], dim=1)
            logits = self.predictor(torch.cat([prev_ctx, prev_val, self.skill_embed(skills)], -1)).squeeze(-1)
            gains = F.relu(self.gain_head(val))                                            # (B, T, C)
            gains = torch.cat([torch.zeros_like(gains[:, :1]), gains[:, 1:]], dim=1)
            m = torch.sigmoid(self.mastery_head(ctx[:, 0]))                                # (B, C)
            steps = []
            for t in range(T):                                                             # the Python loop
                m = torch.clamp(m + self.cfg.gain_scale * gains[:, t], 0.0, 1.0)
                steps.append(m)
            return GainAKT2Output(logits=logits, mastery=torch.stack(steps, dim=1), gains=gains)

    return LoopGainAKT2(cfg)


def padded_batches(ds, batch_size: int, seed: int):
    """Windows of at most 200 steps in random batches, each padded to 200."""
    import numpy as np
    from cmkt.data.batching import make_windows
    windows = make_windows(ds, REF_LEN, min_len=2)
    order = np.random.default_rng(seed).permutation(len(windows))
    return windows, [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def collate_padded(ds, windows, idx):
    import torch.nn.functional as F
    from cmkt.data.batching import collate
    s, r, m = collate(ds, windows, idx, "cpu")
    extra = REF_LEN - s.shape[1]
    return F.pad(s, (0, extra)), F.pad(r, (0, extra)), F.pad(m, (0, extra))


def train_epoch(model, opt, ds, weights, batch_size: int, seed: int) -> float:
    """One epoch the reference's way; returns its seconds."""
    import torch
    from cmkt.model import compute_losses
    windows, groups = padded_batches(ds, batch_size, seed)
    model.train()
    t0 = time.perf_counter()
    for idx in groups:
        s, r, m = collate_padded(ds, windows, idx)
        losses = compute_losses(model(s, r), s, r, m, weights, model.cfg.gain_scale)
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return time.perf_counter() - t0


@__import__("torch").no_grad()
def score_seconds(model, ds, batch_size: int = 128) -> float:
    """Score every student the reference's way (padded windows, the loop); returns its seconds."""
    windows, groups = padded_batches(ds, batch_size, 0)
    model.eval()
    t0 = time.perf_counter()
    for idx in groups:
        s, r, _ = collate_padded(ds, windows, idx)
        model(s, r)
    return time.perf_counter() - t0


def reference_run(data: str, preset: str, epochs: int = 2, seed: int = 0, threads: int = 0,
                  interactions: int | None = None, overrides: dict | None = None, check: bool = True) -> dict:
    """Time the reference approach at a preset's size: data loading, `epochs` training epochs (each
    followed by scoring the validation students), then the test students. check: first prove the
    loop computes what cmkt's model does (left out where the whole process is timed)."""
    import torch
    from _common import pick_students
    from cmkt.data.source import load_training_data
    from cmkt.model import GainAKT2
    from cmkt.train.config import build_configs
    from cmkt.train.trainer import set_threads
    set_threads(threads)
    t0 = time.perf_counter()
    splits = load_training_data(data, seed=seed)
    train = pick_students(splits.train, interactions, seed) if interactions else splits.train
    load = time.perf_counter() - t0
    mc, tc = build_configs(splits.num_skills, "cumulative", preset, {**(overrides or {}), **FIRST_RELEASE},
                           seed=seed, device="cpu")
    torch.manual_seed(seed)
    model = loop_model(mc)
    if check:
        closed = GainAKT2(mc)
        closed.load_state_dict(model.state_dict())                 # the loop is the same model
        windows, groups = padded_batches(train, 4, 0)
        s, r, _ = collate_padded(train, windows, groups[0])
        with torch.no_grad():
            model.eval(), closed.eval()
            assert float((model(s, r).mastery - closed(s, r).mastery).abs().max()) < 1e-4
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    out = []
    for e in range(epochs):
        train_s = train_epoch(model, opt, train, tc.weights(), tc.batch_size, seed * 100_003 + e)
        out.append({"epoch": e + 1, "train_seconds": train_s, "seconds": train_s + score_seconds(model, splits.valid)})
    test_s = score_seconds(model, splits.test) if splits.test is not None else 0.0
    n = sum(len(x) for x in train.skills)
    return {"mode": "reference", "preset": preset, "epochs": out, "interactions": n, "load_seconds": load,
            "test_seconds": test_s, "n_params": sum(p.numel() for p in model.parameters()),
            "command_seconds": load + out[0]["seconds"] + test_s}
