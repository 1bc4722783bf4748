"""Classification training on timm's components: ImageFolder data, recipes, torchrun/DDP, checkpoints, logs.

    from vssm.train import fit, options
    result = fit(options(model="vmamba_tiny", data_dir="data/imagenet", config="configs/classification/..."))

or from the shell: ``tools/train_classification.py -c CONFIG --data-dir DIR`` (under ``torchrun`` for several
processes).
"""

from .config import build_parser, load_config_file, options, parse_args, scaled_learning_rates
from .logs import plot_curves
from .trainer import FitResult, check_model_name, fit

__all__ = ["FitResult", "build_parser", "check_model_name", "fit", "load_config_file", "options", "parse_args",
           "plot_curves", "scaled_learning_rates"]
