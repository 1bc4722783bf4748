"""Time one training iteration (forward + loss + backward + optimizer step) of the dense-prediction configs.

    python tools/benchmark_mm.py [--models upernet maskrcnn] [--dtypes fp32 bf16] [--device cuda]
                                 [--iters 10] [--warmup 3] [--size S] [--batch B] [--json FILE]

Data-parallel: launched by `torchrun --nproc_per_node=N` (WORLD_SIZE > 1) each process takes GPU LOCAL_RANK
(NCCL; gloo on CPU), its own batch of the same size (a different synthetic batch per rank), and the model is
wrapped in DistributedDataParallel, so the gradients are all-reduced in every step; SyncBN in the UperNet heads is
kept on GPUs (it syncs across them, as in the recipe; a single process or a CPU run reverts it to BN). Only rank 0 prints and
writes; `images_per_s` is then the global rate (N x batch / median) and `per_gpu_batch` the batch per process.

Defaults are issue 8's settings: UperNet + VMamba-T at 512x512, batch 4
(configs/mmseg/vmamba/upernet_vmamba-t_4xb4-160k_ade20k-512x512.py) and Mask R-CNN 1x + VMamba-T at 1333x800,
batch 2 (configs/mmdet/vmamba/mask-rcnn_vmamba-t_fpn_1x_coco.py). `--size S` makes both inputs S x S (a quick
CPU check: `--device cpu --size 128 --iters 1 --warmup 0`).

No dataset: each iteration feeds a synthetic batch (uint8 noise images, random ADE-style label maps with some
ignore pixels / 8 boxes per image with elliptic masks) through the model's own data_preprocessor, then the
model's loss, `parse_losses`, and the config's optim_wrapper (built by MMEngine: AdamW, no decay on norms)
`update_params` (backward, step, zero_grad) -- the body of MMEngine's `train_step`. SyncBN in the heads
becomes BN (one process), backbone weights stay random (no checkpoint is read). bf16 = torch.autocast(bfloat16)
around preprocessing and forward with fp32 weights and optimizer state (no loss scaling), fp32 = plain. Under
bf16, Mask R-CNN's mmcv NMS / RoIAlign run in fp32 (mmcv 2.1.0 has no bf16 kernels; `mmcv_ops_in_fp32`).

Reported per (model, dtype): median / mean / min seconds per iteration over `--iters` timed iterations after
`--warmup` untimed ones (CUDA synchronised around each), images/s from the median, and on CUDA the peak
allocated / reserved memory over the timed iterations (`torch.cuda.max_memory_*` after a reset that follows
warm-up), and the loss of the last iteration. Results are appended to the JSON after every run, so a run cut
short by a timeout keeps the finished ones.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import logging
import os
import os.path as osp
import statistics
import sys
import time

import numpy as np
import torch
import torch.distributed as dist

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = {
    "upernet": osp.join(REPO, "configs/mmseg/vmamba/upernet_vmamba-t_4xb4-160k_ade20k-512x512.py"),
    "maskrcnn": osp.join(REPO, "configs/mmdet/vmamba/mask-rcnn_vmamba-t_fpn_1x_coco.py"),
}
DEFAULT_SHAPE = {"upernet": (512, 512), "maskrcnn": (800, 1333)}  # (H, W) of the fed images
DEFAULT_BATCH = {"upernet": 4, "maskrcnn": 2}


def _seg_batch(n: int, h: int, w: int, num_classes: int, g: torch.Generator) -> dict:
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    inputs, samples = [], []
    for _ in range(n):
        inputs.append(torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g))
        label = torch.randint(0, num_classes, (1, h, w), generator=g)
        label[:, : h // 8] = 255  # some ignored pixels, as ADE's "other" class after reduce_zero_label
        s = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), scale_factor=(1.0, 1.0),
                                        flip=False, img_path="synthetic", seg_map_path="synthetic",
                                        reduce_zero_label=True))
        s.gt_sem_seg = PixelData(data=label)
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def _det_batch(n: int, h: int, w: int, num_classes: int, g: torch.Generator, boxes_per_image: int = 8) -> dict:
    from mmengine.structures import InstanceData
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks

    inputs, samples = [], []
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(n):
        inputs.append(torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g))
        wh = torch.rand(boxes_per_image, 2, generator=g) * 0.4 + 0.1  # 10-50 % of the side
        xy = torch.rand(boxes_per_image, 2, generator=g) * (1 - wh)
        boxes = torch.cat([xy, xy + wh], 1) * torch.tensor([w, h, w, h], dtype=torch.float32)
        masks = np.zeros((boxes_per_image, h, w), dtype=np.uint8)
        for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
            cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
            masks[i] = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
        s = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), scale_factor=(1.0, 1.0),
                                        flip=False, img_id=0, img_path="synthetic"))
        s.gt_instances = InstanceData(bboxes=boxes, labels=torch.randint(0, num_classes, (boxes_per_image,), generator=g),
                                      masks=BitmapMasks(masks, h, w))
        s.ignored_instances = InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


@contextlib.contextmanager
def mmcv_ops_in_fp32():
    """Run mmcv's NMS and RoIAlign in fp32 under bf16 autocast, casting RoIAlign's output back.

    mmcv 2.1.0's kernels have no bf16 path (NMS reads `data_ptr<float>`, RoIAlign dispatches float / double /
    half), and autocast does not know these ops, so Mask R-CNN under bf16 autocast fails in the RPN's NMS
    ("expected scalar type Float but found BFloat16"). This is the fp32 policy autocast applies to ops it
    cannot lower; everything else (backbone, FPN, heads' convs / linears) still runs in bf16.
    """
    from mmcv.ops import RoIAlign
    from mmcv.ops.nms import NMSop

    nms_forward, roi_forward = NMSop.forward, RoIAlign.forward

    def nms_fp32(ctx, bboxes, scores, *args):
        return nms_forward(ctx, bboxes.float(), scores.float(), *args)

    def roi_fp32(self, input, rois):
        with torch.autocast(device_type=input.device.type, enabled=False):
            return roi_forward(self, input.float(), rois.float()).to(input.dtype)

    NMSop.forward, RoIAlign.forward = staticmethod(nms_fp32), roi_fp32
    try:
        yield
    finally:
        NMSop.forward, RoIAlign.forward = staticmethod(nms_forward), roi_forward


def build(name: str, shape: tuple[int, int], keep_sync_bn: bool = False):
    """Model (train mode), optim wrapper and a batch factory for one config."""
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope

    cfg = Config.fromfile(CONFIGS[name])  # imports vssm.mm through the config's custom_imports
    init_default_scope(cfg.get("default_scope", "mmdet" if name == "maskrcnn" else "mmseg"))
    if name == "upernet":
        from mmseg.registry import MODELS

        cfg.model.data_preprocessor.size = tuple(shape)  # pad / crop target of SegDataPreProcessor
        num_classes = cfg.model.decode_head.num_classes
    else:
        from mmdet.registry import MODELS

        num_classes = cfg.model.roi_head.bbox_head.num_classes
    model = MODELS.build(cfg.model)
    if not keep_sync_bn:
        model = revert_sync_batchnorm(model)
    optim_cfg = cfg.optim_wrapper.copy()
    optim_cfg["type"] = "OptimWrapper"  # precision is handled here (autocast), not by AmpOptimWrapper
    optim_cfg.pop("loss_scale", None)
    optim_cfg.pop("dtype", None)
    return model, optim_cfg, num_classes, build_optim_wrapper


def _world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside torchrun."""
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def run_one(name: str, dtype: str, device: str, shape: tuple[int, int], batch: int, iters: int, warmup: int,
            seed: int = 0) -> dict:
    rank, world = _world()
    torch.manual_seed(seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    model, optim_cfg, num_classes, build_optim_wrapper = build(name, shape, keep_sync_bn=world > 1 and device.startswith("cuda"))
    model = model.to(device).train()
    forward = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        cuda_index = torch.device(device).index
        forward = DistributedDataParallel(model, device_ids=None if cuda_index is None else [cuda_index])
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # one paramwise line per parameter otherwise
    try:
        optim_wrapper = build_optim_wrapper(model, optim_cfg)
    finally:
        logger.setLevel(level)
    g = torch.Generator().manual_seed(seed + rank)  # each rank its own data, as a distributed sampler gives
    make = _seg_batch if name == "upernet" else _det_batch
    batches = [make(batch, shape[0], shape[1], num_classes, g) for _ in range(2)]  # alternate two batches
    cuda = device.startswith("cuda")
    autocast = torch.autocast(device_type="cuda" if cuda else "cpu", dtype=torch.bfloat16, enabled=dtype == "bf16")

    def step(data: dict) -> float:
        with autocast:
            data = model.data_preprocessor(data, True)
            losses = forward(**data, mode="loss")
        loss, _ = model.parse_losses(losses)
        optim_wrapper.update_params(loss)
        return loss.detach()

    times: list[float] = []
    loss = None
    fp32_ops = mmcv_ops_in_fp32() if dtype == "bf16" and name == "maskrcnn" else contextlib.nullcontext()
    with fp32_ops:
        for i in range(warmup + iters):
            if i == warmup and cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            loss = step(batches[i % 2])
            if cuda:
                torch.cuda.synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    out = dict(model=name, config=osp.relpath(CONFIGS[name], REPO), dtype=dtype, device=device,
               input_hw=list(shape), batch=batch * world, per_gpu_batch=batch, world_size=world, iters=iters,
               warmup=warmup, median_s=round(med, 5), mean_s=round(statistics.fmean(times), 5),
               min_s=round(min(times), 5), images_per_s=round(batch * world / med, 3),
               times_s=[round(t, 5) for t in times],
               last_loss=round(float(loss), 4),
               mmcv_ops_fp32=dtype == "bf16" and name == "maskrcnn",
               params=sum(p.numel() for p in model.parameters()))
    if cuda:
        out["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
        out["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 3)
    del forward, model, optim_wrapper
    if cuda:
        torch.cuda.empty_cache()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["upernet", "maskrcnn"], choices=sorted(CONFIGS))
    p.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--device", default="cuda")
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--size", type=int, default=None, help="square input side for both models (default: issue 8's)")
    p.add_argument("--batch", type=int, default=None, help="batch for both models (default: 4 UperNet, 2 Mask R-CNN)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU runs)")
    p.add_argument("--json", default=None, help="write results here (rewritten after every run)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # under torchrun: one GPU (or CPU process) per rank
        if args.device.startswith("cuda"):
            args.device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
            torch.cuda.set_device(args.device)
        dist.init_process_group(backend="nccl" if args.device.startswith("cuda") else "gloo")
    rank, world = _world()
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = False  # fixed shapes either way; keep the default algorithm choice
    meta = dict(date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), torch=torch.__version__,
                python=sys.version.split()[0], device_name=(torch.cuda.get_device_name() if args.device.startswith("cuda")
                                                            else "cpu"), world_size=world)
    try:
        import mmcv, mmdet, mmengine, mmseg  # noqa: E401

        meta.update(mmcv=mmcv.__version__, mmdet=mmdet.__version__, mmseg=mmseg.__version__,
                    mmengine=mmengine.__version__)
    except ImportError as e:  # reported, the run below then fails with the real error
        meta["import_error"] = str(e)
    results: list[dict] = []
    failed = 0
    for name in args.models:
        shape = (args.size, args.size) if args.size else DEFAULT_SHAPE[name]
        batch = args.batch or DEFAULT_BATCH[name]
        for dtype in args.dtypes:
            t0 = time.time()
            try:
                r = run_one(name, dtype, args.device, shape, batch, args.iters, args.warmup)
            except Exception as e:  # noqa: BLE001  (report and go on with the next run)
                import traceback

                traceback.print_exc()
                r = dict(model=name, dtype=dtype, device=args.device, input_hw=list(shape), batch=batch,
                         error=f"{type(e).__name__}: {e}")
                failed += 1
            r["wall_s"] = round(time.time() - t0, 1)
            results.append(r)
            mem = f", peak {r['peak_allocated_gib']} GiB alloc / {r['peak_reserved_gib']} GiB reserved" \
                if "peak_allocated_gib" in r else ""
            if rank != 0:
                continue
            if "error" in r:
                print(f"[{name} {dtype}] FAILED: {r['error']}", flush=True)
            else:
                print(f"[{name} {dtype}] {shape[0]}x{shape[1]} batch {batch} x {world} rank(s): median {r['median_s'] * 1000:.1f} ms/iter "
                      f"(mean {r['mean_s'] * 1000:.1f}, min {r['min_s'] * 1000:.1f}), {r['images_per_s']} img/s{mem}, "
                      f"loss {r['last_loss']}, {r['wall_s']} s wall", flush=True)
            if args.json:
                os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
                with open(args.json, "w") as f:
                    json.dump(dict(meta=meta, results=results), f, indent=1)
    if world > 1:
        dist.destroy_process_group()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
