_base_ = ['../_base_/mask-rcnn_msvmamba_fpn.py', '../_base_/schedule_1x_adamw.py']
model = dict(backbone=dict(arch='tiny'), neck=dict(in_channels=[96, 192, 384, 768]))
