"""Convert an official VMamba-family or Vim detection / segmentation checkpoint into one our configs load.

    python tools/convert_mm_checkpoint.py OFFICIAL.pth OUT.pth --config configs/mmdet/vmamba/<config>.py

The config names the architecture (it must match the checkpoint). Prints what changed. ``python
tools/convert.py mm --config ... SRC DST`` does the same conversion with a per-key report (the one converter
for every family).
"""

import argparse

from vssm.mm.convert import convert_checkpoint


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--config", required=True, help="our mmdet / mmseg config the checkpoint is for")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="allow pickled Python objects in the source file (only for files you trust)")
    a = p.parse_args(argv)
    r = convert_checkpoint(a.src, a.dst, a.config, trust_checkpoint=a.trust_checkpoint)
    for official, ours in r["pyramid"].items():
        print(f"mapped   {official} -> {ours}")
    for key, reason in r["dropped"].items():
        print(f"dropped  {key} (as the family filter names it)  ({reason})")
    print(f"backbone: {r['renamed']} tensors renamed into backbone.body.* (e.g. {r['example']}), "
          f"{len(r['pyramid'])} 4-scale adapter tensors renamed, {r['out_norms_kept']} out-norm tensors kept, "
          f"{len(r['dropped'])} tensors dropped; {r['unchanged']} neck/head tensors unchanged")
    print(f"wrote {a.dst}; it loads strictly into the model of {a.config}")


if __name__ == "__main__":
    main()
