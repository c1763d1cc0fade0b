import sys

sys.path.insert(0, "tools")
from nbbuild import code, md, write

cells = [
    code(
        """
profile = "smoke"  # "smoke": two CPU cores, shipped models; "paper": the paper's settings, GPU
figures_dir = "../figures"  # where notebooks 04-11 wrote their measurements (<figure>.json)
out_dir = "../figures"
""",
        tags=["parameters"],
    ),
    md("""
# The paper's claims, measured

Each qualitative claim of RG-Flow becomes a number computed by this project on its own
trained models. The architecture and lattice claims are computed here; the others are read
from the measurements that notebooks 04 to 11 store beside their figures (`<figure>.json`),
so run those first (`python -m rgflow figures` runs them all, in order). Each row gives the
paper's statement, the measured value with its model and data, and a verdict: **agree**,
**disagree**, or **not yet measurable** (with what run would decide it).

The shipped models are small (2.4M parameters) and trained for 800 steps on two CPU cores;
where they are too weak to show a claim, the verdict says so rather than the claim failing.
"""),
    code('''
import json
from pathlib import Path

import numpy as np
import torch

from rgflow.checkpoints import shipped_models
from rgflow.lattice import RGLattice
from rgflow.model import RGFlow, get_preset
from rgflow.nbtools import check, check_parameters

check_parameters(profile)
figures = Path(figures_dir)
claims = []


def measured(name):
    """The measurements a figure notebook stored, or None if it has not run."""
    path = figures / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def claim(number, statement, value, verdict, source):
    check(verdict in ("agree", "disagree", "not yet measurable"), f"bad verdict {verdict}")
    claims.append({"claim": number, "paper": statement, "measured": value,
                   "verdict": verdict, "source": source})
    print(f"[{number}] {verdict.upper()}: {value}")
'''),
    md("""
## 1. The model is the authors' architecture

The `celeba32` preset must have exactly the authors' 100,647,680 parameters (built on the
`meta` device: shapes only, no memory), split over 8 RG layers; the 32 x 32 lattice with 4 x 4
blocks must hold 768 / 192 / 48 / 16 sites on levels 0..3.
"""),
    code("""
with torch.device("meta"):
    celeba = RGFlow(get_preset("celeba32").config)
per_layer = [sum(p.numel() for p in layer.parameters()) for layer in celeba.layers]
total = celeba.num_parameters()
lattice = RGLattice(32, 4)
sites = lattice.sites_per_level()
cone = lattice.pixel_cone_sizes()  # (L, L) latent sites in each pixel's cone
print("parameters per RG layer:", per_layer)
print(f"total: {total:,}; sites per level: {sites}; pixel cone sizes: mean {cone.mean():.2f},"
      f" min {cone.min()}, max {cone.max()}")
check(total == 100_647_680, f"celeba32 must have 100,647,680 parameters, has {total:,}")
check(list(sites) == [768, 192, 48, 16], f"sites per level {sites}")
claim(1, "RG-Flow on CelebA 32x32 has 100,647,680 parameters; MERA-like lattice",
      f"{total:,} parameters ({', '.join(f'{n:,}' for n in per_layer)} per layer); sites per "
      f"level {list(sites)}; one pixel's cone {cone.min()}-{cone.max()} latent sites "
      f"(mean {cone.mean():.2f})", "agree", "rgflow.model, rgflow.lattice")
"""),
    md("""
## 2. Receptive fields grow with the level, about doubling per level

From notebook 04: the median effective size (the smallest square holding 90% of the map) of
the strongest latents of each level.
"""),
    code("""
rf = measured("fig4b_receptive_fields")
if rf and "effective_size_median" in rf:
    sizes = rf["effective_size_median"]
    growth = (sizes[-1] / sizes[0]) ** (1 / (len(sizes) - 1))
    increasing = all(b > a for a, b in zip(sizes, sizes[1:]))
    verdict = "agree" if increasing and 1.4 <= growth <= 2.8 else "disagree"
    claim(2, "receptive fields grow with the level like a CNN's (about x2 per level)",
          f"median effective size per level {sizes} px: x{growth:.2f} per level",
          verdict, f"notebook 04, {rf['model']}")
else:
    claim(2, "receptive fields grow about x2 per level", "run notebook 04 first",
          "not yet measurable", "notebook 04")
"""),
    md("""
## 3. The sparse (Laplace) prior gives sparser, more disentangled latents

From notebook 07, the same architecture trained on MSDS1 with each prior: the tail of the
receptive-field strengths at the top levels, the mean off-diagonal correlation of the
top-level latents, and how many latents a linear probe needs for 90% of its R^2.
"""),
    code("""
sg = measured("fig7_sparse_vs_gaussian")
if sg and {"laplace", "gaussian"} <= set(sg.get("models", {})):
    tails, corr, need = sg["rf_strength_tails"], sg["offdiag_abs_corr"], sg["latents_for_90pct"]
    top = max(int(h) for h in tails["laplace"])
    kurt = {p: tails[p][str(top)]["kurtosis"] for p in ("laplace", "gaussian")}
    share = {p: tails[p][str(top)]["top_decile_share"] for p in ("laplace", "gaussian")}
    cor = {p: corr[p][str(top)] for p in ("laplace", "gaussian")}
    where = f"notebook 07, {sg['dataset']}"
    claim("3a", "Laplace prior: heavier-tailed receptive-field strengths at the top level",
          f"top-level strength kurtosis {kurt['laplace']:.2f} (Laplace) vs {kurt['gaussian']:.2f}"
          f" (Gaussian); top-10% share {share['laplace']:.2f} vs {share['gaussian']:.2f}",
          "agree" if kurt["laplace"] > kurt["gaussian"] and share["laplace"] > share["gaussian"]
          else "disagree", where)
    # a difference smaller than 10% of the correlation itself is within sampling noise here
    less = cor["laplace"] < 0.9 * cor["gaussian"]
    claim("3b", "Laplace prior: weaker correlation among the top-level latents",
          f"mean off-diagonal |corr| {cor['laplace']:.3f} (Laplace) vs {cor['gaussian']:.3f} "
          f"(Gaussian); independent latents would give {sg['sampling_floor']:.3f}",
          "agree" if less else "disagree", where)
    fewer = all(need["laplace"][f] < need["gaussian"][f] for f in ("global", "local"))
    claim("3c", "Laplace prior: each MSDS factor carried by fewer latents",
          f"latents a probe needs for 90% of its R^2, global / per-ellipse factor: "
          f"{need['laplace']['global']:.0f} / {need['laplace']['local']:.0f} (Laplace) vs "
          f"{need['gaussian']['global']:.0f} / {need['gaussian']['local']:.0f} (Gaussian)",
          "agree" if fewer else "disagree", where)
else:
    claim(3, "Laplace prior gives sparser, more disentangled latents",
          "needs a Laplace and a Gaussian model of one dataset (notebook 07)",
          "not yet measurable", "notebook 07")
"""),
    md("""
## 4. Scales separate: global factors at the top levels, per-ellipse factors below

From notebook 10: held-out R^2 of linear probes from each level's latents. The level
centroid of a factor is the R^2-weighted mean level; the claim holds when the global factor is
best read from a higher level than the per-ellipse one and its centroid lies at least a quarter
level above, on MSDS1 (colour global) and MSDS2 (orientation global).
"""),
    code("""
msds = measured("fig10_msds")
probes = (msds or {}).get("level_r2", {})
for name in ("msds1", "msds2"):
    if name not in probes:
        claim(4, f"{name}: global factor at the top levels", "run notebook 10 (needs the model)",
              "not yet measurable", "notebook 10")
        continue
    centroid = {}
    for factor in ("global", "local"):
        r2 = {int(h): max(v, 0.0) for h, v in probes[name][factor].items()}
        weight = sum(r2.values())
        centroid[factor] = sum(h * v for h, v in r2.items()) / weight if weight else float("nan")
    best = {f: int(max(probes[name][f], key=lambda h: probes[name][f][h])) for f in probes[name]}
    ok = best["global"] > best["local"] and centroid["global"] > centroid["local"] + 0.25
    claim(4, f"{name}: the global factor lives at the top levels, the per-ellipse one below",
          f"R^2-weighted level: global {centroid['global']:.2f}, per-ellipse "
          f"{centroid['local']:.2f}; best level global {best['global']}, per-ellipse "
          f"{best['local']}", "agree" if ok else "disagree", f"notebook 10, {name}")
"""),
    md("""
## 5. Mixing in the scaling direction keeps A's coarse structure and B's detail

From notebook 06: at each cut h, the share of A in the mix's 2^h-tile means and the share of B
in its detail. The claim needs a cut where both are above one half.
"""),
    code("""
mix = measured("fig6a_level_mixing")
if mix:
    a, b = mix["coarse_share_A"], mix["detail_share_B"]
    both = [h for h in range(1, len(a) - 1) if a[h] > 0.5 and b[h] > 0.5]
    claim(5, "a level mix keeps one image's coarse structure and the other's details",
          "coarse share of A / detail share of B per cut: "
          + ", ".join(f"h={h}: {x:.2f}/{y:.2f}" for h, (x, y) in enumerate(zip(a, b)))
          + f"; cuts with both > 0.5: {both}", "agree" if both else "disagree",
          f"notebook 06, {mix['model']}")
else:
    claim(5, "level mixing keeps coarse structure and details", "run notebook 06 first",
          "not yet measurable", "notebook 06")
"""),
    md("""
## 6. Inpainting needs only O(log L) latents

From notebook 08: latent sites in the causal cone of a fixed hole as L grows, against all L^2
sites, and the quality of cone-only inpainting against updating every latent.
"""),
    code("""
inp, cost = measured("fig8_inpainting"), measured("fig8_inpainting_cost")
if cost:
    per_l = cost["cost"]
    sides = sorted(per_l, key=int)
    counts = [per_l[s]["hole"] for s in sides]
    steps = np.diff(counts)
    logarithmic = bool(np.all(steps > 0) and steps.max() <= 1.5 * steps.min() + 1)
    value = (f"cone of the hole for L={', '.join(sides)}: {counts} sites (+{steps.tolist()} per "
             f"doubling) against L^2 = {[int(s) ** 2 for s in sides]}")
    if inp and "table" in inp:
        t = inp["table"]
        value += ("; mean squared error in the hole: "
                  + ", ".join(f"{k} {v['mse_hole']:.3f} ({v['latents']} latents)"
                              for k, v in t.items() if k != "original"))
    claim(6, "inpainting touches O(log L) latents, not O(L^2)", value,
          "agree" if logarithmic else "disagree", "notebook 08, rgflow.lattice")
else:
    claim(6, "inpainting touches O(log L) latents", "run notebook 08 first",
          "not yet measurable", "notebook 08")
"""),
    md("""
## 7. Likelihood

Test bits/dim of every shipped model (from its registry entry, written at the end of its
training run on 5,000 test images) against the independent reproduction's MSDS1 1.86 and MSDS2
1.94 bits/dim (itself under-trained by its own account).
"""),
    code("""
reference = {"msds1": 1.86, "msds2": 1.94}
for name, entry in sorted(shipped_models().items()):
    data = entry["dataset"]
    ref = reference.get(data)
    text = (f"{name}: {entry['test_bpd']:.3f} bits/dim after {entry['steps']} steps "
            f"({entry['parameters']:,} parameters)")
    if ref is None:
        claim(7, f"{data}: no published bits/dim", text, "not yet measurable", "registry")
        continue
    text += f"; reference {ref}"
    verdict = "agree" if entry["test_bpd"] <= ref + 0.05 else "not yet measurable"
    claim(7, f"{data}: about {ref} bits/dim (independent reproduction)", text, verdict,
          "rgflow/weights/registry.json")
"""),
    md("""
## The table
"""),
    code("""
lines = ["| # | the paper says | measured here | verdict |", "|---|---|---|---|"]
def cell(text):
    return str(text).replace("|", r"\\|")  # a bare | would end the table cell


for c in claims:
    lines.append(f"| {c['claim']} | {cell(c['paper'])} | {cell(c['measured'])} "
                 f"({c['source']}) | **{c['verdict']}** |")
table = "\\n".join(lines)
out = Path(out_dir)
out.mkdir(parents=True, exist_ok=True)
(out / "claims.md").write_text(table + "\\n")
(out / "claims.json").write_text(json.dumps(claims, indent=2) + "\\n")
print(table)
counts = {v: sum(c["verdict"] == v for c in claims)
          for v in ("agree", "disagree", "not yet measurable")}
print(counts)
check(len(claims) >= 7, "every claim has a row")
"""),
    md("""
**What this run shows.** The architecture and lattice are the authors' exactly, and the
inpainting cost is logarithmic by construction of the lattice. The learned claims (receptive
fields, the prior's sparsity, scale separation, mixing, likelihood) are measured on models
trained for 800 steps on two CPU cores: the verdicts above are honest for those models, and
a "disagree" or "not yet measurable" there says that the claim needs the paper's training
length (hundreds of epochs on a GPU) to be shown or refuted, not that it is false. The same
notebooks with `profile="paper"` and a longer-trained checkpoint decide them.
"""),
]
write("notebooks/13_claims.ipynb", cells)
