# Slim UperNet on the generated ADE-layout shapes set (vssm.mm.smoke_data), for CPU tests. Data folder from
# $VSSM_SMOKE_ADE (write it with: python tools/make_smoke_data.py ade DIR). Plain BN: SyncBN needs CUDA.
_base_ = [
    'mmseg::_base_/models/upernet_r50.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['vssm.mm'], allow_failed_imports=False)

data_root = '{{$VSSM_SMOKE_ADE:data/smoke_ade/}}/'
classes = ('background', 'rectangle', 'ellipse', 'triangle')
palette = [[0, 0, 0], [220, 20, 60], [0, 128, 255], [50, 205, 50]]
crop_size = (256, 256)
max_iters = 150
norm_cfg = dict(type='BN', requires_grad=True)

model = dict(
    pretrained=None,  # the ResNet base names ImageNet weights for its backbone
    data_preprocessor=dict(size=crop_size),
    backbone=dict(_delete_=True),  # the variants fill it in
    decode_head=dict(channels=64, num_classes=len(classes), norm_cfg=norm_cfg),
    auxiliary_head=dict(channels=32, num_classes=len(classes), norm_cfg=norm_cfg))

dataset = dict(type='BaseSegDataset', data_root=data_root, metainfo=dict(classes=classes, palette=palette),
               img_suffix='.jpg', seg_map_suffix='.png', reduce_zero_label=False)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(**dataset, data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(**dataset, data_prefix=dict(img_path='images/validation',
                                             seg_map_path='annotations/validation'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=6e-4, weight_decay=0.01))
param_scheduler = [dict(type='LinearLR', start_factor=0.05, by_epoch=False, begin=0, end=20)]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=25, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
