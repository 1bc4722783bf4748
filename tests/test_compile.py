"""torch.compile of every model family on CPU (the reference scan): one graph for the whole model
(``fullgraph=True``, so no break at the scan or anywhere else), a training step and inference equal to eager.

``aot_eager`` traces forward and backward through AOTAutograd (what inductor consumes) without code generation,
so the test checks the captured graphs, not a C++ compiler. The configurations are one-block versions of each
family's test model: tracing time grows with the number of blocks, not with their width.
"""

import copy

import pytest
import timm
import torch
import torch._dynamo

import vssm  # noqa: F401

FAMILIES = {
    "test_vmamba": dict(depths=(1,), dims=(8,)),
    "test_vim": dict(depth=1, embed_dim=16),
    "test_msvmamba": dict(depths=(1,), dims=(8,)),
    "test_efficient_vmamba": dict(depths=(1, 1), dims=(8, 16)),
    "test_convs5": dict(n_layers=1),
}


def _input(model, name):
    c = model.pretrained_cfg["input_size"][0]
    if "convs5" in name:  # clips (batch, T, C, H, W) in [-1, 1]
        return torch.rand(2, 3, c, 32, 32) * 2 - 1
    return torch.randn(2, c, 32, 32)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_compiled_training_step_and_inference_match_eager(name):
    torch.manual_seed(0)
    eager = timm.create_model(name, **FAMILIES[name])
    model = copy.deepcopy(eager)
    x = _input(eager, name)
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)

    # training step: forward, backward, SGD update; outputs, gradients and updated weights as eager
    for m in (eager, model):
        m.train()
    opts = [torch.optim.SGD(m.parameters(), lr=0.1) for m in (eager, model)]
    want, got = eager(x), compiled(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    for out, opt in zip((want, got), opts):
        (out.float() ** 2).mean().backward()
        opt.step()
    for (n, p), q in zip(eager.named_parameters(), model.parameters()):
        if p.grad is not None:
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6, msg=lambda m: f"{n}: {m}")
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-6)

    # inference (eval mode, no autograd): recompiled for the new mode, still one graph
    for m in (eager, model):
        m.eval()
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), eager(x), rtol=1e-4, atol=1e-5)
