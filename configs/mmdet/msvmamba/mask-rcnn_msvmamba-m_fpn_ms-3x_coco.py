_base_ = ['../_base_/mask-rcnn_msvmamba_fpn.py', '../_base_/schedule_ms-3x_adamw.py']
model = dict(backbone=dict(arch='micro'), neck=dict(in_channels=[64, 128, 256, 512]))
train_dataloader = dict(dataset=dict(pipeline={{_base_.ms_crop_train_pipeline}}))
