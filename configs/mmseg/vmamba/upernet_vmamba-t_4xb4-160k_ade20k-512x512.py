_base_ = ['../_base_/upernet_vmamba.py']
model = dict(backbone=dict(arch='tiny', drop_path_rate=0.2))
