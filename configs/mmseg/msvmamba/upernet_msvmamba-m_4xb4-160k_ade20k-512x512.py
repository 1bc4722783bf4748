_base_ = ['../_base_/upernet_msvmamba.py']
model = dict(backbone=dict(arch='micro', drop_path_rate=0.1),
             decode_head=dict(in_channels=[64, 128, 256, 512]), auxiliary_head=dict(in_channels=256))
