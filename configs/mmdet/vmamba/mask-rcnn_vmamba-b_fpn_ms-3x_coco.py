_base_ = ['../_base_/mask-rcnn_vmamba_fpn.py', '../_base_/schedule_ms-3x_adamw.py']
model = dict(backbone=dict(arch='base', drop_path_rate=0.6), neck=dict(in_channels=[128, 256, 512, 1024]))
train_dataloader = dict(dataset=dict(pipeline={{_base_.ms_crop_train_pipeline}}))
