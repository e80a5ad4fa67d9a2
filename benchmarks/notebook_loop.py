"""The reference notebook's loop, alone, as a user would run it: `python notebook_loop.py SRC DST`.

One photo at a time: cv2.imread, BGR->RGB, facenet's MTCNN(keep_all=True).detect, pad/clamp,
crop, resize, cv2.imwrite (its hard-coded 384 x 512 clamp replaced by the photo's size, the
same on the benchmark's photos). It imports only what the notebook imports, so run as a
process its start-up is the notebook's; bench_crop.py also calls `loop` in-process.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def loop(src: Path, dst: Path, names: list[str], device: str = "cpu") -> tuple[float, dict[str, tuple]]:
    """Seconds the loop took (its MTCNN built before the clock starts) and each photo's box."""
    import cv2
    import torch
    from facenet_pytorch import MTCNN

    mtcnn = MTCNN(keep_all=True, device=torch.device(device))
    boxes = {}
    start = time.perf_counter()
    for rel in names:
        img = cv2.imread(str(src / rel))
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        found, _ = mtcnn.detect(img)
        h, w = img.shape[:2]
        if found is not None:
            x1, y1, x2, y2 = map(int, found[0])
            x1, y1, x2, y2 = max(0, x1 - 30), max(0, y1 - 60), min(w, x2 + 30), min(h, y2 + 30)
        else:
            x1, y1, x2, y2 = 64, 86, 320, 426
        face = cv2.resize(img[y1:y2, x1:x2], (210, 280), interpolation=cv2.INTER_AREA)
        out = dst / rel.replace("/images/", "/faces/")
        out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
        boxes[rel] = (x1, y1, x2, y2)
    return time.perf_counter() - start, boxes


if __name__ == "__main__":
    source, dest = Path(sys.argv[1]), Path(sys.argv[2])
    loop(source, dest, sorted(str(p.relative_to(source)) for p in source.rglob("*.jpg")))
