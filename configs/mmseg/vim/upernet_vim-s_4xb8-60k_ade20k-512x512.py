# The official small fine-tuning script taps the residual stream (use_residual_as_feature) and decays 0.95.
_base_ = ['../_base_/upernet_vim.py']
model = dict(backbone=dict(arch='small_patch16_224', take_from='stream'),
             decode_head=dict(in_channels=[384, 384, 384, 384], channels=384), auxiliary_head=dict(in_channels=384))
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.95))
