"""Triton kernels of the routed selective scan: route tables, forward and backward kernels, launchers and
the registered autograd op. The public entry points are in ``vssm.kernels.triton_ops``."""
