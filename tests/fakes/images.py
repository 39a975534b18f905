"""An ImageInspector over a dict: image -> its gpubot.cuda label (None: not stated);
images not in it are not on the engine."""

from __future__ import annotations

from bot.ports import ImageInfo


class FakeImages:
    def __init__(self, labels: dict[str, str | None]) -> None:
        self.labels = labels

    def inspect(self, image: str) -> ImageInfo:
        if image not in self.labels:
            return ImageInfo(cuda=None, present=False)
        return ImageInfo(cuda=self.labels[image])
