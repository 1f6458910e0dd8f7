#!/usr/bin/python3
"""PyTorch eager baseline for whale's training benchmark (issue 7).

An independent float32 implementation of the DeepSeek-V2/V3 training step described in
../shared/fixtures/train/README.md: naive MLA (optional q LoRA), YaRN RoPE, dense first layers,
MoE with sigmoid or softmax routing (correction bias used only for selection, optional expert
groups, optional normalisation, routed scaling, shared experts), a depth-1 MTP module, and one
optimizer step (global-norm clip to 1.0, AdamW without decay on 1-D tensors, auxiliary-loss-free
bias update).

  --check FIXTURE_DIR  load model.safetensors + batch.json, compare losses, gradients and the
                       weights after one step with expected.json / grads / after_adamw.
  otherwise            time training steps on --config (bench-config.json layout) and print one
                       JSON line: median s/step, tokens/s, peak RSS.

Run it with Debian's interpreter (/usr/bin/python3, package python3-torch); install
libopenblas0-pthread so torch's BLAS is OpenBLAS rather than the reference BLAS.
"""
import argparse
import json
import math
import os
import resource
import statistics
import struct
import sys
import time

import torch
import torch.nn.functional as F

# ----------------------------------------------------------------------------- safetensors

_DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16,
           "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32}


def load_safetensors(path):
    """Parse the safetensors format (8-byte little-endian header length, JSON header, raw data)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = _DTYPES[info["dtype"]]
        buf = bytearray(data[base + begin:base + end])  # writable copy, so torch owns it
        t = torch.frombuffer(buf, dtype=dtype) if end > begin else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(info["shape"]).to(torch.float32) if dtype.is_floating_point \
            else t.reshape(info["shape"])
    return out


# ----------------------------------------------------------------------------- model math

def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def yarn_tables(cfg, seq):
    """cos/sin of the rotary angles [seq, rope_dim/2]; YaRN blends interpolated and original
    frequencies between the beta_fast and beta_slow correction dims."""
    dim = cfg["qk_rope_head_dim"]
    base = float(cfg.get("rope_theta", 10000.0))
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    rs = cfg.get("rope_scaling") or {}
    if rs.get("type", rs.get("rope_type")) == "yarn":
        factor = float(rs["factor"])
        orig = float(rs["original_max_position_embeddings"])

        def corr_dim(rot):
            return dim * math.log(orig / (rot * 2 * math.pi)) / (2 * math.log(base))
        low = max(math.floor(corr_dim(rs.get("beta_fast", 32))), 0)
        high = min(math.ceil(corr_dim(rs.get("beta_slow", 1))), dim - 1)
        if low == high:
            high += 0.001
        ramp = ((torch.arange(dim // 2, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
        keep = 1 - ramp  # 1: keep the original frequency (fast dims), 0: interpolate
        inv = inv / factor * (1 - keep) + inv * keep
    ang = torch.outer(torch.arange(seq, dtype=torch.float64), inv)
    return ang.cos().float(), ang.sin().float()


def softmax_scale(cfg):
    d = cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]
    scale = d ** -0.5
    rs = cfg.get("rope_scaling") or {}
    if rs.get("type", rs.get("rope_type")) == "yarn":
        m = rs.get("mscale_all_dim", rs.get("mscale", 0.0))
        if m and rs["factor"] > 1:
            ms = 0.1 * m * math.log(rs["factor"]) + 1.0
            scale *= ms * ms
    return scale


def rope(x, cos, sin):
    """Rotate interleaved pairs (x0,x1),(x2,x3)... as DeepSeek's checkpoints store them."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


class Model:
    def __init__(self, cfg, params):
        self.cfg = cfg
        self.p = params
        self.eps = cfg["rms_norm_eps"]
        self.n_main = cfg["num_hidden_layers"]
        self.n_mtp = cfg.get("num_nextn_predict_layers", 0) or 0
        if self.n_mtp > 1:
            raise SystemExit("only a depth-1 MTP module is supported")
        self.scale = softmax_scale(cfg)
        self.loads = {}  # gate name -> tokens routed per expert (last forward)

    def w(self, name):
        return self.p[name]

    def attention(self, pre, x, cos, sin):
        c = self.cfg
        B, S, _ = x.shape
        H = c["num_attention_heads"]
        dn, dr, dv = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
        if c.get("q_lora_rank"):
            q = F.linear(x, self.w(pre + "q_a_proj.weight"))
            q = rms_norm(q, self.w(pre + "q_a_layernorm.weight"), self.eps)
            q = F.linear(q, self.w(pre + "q_b_proj.weight"))
        else:
            q = F.linear(x, self.w(pre + "q_proj.weight"))
        q = q.view(B, S, H, dn + dr)
        q_nope, q_pe = q[..., :dn], rope(q[..., dn:], cos[:, None, :], sin[:, None, :])
        kv = F.linear(x, self.w(pre + "kv_a_proj_with_mqa.weight"))
        r = c["kv_lora_rank"]
        ckv, k_pe = kv[..., :r], rope(kv[..., r:], cos, sin)
        kv = F.linear(rms_norm(ckv, self.w(pre + "kv_a_layernorm.weight"), self.eps),
                      self.w(pre + "kv_b_proj.weight")).view(B, S, H, dn + dv)
        k_nope, v = kv[..., :dn], kv[..., dn:]
        qf = torch.cat((q_nope, q_pe), -1).transpose(1, 2)                       # B H S d
        kf = torch.cat((k_nope, k_pe[:, :, None, :].expand(B, S, H, dr)), -1).transpose(1, 2)
        scores = torch.matmul(qf, kf.transpose(-1, -2)) * self.scale
        mask = torch.full((S, S), float("-inf")).triu(1)
        probs = torch.softmax(scores + mask, dim=-1)
        o = torch.matmul(probs, v.transpose(1, 2)).transpose(1, 2).reshape(B, S, H * dv)
        return F.linear(o, self.w(pre + "o_proj.weight"))

    def mlp(self, pre, x):
        g = F.linear(x, self.w(pre + "gate_proj.weight"))
        u = F.linear(x, self.w(pre + "up_proj.weight"))
        return F.linear(F.silu(g) * u, self.w(pre + "down_proj.weight"))

    def moe(self, pre, x):
        c = self.cfg
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        T = x.shape[0]
        E, K = c["n_routed_experts"], c["num_experts_per_tok"]
        logits = F.linear(x, self.w(pre + "gate.weight"))
        if c.get("scoring_func", "softmax") == "sigmoid":
            scores = logits.sigmoid()
        else:
            scores = logits.softmax(-1)
        with torch.no_grad():  # selection is not differentiated
            sel = scores.detach()
            bias = self.p.get(pre + "gate.e_score_correction_bias")
            if bias is not None:
                sel = sel + bias
            G = c.get("n_group", 1) or 1
            if G > 1:
                gs = sel.view(T, G, E // G)
                gscore = gs.topk(2, -1).values.sum(-1) if bias is not None else gs.amax(-1)
                keep = gscore.topk(c["topk_group"], -1).indices
                gmask = torch.ones(T, G, dtype=torch.bool).scatter_(1, keep, False)
                sel = sel.masked_fill(gmask[:, :, None].expand(T, G, E // G).reshape(T, E),
                                      float("-inf"))
            idx = sel.topk(K, -1).indices
        weights = scores.gather(1, idx)
        if c.get("norm_topk_prob", False) and K > 1:
            weights = weights / weights.sum(-1, keepdim=True)
        weights = weights * c.get("routed_scaling_factor", 1.0)
        counts = torch.bincount(idx.flatten(), minlength=E)
        self.loads[pre + "gate"] = counts
        y = torch.zeros_like(x)
        for e in range(E):
            if counts[e] == 0:
                continue
            tok, slot = torch.where(idx == e)
            out = self.mlp(f"{pre}experts.{e}.", x[tok]) * weights[tok, slot, None]
            y = y.index_add(0, tok, out)
        if c.get("n_shared_experts"):
            y = y + self.mlp(pre + "shared_experts.", x)
        return y.view(shape)

    def block(self, layer, x, cos, sin):
        pre = f"model.layers.{layer}."
        x = x + self.attention(pre + "self_attn.",
                               rms_norm(x, self.w(pre + "input_layernorm.weight"), self.eps),
                               cos, sin)
        h = rms_norm(x, self.w(pre + "post_attention_layernorm.weight"), self.eps)
        if layer >= self.cfg.get("first_k_dense_replace", 0):
            return x + self.moe(pre + "mlp.", h)
        return x + self.mlp(pre + "mlp.", h)

    def losses(self, tokens, targets):
        """Returns (loss_main, loss_mtp or None)."""
        B, S = tokens.shape
        cos, sin = yarn_tables(self.cfg, S)
        emb = self.w("model.embed_tokens.weight")
        head = self.w("lm_head.weight")
        V = head.shape[0]
        x = F.embedding(tokens, emb)
        for layer in range(self.n_main):
            x = self.block(layer, x, cos, sin)
        h = rms_norm(x, self.w("model.norm.weight"), self.eps)
        loss_main = F.cross_entropy(F.linear(h, head).view(-1, V), targets.reshape(-1))
        if not self.n_mtp or S < 2:
            return loss_main, None
        # MTP: position i sees [enorm(Emb(t_{i+1})); hnorm(h_i)] and predicts t_{i+2}.
        pre = f"model.layers.{self.n_main}."
        e = rms_norm(F.embedding(tokens[:, 1:], emb), self.w(pre + "enorm.weight"), self.eps)
        hh = rms_norm(h[:, :-1], self.w(pre + "hnorm.weight"), self.eps)
        m = F.linear(torch.cat((e, hh), -1), self.w(pre + "eh_proj.weight"))
        m = self.block(self.n_main, m, cos[:S - 1], sin[:S - 1])
        m = rms_norm(m, self.w(pre + "shared_head.norm.weight"), self.eps)
        loss_mtp = F.cross_entropy(F.linear(m, head).reshape(-1, V), targets[:, 1:].reshape(-1))
        return loss_main, loss_mtp


# ----------------------------------------------------------------------------- parameters

def param_shapes(cfg):
    """Hugging Face tensor names and shapes for a config (random init)."""
    D, V = cfg["hidden_size"], cfg["vocab_size"]
    H = cfg["num_attention_heads"]
    dn, dr, dv = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    r, ql = cfg["kv_lora_rank"], cfg.get("q_lora_rank")
    E, mi = cfg.get("n_routed_experts") or 0, cfg.get("moe_intermediate_size")
    shp = {"model.embed_tokens.weight": [V, D], "lm_head.weight": [V, D], "model.norm.weight": [D]}
    n_mtp = cfg.get("num_nextn_predict_layers", 0) or 0
    for layer in range(cfg["num_hidden_layers"] + n_mtp):
        p = f"model.layers.{layer}."
        shp[p + "input_layernorm.weight"] = [D]
        shp[p + "post_attention_layernorm.weight"] = [D]
        a = p + "self_attn."
        if ql:
            shp[a + "q_a_proj.weight"] = [ql, D]
            shp[a + "q_a_layernorm.weight"] = [ql]
            shp[a + "q_b_proj.weight"] = [H * (dn + dr), ql]
        else:
            shp[a + "q_proj.weight"] = [H * (dn + dr), D]
        shp[a + "kv_a_proj_with_mqa.weight"] = [r + dr, D]
        shp[a + "kv_a_layernorm.weight"] = [r]
        shp[a + "kv_b_proj.weight"] = [H * (dn + dv), r]
        shp[a + "o_proj.weight"] = [D, H * dv]

        def mlp(q, inter):
            shp[q + "gate_proj.weight"] = [inter, D]
            shp[q + "up_proj.weight"] = [inter, D]
            shp[q + "down_proj.weight"] = [D, inter]
        if layer < cfg.get("first_k_dense_replace", 0):
            mlp(p + "mlp.", cfg["intermediate_size"])
        else:
            shp[p + "mlp.gate.weight"] = [E, D]
            for e in range(E):
                mlp(f"{p}mlp.experts.{e}.", mi)
            if cfg.get("n_shared_experts"):
                mlp(p + "mlp.shared_experts.", mi * cfg["n_shared_experts"])
        if layer >= cfg["num_hidden_layers"]:
            shp[p + "enorm.weight"] = [D]
            shp[p + "hnorm.weight"] = [D]
            shp[p + "eh_proj.weight"] = [D, 2 * D]
            shp[p + "shared_head.norm.weight"] = [D]
    return shp


def random_params(cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in param_shapes(cfg).items():
        out[name] = torch.ones(shape) if len(shape) == 1 else torch.randn(shape, generator=g) * 0.02
    if cfg.get("scoring_func") == "sigmoid" or cfg.get("topk_method") == "noaux_tc":
        n = cfg["num_hidden_layers"] + (cfg.get("num_nextn_predict_layers", 0) or 0)
        for layer in range(cfg.get("first_k_dense_replace", 0), n):
            out[f"model.layers.{layer}.mlp.gate.e_score_correction_bias"] = \
                torch.zeros(cfg["n_routed_experts"])
    return out


def is_bias(name):
    return name.endswith("e_score_correction_bias")


class Trainer:
    def __init__(self, cfg, params, lambda_mtp, adamw, gamma=0.001):
        self.model = Model(cfg, params)
        self.lambda_mtp = lambda_mtp
        self.gamma = gamma
        self.trainable = [(n, t) for n, t in params.items() if not is_bias(n)]
        for _, t in self.trainable:
            t.requires_grad_(True)
        decay = [t for _, t in self.trainable if t.dim() >= 2]
        no_decay = [t for _, t in self.trainable if t.dim() < 2]
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": adamw["weight_decay"]},
             {"params": no_decay, "weight_decay": 0.0}],
            lr=adamw["lr"], betas=tuple(adamw["betas"]), eps=adamw["eps"])

    def forward_backward(self, tokens, targets):
        self.opt.zero_grad(set_to_none=True)
        lm, lt = self.model.losses(tokens, targets)
        total = lm + self.lambda_mtp * lt if lt is not None else lm
        total.backward()
        for _, t in self.trainable:  # unchosen experts: zero gradient, still decayed by AdamW
            if t.grad is None:
                t.grad = torch.zeros_like(t)
        return lm, lt, total

    def step(self, tokens, targets):
        lm, lt, total = self.forward_backward(tokens, targets)
        return lm, lt, total, self.update()

    def update(self):
        """Clip, AdamW, bias update; returns the gradient norm before clipping."""
        norm = torch.nn.utils.clip_grad_norm_([t for _, t in self.trainable], 1.0)
        self.opt.step()
        with torch.no_grad():  # auxiliary-loss-free balancing: b += gamma * sign(mean - load)
            for gate, load in self.model.loads.items():
                b = self.model.p.get(gate + ".e_score_correction_bias")
                if b is not None:
                    lf = load.float()
                    b += self.gamma * torch.sign(lf.mean() - lf)
        return norm


# ----------------------------------------------------------------------------- check / bench

def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-30)


def check(folder):
    cfg = json.load(open(os.path.join(folder, "config.json")))
    exp = json.load(open(os.path.join(folder, "expected.json")))
    batch = json.load(open(os.path.join(folder, "batch.json")))
    params = load_safetensors(os.path.join(folder, "model.safetensors"))
    grads_ref = load_safetensors(os.path.join(folder, "grads.safetensors"))
    after_ref = load_safetensors(os.path.join(folder, "after_adamw.safetensors"))
    tokens = torch.tensor(batch["tokens"])
    targets = torch.tensor(batch["targets"])
    tr = Trainer(cfg, params, exp.get("lambda_mtp") or 0.0, exp["adamw"], exp.get("gamma", 0.001))
    lm, lt, total = tr.forward_backward(tokens, targets)
    grads = {name: t.grad.clone() for name, t in tr.trainable}  # before clipping
    norm = tr.update()
    res = {"fixture": os.path.basename(folder.rstrip("/")),
           "loss_main": lm.item(), "loss_mtp": None if lt is None else lt.item(),
           "loss_total": total.item(), "grad_norm": norm.item()}
    ok = True
    for key, got in (("loss_main", res["loss_main"]), ("loss_mtp", res["loss_mtp"]),
                     ("loss_total", res["loss_total"])):
        want = exp.get(key)
        if want is None and got is None:
            continue
        if want is None or got is None or rel(got, want) > 1e-5:
            ok = False
        res[key + "_rel_err"] = None if want is None or got is None else rel(got, want)
    res["grad_norm_rel_err"] = rel(res["grad_norm"], exp["grad_norm_before_clip"])
    ok &= res["grad_norm_rel_err"] < 1e-5
    # loads
    for gate, want in exp.get("expert_loads", {}).items():
        if tr.model.loads[gate].tolist() != want:
            ok = False
            res.setdefault("load_mismatch", []).append(gate)
    # gradients: each tensor within 1e-4 of its largest |entry|
    names = {n for n, _ in tr.trainable}
    if names != set(grads_ref) or set(params) != set(after_ref):
        ok = False
        res["tensor_set_mismatch"] = sorted(names ^ set(grads_ref)) + sorted(set(params) ^ set(after_ref))
    worst_g = 0.0
    for name, t in tr.trainable:
        ref = grads_ref[name]
        scale = ref.abs().max().item()
        err = (grads[name] - ref).abs().max().item() / (scale if scale > 0 else 1.0)
        worst_g = max(worst_g, err)
    res["grad_worst_rel_to_max"] = worst_g
    ok &= worst_g < 1e-4
    # after AdamW: strong-gradient entries within 1e-6, others within 2*lr; biases exactly
    lr = exp["adamw"]["lr"]
    worst_strong = worst_weak = 0.0
    bias_ok = True
    for name, t in params.items():
        ref = after_ref[name]
        d = (t.detach() - ref).abs()
        if is_bias(name):
            bias_ok &= bool(torch.equal(t.detach(), ref))
            continue
        g = grads_ref[name].abs()
        strong = g > 1e-3 * g.max() if g.max() > 0 else torch.zeros_like(g, dtype=torch.bool)
        if strong.any():
            worst_strong = max(worst_strong, d[strong].max().item())
        if (~strong).any():
            worst_weak = max(worst_weak, d[~strong].max().item())
    res.update(after_worst_strong_abs=worst_strong, after_worst_weak_abs=worst_weak,
               biases_exact=bias_ok)
    ok &= worst_strong <= 1e-6 and worst_weak <= 2 * lr and bias_ok
    res["ok"] = bool(ok)
    print(json.dumps(res))
    return ok


def bench(path, steps, warmup, seed):
    b = json.load(open(path))
    cfg = b["config"]
    B, S = b["batch"], b["seq"]
    adamw = b.get("adamw", {"lr": 1e-3, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.1})
    tr = Trainer(cfg, random_params(cfg, seed), b.get("lambda_mtp", 0.3), adamw)
    g = torch.Generator().manual_seed(seed + 1)
    times, fb_times = [], []
    loss = None
    for i in range(warmup + steps):
        seqs = torch.randint(0, cfg["vocab_size"], (B, S + 1), generator=g)
        t0 = time.perf_counter()
        _, _, total = tr.forward_backward(seqs[:, :-1], seqs[:, 1:])
        t1 = time.perf_counter()
        tr.update()
        t2 = time.perf_counter()
        loss = total.item()
        if i >= warmup:
            times.append(t2 - t0)
            fb_times.append(t1 - t0)
    med = statistics.median(times)
    fb = statistics.median(fb_times)
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"impl": "pytorch-eager", "torch": torch.__version__,
                      "blas": blas_name(), "threads": torch.get_num_threads(),
                      "batch": B, "seq": S, "steps": steps, "warmup": warmup,
                      "median_s_per_step": round(med, 4),
                      "tokens_per_s": round(B * S / med, 1),
                      "fwd_bwd_median_s": round(fb, 4),
                      "fwd_bwd_tokens_per_s": round(B * S / fb, 1),
                      "peak_rss_mib": round(rss_kib / 1024, 1),
                      "last_loss_total": round(loss, 5),
                      "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
                      "includes": "forward+backward+clip+AdamW+bias update "
                                  "(fwd_bwd_*: forward+backward only)"}))


def blas_name():
    try:
        with open("/proc/self/maps") as f:
            libs = {ln.split()[-1] for ln in f if "blas" in ln.lower()}
        return ",".join(sorted(os.path.basename(x) for x in libs)) or "unknown"
    except OSError:
        return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "../../../shared/fixtures/train/bench-config.json"))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check", metavar="FIXTURE_DIR", action="append",
                    help="verify against a training fixture (repeatable)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.check:
        torch.manual_seed(a.seed)
        ok = all([check(d) for d in a.check])
        sys.exit(0 if ok else 1)
    if a.steps < 1 or a.warmup < 0:
        ap.error("--steps must be >= 1 and --warmup >= 0")
    bench(a.config, a.steps, a.warmup, a.seed)


if __name__ == "__main__":
    main()
