_base_ = ['../_base_/mask-rcnn_msvmamba_fpn.py', '../_base_/schedule_1x_adamw.py']
model = dict(backbone=dict(arch='nano'), neck=dict(in_channels=[48, 96, 192, 384]))
