import sys

sys.path.insert(0, "tools")
from nbbuild import code, md, write

PARAMS = """
profile = "smoke"  # "smoke": two CPU cores, shipped models; "paper": the paper's settings, GPU
prior = "laplace"  # "laplace" or "gaussian": the prior of both models
msds1_checkpoint = None  # a checkpoint path; None: the shipped msds1-<prior> model
msds2_checkpoint = None  # a checkpoint path; None: the shipped msds2-<prior> model
device = "cpu"
seed = 0
out_dir = "../figures"
temperature = 1.0  # of the samples shown
"""

cells = [
    code(PARAMS, tags=["parameters"]),
    md("""
# Fig. 10 — the synthetic multi-scale datasets MSDS1 and MSDS2

**The paper's claim.** On images built from factors at two known scales, RG-Flow puts each
factor at the level of its scale: in MSDS1, where all 16 ellipses of an image share one
colour and each has its own orientation, the shared colour should be carried by the top
levels and the orientations by the low levels; MSDS2 swaps the roles (one shared
orientation, a colour per ellipse). The figure files of these experiments are not in the
authors' repository, so what is tested here is that reading of the claim.

For each dataset: samples from the model, then a linear probe per level — a ridge
regression from that level's latents of encoded test images to each factor, scored by
held-out R^2 (penalty chosen on a validation split). As a reference, the same probe from the
pixels (logit space) shows how linearly readable each factor is at all.
"""),
    code("""
import matplotlib.pyplot as plt
import numpy as np
import torch

from rgflow.analysis import (
    MSDS_FACTOR_NAMES,
    encode_all,
    level_probes,
    load_if_available,
    msds_factors,
    ridge_probe_cv,
)
from rgflow.data import load_dataset
from rgflow.explain import latents_by_level, sample_images
from rgflow.nbtools import check, check_parameters, seed_everything
from rgflow.plots import image_grid, savefig
from rgflow.preprocess import dequantize, logit_transform

settings = check_parameters(profile, prior=prior, device=device, seed=seed)
seed_everything(seed)
checkpoints = {"msds1": msds1_checkpoint, "msds2": msds2_checkpoint}
models, tests = {}, {}
for name, ckpt in checkpoints.items():
    loaded = load_if_available(name, prior, ckpt, device)
    tests[name] = load_dataset(name, "test", size=settings.images)
    if loaded is not None:
        models[name] = loaded
        print(f"{name}: {loaded[1]}, {loaded[0].num_parameters():,} parameters")
check(len(models) > 0, "no MSDS model at all")
print(f"{settings.images} test images per dataset")
"""),
    md("""
## Which factor is shared in which dataset

Read from the labels, not assumed: within one image, MSDS1's ellipse colours stay within
+-32 of a shared colour and its orientations spread over the half circle; MSDS2's
orientations stay within 45 degrees of a shared one and its colours spread over the cube.
"""),
    code("""
factors = {}
for name, test in tests.items():
    labels = test.labels.long()
    colour_range = (labels[..., 3:].amax(dim=(1, 2)) - labels[..., 3:].amin(dim=(1, 2)))
    angle_range = labels[..., 2].amax(dim=(1, 2)) - labels[..., 2].amin(dim=(1, 2))
    print(f"{name}: within an image, colour range per channel <= {colour_range.max().item()}, "
          f"orientation range <= {angle_range.max().item()} degrees; "
          f"global = {MSDS_FACTOR_NAMES[name]['global']}, "
          f"local = {MSDS_FACTOR_NAMES[name]['local']}")
    factors[name] = msds_factors(name, test.labels)
check(int((tests["msds1"].labels[..., 3:].amax(dim=(1, 2))
           - tests["msds1"].labels[..., 3:].amin(dim=(1, 2))).max()) <= 64,
      "MSDS1 shares the colour (within +-32)")
check(int((tests["msds2"].labels[..., 2].amax(dim=(1, 2))
           - tests["msds2"].labels[..., 2].amin(dim=(1, 2))).max()) <= 45,
      "MSDS2 shares the orientation (within 45 degrees)")
"""),
    md("""
## Samples
"""),
    code("""
samples = {}
for name, (model, _) in models.items():
    samples[name] = sample_images(model, settings.grid, temperature, seed=seed)
    check(samples[name].shape == (settings.grid, 3, 32, 32), "one 32 x 32 RGB image each")
    check(bool(torch.isfinite(samples[name]).all()), "finite samples")
print(f"{settings.grid} samples per model at temperature {temperature}")
"""),
    md("""
## Which level carries which factor

Held-out R^2 of the probe from each level's latents (levels 0 finest .. 3 top), and from the
pixels. 1 means the factor is a linear function of those latents; 0 means no better than
guessing the mean. The levels hold very different numbers of latents (2304 .. 48), so a
second probe gives every level the same budget: the 48 latents of the level most correlated
with the factor (ranked on the training part only).
"""),
    code("""
probes, budget_probes, pixel_probes = {}, {}, {}
for name, (model, _) in models.items():
    test = tests[name]
    z = encode_all(model, test.images)
    widths = [x.shape[1] for x in latents_by_level(model, z).values()]
    expected = [n * model.config.channels for n in model.lattice.sites_per_level()]
    check(widths == expected, f"latents per level {widths}, expected {expected}")
    y, _ = logit_transform(dequantize(test.images, noise=False))
    budget = widths[-1]  # the top level's number of latents
    probes[name] = {f: level_probes(model, z, factors[name][f], seed=seed)
                    for f in ("global", "local")}
    budget_probes[name] = {f: level_probes(model, z, factors[name][f], seed=seed, budget=budget)
                           for f in ("global", "local")}
    pixel_probes[name] = {f: ridge_probe_cv(y.flatten(1), factors[name][f], seed=seed)[0]
                          for f in ("global", "local")}
for name in models:
    g_name, l_name = MSDS_FACTOR_NAMES[name]["global"], MSDS_FACTOR_NAMES[name]["local"]
    print(f"{name} ({prior}): held-out R^2, all latents of the level | best {budget} of them")
    print(f"  {'features':9s} {'count':>5s}  {g_name:>22s}  {l_name:>26s}")
    counts = [n * 3 for n in models[name][0].lattice.sites_per_level()]
    for h in probes[name]["global"]:
        print(f"  level {h:<3d} {counts[h]:5d}  {probes[name]['global'][h]:12.3f} | "
              f"{budget_probes[name]['global'][h]:.3f}  {probes[name]['local'][h]:16.3f} | "
              f"{budget_probes[name]['local'][h]:.3f}")
    print(f"  {'pixels':9s} {3 * 32 * 32:5d}  {pixel_probes[name]['global']:12.3f}"
          f"{'':8s}  {pixel_probes[name]['local']:16.3f}")
check(all(np.isfinite(list(v.values())).all() and max(v.values()) <= 1
          for table in (probes, budget_probes) for p in table.values() for v in p.values()),
      "R^2 finite and at most 1")
"""),
    code("""
names = list(models)
fig, axes = plt.subplots(len(names), 3, figsize=(10, 3.3 * len(names)), squeeze=False)
for row, name in enumerate(names):
    side = int(np.sqrt(settings.grid))
    axes[row, 0].imshow(image_grid(tests[name].images[: settings.grid], nrow=side),
                        interpolation="nearest")
    axes[row, 0].set_title(f"{name}: test images", fontsize=9)
    axes[row, 1].imshow(image_grid(samples[name], nrow=side), interpolation="nearest")
    axes[row, 1].set_title(f"{name}: samples ({prior}, T={temperature})", fontsize=9)
    for ax in axes[row, :2]:
        ax.set_xticks([]), ax.set_yticks([])
    ax = axes[row, 2]
    levels = list(probes[name]["global"])
    for k, (f, colour) in enumerate((("global", "tab:purple"), ("local", "tab:green"))):
        values = [max(probes[name][f][h], 0) for h in levels]
        ax.bar(np.array(levels) + (k - 0.5) * 0.38, values, 0.38, color=colour,
               label=MSDS_FACTOR_NAMES[name][f])
        ax.plot(np.array(levels) + (k - 0.5) * 0.38,
                [max(budget_probes[name][f][h], 0) for h in levels], "k_", ms=12, mew=2,
                label="best 48 latents" if k == 0 else None)
        ax.axhline(max(pixel_probes[name][f], 0), color=colour, ls=":", lw=1)
    ax.set_xticks(levels, [f"level {h}" for h in levels])
    ax.set(ylim=(0, 1.05), ylabel="held-out R^2 (dotted: from pixels)",
           title=f"{name}: which level carries which factor")
    ax.legend(fontsize=7)
fig.tight_layout()
results = {
    "models": {n: src for n, (_, src) in models.items()}, "prior": prior,
    "test_images": settings.images, "factors": {n: MSDS_FACTOR_NAMES[n] for n in names},
    "level_r2": probes, "level_r2_best48": budget_probes, "pixel_r2": pixel_probes,
    "temperature": temperature,
}
savefig(fig, "fig10_msds", out_dir, pdf=True, meta=results)
plt.show()
"""),
    md("""
**What this run shows.** *Samples.* The shipped models (`small` preset, 800 CPU training
steps) draw coloured blobs on a black background, roughly on the 4 x 4 grid, but not yet
clean ellipses. In the MSDS1 samples the blobs do not share a colour, so the model has not
learned the global factor as a generative rule.

*Probes.* In both datasets the shared factor is read best from the fine and middle levels,
not the top one. For the MSDS1 colour, R^2 is 0.73 / 0.79 / 0.69 at levels 0 / 1 / 2 and
0.16 at the top; for the MSDS2 orientation it is 0.91 / 0.82 / 0.61 and 0.20. The same order
holds when every level gets the same 48 latents (top level 0.14 and 0.19). The per-ellipse
factors are only weakly linear in the latents. The MSDS1 orientation reaches R^2 0.32 at
level 0 and falls to zero at the top; the MSDS2 colour peaks at 0.18 (level 1), although the
pixels give 0.94.

So the local factors do sit at the low levels, as the paper's reading expects, and the top
level carries none of them. But the global factors are not concentrated at the top level:
with these under-trained models that part of the claim is not reproduced.
"""),
]
write("notebooks/10_msds.ipynb", cells)
