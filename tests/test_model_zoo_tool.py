"""tools/model_zoo.py: CPU latencies reused from an earlier model_zoo.md or a saved JSON (no re-measuring), and the
official-code comparison with our ratios for every family given, not only VMamba."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("model_zoo_tool", ROOT / "tools" / "model_zoo.py")
zoo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(zoo)

EARLIER = f"""# Model zoo

{zoo.BEGIN}
## All image models (generated 2026-01-02)

CPU latency: Some CPU, 2 threads, torch 9.9.9, batch 1, PyTorch reference scan, median of 3. Params and GFLOPs are \
counted on the meta device.

| model | code | infer fp32 img/s |
|---|---|---|
| vim_tiny_patch16_224 | official | 100 |

| model | input | params | official params | GFLOPs | official GFLOPs | paper top-1 | CPU s/img | infer fp32 img/s |
|---|---|---|---|---|---|---|---|---|
| vim_tiny_patch16_224 | 224x224 | 7,148,008 | 7,148,008 = | 1.82 | - | 76.1 | 0.28 | 1695 |
| vmamba_tiny | 224x224 | 30,249,064 | 30,249,064 = | 4.88 | 4.9 | 82.6 | - | 2349 |
{zoo.END}

## Hand-written part
"""

GPU = {
    "vmamba_tiny": dict(infer_fp32_img_s=2000.0, infer_bf16_img_s=4000.0, train_fp32_img_s=800.0,
                        train_bf16_img_s=1400.0, train_bf16_peak_gb=10.5, gpu="H100", note="median of five runs"),
    "vim_tiny_patch16_224": dict(infer_fp32_img_s=1700.0, infer_bf16_img_s=2000.0, train_fp32_img_s=420.0,
                                 train_bf16_img_s=530.0, train_bf16_peak_gb=10.7, gpu="H100", note="same session"),
    "msvmamba_tiny": dict(infer_fp32_img_s=1500.0, infer_bf16_img_s=1800.0, train_fp32_img_s=350.0,
                          train_bf16_img_s=470.0, train_bf16_peak_gb=15.7, gpu="H100", note="same session"),
}
OFFICIAL = {
    "official_vmamba_tiny": dict(infer_fp32_img_s=1000.0, infer_bf16_img_s=2000.0, train_fp32_img_s=400.0,
                                 train_bf16_img_s=1000.0, train_bf16_peak_gb=14.0, scan_backend="oflex (x)",
                                 official_commit="2ed52ead062a", iters=10, warmup=5),
    "official_vim_tiny_patch16_224": dict(infer_fp32_img_s=3400.0, infer_bf16_img_s=4000.0, train_fp32_img_s=840.0,
                                          train_bf16_img_s=1060.0, train_bf16_peak_gb=5.0,
                                          scan_backend="mamba_ssm selective_scan_cuda (Vim repo)",
                                          official_repo="hustvl/Vim", official_commit="dd0358ad1e42", iters=20,
                                          warmup=5),
    "official_msvmamba_tiny": dict(infer_fp32_img_s=1000.0, infer_bf16_img_s=1200.0, train_fp32_img_s=500.0,
                                   train_bf16_img_s=500.0, train_bf16_peak_gb=20.0,
                                   scan_backend="selective_scan_cuda_core (MSVMamba)",
                                   official_repo="YuHengsss/MSVMamba", official_commit="c39401918e94"),
}


def test_cpu_latencies_read_back_from_generated_markdown(tmp_path):
    path = tmp_path / "model_zoo.md"
    path.write_text(EARLIER)
    latencies, description = zoo.load_cpu(path)
    assert latencies == {"vim_tiny_patch16_224": 0.28, "vmamba_tiny": None}  # the comparison table is skipped
    assert description.startswith("Some CPU, 2 threads, torch 9.9.9, batch 1, PyTorch reference scan, median of 3.")
    assert "Reused from model_zoo.md generated 2026-01-02" in description


def test_cpu_json_round_trip_and_bad_input(tmp_path):
    path = tmp_path / "cpu.json"
    path.write_text(json.dumps({"description": "Some CPU.", "cpu_s": {"vmamba_tiny": 0.23}}))
    assert zoo.load_cpu(path) == ({"vmamba_tiny": 0.23}, "Some CPU.")
    other = tmp_path / "other.md"
    other.write_text("# no generated block\n")
    with pytest.raises(SystemExit, match="no generated block"):
        zoo.load_cpu(other)


def test_official_comparison_covers_every_family(monkeypatch):
    monkeypatch.setattr(zoo, "OFFICIAL_GPU", {k.removeprefix("official_"): v for k, v in OFFICIAL.items()})
    text = "\n".join(zoo.official_lines(dict(models=GPU, device="H100", date="d", torch="t")))
    for name, ratio in (("vmamba_tiny", "2000 (2.00x)"), ("vim_tiny_patch16_224", "1700 (0.50x)"),
                        ("msvmamba_tiny", "1500 (1.50x)")):
        assert f"| {name} | ours | {ratio} |" in text
    assert "| vim_tiny_patch16_224 | official hustvl/Vim dd0358ad (mamba_ssm selective_scan_cuda, 5 warm-up + 20 " \
           "iterations) | 3400 | 4000 | 840 | 1060 | 5.0 |" in text
    assert "10.7 (2.14x)" in text  # memory ratio
    assert "official 2ed52ead (oflex, 5 warm-up + 10 iterations)" in text  # no repo name in the JSON
    assert "vim_tiny_patch16_224, msvmamba_tiny: same session" in text  # one note, named together


def test_main_reuses_cpu_and_keeps_hand_written_part(tmp_path, monkeypatch):
    out, gpu_json, off_json = tmp_path / "model_zoo.md", tmp_path / "gpu.json", tmp_path / "official.json"
    out.write_text(EARLIER)
    gpu_json.write_text(json.dumps(GPU))
    off_json.write_text(json.dumps({"official_vim_tiny_patch16_224": OFFICIAL["official_vim_tiny_patch16_224"]}))
    monkeypatch.setattr(zoo, "OFFICIAL_GPU", {})
    monkeypatch.setattr(zoo, "measure_latency", lambda *a, **k: pytest.fail("CPU latency measured"))
    monkeypatch.setattr(sys, "argv", [
        "model_zoo.py", "--models", "vim_tiny_patch16_224", "--cpu-from", str(out), "--save-cpu",
        str(tmp_path / "cpu.json"), "--gpu-json", str(gpu_json), "--official-json", str(off_json),
        "--gpu-date", "2026-11-23", "--gpu-torch", "2.11", "--out", str(out), "--chart", str(tmp_path / "c.png")])
    zoo.main()
    text = out.read_text()
    assert "| vim_tiny_patch16_224 | 224x224 | 7,148,008 | 7,148,008 = | 1.82 | - | 76.1 | 0.28 | 1700 |" in text
    assert "Reused from model_zoo.md generated 2026-01-02, not re-measured" in text
    assert "| vim_tiny_patch16_224 | ours | 1700 (0.50x) |" in text
    assert text.endswith("## Hand-written part\n") and (tmp_path / "c.png").stat().st_size > 0
    saved = json.loads((tmp_path / "cpu.json").read_text())
    assert saved["cpu_s"] == {"vim_tiny_patch16_224": 0.28}
    # reusing the reused file keeps where the numbers were measured instead of stacking "Reused from"
    latencies, description = zoo.load_cpu(out)
    assert description.count("Reused from") == 1 and "generated 2026-01-02" in description
