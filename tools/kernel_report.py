"""Compile the scan kernels for an H100 (sm_90) without a GPU and report what the code costs: registers,
spills, the layouts Triton chose, and the SASS instruction mix (benchmark aid, not a test).

    python tools/kernel_report.py --kernel nloop|tile3d|seq|bwd|bwd_seq --tile 16,32,4 [--tile 32,8,1 ...] [--N 1]
                                  [--no-unit-strides] [--ops]

Uses the ptxas / nvdisasm bundled with Triton. The signature mimics a VMamba map stored channels-last in bf16
(strides divisible by 16, channel stride 1 unless --no-unit-strides, cell-table addressing, D + delta_bias
+ softplus, no gate). Comparing two tiles of the same kernel isolates the per-element cost of the loop body:
(SASS(b) - SASS(a)) / (elements per thread(b) - elements per thread(a)).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import tempfile

import triton
import triton.backends.nvidia as nvidia
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

BF16 = ("u_ptr", "dt_ptr", "B_ptr", "C_ptr", "z_ptr", "y_ptr", "acc_ptr", "dy_ptr")
FP32 = ("A_ptr", "D_ptr", "bias_ptr", "last_ptr", "states_ptr", "dlast_ptr", "du_ptr", "ddt_ptr", "dA_ptr",
        "dB_ptr", "dC_ptr", "dD_ptr", "dbias_ptr", "scratch_ptr")
# channel / state strides of channels-last maps (Triton specialises integer arguments equal to 1). The per-cell
# strides of B / C (sB_2, sC_2) are left unspecialised, as in Vim's x_proj rows (56 elements): --bc-align then
# shows what the launcher's alignment hint buys.
UNIT = ("su_d", "sdt_d", "sy_d", "sz_d", "sB_n", "sC_n", "sdy_d", "sdu_d", "sddt_d")
DIV16 = ("su_b", "su_2", "sdt_b", "sdt_2", "sy_b", "sy_2", "sB_b", "sB_k", "sB_g", "sC_b", "sC_k", "sC_g", "dim", "gsize", "lmax",
         "sdy_b", "sdy_2", "sdu_b", "sdu_2", "sddt_b", "sddt_2", "cells", "g1g2", "g2")
ZERO = ("su_k", "su_0", "su_1", "sdt_k", "sdt_0", "sdt_1", "sB_0", "sB_1", "sC_0", "sC_1", "sy_0", "sy_1",
        "sz_b", "sz_d", "sz_0", "sz_1", "sz_2", "sdy_0", "sdy_1", "sdu_k", "sdu_0", "sdu_1", "sddt_k", "sddt_0",
        "sddt_1")


def kernel_fn(name: str):
    if name == "nloop":
        from vssm.kernels.triton.fwd_nloop import routed_scan_fwd_nloop_kernel
        return routed_scan_fwd_nloop_kernel
    if name == "seq":
        from vssm.kernels.triton.fwd_seq import routed_scan_fwd_seq_kernel
        return routed_scan_fwd_seq_kernel
    if name == "bwd_seq":
        from vssm.kernels.triton.bwd_seq import routed_scan_bwd_seq_kernel
        return routed_scan_bwd_seq_kernel
    if name == "bwd":
        from vssm.kernels.triton.bwd import routed_scan_bwd_kernel
        return routed_scan_bwd_kernel
    from vssm.kernels.triton.fwd import routed_scan_fwd_kernel
    return routed_scan_fwd_kernel


def compile_report(kernel, tile: str, unit_strides: bool, N: int = 1, maxnreg: int | None = None,
                   split: int = 1, bc_align: int = 1) -> dict:
    bl, bd, warps = (int(v) for v in tile.split(","))
    options = dict(HAS_D=True, HAS_Z=False, HAS_BIAS=True, SOFTPLUS=True, GATE=False, SEPARATE_ACC=False,
                   SAVE_STATES=False, WRITE_LAST=False, SHARED_U=True, SHARED_DT=False, HAS_DLAST=False,
                   BLOCK_L=bl, BLOCK_D=bd, BLOCK_N=N, CELLS=True,
                   EVEN_N=True, SPLIT=split, BC_ALIGN=bc_align)  # VMamba: shared u, per-route delta
    meta = {k: v for k, v in options.items() if k in kernel.arg_names}
    signature, attrs, constexprs = {}, {}, dict(meta)
    for i, arg in enumerate(kernel.arg_names):
        if arg in meta:
            signature[arg] = "constexpr"
        elif unit_strides and arg in UNIT:  # Triton specialises integer arguments equal to 1
            signature[arg] = "constexpr"
            constexprs[arg] = 1
        elif arg in BF16 or arg in FP32 or arg in ("tbl_ptr", "cells_ptr"):
            signature[arg] = "*bf16" if arg in BF16 else ("*fp32" if arg in FP32 else "*i32")
            attrs[(i,)] = [["tt.divisibility", 16]]
        else:
            signature[arg] = "i32"
            if arg in DIV16 or arg in ZERO:
                attrs[(i,)] = [["tt.divisibility", 16]]
    launch = dict(num_warps=warps) if maxnreg is None else dict(num_warps=warps, maxnreg=maxnreg)
    compiled = triton.compile(ASTSource(kernel, signature, constexprs=constexprs, attrs=attrs),
                              target=GPUTarget("cuda", 90, 32), options=launch)
    tools = os.path.join(os.path.dirname(nvidia.__file__), "bin")
    with tempfile.TemporaryDirectory() as tmp:
        ptx, cubin = os.path.join(tmp, "k.ptx"), os.path.join(tmp, "k.cubin")
        with open(ptx, "w") as fh:
            fh.write(compiled.asm["ptx"])
        ptxas = subprocess.run([os.path.join(tools, "ptxas"), "--gpu-name", "sm_90a", "-v", ptx, "-o", cubin],
                               capture_output=True, text=True, check=True)
        sass = subprocess.run([os.path.join(tools, "nvdisasm"), "-c", cubin], capture_output=True, text=True,
                              check=True).stdout
    ops = [m.group(1).split(".")[0] for m in re.finditer(r"^\s+/\*[0-9a-f]+\*/\s+(?:@!?U?P\w+\s+)?([A-Z0-9_.]+)",
                                                          sass, re.M)]
    return dict(tile=tile, registers=int(re.search(r"Used (\d+) registers", ptxas.stderr).group(1)),
                spills=any(int(n) for n in re.findall(r"(\d+) bytes spill stores", ptxas.stderr)),
                sass=len(ops), ops=collections.Counter(ops), sass_text=sass,
                elements_per_thread=bl * bd * N / (32 * warps),
                layouts=sorted(set(re.findall(r"#ttg\.blocked<\{[^}]*\}>", compiled.asm["ttgir"]))),
                conversions=compiled.asm["ttgir"].count("ttg.convert_layout"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kernel", choices=("nloop", "tile3d", "seq", "bwd", "bwd_seq"), default="nloop")
    parser.add_argument("--N", type=int, default=1, help="state size (BLOCK_N), a power of two")
    parser.add_argument("--tile", action="append", required=True, help="BLOCK_L,BLOCK_D,num_warps")
    parser.add_argument("--no-unit-strides", action="store_true", help="channel stride not specialised to 1")
    parser.add_argument("--ops", action="store_true", help="print the instruction mix")
    parser.add_argument("--maxnreg", type=int, default=None, help="cap the registers per thread (spills show)")
    parser.add_argument("--bc-align", type=int, default=1, choices=(1, 2, 4, 8),
                        help="seq kernels: the B / C alignment the launcher would pass (Vim's bf16 rows: 8)")
    parser.add_argument("--dump", default=None, help="write the SASS of the (last) tile to this file")
    parser.add_argument("--split", type=int, default=1, choices=(1, 2),
                        help="bwd_seq: lanes per channel (with 2, BLOCK_D of --tile is the channels per program)")
    args = parser.parse_args()
    kernel = kernel_fn(args.kernel)
    for tile in args.tile:
        r = compile_report(kernel, tile, not args.no_unit_strides, args.N, args.maxnreg, args.split, args.bc_align)
        print(f"{args.kernel} {tile}: {r['registers']} registers{' (spills)' if r['spills'] else ''}, "
              f"{r['sass']} SASS instructions, {r['elements_per_thread']:.0f} elements per thread per tile, "
              f"{r['conversions']} layout conversions")
        for layout in r["layouts"]:
            print("   ", layout)
        if args.ops:
            print("   ", ", ".join(f"{op} {n}" for op, n in r["ops"].most_common(20)))
        if args.dump:
            with open(args.dump, "w") as fh:
                fh.write(r["sass_text"])


if __name__ == "__main__":
    main()
