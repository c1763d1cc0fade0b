import sys

sys.path.insert(0, "tools")
from nb03 import PARAMS
from nbbuild import code, md, write

cells = [
    code(
        PARAMS
        + """levels_shown = (3, 2, 1)  # high, mid and low level, as in the paper
per_level = 3  # latents traversed per level
frames = 6  # values per traversal
span = 2.5  # values from -span to +span (the prior's std is 1)
""",
        tags=["parameters"],
    ),
    md("""
# Fig. 5 — learned factors: latent traversals per level

**The paper's claim.** Moving a single latent while keeping all others fixed changes one
interpretable factor of the image, at the scale of its level: on CelebA a top-level latent
turns the head, changes the light or the hair colour; a mid-level one opens an eye or moves the
fringe; a low-level one changes one eyebrow. The latents worth moving are found by ranking
them by receptive-field strength.

On MSDS the factors are known: in MSDS1 every ellipse shares one colour (a global factor) and
has its own orientation (a local one); MSDS2 swaps the roles. Each traversed latent is
therefore also scored by its correlation with those labels over encoded test images.
"""),
    code("""
import matplotlib.pyplot as plt
import numpy as np
import torch

from rgflow.data import load_dataset
from rgflow.explain import angle_features, cross_correlation, rank_latents, traverse
from rgflow.nbtools import cached_strengths, check, check_parameters, load_flow, seed_everything
from rgflow.plots import savefig, to_display

settings = check_parameters(profile, prior=prior, device=device, seed=seed, dataset=dataset)
seed_everything(seed)
model, source = load_flow(dataset, prior, checkpoint, device)
test = load_dataset(dataset, "test", size=settings.images)
print(f"model: {source}; {len(test)} {dataset} test images")
"""),
    md("""
## Rank the latents of each level by receptive-field strength
"""),
    code("""
strengths = cached_strengths(model, settings.strength_samples, seed)
chosen = {h: rank_latents(strengths, h, top=per_level) for h in levels_shown}
for h, latents in chosen.items():
    print(f"level {h}: strongest {latents}")
"""),
    md("""
## What each chosen latent correlates with (MSDS labels)

Latents of encoded test images against the global factor (the image's mean ellipse colour in
MSDS1; its mean orientation in MSDS2, as cos 2θ, sin 2θ) and the local one (each ellipse's
orientation in MSDS1, colour in MSDS2; the ellipse whose tile holds the latent's site).
"""),
    code("""
with torch.no_grad():
    z = torch.cat([model.encode(test.images[k : k + 250].to(device))
                   for k in range(0, len(test), 250)]).cpu()
labels = test.labels.double() if test.labels is not None else None
if dataset in ("msds1", "msds2") and labels is not None:
    colour = labels[..., 3:6]  # (N, 4, 4, 3)
    angle = angle_features(labels[..., 2])  # (N, 4, 4, 2)
    if dataset == "msds1":
        global_factor, local_factor = colour.mean(dim=(1, 2)), angle
    else:
        mean_dir = angle.mean(dim=(1, 2))
        global_factor, local_factor = mean_dir / mean_dir.norm(dim=1, keepdim=True), colour
    rows = []
    for h, latents in chosen.items():
        for c, i, j in latents:
            x = z[:, c, i, j][:, None]
            g = cross_correlation(x, global_factor).abs().max().item()
            tile = local_factor[:, min(j // 8, 3), min(i // 8, 3)]  # label[n, i=col, j=row]
            loc = cross_correlation(x, tile.reshape(len(x), -1)).abs().max().item()
            rows.append((h, (c, i, j), g, loc))
            print(f"level {h} latent {(c, i, j)}: |corr| global {g:.2f}, own ellipse {loc:.2f}")
else:
    rows = []
    print("no labels for this dataset: latents are shown by strength only")
"""),
    md("""
## Traverse each latent on two test images

Each row moves one latent from -2.5 to +2.5 (prior standard deviations) with every other
latent of the encoded image fixed. The change must stay inside the latent's generation cone
(checked exactly) and must be visible (checked: a non-zero change for every traversal).
"""),
    code("""
values = torch.linspace(-span, span, frames).tolist()
base = z[:2].to(device)
movies = {}
L = model.config.image_size
for h, latents in chosen.items():
    for c, i, j in latents:
        movie = traverse(model, base, (c, i, j), values)  # (frames, 2, C, L, L)
        movies[(h, c, i, j)] = movie
        change = (movie - movie[:1]).abs().amax(dim=(0, 1, 2))  # (L, L)
        one = np.zeros((L, L), dtype=bool)
        one[i, j] = True
        cone = torch.as_tensor(model.lattice.generation_cone(one))
        check(bool((change[~cone] == 0).all()), f"latent {(c, i, j)} changed pixels off its cone")
        check(change.max().item() > 0, f"moving latent {(c, i, j)} changed nothing")
print(f"{len(movies)} traversals, all confined to their cones")
"""),
    code("""
n_rows = len(movies) * 2
fig, axes = plt.subplots(n_rows, frames + 1, figsize=(1.3 * (frames + 1), 1.3 * n_rows),
                         squeeze=False)
for r, ((h, c, i, j), movie) in enumerate(movies.items()):
    for image in range(2):
        row = axes[2 * r + image]
        row[0].imshow(strengths.maps[c, i, j], cmap="inferno")
        row[0].set_ylabel(f"h={h}\\n({c},{i},{j})", fontsize=6)
        for f in range(frames):
            row[f + 1].imshow(to_display(movie[f, image : image + 1])[0].squeeze(),
                              cmap="gray", interpolation="nearest")
for ax in axes.ravel():
    ax.set_xticks([]), ax.set_yticks([])
for f, v in enumerate(values):
    axes[0, f + 1].set_title(f"{v:+.1f}", fontsize=7)
axes[0, 0].set_title("RF", fontsize=7)
savefig(fig, "fig5_latent_traversals", out_dir, pdf=True,
        meta={"model": source, "latents": {str(k): v for k, v in chosen.items()},
              "values": values, "label_correlations": rows})
plt.show()
"""),
    md("""
**What this run shows.** Each traversal changes the image only where the latent's cone
allows, at the scale of its level. On MSDS, the correlations printed above say which factor
each strong latent has learned; notebook 10 measures, level by level, how much of each factor
the latents carry.
"""),
]
write("notebooks/05_learned_factors.ipynb", cells)
