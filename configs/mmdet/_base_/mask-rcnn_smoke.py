# Slim Mask R-CNN on the generated shapes set (vssm.mm.smoke_data), for CPU tests. Data folder from
# $VSSM_SMOKE_COCO (write it with: python tools/make_smoke_data.py coco DIR). Backbone set by the variants.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['vssm.mm'], allow_failed_imports=False)

data_root = '{{$VSSM_SMOKE_COCO:data/smoke_coco/}}/'
classes = ('rectangle', 'ellipse', 'triangle')
max_iters = 150
width = 64  # FPN / RoI feature channels (the real recipe uses 256)

model = dict(
    backbone=dict(_delete_=True),  # the variants fill it in
    neck=dict(out_channels=width),
    rpn_head=dict(in_channels=width, feat_channels=width),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=width),
        bbox_head=dict(in_channels=width, fc_out_channels=256, num_classes=len(classes)),
        mask_roi_extractor=dict(out_channels=width),
        mask_head=dict(in_channels=width, conv_out_channels=width, num_classes=len(classes))),
    train_cfg=dict(
        rpn=dict(sampler=dict(num=128)),
        rpn_proposal=dict(nms_pre=500, max_per_img=300),
        rcnn=dict(sampler=dict(num=128), mask_size=28)),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=300),
        rcnn=dict(max_per_img=20)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(256, 256), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(256, 256), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(data_root=data_root, metainfo=dict(classes=classes),
                 ann_file='annotations/instances_train.json', data_prefix=dict(img='train/'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=dict(classes=classes),
                 ann_file='annotations/instances_val.json', data_prefix=dict(img='val/'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json', metric=['bbox', 'segm'])
test_evaluator = val_evaluator

train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# The recipe of the full configs (AdamW, weight decay 0.05, none on norms; ../_base_/schedule_1x_adamw.py)
# scaled to a from-scratch run of ~100 iterations at batch 2: lr 4e-4 instead of 1e-4 (the official 1e-4
# assumes pretrained backbones and 1000 warm-up iterations), a 20-iteration linear warm-up, gradients clipped
# at norm 10, no lr decay. Measured on the shapes set (notes/mm.md, 100 iterations, seed 0): smoke VMamba bbox
# mAP 0.58 (0.49 with decay on norms too; backbone frozen at random init, heads trained: 0.31), timm ResNet-18
# 0.40 (its BN parameters are not named 'norm', so its recipe is the same either way).
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=4e-4, weight_decay=0.05),
                     paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}),
                     clip_grad=dict(max_norm=10.0))
param_scheduler = [dict(type='LinearLR', start_factor=0.05, by_epoch=False, begin=0, end=20)]
default_hooks = dict(
    logger=dict(interval=25),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
