"""JPEG batches decoded and preprocessed on the model's device (nvJPEG on a GPU); every other file by load_image."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from cnnviewer.core.catalog import Preprocessing
from cnnviewer.core.errors import ImageLoadError
from cnnviewer.core.images import MAX_MEGAPIXELS, load_image

log = logging.getLogger(__name__)

#: Files larger than this are left to load_image, which reads them in blocks within its limits;
#: a real photo's JPEG is a few MB.
MAX_DEVICE_FILE_BYTES = 64 << 20

# Start-of-frame markers of the JPEGs the device decoder takes: baseline and extended sequential,
# Huffman coded. Progressive (C2), lossless and arithmetic-coded frames go to load_image.
_SEQUENTIAL_FRAMES = (0xC0, 0xC1)
# Markers followed by no length field.
_STANDALONE = {0x01, *range(0xD0, 0xD9)}


@dataclass(frozen=True)
class DeviceBatch:
    """One batch of files made ready for the model on its device; a file that could not be read has a reason.

    ``tensor`` holds one row per file whose ``errors`` entry is None, in the order of ``paths``.
    """

    paths: tuple[str, ...]
    tensor: torch.Tensor | None  # N x 3 x crop x crop, float32, normalised, on the device
    errors: tuple[str | None, ...]
    on_device: int  # files decoded by decode_jpeg on the device; the others went through load_image
    seconds: float  # reading, decoding and preprocessing the whole batch
    ready: torch.cuda.Event | None = None  # recorded on the stream that made ``tensor`` (CUDA only)


def device_decodable(data: bytes) -> str | None:
    """Why the bytes need load_image rather than the device's JPEG decoder, or None when the device takes them.

    The device takes a complete, sequential, three-component (YCbCr) JPEG with every component in its
    first scan, upright (no EXIF rotation), within MAX_MEGAPIXELS. Everything else (PNG, progressive,
    CMYK, greyscale, rotated, huge, cut short, multi-picture) keeps the present path with all its guards.
    """
    if not data.startswith(b"\xff\xd8"):
        return "not a JPEG"
    if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        return "no end-of-image marker (cut short, or data after it)"
    frame = None
    position = 2
    while True:
        while position < len(data) and data[position] == 0xFF and position + 1 < len(data) \
                and data[position + 1] == 0xFF:
            position += 1  # fill bytes before a marker
        if position + 4 > len(data) or data[position] != 0xFF:
            return "damaged segments before the image data"
        code = data[position + 1]
        if code in _STANDALONE:
            position += 2
            continue
        length = (data[position + 2] << 8) | data[position + 3]
        segment = data[position + 4: position + 2 + length]
        if length < 2 or len(segment) < length - 2:
            return "damaged segments before the image data"
        if 0xC0 <= code <= 0xCF and code not in (0xC4, 0xC8, 0xCC):  # a start of frame (not DHT, JPG, DAC)
            if code not in _SEQUENTIAL_FRAMES:
                return "progressive, lossless or arithmetic-coded JPEG"
            if frame is not None or len(segment) < 6:
                return "more than one frame"
            height, width, components = (segment[1] << 8) | segment[2], (segment[3] << 8) | segment[4], segment[5]
            if segment[0] != 8:
                return "not 8 bits per sample"
            if components != 3:
                return f"{components} colour components (greyscale or CMYK)"
            if width * height > MAX_MEGAPIXELS * 1_000_000 or not width or not height:
                return "larger than the pixel limit, or of no size"
            frame = (width, height)
        elif code == 0xEE and segment.startswith(b"Adobe") and len(segment) >= 12 and segment[11] != 1:
            return "Adobe colour transform other than YCbCr"
        elif code == 0xDA:
            if frame is None:
                return "image data before the frame header"
            if not segment or segment[0] != 3:
                return "a first scan without every colour component"
            break
        position += 2 + length
    return _header_reason(data)


def _header_reason(data: bytes) -> str | None:
    """What Pillow reads from the header alone (no pixels): EXIF rotation, multi-picture files."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "JPEG":
                return f"{image.format} file"
            try:
                orientation = image.getexif().get(0x0112, 1)
            except Exception:  # noqa: BLE001 - load_image treats a broken EXIF block as upright; so would we, there
                return "a damaged EXIF block"
            if orientation not in (1, None):
                return "rotated by its EXIF orientation"
    except Exception as exc:  # noqa: BLE001 - whatever Pillow dislikes, load_image says in its own sentence
        return f"unreadable header ({type(exc).__name__})"
    return None


def read_bytes(path: str) -> bytes | None:
    """The file's bytes for the device decoder, or None to leave it to load_image (which names any problem)."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if not 0 < size <= MAX_DEVICE_FILE_BYTES:
                return None
            return handle.read(MAX_DEVICE_FILE_BYTES + 1)
    except OSError:
        return None


def preprocess_on_device(images: Sequence[torch.Tensor], preprocessing: Preprocessing) -> torch.Tensor:
    """Decoded RGB uint8 images (C x H x W, any sizes, on one device) -> the normalised N x C x crop x crop batch.

    The steps and their rounding follow inference.make_transform: resize the short side (antialiased,
    in uint8 as Pillow does), centre crop, 0..1, normalise. torchvision's tensor resize is not
    Pillow's, so values differ by a few levels of 255 (benchmarks/precisions.py --check-gpu-decode).
    """
    from torchvision.transforms.v2 import functional as tvf

    mode = tvf.InterpolationMode(preprocessing.interpolation)
    crops = [tvf.center_crop(tvf.resize(image, [preprocessing.resize_size], interpolation=mode, antialias=True),
                             [preprocessing.crop_size]) for image in images]
    batch = torch.stack(crops).float().div_(255.0)
    mean = torch.tensor(preprocessing.mean, device=batch.device).view(1, 3, 1, 1)
    std = torch.tensor(preprocessing.std, device=batch.device).view(1, 3, 1, 1)
    return batch.sub_(mean).div_(std)


def _pil_path(path: str, preprocessing: Preprocessing, transform: Callable[[Image.Image], torch.Tensor],
              ) -> tuple[torch.Tensor | None, str | None]:
    """The present path for one file: load_image (reduced-size JPEG decode, every guard) and the transform."""
    try:
        image = load_image(path, min_side=preprocessing.resize_size)
    except ImageLoadError as exc:
        return None, exc.reason
    return transform(image), None


def _decode_on_device(datas: list[bytes], device: torch.device) -> list[torch.Tensor | None]:
    """decode_jpeg on ``device`` for all at once; when the batch fails, one by one (None: that file failed)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    if not datas:
        return []
    # One buffer for the batch (pinned on a GPU, so the copy to the device runs without a staging copy);
    # its slices are the decoder's inputs.
    staging = torch.empty(sum(len(d) for d in datas), dtype=torch.uint8, pin_memory=device.type == "cuda")
    inputs, offset = [], 0
    for data in datas:
        part = staging[offset: offset + len(data)]
        part.numpy()[:] = np.frombuffer(data, np.uint8)
        inputs.append(part)
        offset += len(data)
    try:
        return list(decode_jpeg(inputs, mode=ImageReadMode.RGB, device=device))
    except RuntimeError as exc:
        log.debug("batch JPEG decode on %s failed (%s); decoding one by one", device, exc)
    decoded: list[torch.Tensor | None] = []
    for part in inputs:
        try:
            decoded.append(decode_jpeg(part, mode=ImageReadMode.RGB, device=device))
        except RuntimeError as exc:
            log.debug("JPEG decode on %s failed (%s); the file goes to load_image", device, exc)
            decoded.append(None)
    return decoded


def decode_batch(paths: Sequence[str | os.PathLike[str]], preprocessing: Preprocessing,
                 device: str | torch.device = "cpu", read_pool: ThreadPoolExecutor | None = None) -> DeviceBatch:
    """Files -> one DeviceBatch: baseline JPEGs decoded on ``device``, every other file by load_image.

    Never raises for a file: a file that cannot be read has load_image's reason in ``errors``.
    """
    from cnnviewer.core.inference import make_transform

    started = time.perf_counter()
    device = torch.device(device)
    names = [os.fspath(p) for p in paths]
    datas = list(read_pool.map(read_bytes, names)) if read_pool is not None else [read_bytes(n) for n in names]
    eligible: list[int] = []
    jpegs: list[bytes] = []
    for i, data in enumerate(datas):
        if data is not None and device_decodable(data) is None:
            eligible.append(i)
            jpegs.append(data)
    decoded = _decode_on_device(jpegs, device)
    rows: list[torch.Tensor | None] = [None] * len(names)
    errors: list[str | None] = [None] * len(names)
    good = [(i, image) for i, image in zip(eligible, decoded, strict=True) if image is not None]
    if good:
        batch = preprocess_on_device([image for _, image in good], preprocessing)
        for row, (i, _) in enumerate(good):
            rows[i] = batch[row]
    transform = make_transform(preprocessing)
    fallbacks = [i for i in range(len(names)) if rows[i] is None]
    for i in fallbacks:
        tensor, errors[i] = _pil_path(names[i], preprocessing, transform)
        if tensor is not None:
            if device.type == "cuda":
                tensor = tensor.pin_memory()
            rows[i] = tensor.to(device, non_blocking=True)
    if device.type == "cuda":
        # This thread waits for its own stream (the caller's forward goes on), so the pinned buffers the
        # copies read from are not reused before the copies are done.
        torch.cuda.current_stream(device).synchronize()
    kept = [row for row in rows if row is not None]
    return DeviceBatch(tuple(names), torch.stack(kept) if kept else None, tuple(errors), len(good),
                       time.perf_counter() - started)


def device_batches(paths: Sequence[str | os.PathLike[str]], preprocessing: Preprocessing,
                   device: str | torch.device = "cpu", batch_size: int = 64, read_threads: int = 4,
                   should_cancel: Callable[[], bool] | None = None) -> Iterator[DeviceBatch]:
    """DeviceBatches of ``batch_size`` files in order; the next is read and decoded while the caller uses this one.

    On a GPU the next batch decodes on a stream of its own, so its copies and decoding overlap the
    caller's forward pass on the current stream; a batch's ``tensor`` is ready for the current stream
    when it is yielded.
    """
    device = torch.device(device)
    names = [os.fspath(p) for p in paths]
    size = max(1, batch_size)
    chunks = [names[i: i + size] for i in range(0, len(names), size)]
    cancelled = should_cancel or (lambda: False)
    side = torch.cuda.Stream(device) if device.type == "cuda" else None  # type: ignore[no-untyped-call]

    def prepare(chunk: list[str]) -> DeviceBatch:
        context = torch.cuda.stream(side) if side is not None else contextlib.nullcontext()
        with context:
            batch = decode_batch(chunk, preprocessing, device, readers)
            if side is None:
                return batch
            ready = torch.cuda.Event()  # type: ignore[no-untyped-call]
            ready.record(side)
        return DeviceBatch(batch.paths, batch.tensor, batch.errors, batch.on_device, batch.seconds, ready)

    with ThreadPoolExecutor(max(1, read_threads), thread_name_prefix="read") as readers, \
            ThreadPoolExecutor(1, thread_name_prefix="device-decode") as worker:
        ahead: Future[DeviceBatch] | None = worker.submit(prepare, chunks[0]) if chunks else None
        for number in range(len(chunks)):
            if cancelled() or ahead is None:
                if ahead is not None:
                    ahead.cancel()
                return
            batch = ahead.result()
            ahead = worker.submit(prepare, chunks[number + 1]) if number + 1 < len(chunks) else None
            if batch.ready is not None and batch.tensor is not None:
                current = torch.cuda.current_stream(device)
                current.wait_event(batch.ready)
                batch.tensor.record_stream(current)  # made on the side stream, freed after the caller's use
            yield batch
