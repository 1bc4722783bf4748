# UperNet on ADE20K 512x512 with a Vim backbone, the official Vim segmentation recipe (mmseg 0.x, rewritten
# for mmseg 1.x): the 4-level pyramid from blocks 5/11/17/23, 60k iterations, AdamW lr 1e-4, weight decay 0.05,
# layer-wise lr decay 0.92, linear warm-up over 1500 iterations then poly decay (power 1) to 0, mixed
# precision, 8 images per GPU on 4 GPUs, sliding-window test (512 crops, stride 341). The variants apply the
# overrides of the official fine-tuning scripts.
_base_ = [
    'mmseg::_base_/models/upernet_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['vssm.mm'], allow_failed_imports=False)

crop_size = (512, 512)
max_iters = 60000
model = dict(
    pretrained=None,  # the ResNet base names ImageNet weights for its backbone
    data_preprocessor=dict(size=crop_size),
    backbone=dict(_delete_=True, type='Vim', arch='tiny_patch16_224', img_size=512, out_indices=(0, 1, 2, 3),
                  take_from='mixer', drop_path_rate=0.1),
    decode_head=dict(in_channels=[192, 192, 192, 192], channels=192, num_classes=150),
    auxiliary_head=dict(in_channels=192, num_classes=150),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))
find_unused_parameters = True

optim_wrapper = dict(
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.92))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=max_iters, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=1000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000, max_keep_ckpts=4,
                                     save_best='mIoU'))
train_dataloader = dict(batch_size=8)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
