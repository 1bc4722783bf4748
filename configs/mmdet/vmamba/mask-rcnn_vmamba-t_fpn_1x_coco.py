_base_ = ['../_base_/mask-rcnn_vmamba_fpn.py', '../_base_/schedule_1x_adamw.py']
model = dict(backbone=dict(arch='tiny', drop_path_rate=0.2))
