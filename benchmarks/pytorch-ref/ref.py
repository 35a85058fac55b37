#!/usr/bin/env python3
"""PyTorch reference of the project's unified model, for racing only (not part of the product).

It rebuilds the Burn model of `crates/umm-model/src/model.rs` layer for layer: the same
parameter names and shapes (read from the `init.safetensors` that `burn-speed export` writes,
linear weights stored `[in, out]` as Burn stores them), the same attention mask, the same
x-prediction velocity, the same understanding and flow-matching losses, the same AdamW
settings, and times the same units as `burn-speed`:

  ref.py train  --dir DIR [--compile] [--warmup 2 --steps 5]   one pretraining step
  ref.py sample --dir DIR [--compile] [--warmup 1 --reps 2]    32 images, guided Euler
  ref.py sgemm  [--n 2048]                                      the machine's matmul peak

Each prints one JSON object on stdout. `cargo xtask bench speed` runs it; by hand:

  target/release/burn-speed export --out /tmp/race
  .venv-torch/bin/python benchmarks/pytorch-ref/ref.py train --dir /tmp/race

Only torch is needed (no safetensors package: the format is parsed here). `--device cuda`
runs on a GPU.
"""

import argparse
import json
import math
import struct
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

PAD, BOS, EOS, ANS = 0, 1, 2, 5
MIN_FLOW_TIME = 0.05
LOW_T_FLOOR = 0.5
LR = 1e-4  # trainer::bench::BENCH_LR
NEG = -1e9


def load_safetensors(path, device):
    """Name -> tensor, for F32 and I64 tensors."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    dtypes = {"F32": torch.float32, "I64": torch.int64}
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        a, b = h["data_offsets"]
        t = torch.frombuffer(bytearray(data[a:b]), dtype=dtypes[h["dtype"]])
        out[name] = t.reshape(h["shape"]).to(device)
    return out


class Linear(nn.Module):
    """Burn's layout: weight `[in, out]`."""

    def __init__(self, i, o):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(i, o))
        self.bias = nn.Parameter(torch.empty(o))

    def forward(self, x):
        return F.linear(x, self.weight.t(), self.bias)


class LayerNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.gamma = nn.Parameter(torch.empty(d))
        self.beta = nn.Parameter(torch.empty(d))

    def forward(self, x):
        return F.layer_norm(x, (x.shape[-1],), self.gamma, self.beta, 1e-5)


class Embedding(nn.Module):
    def __init__(self, n, d):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, d))

    def forward(self, ids):
        return F.embedding(ids, self.weight)


class Conv(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(o, i, 3, 3))
        self.bias = nn.Parameter(torch.empty(o))

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, padding=1)


class Expert(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["d_model"]
        self.norm1 = LayerNorm(d)
        self.qkv = Linear(d, 3 * d)
        self.out = Linear(d, d)
        self.norm2 = LayerNorm(d)
        self.fc1 = Linear(d, c["mlp_ratio"] * d)
        self.fc2 = Linear(c["mlp_ratio"] * d, d)

    def mlp(self, x):
        return self.fc2(F.gelu(self.fc1(self.norm2(x))))


def attention(qkv, n_heads, bias, sdpa):
    b, s, d3 = qkv.shape
    d = d3 // 3
    hd = d // n_heads
    q, k, v = (t.reshape(b, s, n_heads, hd).transpose(1, 2) for t in qkv.split(d, dim=2))
    if sdpa:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    else:
        scores = q @ k.transpose(2, 3) / math.sqrt(hd) + bias
        out = scores.softmax(dim=3) @ v
    return out.transpose(1, 2).reshape(b, s, d)


class Block(nn.Module):
    def __init__(self, c, sdpa):
        super().__init__()
        self.und = Expert(c)
        self.gen_expert = None if c["dense"] else Expert(c)
        self.n_heads = c["n_heads"]
        self.sdpa = sdpa

    def forward(self, x, split, bias):
        s = x.shape[1]
        gen_e = self.gen_expert if self.gen_expert is not None else self.und

        def per_expert(x, f):
            parts = []
            if split > 0:
                parts.append(f(self.und, x[:, :split]))
            if split < s:
                parts.append(f(gen_e, x[:, split:]))
            return torch.cat(parts, 1)

        qkv = per_expert(x, lambda e, t: e.qkv(e.norm1(t)))
        att = attention(qkv, self.n_heads, bias, self.sdpa)
        x = x + per_expert(att, lambda e, t: e.out(t))
        return x + per_expert(x, lambda e, t: e.mlp(t))


def patchify(images, p):
    b, c, h, w = images.shape
    gh, gw = h // p, w // p
    return (
        images.reshape(b, c, gh, p, gw, p).permute(0, 2, 4, 1, 3, 5).reshape(b, gh * gw, c * p * p)
    )


def unpatchify(patches, p, side):
    b, _, dim = patches.shape
    c = dim // (p * p)
    g = side // p
    return patches.reshape(b, g, g, c, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, c, side, side)


class UndStem(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = Conv(3, c["und_stem"])
        self.conv2 = Conv(c["und_stem"], c["und_stem"])
        self.patch = c["patch"]

    def forward(self, patches):
        side = round(math.sqrt(patches.shape[1])) * self.patch
        img = unpatchify(patches, self.patch, side)
        return patchify(F.gelu(self.conv2(F.gelu(self.conv1(img)))), self.patch)


def attention_bias(text, nu, ng):
    """The additive mask of model.rs `attention_bias`, `[b, 1, s, s]`."""
    b, t = text.shape
    s = t + nu + ng
    dev = text.device
    idx = torch.arange(s, device=dev)
    seg = torch.zeros(s, dtype=torch.long, device=dev)
    seg[t : t + nu] = 1
    seg[t + nu :] = 2
    is_ans = text == ANS
    has_ans = is_ans.any(dim=1)
    first = torch.where(has_ans, is_ans.float().argmax(dim=1), torch.full_like(has_ans, -1, dtype=torch.long))
    prefix = (idx[None, :] < t) & (idx[None, :] <= first[:, None]) & has_ans[:, None]  # [b, s]
    sq, sk = seg[:, None], seg[None, :]
    causal = idx[None, :] <= idx[:, None]  # [q, k]: k <= q
    text_text = (sq == 0) & (sk == 0) & (causal[None] | (prefix[:, :, None] & prefix[:, None, :]))
    img_text = (sq == 1) & (sk == 0) & prefix[:, None, :]
    open_pairs = ((sq == 0) & (sk == 1)) | ((sq == 1) & (sk == 1)) | ((sq == 2) & (sk == 0)) | (
        (sq == 2) & (sk == 2)
    )
    allowed = text_text | img_text | open_pairs[None]
    padded = torch.zeros(b, s, dtype=torch.bool, device=dev)
    padded[:, :t] = text == PAD
    ok = allowed & ~padded[:, None, :]
    zero = torch.zeros((), device=dev)
    return torch.where(ok, zero, torch.full((), NEG, device=dev)).unsqueeze(1)


class Umm(nn.Module):
    def __init__(self, c, sdpa=True):
        super().__init__()
        d = c["d_model"]
        n = (c["resolution"] // c["patch"]) ** 2
        pd = 3 * c["patch"] ** 2
        self.c = c
        self.tok = Embedding(c["vocab_size"], d)
        self.text_pos = Embedding(c["max_text_len"], d)
        self.und_pos = Embedding(n, d)
        self.gen_pos = Embedding(n, d)
        self.und_stem = UndStem(c) if c["und_stem"] > 0 else None
        self.und_in = Linear(c["und_stem"] * c["patch"] ** 2 if c["und_stem"] > 0 else pd, d)
        self.und_in_norm = LayerNorm(d)
        dense = dict(c, dense=True)
        self.und_encoder = nn.ModuleList([Block(dense, sdpa) for _ in range(c["und_encoder_layers"])])
        self.gen_in = Linear(pd, d)
        self.time1 = Linear(c["time_freq_dim"], d)
        self.time2 = Linear(d, d)
        self.blocks = nn.ModuleList([Block(c, sdpa) for _ in range(c["n_layers"])])
        self.und_norm = LayerNorm(d)
        self.gen_norm = LayerNorm(d)
        self.lm_head = Linear(d, c["vocab_size"])
        self.velocity_head = Linear(d, pd)
        half = c["time_freq_dim"] // 2
        freqs = torch.tensor([math.exp(-math.log(10000.0) * i / half) for i in range(half)])
        self.register_buffer("freqs", freqs, persistent=False)

    def time_features(self, t):
        angles = (t * 1000.0)[:, None] * self.freqs[None, :]
        return torch.cat([angles.cos(), angles.sin()], 1)

    def forward(self, text, und_image=None, gen_image=None):
        b, t = text.shape
        dev = text.device
        parts = [self.tok(text) + self.text_pos(torch.arange(t, device=dev))[None]]
        nu = 0 if und_image is None else und_image.shape[1]
        if und_image is not None:
            img = self.und_stem(und_image) if self.und_stem is not None else und_image
            h = self.und_in_norm(self.und_in(img)) + self.und_pos(torch.arange(nu, device=dev))[None]
            if len(self.und_encoder) > 0:
                open_mask = torch.zeros(b, 1, nu, nu, device=dev)
                for block in self.und_encoder:
                    h = block(h, nu, open_mask)
            parts.append(h)
        ng = 0 if gen_image is None else gen_image[0].shape[1]
        if gen_image is not None:
            xt, time_ = gen_image
            temb = self.time2(F.silu(self.time1(self.time_features(time_))))
            parts.append(
                self.gen_in(xt) + self.gen_pos(torch.arange(ng, device=dev))[None] + temb[:, None]
            )
        x = torch.cat(parts, 1)
        split = t + nu
        bias = attention_bias(text, nu, ng)
        for block in self.blocks:
            x = block(x, split, bias)
        logits = self.lm_head(self.und_norm(x[:, :t]))
        velocity = None
        if gen_image is not None:
            xt, time_ = gen_image
            head = self.velocity_head(self.gen_norm(x[:, split : split + ng]))
            if self.c["predict_clean"]:
                velocity = (xt - head) / time_.clamp_min(MIN_FLOW_TIME)[:, None, None]
            else:
                velocity = head
        return logits, velocity


def und_loss(model, inp):
    logits, _ = model(inp["und_text"], und_image=inp["und_image"])
    logp = logits.log_softmax(dim=2)
    picked = logp.gather(2, inp["und_targets"][:, :, None])[:, :, 0]
    mask = inp["und_mask"]
    return -(picked * mask).sum() / mask.sum().clamp_min(1.0)


def gen_loss(model, inp):
    x0, noise, t = inp["gen_x0"], inp["gen_noise"], inp["gen_t"]
    t3 = t[:, None, None]
    v = noise - x0
    xt = x0 + v * t3
    weight = (t3 / t3.clamp_min(LOW_T_FLOOR)) ** 2
    _, pred = model(inp["gen_text"], gen_image=(xt, t))
    return ((pred - v).square() * weight).mean()


def build(args):
    dev = torch.device(args.device)
    with open(f"{args.dir}/config.json") as f:
        c = json.load(f)
    model = Umm(c, sdpa=not args.naive_attention).to(dev)
    weights = load_safetensors(f"{args.dir}/init.safetensors", dev)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        sys.exit(f"weights do not match the model: missing {missing}, unexpected {unexpected}")
    inp = load_safetensors(f"{args.dir}/inputs.safetensors", dev)
    n_params = sum(p.numel() for p in model.parameters())
    return c, model, inp, n_params


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def backend_name(args):
    name = "torch-" + ("compile" if args.compile else "eager")
    if args.naive_attention:
        name += "-naive-attention"
    return name if args.device == "cpu" else f"{name}-{args.device}"


def cmd_train(args):
    c, model, inp, n_params = build(args)
    dev = torch.device(args.device)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-5, weight_decay=1e-4)

    def loss_fn():
        return und_loss(model, inp) + gen_loss(model, inp)

    if args.compile:
        loss_fn = torch.compile(loss_fn)
    times, losses, phases = [], [], []
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        loss = loss_fn()
        value = loss.item()  # read back before the update, as the Rust loop does
        t1 = time.perf_counter()
        loss.backward()
        sync(dev)
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(dev)
        t3 = time.perf_counter()
        if i >= args.warmup:
            times.append(t3 - t0)
            phases.append([t1 - t0, t2 - t1, t3 - t2])
        losses.append(value)
    out = {"backend": backend_name(args), "step_s": times, "phases_s": phases, "loss": losses}
    print(json.dumps(dict(out, params=n_params)))


def cmd_sample(args):
    c, model, inp, n_params = build(args)
    dev = torch.device(args.device)
    text, empty, noise = inp["gen_text"], inp["sample_empty"], inp["sample_noise"]
    b = text.shape[0]

    def guided(x, time_):
        _, cond = model(text, gen_image=(x, time_))
        _, uncond = model(empty, gen_image=(x, time_))
        return uncond + (cond - uncond) * args.cfg_scale

    if args.compile:
        guided = torch.compile(guided)
    times = []
    mean_abs = 0.0
    with torch.inference_mode():
        for i in range(args.warmup + args.reps):
            t0 = time.perf_counter()
            x = noise
            dt = 1.0 / args.euler_steps
            for k in range(args.euler_steps):
                # The time as a tensor: torch.compile would specialise on a Python float.
                time_ = torch.full((b,), 1.0 - k * dt, device=dev)
                x = x - guided(x, time_) * dt
            sync(dev)
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
            mean_abs = x.abs().mean().item()
    print(json.dumps({"backend": backend_name(args), "batch_s": times, "images": b, "mean_abs": mean_abs}))


def cmd_sgemm(args):
    dev = torch.device(args.device)
    a = torch.randn(args.n, args.n, device=dev)
    b = torch.randn(args.n, args.n, device=dev)
    for _ in range(3):
        a @ b
    sync(dev)
    times = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        a @ b
        sync(dev)
        times.append(time.perf_counter() - t0)
    times.sort()
    flops = 2.0 * args.n**3
    print(
        json.dumps(
            {
                "n": args.n,
                "median_gflops": flops / times[len(times) // 2] / 1e9,
                "best_gflops": flops / times[0] / 1e9,
                "library": f"torch {torch.__version__} matmul ({torch.backends.mkldnn.is_available() and 'oneDNN/MKL' or 'default BLAS'})",
                "threads": torch.get_num_threads(),
            }
        )
    )


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ["train", "sample", "sgemm"]:
        s = sub.add_parser(name)
        s.add_argument("--device", default="cpu")
        if name == "sgemm":
            s.add_argument("--n", type=int, default=2048)
            s.add_argument("--reps", type=int, default=9)
            continue
        s.add_argument("--dir", required=True, help="what `burn-speed export` wrote")
        s.add_argument("--compile", action="store_true", help="torch.compile the step")
        s.add_argument("--naive-attention", action="store_true", help="matmul + softmax, as Burn, instead of SDPA")
        if name == "train":
            s.add_argument("--warmup", type=int, default=2)
            s.add_argument("--steps", type=int, default=5)
        else:
            s.add_argument("--warmup", type=int, default=1)
            s.add_argument("--reps", type=int, default=2)
            s.add_argument("--euler-steps", type=int, default=20)
            s.add_argument("--cfg-scale", type=float, default=2.0)
    args = p.parse_args()
    {"train": cmd_train, "sample": cmd_sample, "sgemm": cmd_sgemm}[args.cmd](args)


if __name__ == "__main__":
    main()
