# The published small config builds dims 96 with depths 2-2-4-2; the released small model is dims 64
# (efficient_vmamba_small), so the FPN takes 64-512.
_base_ = ['../_base_/mask-rcnn_efficient-vmamba_fpn.py', '../_base_/schedule_1x_adamw.py']
model = dict(backbone=dict(arch='small'), neck=dict(in_channels=[64, 128, 256, 512]))
optim_wrapper = dict(type='AmpOptimWrapper')
