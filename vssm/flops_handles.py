"""FLOP counts with the selective scan included, for fvcore and MMEngine's complexity analysis.

Detection and segmentation users count FLOPs with fvcore's ``FlopCountAnalysis`` or MMEngine's
``get_model_complexity_info`` / ``FlopAnalyzer`` (a copy of fvcore). Both trace the model with
``torch.jit.trace`` and count the traced operators they have handles for (matmul, linear, conv, einsum, the
norms, ...). The scan is not one of them: on CPU it runs as the PyTorch reference (dozens of elementwise
operators, which fvcore skips with a warning) and on CUDA as the custom op ``vssm::routed_scan_fwd``,
which fvcore does not know either. So a plain ``FlopCountAnalysis`` leaves the scan out.

The analyses here add it in mamba_ssm's convention (``9 * B * L * D * N`` per route, ``+ B * D * L`` for D,
see ``vssm.kernels.flops``), the one the official VMamba tables use: one eager forward pass under
:func:`vssm.kernels.count_scan_flops` with a hook on every module gives each module's scan FLOPs, and they
are added to the traced counts in ``total()``, ``by_module()``, ``by_operator()`` (as the operator
``"selective_scan"``) and ``by_module_and_operator()``, so fvcore's ``flop_count_table`` and MMEngine's
tables show them. The ``vssm::*`` ops are given a zero handle so nothing counts twice on CUDA.

    from vssm.flops_handles import fvcore_flop_analysis, get_model_complexity_info
    flops = fvcore_flop_analysis(model, (images,)).total()           # fvcore
    info = get_model_complexity_info(model, input_shape=(3, 224, 224))  # MMEngine, same return value

With a plain ``FlopCountAnalysis`` of your own, add the scan yourself:
``analysis.total() + scan_flops_by_module(model, inputs)[""]``.

Conventions differ slightly between counters: fvcore counts a LayerNorm / GroupNorm / BatchNorm as 5 FLOPs
per element (4 without affine) and ``adaptive_avg_pool2d`` as one per input element; torch's
``FlopCounterMode`` (behind :func:`vssm.complexity.count_flops`) counts neither. Matmuls, convolutions and
the scan agree between all three.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Dict, Sequence, Tuple

import torch
from torch import nn

from .kernels import count_scan_flops

__all__ = ["SCAN_OPERATOR", "SCAN_OPS", "scan_flops_by_module", "fvcore_flop_analysis", "mmengine_flop_analyzer",
           "get_model_complexity_info"]

SCAN_OPERATOR = "selective_scan"
# how the scan ops appear in a JIT trace (the Triton path); counted through the tally, so their handle is 0
SCAN_OPS = ("vssm::routed_scan_fwd", "vssm::routed_scan_bwd")


def _as_tuple(inputs) -> Tuple[Any, ...]:
    return inputs if isinstance(inputs, tuple) else (inputs,)


def scan_flops_by_module(model: nn.Module, inputs) -> Dict[str, int]:
    """Forward scan FLOPs inside every module (inclusive, keyed as ``model.named_modules()``; ``""`` is the
    whole model), from one eager forward pass without gradients."""
    per_module: Counter = Counter()
    starts: Dict[int, list] = {}
    handles = []
    with count_scan_flops() as tally:
        def pre(module, args):
            starts.setdefault(id(module), []).append(tally.total)

        def make_post(name):
            def post(module, args, output):
                per_module[name] += tally.total - starts[id(module)].pop()
            return post

        for name, module in model.named_modules():
            handles.append(module.register_forward_pre_hook(pre))
            handles.append(module.register_forward_hook(make_post(name)))
        try:
            with torch.no_grad():
                model(*_as_tuple(inputs))
        finally:
            for h in handles:
                h.remove()
    per_module[""] = tally.total  # also when the model is called through a wrapper without hooks firing
    return dict(per_module)


class _WithScan:
    """Adds the scan FLOPs to a fvcore-style ``JitModelAnalysis`` (fvcore or MMEngine)."""

    def _init_scan(self, model, inputs) -> None:
        self._scan_model, self._scan_inputs, self._scan_counts = model, inputs, None
        for op in SCAN_OPS:
            self.set_op_handle(op, None)

    def scan_flops(self) -> Dict[str, int]:
        """Scan FLOPs per module name (computed once, on first use)."""
        if self._scan_counts is None:
            self._scan_counts = scan_flops_by_module(self._scan_model, self._scan_inputs)
        return self._scan_counts

    def total(self, module_name: str = "") -> int:
        return super().total(module_name) + self.scan_flops().get(module_name, 0)

    def by_module(self) -> Counter:
        out = Counter(super().by_module())
        for name, n in self.scan_flops().items():
            if name in out or name == "":
                out[name] += n
        return out

    def by_operator(self, module_name: str = "") -> Counter:
        out = Counter(super().by_operator(module_name))
        n = self.scan_flops().get(module_name, 0)
        if n:
            out[SCAN_OPERATOR] += n
        return out

    def by_module_and_operator(self) -> Dict[str, Counter]:
        out = {k: Counter(v) for k, v in super().by_module_and_operator().items()}
        for name, n in self.scan_flops().items():
            if n and name in out:
                out[name][SCAN_OPERATOR] += n
        return out


def fvcore_flop_analysis(model: nn.Module, inputs):
    """``fvcore.nn.FlopCountAnalysis(model, inputs)`` with the scan counted (see the module docstring)."""
    from fvcore.nn import FlopCountAnalysis

    class ScanFlopCountAnalysis(_WithScan, FlopCountAnalysis):
        def __init__(self, model, inputs):
            super().__init__(model, inputs)
            self._init_scan(model, inputs)

    return ScanFlopCountAnalysis(model, inputs)


def mmengine_flop_analyzer(model: nn.Module, inputs):
    """``mmengine.analysis.FlopAnalyzer(model, inputs)`` with the scan counted."""
    from mmengine.analysis import FlopAnalyzer

    class ScanFlopAnalyzer(_WithScan, FlopAnalyzer):
        def __init__(self, model, inputs):
            super().__init__(model, inputs)
            self._init_scan(model, inputs)

    return ScanFlopAnalyzer(model, inputs)


def get_model_complexity_info(model: nn.Module, input_shape: Sequence[int] | None = None, inputs=None,
                              show_table: bool = True, show_arch: bool = True) -> Dict[str, Any]:
    """``mmengine.analysis.get_model_complexity_info`` with the scan counted: same arguments, same keys
    (``flops``, ``flops_str``, ``activations``, ``params``, ``out_table``, ``out_arch``, ...)."""
    from mmengine.analysis import ActivationAnalyzer, parameter_count
    from mmengine.analysis.print_helper import _format_size, complexity_stats_str, complexity_stats_table

    if (input_shape is None) == (inputs is None):
        raise ValueError("give exactly one of input_shape (a tuple of ints, without the batch) and inputs")
    if inputs is None:
        if not all(isinstance(n, int) for n in input_shape):
            raise ValueError(f"input_shape must be a tuple of ints such as (3, 224, 224), got {input_shape!r}")
        inputs = (torch.randn(1, *input_shape, device=next(model.parameters()).device),)
    inputs = _as_tuple(inputs)
    flops = mmengine_flop_analyzer(model, inputs)
    activations = ActivationAnalyzer(model, inputs)
    total, acts, params = flops.total(), activations.total(), parameter_count(model)[""]
    return {
        "flops": total, "flops_str": _format_size(total),
        "activations": acts, "activations_str": _format_size(acts),
        "params": params, "params_str": _format_size(params),
        "out_table": "\n" + complexity_stats_table(flops=flops, activations=activations, show_param_shapes=True)
        if show_table else "",
        "out_arch": "\n" + complexity_stats_str(flops=flops, activations=activations) if show_arch else "",
    }
