_base_ = ['../_base_/mask-rcnn_msvmamba_fpn.py', '../_base_/schedule_ms-3x_adamw.py']
model = dict(backbone=dict(arch='tiny'), neck=dict(in_channels=[96, 192, 384, 768]))
train_dataloader = dict(dataset=dict(pipeline={{_base_.ms_crop_train_pipeline}}))
