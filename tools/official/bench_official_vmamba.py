"""Throughput of the OFFICIAL VMamba-T (v2, ``vssm1_tiny_0230s`` = official ``vmamba_tiny_s1l8``) with the protocol
of ``tools/benchmark.py --gpu``, so the model zoo can put official numbers from the same device run next to ours.

    tools/official/build_vmamba_kernel.sh            # prints VMAMBA_BUILD_DIR=<dir> (patched scratch copy + .so)
    python tools/official/bench_official_vmamba.py --build-dir <dir> [--batch 128] [--img 224] [--iters 20]
                                                   [--json out.json]
    python tools/official/bench_official_vmamba.py --cpu-check   # no GPU: build the model, count parameters,
                                                                 # tiny forward through the official torch scan

The official ``vmamba.py`` is imported from the scratch copy (``<build-dir>/classification/models``, or for
``--cpu-check`` without a build dir, ``.cache/official/VMamba``); nothing official is copied into the project.
Missing optional imports (fvcore, only used for FLOP counting) are stubbed.

GPU protocol (same as ``tools/benchmark.py``'s ``gpu_throughput``): per precision (fp32, bf16 autocast) a fresh
model, NCHW input ``randn(batch, 3, img, img)``, labels ``randint(0, 1000)``; inference = ``no_grad`` eval forward,
training = train-mode forward + cross-entropy + backward + AdamW(lr 1e-4) step + zero_grad; ``warmup`` untimed
calls, then ``iters`` calls between two CUDA events (mean time per call; the function of tools/benchmark.py itself), img/s = batch / sec; peak memory =
``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` per measurement.  The JSON has the keys of
``tools/benchmark.py --json`` (params, img, batch, infer_/train_{fp32,bf16}_img_s, *_peak_gb, gpu) under the key
``--name`` (default ``official_vmamba_tiny``), plus ``official_commit``/``scan_backend`` notes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SRC = REPO / ".cache" / "official" / "VMamba"
# official vmamba_tiny_s1l8 == vssm's vmamba_tiny, 1000 classes (checked with --compare-vssm). NB 30,705,832 is
# the OTHER v2 tiny, vmamba_tiny_s2l5 (vssm1_tiny_0230: ssm_ratio 2.0, depths [2,2,5,2]), not this one.
EXPECTED_PARAMS = 30_249_064


def _stub_fvcore():
    try:
        import fvcore.nn  # noqa: F401
        return
    except ImportError:
        pass
    fv = types.ModuleType("fvcore")
    nn_mod = types.ModuleType("fvcore.nn")

    def _unavailable(*a, **k):
        raise RuntimeError("fvcore is stubbed (not installed); FLOP counting is unavailable")

    for n in ("FlopCountAnalysis", "flop_count_str", "flop_count", "parameter_count"):
        setattr(nn_mod, n, _unavailable)
    fv.nn = nn_mod
    sys.modules["fvcore"], sys.modules["fvcore.nn"] = fv, nn_mod


def load_official(root: Path):
    """Import the official ``vmamba.py`` (and its ``csms6s``) from ``root`` (a scratch copy of the repo)."""
    models_dir = root / "classification" / "models"
    kernel_dir = root / "kernels" / "selective_scan"
    if not (models_dir / "vmamba.py").is_file():
        raise SystemExit(f"no official vmamba.py under {models_dir}")
    for d in (kernel_dir, models_dir):  # kernel_dir: the in-place built selective_scan_cuda_oflex*.so
        if d.is_dir() and str(d) not in sys.path:
            sys.path.insert(0, str(d))
    _stub_fvcore()
    # vmamba.py does `try: from .csms6s import ... except: from csms6s import ...`: loaded as a top-level
    # module its relative imports fail and the plain ones (from models_dir on sys.path) are used.
    spec = importlib.util.spec_from_file_location("official_vmamba", models_dir / "vmamba.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["official_vmamba"] = mod
    spec.loader.exec_module(mod)
    import csms6s  # the very module vmamba.py imported (same sys.path entry)
    return mod, csms6s


def build_tiny(official, num_classes: int = 1000):
    """VMamba-T v2: classification/configs/vssm/vmambav2v_tiny_224.yaml (NAME vssm1_tiny_0230s), i.e. the
    official ``vmamba_tiny_s1l8(channel_first=True)``: dims 96, depths [2,2,8,2], d_state 1, ssm_ratio 1.0,
    dt_rank auto, conv 3 without bias, forward v05_noz, mlp 4.0, downsample v3, patchembed v2, ln2d, drop path 0.2."""
    return official.VSSM(
        depths=[2, 2, 8, 2], dims=96, drop_path_rate=0.2,
        patch_size=4, in_chans=3, num_classes=num_classes,
        ssm_d_state=1, ssm_ratio=1.0, ssm_dt_rank="auto", ssm_act_layer="silu",
        ssm_conv=3, ssm_conv_bias=False, ssm_drop_rate=0.0,
        ssm_init="v0", forward_type="v05_noz",
        mlp_ratio=4.0, mlp_act_layer="gelu", mlp_drop_rate=0.0, gmlp=False,
        patch_norm=True, norm_layer="ln2d",
        downsample_version="v3", patchembed_version="v2",
        use_checkpoint=False, posembed=False, imgsize=224,
    )


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _official_commit(root: Path) -> str | None:
    f = root / "COMMIT"
    if not f.is_file():
        f = DEFAULT_SRC / "COMMIT"
    return f.read_text().strip() if f.is_file() else None


def gpu_throughput(make_model, img: int, batch: int, iters: int, warmup: int = 5) -> dict:
    """tools/benchmark.py's protocol itself (imported, so both sides are measured by one function)."""
    tools = Path(__file__).resolve().parents[1]
    if str(tools) not in sys.path:
        sys.path.insert(0, str(tools))
    from benchmark import gpu_throughput as protocol

    out = protocol(make_model, img, batch, iters, warmup)
    for precision in ("fp32", "bf16"):
        print(f"  {precision}: infer {out[f'infer_{precision}_img_s']:.1f} img/s, "
              f"train {out[f'train_{precision}_img_s']:.1f} img/s, "
              f"train peak {out[f'train_{precision}_peak_gb']:.2f} GB", flush=True)
    return out


def write_results(name: str, row: dict, json_path: str | None) -> dict:
    """Print the row and write ``{name: row}`` as JSON (the layout tools/model_zoo.py --official-json reads)."""
    print(name, json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    results = {name: row}
    if json_path:
        with open(json_path, "w") as f:
            json.dump(results, f, indent=2)
    return results


def probe_forward_backward(make_model, img: int) -> None:
    """Two forward + backward passes (fp32, then bf16 autocast) at batch 2: enough to see which kernels run."""
    model = make_model().cuda().train()
    x = torch.randn(2, 3, img, img, device="cuda")
    for autocast in (False, True):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            out = model(x)
        assert torch.isfinite(out.float()).all(), "non-finite output"
        out.float().sum().backward()
    torch.cuda.synchronize()


def check_cuda_scan_used(official, csms6s, make_model, img: int) -> str:
    """Make sure the official CUDA scan (oflex) runs in forward and backward, not the torch loop fallback
    (which would be orders of magnitude slower and not what the official tables measure)."""
    if not getattr(csms6s, "WITH_SELECTIVESCAN_OFLEX", False):
        try:  # show why (csms6s swallows the ImportError)
            import selective_scan_cuda_oflex  # noqa: F401
        except Exception as e:
            print(f"[check] import selective_scan_cuda_oflex: {type(e).__name__}: {e}", flush=True)
        raise SystemExit("selective_scan_cuda_oflex could not be imported: build it first "
                         "(tools/official/build_vmamba_kernel.sh) and pass --build-dir")
    ext = csms6s.selective_scan_cuda_oflex
    calls = {"fwd": 0, "bwd": 0}
    fwd, bwd = ext.fwd, ext.bwd

    def fwd_w(*a):
        calls["fwd"] += 1
        return fwd(*a)

    def bwd_w(*a):
        calls["bwd"] += 1
        return bwd(*a)

    ext.fwd, ext.bwd = fwd_w, bwd_w
    try:
        probe_forward_backward(make_model, img)
    finally:
        ext.fwd, ext.bwd = fwd, bwd
    if calls["fwd"] == 0 or calls["bwd"] == 0:
        raise SystemExit(f"the official model did not call the oflex kernel ({calls}); refusing to benchmark")
    print(f"[check] oflex CUDA scan in use: {calls} over 2 fwd+bwd (fp32, bf16) at batch 2", flush=True)
    torch.cuda.empty_cache()
    return f"oflex (selective_scan_cuda_oflex from {Path(ext.__file__).parent})"


def cpu_check(official, csms6s, img: int) -> dict:
    """No GPU: the official torch scan fallback (selective_scan_torch) and torch cross-scan, tiny input."""
    for flag in ("WITH_SELECTIVESCAN_OFLEX", "WITH_SELECTIVESCAN_CORE", "WITH_SELECTIVESCAN_MAMBA"):
        setattr(csms6s, flag, False)  # read at call time by selective_scan_fn -> selective_scan_torch
    # the official cross_scan_fn / cross_merge_fn enter `torch.cuda.device(x.device)`, which fails for CPU
    # tensors; call their torch autograd functions (CrossScanF / CrossMergeF) directly, as they would on CPU.
    import csm_triton
    official.cross_scan_fn = lambda x, in_channel_first=True, out_channel_first=True, one_by_one=False, scans=0, \
        force_torch=False: csm_triton.CrossScanF.apply(x, in_channel_first, out_channel_first, one_by_one, scans)
    official.cross_merge_fn = lambda y, in_channel_first=True, out_channel_first=True, one_by_one=False, scans=0, \
        force_torch=False: csm_triton.CrossMergeF.apply(y, in_channel_first, out_channel_first, one_by_one, scans)
    torch.manual_seed(0)
    model = build_tiny(official).eval()
    n = count_params(model)
    with torch.no_grad():
        out = model(torch.randn(2, 3, img, img))
    assert out.shape == (2, 1000) and torch.isfinite(out).all(), out.shape
    model.train()
    loss = F.cross_entropy(model(torch.randn(2, 3, img, img)), torch.tensor([1, 2]))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    print(f"[cpu-check] official VMamba-T v2: {n:,} parameters; forward {tuple(out.shape)} at {img}x{img} and a "
          f"backward (torch scan fallback) ok", flush=True)
    return dict(params=n, cpu_check_img=img)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build-dir", default=os.environ.get("VMAMBA_BUILD_DIR"),
                   help="scratch copy made by build_vmamba_kernel.sh (default $VMAMBA_BUILD_DIR)")
    p.add_argument("--img", type=int, default=224)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--name", default="official_vmamba_tiny")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--cpu-check", action="store_true", help="no GPU: params + tiny forward/backward on CPU")
    p.add_argument("--cpu-img", type=int, default=64)
    p.add_argument("--compare-vssm", action="store_true",
                   help="also count vssm's vmamba_tiny parameters (timm.create_model) and require equality")
    a = p.parse_args(argv)

    root = Path(a.build_dir) if a.build_dir else DEFAULT_SRC
    if not a.cpu_check and not a.build_dir:
        raise SystemExit("--build-dir (or $VMAMBA_BUILD_DIR) is needed for the GPU benchmark")
    official, csms6s = load_official(root)
    make_model = lambda: build_tiny(official)  # noqa: E731

    params = count_params(build_tiny(official))
    row = dict(params=params, img=a.img)
    print(f"[official] VMamba-T v2 (vssm1_tiny_0230s) from {root}: {params:,} parameters", flush=True)
    if params != EXPECTED_PARAMS:
        print(f"[official] WARNING: expected {EXPECTED_PARAMS:,} parameters (vssm vmamba_tiny)", flush=True)
    if a.compare_vssm:
        try:
            import timm
            import vssm  # noqa: F401
            ours = count_params(timm.create_model("vmamba_tiny", device="meta"))
        except Exception as e:  # not fatal: the official numbers are still worth having
            print(f"[compare] could not count vssm's vmamba_tiny: {type(e).__name__}: {e}", flush=True)
        else:
            row["vssm_vmamba_tiny_params"] = ours
            print(f"[compare] vssm vmamba_tiny: {ours:,} parameters; official: {params:,} -> "
                  f"{'same' if ours == params else 'DIFFERENT (wrong official config?)'}", flush=True)
            if ours != params and a.cpu_check:
                raise SystemExit("parameter counts differ: wrong official config?")

    if a.cpu_check:
        row.update(cpu_check(official, csms6s, a.cpu_img))
    else:
        if not torch.cuda.is_available():
            raise SystemExit("the GPU benchmark needs CUDA (use --cpu-check without one)")
        row["scan_backend"] = check_cuda_scan_used(official, csms6s, make_model, a.img)
        row.update(gpu_throughput(make_model, a.img, a.batch, a.iters, a.warmup), batch=a.batch)
        row.update(iters=a.iters, warmup=a.warmup, torch=torch.__version__)
    row["official_commit"] = _official_commit(root)
    return write_results(a.name, row, a.json)


if __name__ == "__main__":
    main()
