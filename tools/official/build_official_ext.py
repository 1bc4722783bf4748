"""Build the CUDA extension(s) an OFFICIAL model needs, from a SCRATCH COPY of its repo patched for CUDA 13 and
recent torch (the project tree and the extracted sources under .cache/official are never modified).

    python tools/official/build_official_ext.py MODEL [--dest DIR] [--patch-only] [--only SOURCE] [--module EXT]

MODEL (official repo, extracted to .cache/official/<Repo> by the fetch step; see gpu_official_all.sh):
  msvmamba         YuHengsss/MSVMamba        -> selective_scan_cuda_core  (kernels/selective_scan, "cus" sources:
                                                the module MSVMamba's models/utils.py imports first)
  efficient_vmamba TerryPei/EfficientVMamba  -> selective_scan_cuda_core  (selective_scan/, its setup.py's only
                                                module; the model file imports it as
                                                selective_scan_vmamba_pt202.selective_scan_cuda_core, which the
                                                bench script maps onto the module built here)
  vim              hustvl/Vim                -> selective_scan_cuda (mamba-1p1p1, all 10 sources of its setup.py) and
                                                causal_conv1d_cuda (causal-conv1d, 4 sources)

The modules are built with ``build_ext --inplace`` next to their sources in DEST (default: a fresh
mktemp -d /tmp/official_<model>.XXXXXX); nothing is pip-installed.  The last line printed is
``OFFICIAL_BUILD_DIR=<dest>``; bench_official_others.py takes that dir (--build-dir).

Patches applied to the copy:
  * ``cub::LaneId()`` -> ``official_lane_id()`` (inline PTX ``mov.u32 %0, %laneid;``, defined at the top of each
    patched file under an include guard) and ``cub::CTA_SYNC()`` -> ``__syncthreads()``: both were removed from
    CUB in CUDA 13 (``cub::WarpMask`` is still there).
  * a minimal setup file per module instead of the repo's setup.py (which pins -std=c++17, and sm_53..sm_90
    gencodes): the same sources and nvcc flags, but -std=c++20 (torch >= 2.10 headers need it), arches from
    TORCH_CUDA_ARCH_LIST (default 9.0 only), no --ptxas-options=-v (log noise only).
  * where the CUDA toolkit is a slim one without cusparse.h & co. (torch's ATen/cuda headers include them), a shim
    include dir of symlinks to the headers of the pip nvidia-* wheels (as build_vmamba_kernel.sh does).
Env: TORCH_CUDA_ARCH_LIST (9.0), MAX_JOBS (16), NVCC_THREADS (4), CUDA_HOME (auto).
--only SOURCE compiles that one translation unit (a path relative to the module's dir, e.g.
csrc/selective_scan/selective_scan_bwd_fp32_real.cu) with the very flags of the build, to an object file, no
link: a quick check of the patches on a machine without the time (or the GPU) for the whole build.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "official"

NVCC_FLAGS = [
    "-O3", "-std=c++20",
    "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__",
    "-U__CUDA_NO_BFLOAT16_OPERATORS__", "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
    "-U__CUDA_NO_BFLOAT162_OPERATORS__", "-U__CUDA_NO_BFLOAT162_CONVERSIONS__",
    "--expt-relaxed-constexpr", "--expt-extended-lambda", "--use_fast_math", "-lineinfo",
]

# model -> (repo dir under .cache/official, [paths copied to DEST],
#           [(module dir in DEST, ext name, sources, include dirs of the official setup.py)])
SPECS = {
    "msvmamba": ("MSVMamba",
                 ["kernels/selective_scan", "classification/models", "classification/configs", "COMMIT"],
                 [("kernels/selective_scan", "selective_scan_cuda_core",
                   ["csrc/selective_scan/cus/selective_scan.cpp",
                    "csrc/selective_scan/cus/selective_scan_core_fwd.cu",
                    "csrc/selective_scan/cus/selective_scan_core_bwd.cu"], ["csrc/selective_scan"])]),
    "efficient_vmamba": ("EfficientVMamba",
                         ["selective_scan", "classification/models", "classification/lib", "classification/configs",
                          "COMMIT"],
                         [("selective_scan", "selective_scan_cuda_core",
                           ["csrc/selective_scan/selective_scan.cpp",
                            "csrc/selective_scan/selective_scan_core.cu",
                            "csrc/selective_scan/selective_scan_core_fwd2.cu",
                            "csrc/selective_scan/selective_scan_core_fwd3.cu",
                            "csrc/selective_scan/selective_scan_core_fwd4.cu"], ["csrc/selective_scan"])]),
    "vim": ("Vim",
            ["vim", "mamba-1p1p1", "causal-conv1d", "COMMIT"],
            [("mamba-1p1p1", "selective_scan_cuda",
              ["csrc/selective_scan/selective_scan.cpp"]
              + [f"csrc/selective_scan/selective_scan_fwd_{t}.cu" for t in ("fp32", "fp16", "bf16")]
              + [f"csrc/selective_scan/selective_scan_bwd_{t}_{k}.cu" for t in ("fp32", "fp16", "bf16")
                 for k in ("real", "complex")], ["csrc/selective_scan"]),
             ("causal-conv1d", "causal_conv1d_cuda",
              ["csrc/causal_conv1d.cpp", "csrc/causal_conv1d_fwd.cu", "csrc/causal_conv1d_bwd.cu",
               "csrc/causal_conv1d_update.cu"], ["csrc/causal_conv1d"])]),
}

LANE_ID_DEF = textwrap.dedent("""\
    // ---- added by tools/official/build_official_ext.py: cub::LaneId() was removed from CUB in CUDA 13 ----
    #ifndef OFFICIAL_LANE_ID_DEFINED
    #define OFFICIAL_LANE_ID_DEFINED
    __device__ __forceinline__ unsigned int official_lane_id()
    {
        unsigned int ret;
        asm("mov.u32 %0, %%laneid;" : "=r"(ret));
        return ret;
    }
    #endif
    """)


def log(*a):
    print("[build]", *a, flush=True)


def copy_tree(model: str, dest: Path) -> Path:
    repo_dir, paths, _ = SPECS[model]
    src = CACHE / repo_dir
    if not src.is_dir():
        raise SystemExit(f"official {repo_dir} sources not found under {src} (extract the repo there first)")
    for rel in paths:
        s, d = src / rel, dest / rel
        if s.is_dir():
            if d.exists():
                shutil.rmtree(d)
            shutil.copytree(s, d)
        elif s.is_file():
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, d)
        else:
            raise SystemExit(f"missing {s}")
    log(f"source {src} -> scratch copy {dest}")
    return src


def patch_cub(csrc: Path) -> list[Path]:
    patched = []
    for f in sorted(p for p in csrc.rglob("*") if p.suffix in (".cuh", ".cu", ".h", ".cpp")):
        text = f.read_text()
        new = text.replace("cub::LaneId()", "official_lane_id()").replace("cub::CTA_SYNC()", "__syncthreads()")
        if new == text:
            continue
        if "official_lane_id()" in new:
            m = re.search(r"^#pragma once[^\n]*\n", new, flags=re.M)
            at = m.end() if m else 0
            new = new[:at] + LANE_ID_DEF + new[at:]
        f.write_text(new)
        patched.append(f)
        log(f"patched {f}")
    left = [(f, i + 1, line) for f in csrc.rglob("*") if f.is_file()
            for i, line in enumerate(f.read_text(errors="replace").splitlines())
            if re.search(r"cub::(LaneId|CTA_SYNC)\b", line.split("//")[0])]
    if left:
        for f, n, line in left:
            print(f"{f}:{n}: {line}", file=sys.stderr)
        raise SystemExit("unpatched cub::LaneId / cub::CTA_SYNC remain (see above)")
    return patched


def write_setup(mod_dir: Path, ext: str, sources: list[str], includes: list[str], nvcc_threads: int) -> Path:
    for s in sources:
        if not (mod_dir / s).is_file():
            raise SystemExit(f"missing source {mod_dir / s}")
    setup = mod_dir / f"setup_{ext}.py"
    setup.write_text(textwrap.dedent(f"""\
        # written by tools/official/build_official_ext.py: the sources and nvcc flags of the official setup.py for
        # {ext} only, with -std=c++20 and the arches of TORCH_CUDA_ARCH_LIST
        import os
        from setuptools import setup
        from torch.utils.cpp_extension import BuildExtension, CUDAExtension

        this_dir = os.path.dirname(os.path.abspath(__file__))
        setup(
            name="{ext}_official",
            ext_modules=[CUDAExtension(
                name="{ext}",
                sources={sources!r},
                extra_compile_args={{"cxx": ["-O3", "-std=c++20"],
                                    "nvcc": {NVCC_FLAGS + ["--threads", str(nvcc_threads)]!r}}},
                include_dirs=[os.path.join(this_dir, d) for d in {includes!r}]
                             + [d for d in os.environ.get("OFFICIAL_EXTRA_INCLUDE", "").split(":") if d],
            )],
            cmdclass={{"build_ext": BuildExtension}},
        )
        """))
    return setup


def shim_includes(dest: Path) -> str | None:
    import torch.utils.cpp_extension as ce
    inc = Path(ce.CUDA_HOME or "/nonexistent") / "include"
    if (inc / "cusparse.h").is_file():
        return None
    shim = dest / "shim_include"
    shim.mkdir(exist_ok=True)
    try:
        import nvidia
        roots = list(nvidia.__path__)
    except ImportError:
        roots = []
    for r in roots:
        for h in glob.glob(os.path.join(r, "*", "include", "*.h*")):
            b = os.path.basename(h)
            if not (inc / b).exists() and not (shim / b).exists():
                (shim / b).symlink_to(h)
    log(f"{inc} has no cusparse.h: shim include dir {shim} ({len(list(shim.iterdir()))} headers from pip nvidia "
        f"wheels)")
    return str(shim)


def compile_one(mod_dir: Path, source: str, includes: list[str], extra_inc: str | None, nvcc_threads: int):
    """One translation unit, the flags of the build (torch's include dirs, arch flags, defines), no link."""
    import torch.utils.cpp_extension as ce
    arch = os.environ.get("TORCH_CUDA_ARCH_LIST", "9.0")
    import sysconfig
    incs = (ce.include_paths(device_type="cuda") + [sysconfig.get_paths()["include"]]
            + [str(mod_dir / d) for d in includes])
    if extra_inc:
        incs.append(extra_inc)
    abi = f"-D_GLIBCXX_USE_CXX11_ABI={int(__import__('torch')._C._GLIBCXX_USE_CXX11_ABI)}"
    defs = ["-DTORCH_EXTENSION_NAME=check", "-DTORCH_API_INCLUDE_EXTENSION_H", abi]
    out = Path(tempfile.mkdtemp(prefix="official_tu.")) / (Path(source).stem + ".o")
    if source.endswith(".cu"):
        nvcc = os.path.join(ce.CUDA_HOME, "bin", "nvcc")
        gencode = [f"-gencode=arch=compute_{a.replace('.', '')},code=sm_{a.replace('.', '')}"
                   for a in arch.replace(",", " ").split()]
        cmd = [nvcc, "-c", str(mod_dir / source), "-o", str(out), "--compiler-options", "'-fPIC'",
               "-D__CUDA_NO_HALF_OPERATORS__", "-D__CUDA_NO_HALF_CONVERSIONS__", "-D__CUDA_NO_BFLOAT16_CONVERSIONS__",
               "-D__CUDA_NO_HALF2_OPERATORS__"] + NVCC_FLAGS + ["--threads", str(nvcc_threads)] + gencode + defs
    else:
        cmd = ["c++", "-c", str(mod_dir / source), "-o", str(out), "-fPIC", "-O3", "-std=c++20"] + defs
    cmd += [f"-I{i}" for i in incs]
    log("compiling one translation unit:", source)
    t0 = time.time()
    subprocess.run(cmd, check=True)
    log(f"{source}: compiled in {time.time() - t0:.0f} s -> {out} ({out.stat().st_size:,} bytes)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", choices=sorted(SPECS))
    p.add_argument("--dest", default=None)
    p.add_argument("--patch-only", action="store_true", help="copy + patch + write setup files, no compilation")
    p.add_argument("--only", default=None, help="compile just this source of the first module that lists it")
    p.add_argument("--module", default=None, help="build only this extension (vim: selective_scan_cuda or "
                                                  "causal_conv1d_cuda); default all the model needs")
    a = p.parse_args(argv)

    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "9.0")
    os.environ.setdefault("MAX_JOBS", "16")
    if not os.environ.get("CUDA_HOME"):
        for d in ("/usr/local/cuda", "/usr/local/cuda-13.0"):
            if os.access(f"{d}/bin/nvcc", os.X_OK):
                os.environ["CUDA_HOME"] = d
                break
    nvcc_threads = int(os.environ.get("NVCC_THREADS", "4"))
    dest = Path(a.dest) if a.dest else Path(tempfile.mkdtemp(prefix=f"official_{a.model}."))
    dest.mkdir(parents=True, exist_ok=True)
    dest = dest.resolve()
    copy_tree(a.model, dest)
    modules = [m for m in SPECS[a.model][2] if a.module in (None, m[1])]
    if not modules:
        raise SystemExit(f"{a.model} has no module {a.module} (it has {[m[1] for m in SPECS[a.model][2]]})")
    setups = []
    for mod_rel, ext, sources, includes in modules:
        mod_dir = dest / mod_rel
        patch_cub(mod_dir / "csrc")
        setups.append((mod_dir, ext, sources, includes, write_setup(mod_dir, ext, sources, includes, nvcc_threads)))
    log("patches applied")
    if a.patch_only:
        log("--patch-only: not compiling")
        print(f"OFFICIAL_BUILD_DIR={dest}", flush=True)
        return 0

    extra = shim_includes(dest)
    env = dict(os.environ)
    if extra:
        env["OFFICIAL_EXTRA_INCLUDE"] = extra
    if a.only:
        for mod_dir, ext, sources, includes, _ in setups:
            if a.only in sources:
                os.environ.update(env)
                compile_one(mod_dir, a.only, includes, extra, nvcc_threads)
                print(f"OFFICIAL_BUILD_DIR={dest}", flush=True)
                return 0
        raise SystemExit(f"{a.only} is not a source of {a.model}'s modules")

    import torch
    log(f"torch {torch.__version__} cuda {torch.version.cuda} CUDA_HOME {env.get('CUDA_HOME')} "
        f"TORCH_CUDA_ARCH_LIST={env['TORCH_CUDA_ARCH_LIST']} MAX_JOBS={env['MAX_JOBS']}")
    # the modules of one model are built at the same time (vim: mamba's 10 sources and causal-conv1d's 4), each
    # with its own ninja and MAX_JOBS
    t0 = time.time()
    procs = []
    for mod_dir, ext, sources, includes, setup in setups:
        logf = open(dest / f"build_{ext}.log", "w")
        cmd = [sys.executable, setup.name, "build_ext", "--inplace", "--build-temp", str(dest / f"build_tmp_{ext}")]
        procs.append((ext, mod_dir, logf, subprocess.Popen(cmd, cwd=mod_dir, env=env, stdout=logf,
                                                           stderr=subprocess.STDOUT)))
    rc = 0
    for ext, mod_dir, logf, proc in procs:
        r = proc.wait()
        logf.close()
        tail = (dest / f"build_{ext}.log").read_text(errors="replace").splitlines()
        errs = [line for line in tail if "error" in line.lower()][:40]
        log(f"{ext}: rc={r} after {time.time() - t0:.0f} s (log {dest / f'build_{ext}.log'})")
        if r:
            print("\n".join(errs or tail[-40:]), flush=True)
            rc = rc or r
        else:
            so = sorted(mod_dir.glob(f"{ext}*.so"))
            log(f"{ext}: {[str(s) for s in so]}")
            # import it (needs no GPU): catches undefined symbols / ABI mismatches now rather than in the bench
            chk = subprocess.run([sys.executable, "-c", f"import torch, {ext} as m; "
                                  f"print(m.__file__, [n for n in dir(m) if not n.startswith('_')])"],
                                 cwd=mod_dir, env=env, capture_output=True, text=True)
            log(f"{ext}: import {'ok' if chk.returncode == 0 else 'FAILED'}: "
                f"{(chk.stdout.strip() or chk.stderr.strip()[-2000:])}")
            rc = rc or chk.returncode
    log(f"compiled in {time.time() - t0:.0f} s")
    print(f"OFFICIAL_BUILD_DIR={dest}", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
