"""Write the generated smoke data sets: python tools/make_smoke_data.py {coco,ade} OUT_DIR [--n-train N]."""

import argparse

from vssm.mm.smoke_data import make_ade_segmentation, make_coco_instances


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("kind", choices=["coco", "ade"])
    p.add_argument("out_dir")
    p.add_argument("--n-train", type=int, default=64)
    p.add_argument("--n-val", type=int, default=16)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    make = make_coco_instances if a.kind == "coco" else make_ade_segmentation
    print(make(a.out_dir, n_train=a.n_train, n_val=a.n_val, size=a.size, seed=a.seed))


if __name__ == "__main__":
    main()
