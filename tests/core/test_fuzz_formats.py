"""Fuzzing the loader with mutated files of every format Pillow opens: only its own error may escape."""

from __future__ import annotations

import os
import random
import time

import pytest

from cnnviewer.core.errors import ImageLoadError
from cnnviewer.core.images import ImageInfo, image_info, load_image
from tests.badfiles import format_samples

# CNNVIEWER_FUZZ_START moves the window of seeds to explore new cases; a failure names its seed.
START = int(os.environ.get("CNNVIEWER_FUZZ_START", "0"))
CASES = int(os.environ.get("CNNVIEWER_FUZZ_CASES", "300"))
SAMPLES = format_samples()
NAMES = sorted(SAMPLES)
# Values that make parsers take odd paths: zero, sign bits, the largest sizes.
EXTREMES = (b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00", b"\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x00\x00\x00",
            b"\xff\xff\xff\xff", b"\x80\x00\x00\x00", b"\x00\x01\x00\x00")


def _position(rng: random.Random, size: int) -> int:
    # Many changes land in the first 64 bytes, where headers say how to read the rest, but mostly
    # past the first 4, which name the format: a file that is no longer one tests little.
    chance = rng.random()
    if chance < 0.1:
        return rng.randrange(min(size, 4))
    if chance < 0.45:
        return rng.randrange(min(size, 4), min(size, 64)) if size > 4 else 0
    return rng.randrange(size)


def mutate(sample: bytes, rng: random.Random) -> bytes:
    """One to four flips, extreme values, cuts, insertions, deletions or repeats of ``sample``."""
    data = bytearray(sample)
    for _ in range(rng.randint(1, 4)):
        if not data:
            break
        kind = rng.random()
        at = _position(rng, len(data))
        if kind < 0.35:
            for _ in range(rng.randint(1, 8)):
                data[_position(rng, len(data))] ^= 1 << rng.randrange(8)
        elif kind < 0.55:
            value = rng.choice(EXTREMES)
            data[at: at + len(value)] = value
        elif kind < 0.7:
            del data[rng.randrange(len(data)):]
        elif kind < 0.8:
            data[at:at] = rng.randbytes(rng.randint(1, 64))
        elif kind < 0.9:
            del data[at: at + rng.randint(1, 64)]
        else:
            end = min(len(data), at + rng.randint(1, 256))
            data[at:at] = data[at:end] * rng.randint(1, 16)
    return bytes(data)


def _escapes(folder, seed: int) -> str | None:
    """What escaped the loader for this seed, or None when it raised ImageLoadError or gave RGB."""
    name = NAMES[seed % len(NAMES)]
    suffix, sample = SAMPLES[name]
    path = folder / f"fuzz-{seed}.{suffix}"
    path.write_bytes(mutate(sample, random.Random(seed)))
    try:
        for read in (image_info, lambda p: load_image(p, min_side=seed % 3 * 8 or None)):
            try:
                result = read(path)
            except ImageLoadError as exc:
                assert exc.path == str(path) and exc.reason and "\n" not in exc.reason, exc
            else:
                assert isinstance(result, ImageInfo) or result.mode == "RGB", result
        return None
    except Exception as exc:  # noqa: BLE001 - the point is to catch what the loader let through
        return f"{name} seed {seed}: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    finally:
        path.unlink()


def _fuzz(folder, seeds: range) -> None:
    started = time.process_time()
    escaped = [problem for seed in seeds if (problem := _escapes(folder, seed))]
    assert not escaped, (f"{len(escaped)} of {len(seeds)} cases escaped the loader "
                         f"(rerun one with CNNVIEWER_FUZZ_START=SEED CNNVIEWER_FUZZ_CASES=1):\n" + "\n".join(escaped[:30]))
    print(f"{len(seeds)} cases over {len(NAMES)} formats in {time.process_time() - started:.1f} s of processor time")


def test_every_sample_is_a_valid_file_of_its_format(tmp_path):
    # The seeds must load unmutated, or the fuzz would only ever test "not an image".
    for name, (suffix, data) in SAMPLES.items():
        path = tmp_path / f"{name}.{suffix}"
        path.write_bytes(data)
        assert load_image(path).mode == "RGB", name
        assert image_info(path).format, name
    assert len(SAMPLES) >= 40


def test_mutation_is_seeded():
    sample = SAMPLES["png"][1]
    assert mutate(sample, random.Random(7)) == mutate(sample, random.Random(7))
    assert mutate(sample, random.Random(7)) != mutate(sample, random.Random(8))


def test_fuzzed_files_of_every_format_only_raise_the_loaders_error(tmp_path):
    _fuzz(tmp_path, range(START, START + CASES))


@pytest.mark.slow
def test_fuzzed_files_of_every_format_long_run(tmp_path):
    _fuzz(tmp_path, range(START, START + 20_000))
