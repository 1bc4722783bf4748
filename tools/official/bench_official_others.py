"""Throughput of the OFFICIAL MSVMamba-T, EfficientVMamba-B and Vim-tiny with the protocol of
``tools/benchmark.py --gpu`` (the same ``gpu_throughput`` as bench_official_vmamba.py), each built from a scratch
copy made by build_official_ext.py, running the CUDA extensions its repo ships.

    python tools/official/build_official_ext.py MODEL     # prints OFFICIAL_BUILD_DIR=<dir>
    python tools/official/bench_official_others.py MODEL --build-dir <dir> [--batch 128] [--img 224] [--iters 20]
                                                   [--json out.json] [--compare-vssm]
    python tools/official/bench_official_others.py MODEL --cpu-check [--compare-vssm]   # no GPU

MODEL -> official config, and the timm model of ours it is measured against (the JSON key is official_<ours>):
  msvmamba          MSVMamba  classification/configs/ms_vssm/vssm_tiny_224_ms.yaml (+ config.py defaults)
                    -> msvmamba_tiny, 33,046,312 parameters; scan: selective_scan_cuda_core (models/utils.py)
  efficient_vmamba  EfficientVMamba  configs/vssm/vssm_efficient_base.yaml (+ utils/config.py defaults), built as
                    models/__init__.py's build_vssm_model does -> efficient_vmamba_base, 33,717,136 parameters;
                    scan: selective_scan_vmamba_pt202.selective_scan_cuda_core (mapped onto the module built from the
                    repo's selective_scan/)
  vim               Vim  vim_tiny_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2 (the Vim-T
                    of the paper) -> vim_tiny_patch16_224, 7,148,008 parameters; mamba_ssm 1.1.1 and causal_conv1d as
                    shipped in the repo (selective_scan_cuda, causal_conv1d_cuda, Triton fused add+RMSNorm)

The official files are imported from the scratch copy (or, for --cpu-check without --build-dir, from
.cache/official/<Repo>); nothing official is copied into the project.  Their package ``__init__``s are skipped
(synthetic packages), fvcore and transformers are stubbed when missing (FLOP counting / HF hub only).
The GPU run first checks that the official CUDA kernels are really called, in forward and backward, fp32 and bf16
(wrappers around the extension functions count the calls); otherwise it refuses to measure.
--cpu-check: parameter count (vs ours with --compare-vssm), a tiny forward + backward on CPU with the official
kernels replaced by torch references (a selective-scan reference for MSVMamba / EfficientVMamba; for Vim
mamba_ssm's own mamba_inner_ref-style path, causal_conv1d_ref and layer_norm/rms_norm refs).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_official_vmamba import (  # noqa: E402  (same protocol)
    _stub_fvcore, count_params, gpu_throughput, probe_forward_backward, write_results)

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "official"

MODELS = {  # model -> (repo dir, our timm name, expected parameters)
    "msvmamba": ("MSVMamba", "msvmamba_tiny", 33_046_312),
    "efficient_vmamba": ("EfficientVMamba", "efficient_vmamba_base", 33_717_136),
    "vim": ("Vim", "vim_tiny_patch16_224", 7_148_008),
}


def _package(name: str, path: Path):
    """A package whose __init__.py is NOT run (the official ones import training code, heat models, ...)."""
    mod = types.ModuleType(name)
    mod.__path__ = [str(path)]
    sys.modules[name] = mod
    return mod


def _stub(name: str, **attrs):
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    sys.modules[name] = mod
    return mod


def _import_or_fake(name: str, cpu: bool):
    """The built extension (on sys.path), or for --cpu-check an empty placeholder module."""
    if cpu:
        return _stub(name)
    try:
        return importlib.import_module(name)
    except Exception as e:
        raise SystemExit(f"cannot import the official extension {name}: {type(e).__name__}: {e}\n"
                         f"build it first: python tools/official/build_official_ext.py <model>, and pass --build-dir")


# ---- torch reference selective scan (for --cpu-check of the VMamba-derived SelectiveScan.apply calls) ----------
def selective_scan_reference(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False, nrows=1, *_):
    """u, delta: (b, k*d, l); A: (k*d, n); B, C: (b, g, n, l) or (b, n, l); D, delta_bias: (k*d,)."""
    dtype = u.dtype
    u, delta, A = u.float(), delta.float(), A.float()
    B, C = B.float(), C.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()[None, :, None]
    if delta_softplus:
        delta = F.softplus(delta)
    b, dim, length = u.shape
    if B.dim() == 3:
        B = B.unsqueeze(1)
    if C.dim() == 3:
        C = C.unsqueeze(1)
    B = B.repeat_interleave(dim // B.shape[1], dim=1)  # (b, dim, n, l)
    C = C.repeat_interleave(dim // C.shape[1], dim=1)
    dA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    dBu = torch.einsum("bdl,bdnl,bdl->bdln", delta, B, u)
    x = u.new_zeros(b, dim, A.shape[1])
    ys = []
    for i in range(length):
        x = dA[:, :, i] * x + dBu[:, :, i]
        ys.append(torch.einsum("bdn,bdn->bd", x, C[:, :, :, i]))
    y = torch.stack(ys, dim=2)
    if D is not None:
        y = y + u * D.float()[None, :, None]
    return y.to(dtype)


class _ReferenceScan:
    apply = staticmethod(selective_scan_reference)


# ---- loaders: return (make_model, hooks, notes); hooks = [(extension module, [function names])] ------------------
def load_msvmamba(root: Path, cpu: bool):
    models = root / "classification" / "models"
    kdir = root / "kernels" / "selective_scan"
    if kdir.is_dir():
        sys.path.insert(0, str(kdir))
    ext = _import_or_fake("selective_scan_cuda_core", cpu)
    _stub_fvcore()
    _package("msvmamba_official", models)
    vm = importlib.import_module("msvmamba_official.vmamba")
    utils = importlib.import_module("msvmamba_official.utils")
    if utils.SSMODE != "sscore":
        raise SystemExit(f"MSVMamba's utils.py did not take selective_scan_cuda_core (SSMODE={utils.SSMODE})")
    if cpu:
        vm.SelectiveScan = utils.SelectiveScan = _ReferenceScan

    def make_model():
        # configs/ms_vssm/vssm_tiny_224_ms.yaml over config.py's defaults, as models/__init__.py passes them
        return vm.VSSM(
            patch_size=4, in_chans=3, num_classes=1000, depths=[1, 2, 9, 2], dims=96,
            ssm_d_state=1, ssm_ratio=2.0, ssm_rank_ratio=2.0, ssm_dt_rank="auto", ssm_act_layer="silu",
            ssm_conv=3, ssm_conv_bias=True, ssm_drop_rate=0.0, ssm_simple_init=False, forward_type="v2",
            mlp_ratio=0.0, mlp_act_layer="gelu", mlp_drop_rate=0.0, drop_path_rate=0.2, patch_norm=True,
            norm_layer="ln", downsample_version="v1", patchembed_version="v1", use_checkpoint=False,
            recurrent=False, sscore_type="multiscale_4scan_12", inter_block_ssm=False, grid_size=0,
            multiscale_ratio=[], multiscale_ksize=[], continous_patch=False, adaptive_merge=False, add_conv=True,
            b1_seq=False, b1_ratio=0.5, add_se=True, ms_fusion=None, up_sample="interpolate", convFFN=True,
            lpu=False, sep_norm=False, ms_stage=[0, 1, 2, 3], ms_split=[1, 3], ffn_dropout=0.0,
        )

    return make_model, [(ext, ["fwd", "bwd"])], "selective_scan_cuda_core (MSVMamba kernels/selective_scan, cus)"


def load_efficient_vmamba(root: Path, cpu: bool):
    cls = root / "classification"
    kdir = root / "selective_scan"
    if kdir.is_dir():
        sys.path.insert(0, str(kdir))
    ext = _import_or_fake("selective_scan_cuda_core", cpu)
    # the model file does `from selective_scan_vmamba_pt202 import selective_scan_cuda_core` (the name of the
    # prebuilt wheel package of the same sources); map it onto the module built from the repo's selective_scan/
    _stub("selective_scan_vmamba_pt202", selective_scan_cuda_core=ext)
    _stub_fvcore()
    _package("lib", cls / "lib")  # `from lib.models.operations import InvertedResidual`
    _package("lib.models", cls / "lib" / "models")
    _package("efficient_vmamba_official", cls / "models")
    ev = importlib.import_module("efficient_vmamba_official.vmamba_efficient")
    if ev.SSMODE != "sscore" or ev.selective_scan_cuda_core is not ext:
        raise SystemExit(f"EfficientVMamba did not take the built selective_scan_cuda_core (SSMODE={ev.SSMODE})")
    if cpu:
        ev.SelectiveScan = _ReferenceScan

    def make_model():
        # configs/vssm/vssm_efficient_base.yaml over utils/config.py's defaults, as build_vssm_model passes them
        return ev.EfficientVSSM(
            patch_size=4, in_chans=3, num_classes=1000, depths=[2, 2, 9, 2], dims=96,
            d_state=16, dt_rank="auto", ssm_ratio=2.0, attn_drop_rate=0.0, shared_ssm=False, softmax_version=False,
            drop_rate=0.0, drop_path_rate=0.2, mlp_ratio=0.0, patch_norm=True, downsample_version="v1",
            use_checkpoint=False, window_size=2,
        )

    return make_model, [(ext, ["fwd", "bwd"])], "selective_scan_cuda_core (EfficientVMamba selective_scan/)"


def load_vim(root: Path, cpu: bool):
    for d in ("causal-conv1d", "mamba-1p1p1", "vim"):  # the built .so files sit next to their setup files
        sys.path.insert(0, str(root / d))
    ss = _import_or_fake("selective_scan_cuda", cpu)
    cc = _import_or_fake("causal_conv1d_cuda", cpu)
    # mamba_ssm.utils.{generation,hf} import transformers at module level for text generation / the HF hub only;
    # the names they want are gone from recent transformers (GreedySearchDecoderOnlyOutput), so stub them always
    gen_names = ("GreedySearchDecoderOnlyOutput", "SampleDecoderOnlyOutput", "TextStreamer")
    try:
        import transformers.generation as tg
        missing = any(not hasattr(tg, n) for n in gen_names)
    except Exception:
        _stub("transformers")
        _stub("transformers.utils", WEIGHTS_NAME="pytorch_model.bin", CONFIG_NAME="config.json")
        _stub("transformers.utils.hub", cached_file=None)
        missing = True
    if missing:
        _stub("transformers.generation", **{n: object for n in gen_names})
    # mamba_ssm/__init__.py imports MambaLMHeadModel (the LM); skip it, the vision model needs the modules only
    _package("mamba_ssm", root / "mamba-1p1p1" / "mamba_ssm")
    vim = importlib.import_module("models_mamba")
    if vim.RMSNorm is None:
        raise SystemExit("Vim could not import mamba_ssm.ops.triton.layer_norm (RMSNorm)")
    ssi = importlib.import_module("mamba_ssm.ops.selective_scan_interface")
    ms = importlib.import_module("mamba_ssm.modules.mamba_simple")
    if ssi.selective_scan_cuda is not ss or ssi.causal_conv1d_cuda is not cc:
        raise SystemExit("mamba_ssm did not take the built selective_scan_cuda / causal_conv1d_cuda")
    if cpu:
        _vim_cpu_fallbacks(vim, ssi, ms)

    def make_model():
        return vim.vim_tiny_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2()

    hooks = [(ss, ["fwd", "bwd"]), (cc, ["causal_conv1d_fwd", "causal_conv1d_bwd"])]
    return make_model, hooks, "mamba_ssm 1.1.1 selective_scan_cuda + causal_conv1d_cuda (Vim repo), Triton RMSNorm"


def _vim_cpu_fallbacks(vim, ssi, ms):
    """--cpu-check only: torch versions of the CUDA/Triton pieces (the official refs where the repo has them)."""
    ln = importlib.import_module("mamba_ssm.ops.triton.layer_norm")
    cci = importlib.import_module("causal_conv1d.causal_conv1d_interface")

    def conv_ref(x, weight, bias=None, activation=None, **_):
        return cci.causal_conv1d_ref(x, weight, bias, activation=activation)

    def no_out_proj_ref(xz, conv1d_weight, conv1d_bias, x_proj_weight, delta_proj_weight, A, B=None, C=None,
                        D=None, delta_bias=None, B_proj_bias=None, C_proj_bias=None, delta_softplus=True):
        # mamba_inner_ref without its out_proj (what MambaInnerFnNoOutProj computes), via the reference scan
        from einops import rearrange
        L = xz.shape[-1]
        r, n = delta_proj_weight.shape[1], A.shape[-1]
        x, z = xz.chunk(2, dim=1)
        x = conv_ref(x, rearrange(conv1d_weight, "d 1 w -> d w"), conv1d_bias, activation="silu")
        x_dbl = F.linear(rearrange(x, "b d l -> (b l) d"), x_proj_weight)
        delta = rearrange(delta_proj_weight @ x_dbl[:, :r].t(), "d (b l) -> b d l", l=L)
        Bm = rearrange(x_dbl[:, r:r + n], "(b l) n -> b n l", l=L)
        Cm = rearrange(x_dbl[:, -n:], "(b l) n -> b n l", l=L)
        return ssi.selective_scan_ref(x, delta, A, Bm, Cm, D, z=z, delta_bias=delta_bias, delta_softplus=True)

    def norm_ref(ref):
        def fn(x, weight, bias, residual=None, prenorm=False, residual_in_fp32=False, eps=1e-6, **_):
            shape = x.shape
            x2 = x.reshape(-1, shape[-1])
            res2 = residual.reshape(-1, shape[-1]) if residual is not None else None
            out = ref(x2, weight, bias, residual=res2, eps=eps, prenorm=prenorm, upcast=True)
            if prenorm:
                y, res = out
                res = res.float() if residual_in_fp32 else res
                return y.reshape(shape), res.reshape(shape)
            return out.reshape(shape)
        return fn

    ms.mamba_inner_fn_no_out_proj = no_out_proj_ref
    vim.rms_norm_fn = ln.rms_norm_fn = norm_ref(ln.rms_norm_ref)
    vim.layer_norm_fn = ln.layer_norm_fn = norm_ref(ln.layer_norm_ref)


LOADERS = {"msvmamba": load_msvmamba, "efficient_vmamba": load_efficient_vmamba, "vim": load_vim}


def check_cuda_kernels_used(make_model, hooks, img: int) -> dict:
    """Count calls of the official extension functions over fwd+bwd in fp32 and bf16 autocast at batch 2; refuse
    to benchmark if any is never called (a torch fallback would not be what the official tables measure)."""
    calls, saved = {}, []
    for mod, names in hooks:
        for n in names:
            key = f"{mod.__name__}.{n}"
            calls[key] = 0
            orig = getattr(mod, n)
            saved.append((mod, n, orig))

            def wrapped(*a, _orig=orig, _key=key, **k):
                calls[_key] += 1
                return _orig(*a, **k)

            setattr(mod, n, wrapped)
    try:
        probe_forward_backward(make_model, img)
    finally:
        for mod, n, orig in saved:
            setattr(mod, n, orig)
    missing = [k for k, v in calls.items() if v == 0]
    if missing:
        raise SystemExit(f"the official model did not call {missing} ({calls}); refusing to benchmark")
    print(f"[check] official CUDA kernels in use: {calls} over 2 fwd+bwd (fp32, bf16) at batch 2", flush=True)
    torch.cuda.empty_cache()
    return calls


def cpu_check(make_model, img: int) -> dict:
    torch.manual_seed(0)
    model = make_model().eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, img, img))
    assert out.shape == (2, 1000) and torch.isfinite(out).all(), out.shape
    model.train()
    loss = F.cross_entropy(model(torch.randn(2, 3, img, img)), torch.tensor([1, 2]))
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, no_grad[:5]
    print(f"[cpu-check] forward {tuple(out.shape)} at {img}x{img} and a backward (torch reference kernels) ok",
          flush=True)
    return dict(cpu_check_img=img)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", choices=sorted(MODELS))
    p.add_argument("--build-dir", default=os.environ.get("OFFICIAL_BUILD_DIR"),
                   help="scratch copy made by build_official_ext.py (default $OFFICIAL_BUILD_DIR)")
    p.add_argument("--img", type=int, default=224)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--cpu-check", action="store_true", help="no GPU: params + tiny forward/backward on CPU")
    p.add_argument("--cpu-img", type=int, default=None, help="default 64 (vim: 224, its patch embed asserts it)")
    p.add_argument("--compare-vssm", action="store_true",
                   help="also count our timm model's parameters and require equality (--cpu-check: fatal)")
    a = p.parse_args(argv)

    repo_dir, ours_name, expected = MODELS[a.model]
    if not a.cpu_check and not a.build_dir:
        raise SystemExit("--build-dir (or $OFFICIAL_BUILD_DIR) is needed for the GPU benchmark")
    root = Path(a.build_dir) if a.build_dir else CACHE / repo_dir
    name = f"official_{ours_name}"
    row = dict(img=a.img)
    ours = None
    if a.compare_vssm:  # before the official import: their timm @register_model must not shadow ours
        try:
            import timm
            import vssm  # noqa: F401
            ours = count_params(timm.create_model(ours_name, device="meta"))
        except Exception as e:
            print(f"[compare] could not count vssm's {ours_name}: {type(e).__name__}: {e}", flush=True)

    make_model, hooks, backend = LOADERS[a.model](root, a.cpu_check)
    params = count_params(make_model())
    row["params"] = params
    print(f"[official] {a.model} from {root}: {params:,} parameters", flush=True)
    if params != expected:
        print(f"[official] WARNING: expected {expected:,} parameters (vssm {ours_name})", flush=True)
    if ours is not None:
        row[f"vssm_{ours_name}_params"] = ours
        print(f"[compare] vssm {ours_name}: {ours:,} parameters; official: {params:,} -> "
              f"{'same' if ours == params else 'DIFFERENT (wrong official config?)'}", flush=True)
        if ours != params and a.cpu_check:
            raise SystemExit("parameter counts differ: wrong official config?")

    if a.cpu_check:
        row.update(cpu_check(make_model, a.cpu_img or (224 if a.model == "vim" else 64)))
    else:
        if not torch.cuda.is_available():
            raise SystemExit("the GPU benchmark needs CUDA (use --cpu-check without one)")
        row["kernel_calls_check"] = check_cuda_kernels_used(make_model, hooks, a.img)
        row["scan_backend"] = backend
        row.update(gpu_throughput(make_model, a.img, a.batch, a.iters, a.warmup), batch=a.batch)
        row.update(iters=a.iters, warmup=a.warmup, torch=torch.__version__)
    commit = root / "COMMIT"
    if not commit.is_file():
        commit = CACHE / repo_dir / "COMMIT"
    row["official_repo"] = {"msvmamba": "YuHengsss/MSVMamba", "efficient_vmamba": "TerryPei/EfficientVMamba",
                            "vim": "hustvl/Vim"}[a.model]
    row["official_commit"] = commit.read_text().strip() if commit.is_file() else None
    return write_results(name, row, a.json)


if __name__ == "__main__":
    main()
