"""The fast path (rgflow.fast) computes the same function, log-det and gradients as the plain path.

Both paths read the same parameters; the plain path is the readable reference. In float64
the two agree to round-off (relative 1e-10 for log p, 1e-9 for gradients), for every
recompute mode and for row tiles much smaller than the batch.
"""

from __future__ import annotations

import shutil

import pytest
import torch

import rgflow.fast as fast
from rgflow.explain import plain_path
from rgflow.fast import set_fast, set_recompute
from rgflow.model import RGFlow, RGFlowConfig

CONFIGS = {
    "L16-C3-mlp2": RGFlowConfig(
        image_size=16, channels=3, n_layers=(2, 1, 1), n_resblocks=2, n_mlp=2, n_hidden=24
    ),
    "L8-C1-mlp1": RGFlowConfig(
        image_size=8, channels=1, n_layers=2, n_resblocks=3, n_mlp=1, n_hidden=16
    ),
}


def perturbed_flow(config: RGFlowConfig, seed: int = 0) -> RGFlow:
    """A float64 flow far from the identity: every parameter moved off its initial value.

    Output scales sigma ~ N(0, 0.3^2), Swish gains ~ 1 + N(0, 0.2^2), biases ~ N(0, 0.05^2),
    weight-norm gains g scaled by 1 + N(0, 0.1^2).
    """
    torch.manual_seed(seed)
    flow = RGFlow(config).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in flow.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=p.dtype)
            if name.endswith("scale.scale"):  # output Scale of an s/t-net
                p.copy_(0.3 * noise)
            elif name.endswith(".scale"):  # Swish gain
                p.copy_(1 + 0.2 * noise)
            elif name.endswith("bias"):
                p.copy_(0.05 * noise)
            elif name.endswith("weight_g"):
                p.mul_(1 + 0.1 * noise)

    return flow


def log_prob_and_grads(
    flow: RGFlow, y: torch.Tensor, fast_path: bool, recompute: str = "none"
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """log p(y) (B,) and the gradients of sum(log p) w.r.t. every parameter and y."""
    set_fast(flow, fast_path)
    set_recompute(flow, recompute)
    flow.train()
    flow.zero_grad(set_to_none=True)
    y = y.clone().requires_grad_()
    log_p = flow.log_prob(y)
    log_p.sum().backward()
    grads = {name: p.grad.clone() for name, p in flow.named_parameters()}
    grads["input"] = y.grad.clone()

    return log_p.detach(), grads


@pytest.fixture(params=sorted(CONFIGS))
def flow_and_data(request: pytest.FixtureRequest) -> tuple[RGFlow, torch.Tensor]:
    config = CONFIGS[request.param]
    flow = perturbed_flow(config)
    g = torch.Generator().manual_seed(1)
    size = (5, config.channels, config.image_size, config.image_size)

    return flow, torch.randn(size, generator=g, dtype=torch.float64)


def test_the_fast_path_is_the_default_and_really_transforms(flow_and_data) -> None:
    flow, y = flow_and_data
    assert all(layer.fast for layer in flow.layers)
    z, logdet = flow(y)
    assert (z - y).abs().max() > 0.1 and logdet.abs().min() > 0.1


def test_log_prob_agrees_in_float64(flow_and_data) -> None:
    flow, y = flow_and_data
    plain, _ = log_prob_and_grads(flow, y, fast_path=False)
    fast_lp, _ = log_prob_and_grads(flow, y, fast_path=True)
    torch.testing.assert_close(fast_lp, plain, rtol=1e-10, atol=0)


@pytest.mark.parametrize("recompute", ["none", "swish", "all"])
@pytest.mark.parametrize("tile_bytes", [1 << 20, 700])  # one tile; a few rows per tile
def test_gradients_agree_in_float64(
    flow_and_data, recompute: str, tile_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow, y = flow_and_data
    plain_lp, plain = log_prob_and_grads(flow, y, fast_path=False)
    monkeypatch.setattr(fast, "CHUNK_BYTES", tile_bytes)
    fast_lp, grads = log_prob_and_grads(flow, y, fast_path=True, recompute=recompute)

    torch.testing.assert_close(fast_lp, plain_lp, rtol=1e-10, atol=0)
    assert grads.keys() == plain.keys()
    for name, g in grads.items():
        scale = plain[name].abs().max().item()
        assert scale > 0, name  # every parameter really receives a gradient
        torch.testing.assert_close(g, plain[name], rtol=1e-9, atol=1e-9 * scale, msg=name)


def test_plain_path_with_recompute_gives_the_same_gradients(flow_and_data) -> None:
    flow, y = flow_and_data
    _, plain = log_prob_and_grads(flow, y, fast_path=False)
    _, checkpointed = log_prob_and_grads(flow, y, fast_path=False, recompute="all")
    for name, g in checkpointed.items():
        torch.testing.assert_close(g, plain[name], rtol=1e-12, atol=1e-12, msg=name)


def test_inverse_agrees_and_round_trips(flow_and_data, monkeypatch: pytest.MonkeyPatch) -> None:
    flow, y = flow_and_data
    monkeypatch.setattr(fast, "CHUNK_BYTES", 700)
    with torch.no_grad():
        z = flow(y)[0]
        set_fast(flow, False)
        y_plain, ld_plain = flow.inverse(z)
        set_fast(flow, True)
        y_fast, ld_fast = flow.inverse(z)
    torch.testing.assert_close(y_fast, y_plain, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ld_fast, ld_plain, rtol=1e-10, atol=0)
    torch.testing.assert_close(y_fast, y, rtol=0, atol=1e-9)


def test_inference_without_graph_matches_the_autograd_node(flow_and_data) -> None:
    """The no-grad path (residual_block) and the training path (ResidualBlock) agree."""
    flow, y = flow_and_data
    set_fast(flow, True)
    with torch.no_grad():
        no_graph = flow.log_prob(y)
    with_graph = flow.log_prob(y.clone().requires_grad_()).detach()
    torch.testing.assert_close(no_graph, with_graph, rtol=1e-13, atol=0)


def test_bfloat16_autocast_keeps_the_log_det_in_float32() -> None:
    """Mixed precision: matmuls in bfloat16, z and log|det| in float32, close to float32."""
    torch.manual_seed(0)
    flow = perturbed_flow(CONFIGS["L16-C3-mlp2"]).float()
    y = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        z32, ld32 = flow(y)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            z16, ld16 = flow(y)
    assert z16.dtype == torch.float32 and ld16.dtype == torch.float32
    assert not torch.equal(ld16, ld32)  # the matmuls really ran in bfloat16
    torch.testing.assert_close(ld16, ld32, rtol=0.05, atol=0.5)
    torch.testing.assert_close(z16, z32, rtol=0.05, atol=0.05)

    flow.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = -flow.log_prob(y).mean()
    loss.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in flow.parameters())


def test_switches_leave_the_state_dict_alone(flow_and_data) -> None:
    flow, _ = flow_and_data
    before = {k: v.clone() for k, v in flow.state_dict().items()}
    set_fast(flow, False)
    set_recompute(flow, "swish")
    after = flow.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert RGFlow(flow.config).double().load_state_dict(after).missing_keys == []
    with pytest.raises(ValueError, match="recompute"):
        set_recompute(flow, "some")


def test_plain_path_context_gives_forward_mode_derivatives() -> None:
    """jvp under plain_path equals the Jacobian built by reverse mode on the fast path."""
    flow = perturbed_flow(CONFIGS["L8-C1-mlp1"])
    flow.eval()
    g = torch.Generator().manual_seed(2)
    z = torch.randn(1, 1, 8, 8, generator=g, dtype=torch.float64)
    t = torch.randn(1, 1, 8, 8, generator=g, dtype=torch.float64)

    with plain_path(flow):
        assert not any(layer.fast for layer in flow.layers)
        _, dx = torch.func.jvp(lambda v: flow.inverse(v)[0], (z,), (t,))
    assert all(layer.fast for layer in flow.layers)  # restored

    jac = torch.autograd.functional.jacobian(
        lambda v: flow.inverse(v.view(1, 1, 8, 8))[0].reshape(-1), z.reshape(-1)
    )  # (64, 64), reverse mode through the fast path's hand-written backward
    torch.testing.assert_close(dx.reshape(-1), jac @ t.reshape(-1), rtol=1e-10, atol=1e-12)


def test_bfloat16_gradients_are_close_to_float32() -> None:
    """Under autocast the fast path's gradients differ from float32 only by bf16 round-off."""
    flow = perturbed_flow(CONFIGS["L16-C3-mlp2"]).float()
    y = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    grads = {}
    for precision in ("float32", "bfloat16"):
        flow.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
            loss = -flow.log_prob(y).mean()
        loss.backward()
        grads[precision] = torch.cat([p.grad.flatten() for p in flow.parameters()])
    error = (grads["bfloat16"] - grads["float32"]).norm() / grads["float32"].norm()
    assert 0 < error < 0.05


@pytest.mark.slow  # tracing and code generation: about a minute
@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on the CPU needs g++")
def test_compiled_log_prob_agrees_in_float64(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.compile of the fast path (TrainConfig.compile) keeps log p and its gradients."""
    config = RGFlowConfig(  # small, so that tracing and code generation take seconds
        image_size=8, channels=1, n_layers=1, n_resblocks=2, n_mlp=1, n_hidden=16
    )
    flow = perturbed_flow(config)
    y = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    plain_lp, plain = log_prob_and_grads(flow, y, fast_path=False)

    torch._dynamo.reset()
    monkeypatch.setattr(flow, "log_prob", torch.compile(flow.log_prob))
    compiled_lp, grads = log_prob_and_grads(flow, y, fast_path=True)

    torch.testing.assert_close(compiled_lp, plain_lp, rtol=1e-10, atol=0)
    for name, g in grads.items():
        scale = plain[name].abs().max().item()
        torch.testing.assert_close(g, plain[name], rtol=1e-9, atol=1e-9 * scale, msg=name)
