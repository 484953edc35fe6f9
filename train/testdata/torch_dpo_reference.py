#!/usr/bin/python3
"""PyTorch autograd reference for train's DPO loss and LoRA gradients on skills-base.

Run once (Debian's python3-torch and python3-numpy):

    /usr/bin/python3 train/testdata/torch_dpo_reference.py ../shared/models/skills-base > train/testdata/torch_dpo_grads.json

For the fixed pairs below (byte-level tokens: BOS 256, the prompt's and the
completion's bytes, EOS 257; the completion and EOS scored) it writes the
policy's and the reference's summed completion log-probabilities, the mean
sigmoid DPO loss (beta 0.1, TRL's default; the reference is the same model
without the adapters) and, for the deterministic LoRA initialisation of
torch_reference.py (r=8, alpha=16 on q_proj, v_proj, down_proj), each
adapter gradient's Frobenius norm and first values. The model is
torch_reference.py's float64 Hugging Face Llama, written independently of
the Go code.
"""
import json
import math
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

PAIRS = [
    ("Q: 101+202=\nA:", " 303", " 313"),
    ("Q: 958+67=\nA:", " 1025", " 1015"),
    ("Q: reverse abc\nA:", " cba", " abc"),
]
BETA = 0.1


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info["dtype"]
        lo, hi = info["data_offsets"]
        arr = np.frombuffer(data[lo:hi], dtype="<f4").reshape(info["shape"])
        out[name] = torch.tensor(arr.astype(np.float64))
    return out


def main():
    use_lora = [True]
    model_dir = sys.argv[1]
    cfg = json.load(open(model_dir + "/config.json"))
    W = read_safetensors(model_dir + "/model.safetensors")
    D, H, KV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = D // H
    eps, theta = cfg["rms_norm_eps"], cfg["rope_theta"]
    r, alpha, targets = 8, 16, ["q_proj", "v_proj", "down_proj"]
    scale = alpha / r

    # Deterministic LoRA init (the Go test rebuilds the same values).
    lora = {}
    for l in range(cfg["num_hidden_layers"]):
        for mod in targets:
            sub = "mlp" if mod == "down_proj" else "self_attn"
            base = f"model.layers.{l}.{sub}.{mod}"
            out_dim, in_dim = W[base + ".weight"].shape
            i = torch.arange(r).reshape(-1, 1).double()
            j = torch.arange(in_dim).reshape(1, -1).double()
            A = 0.02 * torch.sin(1 + 0.7 * i + 0.3 * j + l)
            i = torch.arange(out_dim).reshape(-1, 1).double()
            j = torch.arange(r).reshape(1, -1).double()
            B = 0.02 * torch.cos(2 + 0.5 * j + 0.11 * i + l)
            lora[base] = (A.requires_grad_(), B.requires_grad_())

    def proj(x, base):
        y = x @ W[base + ".weight"].T
        if base in lora and use_lora[0]:
            A, B = lora[base]
            y = y + scale * (x @ A.T) @ B.T
        return y

    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

    def rotate_half(x):
        return torch.cat((-x[..., hd // 2:], x[..., : hd // 2]), dim=-1)

    def forward(ids):
        n = len(ids)
        x = W["model.embed_tokens.weight"][torch.tensor(ids)]
        inv = 1.0 / (theta ** (torch.arange(0, hd, 2).double() / hd))
        ang = torch.outer(torch.arange(n).double(), inv)
        emb = torch.cat((ang, ang), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        mask = torch.full((n, n), -math.inf).triu(1)
        for l in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{l}."
            a = rms(x, W[p + "input_layernorm.weight"])
            q = proj(a, p + "self_attn.q_proj").view(n, H, hd).transpose(0, 1)
            k = proj(a, p + "self_attn.k_proj").view(n, KV, hd).transpose(0, 1)
            v = proj(a, p + "self_attn.v_proj").view(n, KV, hd).transpose(0, 1)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            k = k.repeat_interleave(H // KV, dim=0)
            v = v.repeat_interleave(H // KV, dim=0)
            s = q @ k.transpose(1, 2) / math.sqrt(hd) + mask
            o = (s.softmax(-1) @ v).transpose(0, 1).reshape(n, D)
            x = x + proj(o, p + "self_attn.o_proj")
            b = rms(x, W[p + "post_attention_layernorm.weight"])
            h = torch.nn.functional.silu(proj(b, p + "mlp.gate_proj")) * proj(b, p + "mlp.up_proj")
            x = x + proj(h, p + "mlp.down_proj")
        x = rms(x, W["model.norm.weight"])
        return x @ W["lm_head.weight"].T

    def seq(prompt, completion):
        p = [256] + list(prompt.encode())
        c = list(completion.encode()) + [257]
        return p + c, len(p)

    def logp(ids, n_prompt):
        logits = forward(ids)
        lp = torch.log_softmax(logits, -1)
        tgt = torch.tensor(ids[1:])
        per = lp[:-1].gather(1, tgt.unsqueeze(1)).squeeze(1)
        return per[n_prompt - 1:].sum()

    out = {"beta": BETA, "r": r, "alpha": alpha, "pairs": [], "grads": {}}
    losses = []
    for prompt, chosen, rejected in PAIRS:
        c, nc = seq(prompt, chosen)
        rj, nr = seq(prompt, rejected)
        use_lora[0] = False
        with torch.no_grad():
            ref_c, ref_r = logp(c, nc), logp(rj, nr)
        use_lora[0] = True
        pc, pr = logp(c, nc), logp(rj, nr)
        z = BETA * ((pc - ref_c) - (pr - ref_r))
        losses.append(-F.logsigmoid(z))
        out["pairs"].append({"prompt": prompt, "chosen": chosen, "rejected": rejected,
                             "logp_chosen": pc.item(), "logp_rejected": pr.item(),
                             "ref_chosen": ref_c.item(), "ref_rejected": ref_r.item()})
    loss = torch.stack(losses).mean()
    loss.backward()
    out["loss"] = loss.item()
    for base, (A, B) in sorted(lora.items()):
        for which, t in (("A", A), ("B", B)):
            name = f"base_model.model.{base}.lora_{which}.weight"
            g = t.grad.flatten()
            out["grads"][name] = {"norm": g.norm().item(), "first": g[:16].tolist()}
    json.dump(out, sys.stdout, indent=1)


main()
