# UperNet on ADE20K 512x512 with an MSVMamba backbone: the VMamba recipe (same optimizer, schedule, batch).
_base_ = ['./upernet_vmamba.py']
model = dict(
    backbone=dict(_delete_=True, type='MSVMamba', arch='tiny', out_indices=(0, 1, 2, 3), drop_path_rate=0.2))
