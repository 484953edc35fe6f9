#!/usr/bin/env python3
"""Reference outputs of mergekit's own merge code, for merge/mergekit_ref_test.go.

Generated with mergekit commit a6e402884ba9bc30da7f23e8304a35f19485de95
(github.com/arcee-ai/mergekit) and torch 1.13.0a0, numpy 1.24.2, Python 3.11
(Debian's /usr/bin/python3). Never run by `go test`; rerun by hand:

    git -C MIRROR archive a6e4028 | tar -x -C /tmp/mergekit-src
    /usr/bin/python3 merge/testdata/mergekit_ref/gen.py /tmp/mergekit-src

It imports mergekit's merge-method modules from that source tree and runs
each deterministic method through the method object's make_task() and the
task's execute(), as mergekit's planner does for one tensor: the methods'
parameter lists and defaults, their wiring (nuslerp's t, karcher's equal
weights, GTA's rescale_norm, easy_define's argument passing) and their
tensor code are mergekit's. Only the framework around them (pydantic, the
task graph, model loading) is replaced by the minimal shims below, which
hold no merge arithmetic.

Tie order. torch's CPU sort and topk leave the order of equal values
unspecified (stable=False), so where mergekit selects by magnitude (TIES's
top-k, breadcrumbs' band, DELLA's ranks, SCE's top-k variance) any choice
among entries of equal magnitude at the threshold is a valid mergekit
result. The sorting calls of sparsify.py and sce.py are therefore routed to
torch's stable sort with the tie order moco documents: entries of equal
magnitude rank in index order, the lower index as the larger for top-k and
breadcrumbs, as the smaller for DELLA's ascending ranks. The generator
prints how many outputs that changes compared with torch's own order.

Random methods (dare_*, della*) run here only where they are deterministic
(density 1); DELLA's keep probabilities are captured from mergekit's
della_magprune at its torch.bernoulli call.

Cases compute in float32, as mergekit does on float32 checkpoints, except
where a case says dtype float64 (the inputs widened, the output rounded to
float32).

Inputs are float32 on grids, so every delta x - base is exact in float32
and magnitudes tie often, in both implementations: w2d (48x64) and w1d (64)
have bases in multiples of 1/64 and deltas in multiples of 1/16, with exact
zeros and sign splits; n1d (64, norm-like) and three rows of w2d have
fine-tune-sized deltas, multiples of 2^-16, whose norms are below 1e-3;
z1d (64) has a base of zeros. Added for arcee_fusion, nearswap and RAM
(from a generator of their own, so the tensors above are as they were):
h3d (4x8x32) and h1d (256) with heavy-tailed deltas (outliers above
arcee_fusion's threshold), and u1d (64), a base of zeros with deltas of
multiples of 2^-22, below nearswap's least difference (1e-6) and RAM's
default epsilon.

arcee_fusion, nearswap and RAM are deterministic on these (arcee_fusion
samples only tensors of more than 1e6 entries); check_arcee makes sure
that no importance lies near arcee_fusion's threshold, where float32
rounding could decide.
"""

import json
import os
import struct
import sys
import types
import typing
from typing import Any, Generic, TypeVar

import numpy as np
import torch

OUT = os.path.dirname(os.path.abspath(__file__))
MERGEKIT_COMMIT = "a6e402884ba9bc30da7f23e8304a35f19485de95"


# --- shims: just enough of mergekit's framework to import its methods ---

def install_shims(src):
    import typing_extensions

    if not hasattr(typing_extensions, "Callable"):  # older typing_extensions
        typing_extensions.Callable = typing.Callable

    pyd = types.ModuleType("pydantic")

    class BaseModel:
        def __init_subclass__(cls, **kw):
            super().__init_subclass__()

        def __init__(self, **kw):
            self.__dict__.update(kw)

    def Field(*a, **kw):
        return None

    def create_model(name, __base__, **fields):
        # easy_define passes (type, Field) pairs for data and functions for
        # methods; the data arrive as constructor keywords.
        ns = {k: v for k, v in fields.items() if callable(v) and not isinstance(v, tuple)}
        return types.new_class(name, (__base__,), exec_body=lambda d: d.update(ns))

    pyd.BaseModel, pyd.Field, pyd.create_model = BaseModel, Field, create_model
    sys.modules["pydantic"] = pyd

    def pkg(name, path):
        m = types.ModuleType(name)
        m.__path__ = [path]
        sys.modules[name] = m
        return m

    pkg("mergekit", os.path.join(src, "mergekit"))
    pkg("mergekit.merge_methods", os.path.join(src, "mergekit", "merge_methods"))

    T = TypeVar("T")

    class Task(BaseModel, Generic[T]):
        pass

    graph = types.ModuleType("mergekit.graph")
    graph.Task = Task
    sys.modules["mergekit.graph"] = graph

    class WeightInfo(BaseModel):
        name = ""
        is_embed = False
        optional = False

    arch = types.ModuleType("mergekit.architecture")
    arch.WeightInfo = WeightInfo
    sys.modules["mergekit.architecture"] = arch

    class ImmutableMap:
        def __init__(self, data):
            self.data = dict(data)

        def __class_getitem__(cls, _):
            return cls

        def __getitem__(self, k):
            return self.data[k]

        def __contains__(self, k):
            return k in self.data

        def __iter__(self):
            return iter(self.data)

        def __len__(self):
            return len(self.data)

        def items(self):
            return self.data.items()

    class ModelReference:
        # hash = index: sets iterate in model order (easy_define uses one)
        def __init__(self, name, index):
            self.name, self.index = name, index

        def __hash__(self):
            return self.index

        def __eq__(self, o):
            return isinstance(o, ModelReference) and o.index == self.index

        def __repr__(self):
            return self.name

    common = types.ModuleType("mergekit.common")
    common.ImmutableMap, common.ModelReference = ImmutableMap, ModelReference
    sys.modules["mergekit.common"] = common

    class ConfigParameterDef(BaseModel):
        name = ""
        required = False
        default_value = None

    class MergeMethod:
        def tensor_parameters(self):
            return []

        def parameters(self):
            return []

    base = types.ModuleType("mergekit.merge_methods.base")
    base.ConfigParameterDef, base.MergeMethod = ConfigParameterDef, MergeMethod
    base.MergeTensorInput = Any
    sys.modules["mergekit.merge_methods.base"] = base
    return WeightInfo, ImmutableMap, ModelReference


# --- tie order (see the header) ---

class StableTorch:
    """torch, with sparsify.py's and sce.py's sorts made stable."""

    def __init__(self):
        self.bernoulli_inputs = []

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def argsort(x, dim=-1, descending=False):
        # magnitude(): descending, ties in index order (lower index larger);
        # della_magprune(): ascending ranks, ties in index order.
        return torch.sort(x, dim=dim, descending=descending, stable=True).indices

    @staticmethod
    def sort(x, dim=-1, descending=False):
        # magnitude_outliers() sorts ascending and keeps indices[n_bot:-n_top]:
        # the reverse of the descending index-order ranking.
        assert not descending
        r = torch.sort(x, dim=dim, descending=True, stable=True)
        return torch.return_types.sort((r.values.flip(dim), r.indices.flip(dim)))

    @staticmethod
    def topk(x, k, largest=True):
        assert largest and x.dim() == 1
        r = torch.sort(x, descending=True, stable=True)
        return r.values[:k], r.indices[:k]

    def bernoulli(self, p):
        self.bernoulli_inputs.append(p.clone())
        return torch.bernoulli(p)


# --- inputs ---

ROWS, COLS = 48, 64


def make_inputs():
    rng = np.random.default_rng(20240611)

    def grid_base(shape):
        return np.round(rng.normal(0, 1, shape) * 64) / 64

    def grid_delta(shape):
        # multiples of 1/16 up to 1/2, a fifth of them exactly zero
        k = rng.integers(-8, 9, shape).astype(np.float64)
        k[rng.random(shape) < 0.2] = 0
        return k / 16

    ins = {"base": {}, "m1": {}, "m2": {}, "m3": {}, "near": {}}
    for tname, shape in (("w2d", (ROWS, COLS)), ("w1d", (COLS,)), ("n1d", (COLS,)), ("z1d", (COLS,))):
        if tname == "z1d":
            # a base of zeros (a bias the base never trained)
            b = np.zeros(shape)
            d = [grid_delta(shape) for _ in range(3)]
        elif tname == "n1d":
            # a norm-like vector: base near 1, fine-tune-sized deltas
            # (multiples of 2^-16) that the models share in part, so that
            # their cosines are far from 0 while their norms are below 1e-3
            b = 1 + rng.integers(-16, 17, shape) / 256
            common = rng.integers(-6, 7, shape)
            d = [(common + rng.integers(-2, 3, shape)) / 65536 for _ in range(3)]
        else:
            b = grid_base(shape)
            d = [grid_delta(shape) for _ in range(3)]
            flat = [x.reshape(-1) for x in d]
            # sign splits: m3 undoes m1 where m2 is zero (equal weights of
            # m1 and m3 then sum to exactly zero: the election's tie)
            split = rng.random(flat[0].shape) < 0.08
            flat[1][split] = 0
            flat[2][split] = -flat[0][split]
        if len(shape) == 2:
            # rows of fine-tune-sized deltas, shared in part (filter_wise)
            common = rng.integers(-6, 7, (3, COLS))
            for x in d:
                x[:3] = (common + rng.integers(-2, 3, (3, COLS))) / 65536
        ins["base"][tname] = b
        for i, x in enumerate(d):
            ins["m%d" % (i + 1)][tname] = b + x
        # nearly parallel to base: slerp's linear fallback
        ins["near"][tname] = b * 1.0078125 + rng.integers(-2, 3, shape) / 1024
    add_more_inputs(ins)
    for m in ins.values():
        for k in m:
            x = m[k].astype(np.float32)
            assert np.array_equal(x.astype(np.float64), m[k]), "not exact in float32"
            m[k] = torch.from_numpy(x)
    return ins


def add_more_inputs(ins):
    """Inputs added for arcee_fusion, nearswap and RAM, from a generator of
    their own so that the draws above (and the files' other tensors) stay
    as they were. base, m1, m2 and m3 only."""
    rng = np.random.default_rng(20260114)

    def heavy(shape):
        # multiples of 1/16 with a heavy tail (up to 2.5), a quarter zero:
        # outliers for arcee_fusion's median + 1.5 IQR threshold
        k = np.clip(np.round(rng.laplace(0, 3, shape)), -40, 40)
        k[rng.random(shape) < 0.25] = 0
        return k / 16

    for tname, shape in (("h3d", (4, 8, 32)), ("h1d", (256,))):
        b = np.round(rng.normal(0, 1, shape) * 64) / 64
        ins["base"][tname] = b
        for m in ("m1", "m2", "m3"):
            ins[m][tname] = b + heavy(shape)
    # u1d: a base of zeros and deltas of multiples of 2^-22 (below 1e-6,
    # nearswap's least |difference|, and below RAM's epsilon)
    ins["base"]["u1d"] = np.zeros(COLS)
    for m in ("m1", "m2", "m3"):
        k = rng.integers(-8, 9, COLS).astype(np.float64)
        k[rng.random(COLS) < 0.2] = 0
        ins[m]["u1d"] = k / 2**22


# --- the cases: mergekit parameters, global and per model ---
# Booleans are mergekit's; the Go test passes them to moco as 0 and 1.

CASES = [
    dict(name="linear", method="linear", models=["m1", "m2", "m3"],
         weights=[0.75, 0.5, 1.25]),
    dict(name="linear_raw", method="linear", models=["m1", "m2", "m3"],
         weights=[0.3, -0.2, 0.6], params={"normalize": False}),
    dict(name="task_arithmetic", method="task_arithmetic", base="base", models=["m1", "m2", "m3"],
         weights=[0.7, -0.4, 1.1], params={"lambda": 0.8}),
    dict(name="task_arithmetic_norm", method="task_arithmetic", base="base", models=["m1", "m2", "m3"],
         weights=[0.7, 0.4, 1.1], params={"normalize": True}),
    dict(name="ties", method="ties", base="base", models=["m1", "m2", "m3"],
         weights=[0.75, 0.5, 0.75], model_params=[{"density": 0.4}, {"density": 0.6}, {"density": 0.3}],
         params={"lambda": 1.3}),
    dict(name="ties_nonorm", method="ties", base="base", models=["m1", "m2", "m3"],
         weights=[1.0, 0.6, 0.3], params={"density": 0.5, "normalize": False, "int8_mask": True}),
    dict(name="ties_rescale", method="ties", base="base", models=["m1", "m2", "m3"],
         weights=[0.75, 0.5, 0.75], params={"density": 0.3, "rescale": True}),
    dict(name="breadcrumbs", method="breadcrumbs", base="base", models=["m1", "m2", "m3"],
         weights=[0.6, 0.9, 0.4], params={"density": 0.5, "gamma": 0.05}),
    dict(name="breadcrumbs_ties", method="breadcrumbs_ties", base="base", models=["m1", "m2", "m3"],
         weights=[0.75, 0.5, 0.75], model_params=[{"density": 0.35}, {"density": 0.5}, {"density": 0.4}],
         params={"gamma": 0.03, "normalize": True, "lambda": 0.9}),
    dict(name="breadcrumbs_rescale", method="breadcrumbs", base="base", models=["m1", "m2"],
         weights=[0.5, 0.5], params={"density": 0.4, "gamma": 0.05, "rescale": True}),
    # density + gamma > 1: fewer outliers dropped (n_bot < 0)
    dict(name="breadcrumbs_overlap", method="breadcrumbs_ties", base="base", models=["m1", "m2", "m3"],
         weights=[0.75, 0.5, 0.75], params={"density": 0.97, "gamma": 0.05}),
    # gamma*n < 1 on the 64-vector: n_top = 0 and indices[n_bot:-0] is empty
    dict(name="breadcrumbs_ntop0", method="breadcrumbs", base="base", models=["m1", "m2"],
         weights=[0.5, 0.5], params={"density": 0.5}, tensors=["w1d"]),
    dict(name="dare_ties_density1", method="dare_ties", base="base", models=["m1", "m2", "m3"],
         weights=[0.75, 0.5, 0.75], params={"lambda": 1.1}),
    dict(name="dare_linear_density1", method="dare_linear", base="base", models=["m1", "m2", "m3"],
         weights=[0.5, 0.25, 1.0], params={"normalize": True}),
    dict(name="della_density1", method="della", base="base", models=["m1", "m2", "m3"],
         weights=[0.75, 0.5, 0.75], params={"epsilon": 0.1}),
    dict(name="slerp", method="slerp", base="base", models=["m1"], params={"t": 0.3}),
    dict(name="slerp_near", method="slerp", base="base", models=["near"], params={"t": 0.65}),
    dict(name="nuslerp_flat", method="nuslerp", models=["m1", "m2"], weights=[1.0, 3.0]),
    dict(name="nuslerp_rows", method="nuslerp", models=["m1", "m2"], weights=[0.7, 0.5],
         params={"nuslerp_flatten": False}),
    dict(name="nuslerp_cols_base", method="nuslerp", base="base", models=["m1", "m3"], weights=[0.4, 0.6],
         params={"nuslerp_flatten": False, "nuslerp_row_wise": True}),
    dict(name="nuslerp_flat_base", method="nuslerp", base="base", models=["m2", "m3"], weights=[2.0, -0.5]),
    dict(name="multislerp", method="multislerp", models=["m1", "m2", "m3"], weights=[0.2, 0.5, 0.3]),
    dict(name="multislerp_base_raw", method="multislerp", base="base", models=["m1", "m2", "m3"],
         weights=[0.3, 0.3, 0.2], params={"normalize_weights": False, "eps": 1e-6}),
    dict(name="karcher", method="karcher", models=["m1", "m2", "m3"]),
    # tol 1e-7 is below what float32 resolves: arccos of a float32 dot near
    # 1 is 0 or at least 3.5e-4 (sqrt(2 * 2^-24)), so on n1d's nearly
    # parallel tensors mergekit's float32 iterations step on rounding noise
    # (3e-5 of the output). In float64 the same code converges.
    dict(name="karcher_base", method="karcher", base="base", models=["m1", "m2"],
         params={"max_iter": 25, "tol": 1e-7}, dtype="float64"),
    dict(name="model_stock", method="model_stock", base="base", models=["m1", "m2", "m3"]),
    dict(name="model_stock_filter_wise", method="model_stock", base="base", models=["m1", "m2", "m3"],
         params={"filter_wise": True}),
    dict(name="sce", method="sce", base="base", models=["m1", "m2", "m3"], params={"select_topk": 0.3}),
    dict(name="sce_all", method="sce", base="base", models=["m1", "m2", "m3"]),
    dict(name="passthrough", method="passthrough", models=["m2"], model_params=[{"scale": 0.7}]),
    # arcee_fusion has no parameters. Tensors of under 1e6 entries, whose
    # quantiles mergekit takes over every entry (deterministic); n1d left
    # out: its deltas of 2^-16 make mergekit's float32 KL divergence
    # rounding noise (13 to 27 times its value), and its mask follows that
    # noise. ARCEE_MARGIN checks that no importance is near the threshold.
    dict(name="arcee_fusion", method="arcee_fusion", base="base", models=["m1"],
         tensors=["w2d", "w1d", "z1d", "h3d", "h1d"]),
    dict(name="arcee_fusion_m2", method="arcee_fusion", base="base", models=["m2"], tensors=["w2d", "h3d"]),
    dict(name="arcee_fusion_m3", method="arcee_fusion", base="base", models=["m3"], tensors=["h3d", "h1d"]),
    # nearswap: weight t/|base - model| clamped to [0, 1]; |difference|
    # at least 1e-6. t = 0.2: 1 for deltas up to 3/16, less above; 3e-5:
    # 1 for n1d's deltas of one step of 2^-16, less above; 5e-7: u1d's
    # differences below 1e-6 count as 1e-6 (weight 0.5), those above as
    # themselves.
    dict(name="nearswap", method="nearswap", base="base", models=["m1"], params={"t": 0.2}),
    dict(name="nearswap_fine", method="nearswap", base="base", models=["m2"], params={"t": 3e-5},
         tensors=["w2d", "n1d", "u1d"]),
    dict(name="nearswap_micro", method="nearswap", base="base", models=["m3"], params={"t": 5e-7}, tensors=["u1d"]),
    # RAM: entries of |delta| > epsilon count; unique ones kept, shared
    # ones averaged. u1d's deltas are all below the default epsilon; 0.125
    # and 2^-15 are deltas of w2d (2/16) and n1d (2 steps) themselves.
    dict(name="ram", method="ram", base="base", models=["m1", "m2", "m3"],
         tensors=["w2d", "w1d", "n1d", "z1d", "h3d", "u1d"]),
    dict(name="ram_eps", method="ram", base="base", models=["m1", "m2", "m3"], params={"epsilon": 0.125}),
    dict(name="ram_eps_fine", method="ram", base="base", models=["m1", "m2"], params={"epsilon": 2**-15},
         tensors=["w2d", "n1d"]),
    # ramplus_tl: unique entries scaled by 1 + r*clamp(shared/unique, 0,
    # alpha) per model and tensor. At the defaults every ratio is above
    # alpha (n1d: m2 has no unique entry, shared/epsilon); at epsilon 0.4
    # and alpha 0.6 the ratios of w2d, w1d and z1d fall on both sides,
    # h3d's below (gen.py prints them).
    dict(name="ramplus_tl", method="ramplus_tl", base="base", models=["m1", "m2", "m3"],
         tensors=["w2d", "w1d", "n1d", "z1d", "h3d", "u1d"]),
    dict(name="ramplus_tl_sparse", method="ramplus_tl", base="base", models=["m1", "m2", "m3"],
         params={"epsilon": 0.4, "r": 0.5, "alpha": 0.6}, tensors=["w2d", "w1d", "z1d", "h3d"]),
]

# The least distance of an arcee_fusion importance from its threshold,
# relative to the threshold: moco's importances differ from mergekit's by
# float32 roundings (its KL divergence is in float64), far below this.
ARCEE_MARGIN = 1e-4

# DELLA's keep probabilities: della_magprune on m1 - base.
MAGPRUNE = [
    dict(name="magprune", model="m1", density=0.45, epsilon=0.2),
    dict(name="magprune_wide", model="m2", density=0.5, epsilon=0.35),
]


def run_case(c, ins, reg, WeightInfo, ImmutableMap, ModelReference, tname):
    method = reg[c["method"]]
    names = list(c["models"])
    if c.get("base"):
        names.append(c["base"])  # mergekit appends an unlisted base last
    refs = [ModelReference(n, i) for i, n in enumerate(names)]
    base_ref = refs[-1] if c.get("base") else None
    params = c.get("params", {})
    gp = {}
    for p in method.parameters():
        if p.name in params:
            gp[p.name] = params[p.name]
        elif p.required:
            raise ValueError("%s: missing %s" % (c["name"], p.name))
        else:
            gp[p.name] = p.default_value
    tp = {}
    for i, ref in enumerate(refs):
        own = {}
        if i < len(c["models"]):
            if "weights" in c:
                own["weight"] = c["weights"][i]
            own.update((c.get("model_params") or [{}] * len(c["models"]))[i])
        vals = {}
        for p in method.tensor_parameters():
            if p.name in own:
                vals[p.name] = own[p.name]
            elif p.name in params:  # a global setting applies to every model
                vals[p.name] = params[p.name]
            elif p.required and ref is not base_ref:
                raise ValueError("%s: missing %s" % (c["name"], p.name))
            else:
                vals[p.name] = p.default_value
        tp[ref] = ImmutableMap(vals)
    task = method.make_task(
        output_weight=WeightInfo(name=tname),
        tensors=None,
        parameters=ImmutableMap(gp),
        tensor_parameters=ImmutableMap(tp),
        base_model=base_ref,
    )
    dtype = torch.float64 if c.get("dtype") == "float64" else torch.float32
    tensors = {r: ins[n][tname].to(dtype) for r, n in zip(refs, names)}
    out = task.execute(tensors=tensors)
    return out.to(torch.float32).contiguous()


def check_arcee(c, ins, tname, out):
    """Checks the margin of c's arcee_fusion mask, with mergekit's own
    importance and threshold, and prints how many entries it keeps."""
    import importlib

    af = importlib.import_module("mergekit.merge_methods.arcee_fusion")
    base, x = ins[c["base"]][tname], ins[c["models"][0]][tname]
    assert x.numel() <= 1e6, "mergekit samples the quantiles of larger tensors"
    task = af.ArceeFusionMergeTask(gather_tensors=None, base_model=None, weight_info=None)
    imp = task._compute_importance(x, base)
    mask, th = af.DynamicThresholdFusion().compute_fusion_mask(imp)
    margin = float((imp - th).abs().min() / th.abs())
    if margin < ARCEE_MARGIN:
        sys.exit("%s %s: an importance is within %.3g of the threshold" % (c["name"], tname, margin))
    assert torch.equal(out, base + (x - base) * mask)
    print("%s %s: keeps %d of %d, margin %.3g" % (c["name"], tname, int(mask.sum()), mask.numel(), margin))


def ram_ratios(c, ins, tname):
    """ramplus_tl's shared/unique count ratio of each model (before the
    clamp to alpha), recomputed for the report."""
    eps = c.get("params", {}).get("epsilon", 1e-5)
    tv = torch.stack([ins[m][tname] - ins[c["base"]][tname] for m in c["models"]]).reshape(len(c["models"]), -1)
    nz = tv.abs() > eps
    n = nz.sum(dim=0)
    shared, unique = (nz & (n > 1)).sum(dim=1), (nz & (n == 1)).sum(dim=1)
    return ["%d/%d" % (s, u) for s, u in zip(shared.tolist(), unique.tolist())]


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        b = tensors[name].numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gen.py MERGEKIT_SOURCE_DIR")
    torch.set_num_threads(1)
    WeightInfo, ImmutableMap, ModelReference = install_shims(sys.argv[1])
    import importlib

    reg_mod = importlib.import_module("mergekit.merge_methods.registry")
    for m in ("multislerp", "sce", "nearswap", "ram"):  # easy_define registers them
        importlib.import_module("mergekit.merge_methods." + m)
    sp = importlib.import_module("mergekit.sparsify")
    sce = importlib.import_module("mergekit.merge_methods.sce")
    reg = reg_mod.REGISTERED_MERGE_METHODS

    ins = make_inputs()
    inputs = {"%s.%s" % (m, t): x for m, ts in ins.items() for t, x in ts.items()}
    outs, cases = {}, []
    for c in CASES:
        tnames = c.get("tensors", ["w2d", "w1d", "n1d", "z1d"])
        for tname in tnames:
            sp.torch = sce.torch = torch  # torch's own tie order, for the report
            raw = run_case(c, ins, reg, WeightInfo, ImmutableMap, ModelReference, tname)
            sp.torch = sce.torch = StableTorch()
            out = run_case(c, ins, reg, WeightInfo, ImmutableMap, ModelReference, tname)
            diff = int((raw != out).sum())
            if diff:
                print("%s %s: torch's own tie order changes %d outputs" % (c["name"], tname, diff))
            outs["%s.%s" % (c["name"], tname)] = out
            if c["method"] == "arcee_fusion":
                check_arcee(c, ins, tname, out)
            if c["method"] == "ramplus_tl":
                print("%s %s: shared/unique %s" % (c["name"], tname, ram_ratios(c, ins, tname)))
        cases.append({k: v for k, v in c.items()} | {"tensors": tnames})
    magprune = []
    for c in MAGPRUNE:
        for tname in ("w2d", "w1d", "n1d"):
            st = StableTorch()
            sp.torch = st
            delta = ins[c["model"]][tname] - ins["base"][tname]
            sp.della_magprune(delta, density=c["density"], epsilon=c["epsilon"])
            (p,) = st.bernoulli_inputs
            outs["%s.%s" % (c["name"], tname)] = p.reshape(delta.shape).to(torch.float32)
        magprune.append(c | {"tensors": ["w2d", "w1d", "n1d"]})
    sp.torch = sce.torch = torch

    write_safetensors(os.path.join(OUT, "inputs.safetensors"), inputs)
    write_safetensors(os.path.join(OUT, "outputs.safetensors"), outs)
    meta = {
        "mergekit_commit": MERGEKIT_COMMIT,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cases": cases,
        "magprune": magprune,
    }
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        # one case a line, for readable diffs
        f.write("{\n")
        for k, v in meta.items():
            if isinstance(v, list):
                items = ",\n  ".join(json.dumps(x) for x in v)
                f.write(' "%s": [\n  %s\n ]' % (k, items))
            else:
                f.write(' "%s": %s' % (k, json.dumps(v)))
            f.write(",\n" if k != "magprune" else "\n")
        f.write("}\n")


if __name__ == "__main__":
    main()
