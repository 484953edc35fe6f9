"""Reference values for heterogeneous swarms from MoCo's own code.

Run from a checkout of BunsenFeng/model_collaboration (its files are not
copied here): MOCO=/path/to/model_collaboration python3 swarms_oracle.py
> swarms_oracle.json. Needs numpy and torch (Debian python3-numpy,
python3-torch). Writes G-Decode results (graph_top_p 0, the deterministic
case) for fixed continuous adjacency matrices, and NumericSwarm positions
after a few updates with weight_randomness off from a fixed start.
"""
import importlib.util, json, os, sys, types

import numpy as np

root = os.environ["MOCO"]

def load(name, path):
    spec = importlib.util.spec_from_file_location(name, os.path.join(root, path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod

# text_heterogeneous_swarms imports the package's generation and eval
# modules at the top; graph_decode needs neither, so stand-ins suffice.
for m in ["model_collaboration", "model_collaboration.data", "model_collaboration.method",
          "model_collaboration.method.distributed_generation", "model_collaboration.utils",
          "model_collaboration.utils.numeric_swarm"]:
    sys.modules.setdefault(m, types.ModuleType(m))
sys.modules["model_collaboration.data"].eval = None
sys.modules["model_collaboration.method"].distributed_generation = None
ns = load("numeric_swarm", "model_collaboration/utils/numeric_swarm.py")
sys.modules["model_collaboration.utils.numeric_swarm"].NumericSwarm = ns.NumericSwarm
hs = load("hs", "model_collaboration/method/text_heterogeneous_swarms.py")

rng = np.random.default_rng(7)
out = {"gdecode": [], "swarm": {}}
for n in [2, 3, 4, 5, 5, 6]:
    w = rng.uniform(-1, 1, size=(n, n)).round(3)
    np.fill_diagonal(w, 0)
    adj = hs.graph_decode(w.copy(), 0)
    out["gdecode"].append({"w": w.tolist(), "adj": adj.astype(int).tolist(),
                           "order": [int(i) for i in hs.topological_sort(adj)]})

import torch
dim, pop = 4, 3
s = ns.NumericSwarm(dimension=dim, population=pop, weight_randomness=False, restart_patience=10)
pos0 = rng.uniform(-1, 1, size=(pop, dim)).round(3)
vel0 = rng.uniform(-1, 1, size=(pop, dim)).round(3)
s.particles = [torch.tensor(p, dtype=torch.float64) for p in pos0]
s.personal_bests = s.particles.copy()
s.velocities = [torch.tensor(v, dtype=torch.float64) for v in vel0]
scores = [[0.2, 0.5, 0.1], [0.3, 0.4, 0.6], [0.1, 0.7, 0.2], [0.5, 0.5, 0.5], [0.4, 0.9, 0.0]]
steps = []
for sc in scores:
    stop = s.update(list(sc))
    steps.append({"scores": sc, "stop": stop, "pos": [p.tolist() for p in s.particles],
                  "best": s.global_best.tolist(), "step_length": s.step_length})
out["swarm"] = {"pos0": pos0.tolist(), "vel0": vel0.tolist(), "steps": steps}
json.dump(out, sys.stdout, indent=1)
print()
