"""`digits`: the 8x8 handwritten digits shipped inside scikit-learn, as TFDS.

Importing this module registers the builder with TFDS under the name
``digits``, so ``tfds.builder("digits")`` and ``tfds.data_source("digits")``
work too. Preparing it needs neither the network nor TensorFlow: the images
are PNG-encoded with Pillow and written in the ``array_record`` format.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

NUM_TRAIN = 1437
NUM_TEST = 360
SPLIT_SEED = 0

_DESCRIPTION = """\
The 1,797 real 8x8 handwritten digits (classes 0-9) that scikit-learn ships
inside its package (`sklearn.datasets.load_digits`, a copy of the test set of
the UCI "Optical Recognition of Handwritten Digits" data). Each pixel is an
integer in 0..16 (the count of "on" pixels in a 4x4 block of the original
32x32 bitmap); the images store these values unchanged (uint8, 0..16), so
`PIXEL_MAX` is 16, not 255.

Split: fixed and stratified, 1,437 train / 360 test, from
`sklearn.model_selection.train_test_split(indices, test_size=360,
stratify=labels, random_state=0)`; every class keeps its share (within one
example) in both splits.
"""

_CITATION = """\
@misc{Dua:2019,
  author = "Alpaydin, E. and Kaynak, C.",
  title = "Optical Recognition of Handwritten Digits",
  year = "1998",
  howpublished = "UCI Machine Learning Repository",
}
"""


def split_indices(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fixed stratified split of the digits.

    Args:
      labels: int array of shape (1797,), the labels of `load_digits()`.

    Returns:
      (train, test): sorted int arrays of example indices, of shapes
      (1437,) and (360,).
    """
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(
        np.arange(len(labels)),
        test_size=NUM_TEST,
        stratify=labels,
        random_state=SPLIT_SEED,
    )
    return np.sort(train), np.sort(test)


class Digits(tfds.core.GeneratorBasedBuilder):
    """The scikit-learn 8x8 digits as a TFDS dataset (offline, no TensorFlow).

    Features: ``image`` uint8 (8, 8, 1) with values in 0..16 (see
    `PIXEL_MAX`), ``label`` in 0..9. Splits: ``train`` (1,437) and ``test``
    (360), fixed and stratified (see `split_indices`). Example keys are the
    indices into ``sklearn.datasets.load_digits()``.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}  # noqa: RUF012 (TFDS API)
    # The largest pixel value: `jaxsoft.data` divides by it to scale to [0, 1].
    PIXEL_MAX = 16

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=_DESCRIPTION,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(
                        shape=(8, 8, 1), dtype=np.uint8, encoding_format="png"
                    ),
                    "label": tfds.features.ClassLabel(
                        names=[str(i) for i in range(10)]
                    ),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://scikit-learn.org/stable/datasets/toy_dataset.html",
            citation=_CITATION,
            license="CC BY 4.0 (UCI Machine Learning Repository)",
        )

    def _split_generators(
        self, dl_manager: tfds.download.DownloadManager
    ) -> dict[str, Iterator[tuple[int, dict[str, Any]]]]:
        del dl_manager  # Nothing to download: the data ship with scikit-learn.
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = digits.images.astype(np.uint8)  # (1797, 8, 8), values 0..16
        labels = digits.target.astype(np.int64)
        train, test = split_indices(labels)
        return {
            "train": self._generate_examples(images, labels, train),
            "test": self._generate_examples(images, labels, test),
        }

    def _generate_examples(
        self, images: np.ndarray, labels: np.ndarray, indices: np.ndarray
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        # A PIL image is PNG-encoded by Pillow; a NumPy array would make TFDS
        # encode it with TensorFlow, which `digits` must not need.
        from PIL import Image

        for i in indices:
            yield (
                int(i),
                {
                    "image": Image.fromarray(images[i]),
                    "label": int(labels[i]),
                },
            )
