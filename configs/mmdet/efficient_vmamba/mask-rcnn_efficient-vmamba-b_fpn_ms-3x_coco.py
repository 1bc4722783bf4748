_base_ = ['../_base_/mask-rcnn_efficient-vmamba_fpn.py', '../_base_/schedule_ms-3x_adamw.py']
model = dict(backbone=dict(arch='base'))
train_dataloader = dict(dataset=dict(pipeline={{_base_.ms_crop_train_pipeline}}))
optim_wrapper = dict(type='AmpOptimWrapper')
