"""Classification: file -> image -> tensor -> model -> top-k ``Prediction`` records, by one path."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from PIL import Image

from cnnviewer.core.catalog import ModelEntry, Preprocessing
from cnnviewer.core.errors import CnnviewerError, ImageLoadError
from cnnviewer.core.images import load_image
from cnnviewer.core.models import LoadedModel
from cnnviewer.core.results import Classification, Prediction, Timings, classifications
from cnnviewer.core.ways import RunAs

if TYPE_CHECKING:
    from concurrent.futures import Future

    from cnnviewer.core.gpu_decode import DeviceBatch

__all__ = ["Classification", "Classifier", "Decoded", "Prediction", "Timings", "default_decode_threads",
           "make_transform"]  # the result records live in core.results (no torch) and are re-exported here


@dataclass(frozen=True)
class Decoded:
    """One file made ready for the model: the image as decoded and its input tensor, or the reason why not."""

    path: str
    image: Image.Image | None = None  # what the model saw, before resizing and cropping (EXIF orientation applied)
    tensor: torch.Tensor | None = None  # C x H x W, normalised
    error: str | None = None
    decode_ms: float = 0.0
    preprocess_ms: float = 0.0


def make_transform(preprocessing: Preprocessing) -> Callable[[Image.Image], torch.Tensor]:
    """The weights' own preprocessing as a torchvision transform (PIL image -> normalised tensor).

    The same steps, in the same order, as torchvision's preset for classification weights: resize
    the short side, centre crop, uint8 -> float in 0..1, normalise.
    """
    from torchvision import transforms

    steps = transforms.Compose([
        transforms.Resize(preprocessing.resize_size,
                          interpolation=transforms.InterpolationMode(preprocessing.interpolation), antialias=True),
        transforms.CenterCrop(preprocessing.crop_size),
        transforms.PILToTensor(),
        transforms.ConvertImageDtype(torch.float32),
        transforms.Normalize(mean=list(preprocessing.mean), std=list(preprocessing.std)),
    ])

    def transform(image: Image.Image) -> torch.Tensor:
        tensor: torch.Tensor = steps(image)
        return tensor

    return transform


def default_decode_threads() -> int:
    """Decoding overlaps inference only where a core is left over for it.

    Measured on 2 cores: a decoding thread beside torch's two compute threads made the whole run
    slower (benchmarks/speed.py), so there the decode runs inline; from 4 cores on, one thread
    per 4 cores decodes ahead.
    """
    cores = os.cpu_count() or 1
    return 0 if cores <= 2 else max(1, cores // 4)


class Classifier:
    """A loaded model plus its preprocessing; turns files into top-k predictions.

    ``decode`` is the only way a file becomes a model input and ``forward`` the only way an input
    becomes logits: classification, Grad-CAM and the benchmark all go through both, so they agree.
    ``fast_decode`` (the default, and what every face uses) lets large JPEGs decode at reduced size,
    never below what the model's resize needs; False decodes every image whole (the reference that
    the tests measure the reduced decode against).
    """

    def __init__(self, loaded: LoadedModel, fast_decode: bool = True, device_decode: bool | None = None):
        self.loaded = loaded
        self.entry: ModelEntry = loaded.entry
        self.fast_decode = fast_decode
        # Decoding batches of JPEGs on the model's device (core.gpu_decode): by default on a GPU only, where
        # decoding, not the model, sets the pace; True also on the CPU (the tests run the same code there).
        self.device_decode = loaded.device.type == "cuda" if device_decode is None else device_decode
        self.transform = make_transform(loaded.entry.preprocessing)
        self._categories = loaded.entry.categories

    @property
    def way(self) -> RunAs:
        return self.loaded.way

    @property
    def decode_min_side(self) -> int:
        """The smallest short side an image needs for this model's resize (lets JPEGs decode smaller)."""
        return self.entry.preprocessing.resize_size

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """One RGB image -> one normalised CHW tensor of the model's input size."""
        return self.transform(image)

    def decode(self, path: str | os.PathLike[str]) -> Decoded:
        """One file -> its image and input tensor, with the time each took; a bad file gives ``error``."""
        name = os.fspath(path)
        started = time.perf_counter()
        try:
            image = load_image(name, min_side=self.decode_min_side if self.fast_decode else None)
        except ImageLoadError as exc:
            return Decoded(name, error=exc.reason, decode_ms=(time.perf_counter() - started) * 1000)
        decoded = time.perf_counter()
        tensor = self.preprocess(image)
        return Decoded(name, image, tensor, None, (decoded - started) * 1000, (time.perf_counter() - decoded) * 1000)

    def forward(self, batch: torch.Tensor, gradients: bool = False) -> torch.Tensor:
        """Logits for a preprocessed NCHW batch, in the model's way of running and memory format.

        ``gradients`` keeps the autograd graph (Grad-CAM); only an eager torch model has one.
        """
        loaded = self.loaded
        if loaded.runner is not None:
            if gradients:
                raise CnnviewerError(f"{self.entry.name} run as {loaded.way} gives no gradients.")
            return loaded.runner(batch)
        batch = batch.to(loaded.device)
        if loaded.way.precision == "bf16":
            batch = batch.to(torch.bfloat16)
        if loaded.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        if gradients:
            with torch.enable_grad():
                return loaded.module(batch)  # type: ignore[no-any-return]
        with torch.inference_mode():
            logits: torch.Tensor = loaded.module(batch)
        return logits

    @torch.inference_mode()
    def predict_batch(self, batch: torch.Tensor, top_k: int = 5) -> list[tuple[Prediction, ...]]:
        """Forward a preprocessed NCHW batch; the top-k of the softmax for each row."""
        logits = self.forward(batch)
        probabilities = torch.softmax(logits.float(), dim=1)
        k = max(1, min(top_k, probabilities.shape[1]))
        values, indices = probabilities.topk(k, dim=1)
        return [
            tuple(
                Prediction(index=int(i), name=self._categories[int(i)], probability=float(p))
                for p, i in zip(row_values.tolist(), row_indices.tolist(), strict=True)
            )
            for row_values, row_indices in zip(values.cpu(), indices.cpu(), strict=True)
        ]

    def classify_file(self, path: str | os.PathLike[str], top_k: int = 5) -> Classification:
        """Load, preprocess and classify one file; a bad file gives a Classification with an error."""
        return next(self.classify_files([path], top_k=top_k, batch_size=1))

    def classify_files(
        self,
        paths: Iterable[str | os.PathLike[str]],
        top_k: int = 5,
        batch_size: int = 8,
        should_cancel: Callable[[], bool] | None = None,
        decode_threads: int | None = None,
    ) -> Iterator[Classification]:
        """Classify files in batches, yielding one Classification per file in input order.

        Each file goes through ``decode``. With ``decode_threads`` > 0 the next batch is decoded and
        preprocessed in that many threads while this one runs through the model; None chooses for
        the machine (default_decode_threads). A file that cannot be read yields a Classification
        with ``error`` set; the rest go on.
        """
        from concurrent.futures import ThreadPoolExecutor

        names = [os.fspath(p) for p in paths]
        size = max(1, batch_size)
        batches = [names[i: i + size] for i in range(0, len(names), size)]
        cancelled = should_cancel or (lambda: False)
        if self.device_decode and self.fast_decode:
            # On a GPU decoding sets the pace (1,800 img/s forward, ~700 file to top-5 on one): baseline JPEGs
            # decode in batches on the device, the next batch while this one runs; other files take load_image.
            from cnnviewer.core.gpu_decode import device_batches

            for ready in device_batches(names, self.entry.preprocessing, self.loaded.device, size,
                                        read_threads=max(2, default_decode_threads()), should_cancel=cancelled):
                yield from self._run_device_batch(ready, top_k)
            return
        if decode_threads is None:
            decode_threads = default_decode_threads()
        if decode_threads <= 0:  # decode inline: on two cores a decoding thread slows the model's threads
            for batch in batches:
                if cancelled():
                    return
                yield from self._run_batch([self.decode(path) for path in batch], top_k)
            return
        with ThreadPoolExecutor(max_workers=decode_threads, thread_name_prefix="decode") as pool:
            def submit(batch: list[str]) -> list[Future[Decoded]]:
                return [pool.submit(self.decode, path) for path in batch]

            ahead = submit(batches[0]) if batches else []
            for number in range(len(batches)):
                if cancelled():
                    for future in ahead:
                        future.cancel()
                    return
                decoded = [future.result() for future in ahead]
                if number + 1 < len(batches):
                    ahead = submit(batches[number + 1])  # decoded while this batch runs
                yield from self._run_batch(decoded, top_k)

    def _run_device_batch(self, ready: DeviceBatch, top_k: int) -> Iterator[Classification]:
        results: list[tuple[Prediction, ...]] = []
        inference_ms = 0.0
        if ready.tensor is not None:
            started = time.perf_counter()
            results = self.predict_batch(ready.tensor, top_k)
            inference_ms = (time.perf_counter() - started) * 1000 / max(1, len(results))
        decode_ms = ready.seconds * 1000 / max(1, len(ready.paths))  # read + decode + preprocess, per file
        files = [(path, error, Timings(decode_ms) if error else Timings(decode_ms, 0.0, inference_ms))
                 for path, error in zip(ready.paths, ready.errors, strict=True)]
        yield from classifications(self.entry.name, self.loaded.way, self.loaded.auto, files, results)

    def _run_batch(self, decoded: list[Decoded], top_k: int) -> Iterator[Classification]:
        tensors = [d.tensor for d in decoded if d.tensor is not None]
        results: list[tuple[Prediction, ...]] = []
        inference_ms = 0.0
        if tensors:
            started = time.perf_counter()
            results = self.predict_batch(torch.stack(tensors), top_k)
            inference_ms = (time.perf_counter() - started) * 1000 / len(tensors)
        files = [(d.path, d.error, Timings(d.decode_ms) if d.tensor is None
                  else Timings(d.decode_ms, d.preprocess_ms, inference_ms)) for d in decoded]
        yield from classifications(self.entry.name, self.loaded.way, self.loaded.auto, files, results)

