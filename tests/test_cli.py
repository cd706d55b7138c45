"""The ``cnnviewer`` command end to end, in a subprocess, as a user runs it."""

from __future__ import annotations

import csv
import io
import json

import pytest

from cnnviewer.cli import UsageError, _ways_from_args, build_parser
from cnnviewer.core.errors import CnnviewerError
from cnnviewer.core.ways import AUTO, BF16, FP32, ONNXRUNTIME
from tests.helpers import PHOTOS_13, cli, run_inprocess

GOOD = [str(PHOTOS_13 / "polar_bear.jpg"), str(PHOTOS_13 / "banana_0.jpg")]


def test_classify_table():
    from cnnviewer.core.engines import onnxruntime_available

    way = "onnxruntime" if onnxruntime_available() else "fp32"  # --run-as end to end where there is a second way
    proc = cli("classify", *GOOD, "--model", "efficientnet_lite0", "--top", "3", "--run-as", way)
    assert proc.returncode == 0, proc.stderr
    header = proc.stdout.splitlines()[0]
    assert header.startswith("Model: efficientnet_lite0 (") and header.endswith(f", cpu, {way})")
    assert "ice bear" in proc.stdout and "banana" in proc.stdout
    lines = proc.stdout.splitlines()
    bear = lines.index(GOOD[0])
    first = lines[bear + 2].split()
    assert first[:3] == ["1", "296", "ice"] and first[-1] == "%"
    assert "Traceback" not in proc.stderr


def test_classify_json_with_a_bad_file_beside_good_ones(tmp_path):
    bad = tmp_path / "holiday.jpg"
    bad.write_text("this is not a photo")
    proc = cli("classify", GOOD[0], str(bad), GOOD[1], "--format", "json", "-m", "efficientnet_lite0")
    assert proc.returncode == 1
    rows = json.loads(proc.stdout)
    assert [r["file"] for r in rows] == [GOOD[0], str(bad), GOOD[1]]
    assert set(rows[0]) == {"file", "model", "predictions", "error", "way"}
    assert rows[0]["model"] == "efficientnet_lite0" and rows[0]["error"] is None
    top = rows[0]["predictions"][0]
    assert top == {"rank": 1, "index": 296, "name": "ice bear", "probability": top["probability"]}
    assert 0.5 < top["probability"] <= 1
    assert len(rows[0]["predictions"]) == 5
    assert rows[1]["predictions"] == [] and "not an image" in rows[1]["error"]
    assert rows[2]["predictions"][0]["index"] == 954
    assert f"{bad}: not an image" in proc.stderr
    assert "1 of 3" in proc.stderr and "Traceback" not in proc.stderr


def test_classify_csv():
    proc = cli("classify", GOOD[0], "--format", "csv", "-m", "efficientnet_lite1", "-k", "2")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert len(rows) == 2
    assert rows[0]["model"] == "efficientnet_lite1" and rows[0]["index"] == "296" and rows[0]["rank"] == "1"
    assert float(rows[0]["probability"]) > float(rows[1]["probability"])


@pytest.mark.parametrize(
    "args",
    [["classify"], ["classify", GOOD[0], "--top", "0"], ["classify", GOOD[0], "--format", "xml"],
     ["classify", GOOD[0], "--model", "no_such_net"], ["frobnicate", "--x"],
     ["classify", GOOD[0], "--run-as", "fp16"], ["explain", GOOD[0], "--run-as", "bf16;rm"]],
    ids=["no-images", "top-0", "bad-format", "unknown-model", "unknown-option", "unknown-way", "unknown-way-explain"],
)
def test_bad_usage_exits_2(args):
    proc = cli(*args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr.strip() and "Traceback" not in proc.stderr


def test_missing_weights_is_one_sentence_not_random_weights():
    proc = cli("classify", GOOD[0], "--model", "resnet50")
    assert proc.returncode == 1
    assert "resnet50-11ad3fa6.pth" in proc.stderr and "cnnviewer weights download resnet50" in proc.stderr
    assert "import FILE --model resnet50" in proc.stderr and "File >" not in proc.stderr  # the CLI's hint only
    assert proc.stdout == "" and "Traceback" not in proc.stderr


def test_last_model_used_becomes_the_default():
    assert cli("classify", GOOD[0], "-m", "efficientnet_lite2", "-f", "json").returncode == 0
    proc = cli("classify", GOOD[0], "-f", "json")
    assert json.loads(proc.stdout)[0]["model"] == "efficientnet_lite2"


def test_default_model_is_embedded_lite0_on_a_fresh_machine():
    proc = cli("classify", GOOD[0], "-f", "json")
    assert json.loads(proc.stdout)[0]["model"] == "efficientnet_lite0"


def test_models_lists_ready_and_all():
    proc = cli("models")
    assert proc.returncode == 0
    assert "efficientnet_lite0" in proc.stdout and "embedded" in proc.stdout
    assert "resnet50" not in proc.stdout.split("\n\n")[0]
    everything = json.loads(cli("models", "--all", "--format", "json").stdout)
    by_name = {row["name"]: row for row in everything}
    assert len(by_name) >= 83
    assert by_name["resnet50"]["availability"] == "not present"
    assert by_name["inception_v3"]["input_size"] == 299
    assert by_name["efficientnet_lite0"]["availability"] == "embedded"


def test_cuda_asked_for_without_cuda_is_a_sentence():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the refusal cannot be seen here")
    from cnnviewer.core.models import resolve_device

    proc = cli("classify", GOOD[0], "--device", "cuda")
    assert proc.returncode == 1 and "CUDA" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.rstrip().endswith("choose the CPU. Use --device cpu.")  # the core's sentence, the CLI's hint
    with pytest.raises(CnnviewerError) as caught:
        resolve_device("cuda")
    assert "--" not in str(caught.value) and "Pick cpu under Device." in caught.value.for_window()


def test_an_unknown_device_is_a_sentence():
    proc = cli("classify", GOOD[0], "--device", "tpu")
    assert proc.returncode == 1 and "Unknown device 'tpu'" in proc.stderr and "internal error" not in proc.stderr


def _ways(*argv: str):
    return _ways_from_args(build_parser().parse_args(list(argv)))


def test_run_as_names_the_way_and_the_older_options_still_work():
    assert _ways("classify", "x.jpg") == (AUTO,) and _ways("classify", "x.jpg", "--run-as", "Auto") == (AUTO,)
    assert _ways("explain", "x.jpg", "--out", "o.png") == (FP32,) and _ways("bench", "folder") == (FP32,)
    assert _ways("classify", "x.jpg", "--run-as", "onnxruntime") == (ONNXRUNTIME,)
    assert _ways("explain", "x.jpg", "--out", "o.png", "--run-as", "BF16") == (BF16,)
    assert _ways("classify", "x.jpg", "--precision", "bf16") == (BF16,)  # hidden, read as --run-as bf16
    assert _ways("classify", "x.jpg", "--engine", "onnxruntime") == (ONNXRUNTIME,)
    assert _ways("bench", "folder", "--run-as", "fp32,onnxruntime,fp32") == (FP32, ONNXRUNTIME)
    assert _ways("bench", "folder", "--precision", "bf16") == (BF16,)
    with pytest.raises(CnnviewerError, match="Unknown way of running 'fp16'"):
        _ways("classify", "x.jpg", "--run-as", "fp16")
    with pytest.raises(CnnviewerError, match="Unknown way of running 'fp32,bf16'"):  # one way where one is run
        _ways("explain", "x.jpg", "--out", "o.png", "--run-as", "fp32,bf16")


def test_run_as_with_the_older_options_is_refused_with_one_sentence():
    with pytest.raises(UsageError, match="--precision cannot be combined with --run-as, which replaces it"):
        _ways("classify", "x.jpg", "--precision", "bf16", "--run-as", "bf16")
    with pytest.raises(UsageError, match="--engine and --precision cannot be combined with --run-as"):
        _ways("bench", "folder", "--engine", "torch", "--run-as", "fp32", "--precision", "fp32")
    with pytest.raises(UsageError, match="names no way of running"):
        _ways("bench", "folder", "--run-as", ",")


def test_help_offers_run_as_and_hides_the_older_options(capsys):
    for command in ("classify", "explain", "bench"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        text = capsys.readouterr().out
        assert "--run-as" in text and "--precision" not in text and "--engine" not in text, command


def test_the_log_file_is_rotated_at_its_size_limit(tmp_path):
    """A log that reached LOG_MAX_BYTES is kept whole as cnnviewer.log.1, the one before as .2, and the
    next record starts a new file: months of use never fill a disk."""
    from cnnviewer.cli import LOG_BACKUPS, LOG_MAX_BYTES

    log = tmp_path / "cnnviewer.log"
    older, old = b"an older line\n" * 10, b"an old line\n" * (LOG_MAX_BYTES // 12 + 1)
    (tmp_path / "cnnviewer.log.1").write_bytes(older)
    log.write_bytes(old)
    code, _, err = run_inprocess("classify", GOOD[0], "--device", "tpu", env_extra={"CNNVIEWER_LOG_FILE": str(log)})
    assert code == 1 and "Unknown device 'tpu'" in err
    assert (tmp_path / "cnnviewer.log.1").read_bytes() == old and (tmp_path / "cnnviewer.log.2").read_bytes() == older
    assert "Unknown device 'tpu'" in log.read_text(encoding="utf-8") and log.stat().st_size < 64 * 1024
    assert LOG_BACKUPS == 2 and not (tmp_path / "cnnviewer.log.3").exists()
