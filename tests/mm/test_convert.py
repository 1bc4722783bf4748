"""tools/convert_mm_checkpoint.py: an official-named VMamba detector checkpoint becomes one our config loads."""

import re

import torch

from mm_helpers import run_tool
from smoke import DET_SMOKE

# our VMamba (v2) names -> the official detection backbone's names
_TO_OFFICIAL = (
    (r"^stem\.conv1\.", "patch_embed.0."), (r"^stem\.norm1\.", "patch_embed.2."),
    (r"^stem\.conv2\.", "patch_embed.5."), (r"^stem\.norm2\.", "patch_embed.7."),
    (r"^stages\.(\d+)\.blocks\.(\d+)\.norm1\.", r"layers.\1.blocks.\2.norm."),
    (r"^stages\.(\d+)\.blocks\.(\d+)\.(norm2|mlp)\.", r"layers.\1.blocks.\2.\3."),
    (r"^stages\.(\d+)\.blocks\.(\d+)\.mixer\.conv\.", r"layers.\1.blocks.\2.op.conv2d."),
    (r"^stages\.(\d+)\.blocks\.(\d+)\.mixer\.(in_proj|out_proj|out_norm)\.", r"layers.\1.blocks.\2.op.\3."),
    (r"^stages\.(\d+)\.blocks\.(\d+)\.mixer\.ssm\.x_proj_weight$", r"layers.\1.blocks.\2.op.x_proj_weight"),
    (r"^stages\.(\d+)\.blocks\.(\d+)\.mixer\.ssm\.dt_proj_weight$", r"layers.\1.blocks.\2.op.dt_projs_weight"),
    (r"^stages\.(\d+)\.blocks\.(\d+)\.mixer\.ssm\.dt_proj_bias$", r"layers.\1.blocks.\2.op.dt_projs_bias"),
    (r"^stages\.(\d+)\.blocks\.(\d+)\.mixer\.ssm\.A_log$", r"layers.\1.blocks.\2.op.A_logs"),
    (r"^stages\.(\d+)\.blocks\.(\d+)\.mixer\.ssm\.D$", r"layers.\1.blocks.\2.op.Ds"),
)


def _official_name(key):
    m = re.match(r"^stages\.(\d+)\.downsample\.(conv|norm)\.(.+)$", key)
    if m:  # ours: before stage i+1; official: after stage i, Sequential(permute, conv, permute, norm)
        return f"layers.{int(m.group(1)) - 1}.downsample.{1 if m.group(2) == 'conv' else 3}.{m.group(3)}"
    for pattern, repl in _TO_OFFICIAL:
        new = re.sub(pattern, repl, key)
        if new != key:
            return new
    raise KeyError(key)


def _official_layout(key, value):
    if key.endswith(("A_logs", "Ds")):  # official: flattened over the routes
        return value.reshape(-1, *value.shape[2:])
    return value


def test_official_detector_checkpoint_converts_and_loads(tmp_path):
    from vssm.mm.convert import build_model_from_config

    model = build_model_from_config(str(DET_SMOKE))
    ours = model.state_dict()
    official = {}
    for k, v in ours.items():
        if k.startswith("backbone.body."):
            name = _official_name(k[len("backbone.body."):])
            official["backbone." + name] = _official_layout(name, v)
        else:
            official[k] = v  # out-norms, neck and heads keep their names
    src, dst = tmp_path / "official.pth", tmp_path / "ours.pth"
    torch.save({"state_dict": official, "meta": {}}, src)
    out = run_tool("tools/convert_mm_checkpoint.py", str(src), str(dst), "--config", str(DET_SMOKE))
    assert "renamed into backbone.body" in out.stdout and "loads strictly" in out.stdout
    converted = torch.load(dst, weights_only=True)["state_dict"]
    assert converted.keys() == ours.keys()
    for k, v in ours.items():
        assert torch.equal(converted[k], v), k
