# Mask R-CNN 1x as the official VMamba / MSVMamba / EfficientVMamba runs use it: 12 epochs, AdamW lr 1e-4,
# weight decay 0.05 (none on norms), linear warm-up over 1000 iterations, lr x0.1 at epochs 8 and 11.
# Batch 16 in total (2 per GPU on 8 GPUs, from mmdet's coco_instance base).
_base_ = ['mmdet::_base_/schedules/schedule_1x.py']

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
auto_scale_lr = dict(enable=False, base_batch_size=16)
