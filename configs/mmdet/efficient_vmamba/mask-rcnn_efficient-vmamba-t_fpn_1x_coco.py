# The published tiny config says depths 2-2-9-2 (the classification tiny is 2-2-4-2) and keeps FPN in_channels
# at 96-768 for a 48-384 backbone; this one is consistent: the classification tiny and 48-384 FPN inputs.
_base_ = ['../_base_/mask-rcnn_efficient-vmamba_fpn.py', '../_base_/schedule_1x_adamw.py']
model = dict(backbone=dict(arch='tiny'), neck=dict(in_channels=[48, 96, 192, 384]))
optim_wrapper = dict(type='AmpOptimWrapper')
