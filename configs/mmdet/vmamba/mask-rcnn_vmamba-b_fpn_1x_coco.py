_base_ = ['../_base_/mask-rcnn_vmamba_fpn.py', '../_base_/schedule_1x_adamw.py']
model = dict(backbone=dict(arch='base', drop_path_rate=0.6), neck=dict(in_channels=[128, 256, 512, 1024]))
