"""Helpers of the trainer tests: a small generated ImageFolder and options for few-second runs."""

from vssm.train import options
from vssm.train.synthetic import write_synthetic_image_folder


def make_image_folder(root, classes=3, per_class=8, val_per_class=2, size=32, seed=0):
    return write_synthetic_image_folder(str(root), classes, per_class, val_per_class, size, seed)


# A small timm model without BatchNorm (so 1 process x batch 2B and 2 processes x batch B compute the same
# loss) that trains in well under a second per epoch at 32x32 on one CPU thread.
TINY_MODEL = "test_convnext"

FAST = dict(model=TINY_MODEL, input_size=32, crop_pct=1.0, workers=0, batch_size=4, epochs=2, warmup_epochs=0,
            aa="", color_jitter=0.0, reprob=0.0, mixup=0.0, cutmix=0.0, drop_path=0.0, log_interval=1,
            lr=1e-3, min_lr=0.0, model_ema_warmup=True)


def fast_options(data_dir, output, **overrides):
    return options(**{**FAST, "data_dir": str(data_dir), "output": str(output), **overrides})


def fast_argv(data_dir, output, **overrides):
    """The same settings as command-line arguments."""
    argv = []
    for k, v in {**FAST, "data_dir": str(data_dir), "output": str(output), **overrides}.items():
        flag = "--" + k.replace("_", "-")
        if v is None:
            continue  # the parser default
        if v is True:
            argv.append(flag)
        elif isinstance(v, (tuple, list)):
            argv += [flag, *map(str, v)]
        elif v is False:
            argv.append("--no-" + k.replace("_", "-"))
        else:
            argv += [flag, str(v)]
    return argv
