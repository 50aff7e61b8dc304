"""The Python peer of `cargo bench -p carelens-imaging --bench decode`: the same job with the
usual Python stack — pydicom + numpy + Pillow, with the pylibjpeg (libjpeg, openjpeg, rle)
and pyjpegls plugins for compressed transfer syntaxes.

Per file: read, decode the middle frame, apply the modality LUT (rescale), take luma for
colour, window with the file's VOI (else min-max), invert MONOCHROME1, resize to 224 x 224
with antialiasing (Pillow's bilinear filter on a float image), normalise to mean/std.

  python_peer.py probe FILELIST          print the files this stack decodes
  python_peer.py bench FILELIST SECONDS  files/s on 1 process and on all CPUs
"""
import json
import multiprocessing as mp
import os
import sys
import time
import warnings

import numpy as np
import pydicom
from PIL import Image
from pydicom.pixels import apply_modality_lut, pixel_array

warnings.simplefilter("ignore")
SIZE = 224


def preprocess(path):
    ds = pydicom.dcmread(path)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    arr = pixel_array(ds, index=frames // 2 if frames > 1 else None)
    pi = str(ds.get("PhotometricInterpretation", ""))
    if arr.ndim == 3 and arr.shape[-1] == 3:
        if pi.startswith("YBR") and ds.file_meta.TransferSyntaxUID.is_compressed is False:
            from pydicom.pixels import convert_color_space

            arr = convert_color_space(arr, pi, "RGB")
        a = arr.astype(np.float32)
        gray = 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]
    else:
        gray = apply_modality_lut(arr, ds).astype(np.float32)
    wc, ww = ds.get("WindowCenter"), ds.get("WindowWidth")
    if wc is not None and ww is not None and arr.ndim == 2:
        c = float(wc[0] if isinstance(wc, pydicom.multival.MultiValue) else wc)
        w = float(ww[0] if isinstance(ww, pydicom.multival.MultiValue) else ww)
        lo, hi = c - w / 2, c + w / 2
    else:
        lo, hi = float(gray.min()), float(gray.max())
    if hi <= lo:
        hi = lo + 1.0
    x = np.clip((gray - lo) / (hi - lo), 0.0, 1.0)
    if pi == "MONOCHROME1":
        x = 1.0 - x
    img = Image.fromarray(x.astype(np.float32), mode="F").resize((SIZE, SIZE), Image.BILINEAR)
    t = (np.asarray(img, dtype=np.float32) - 0.5) / 0.25
    return t.shape


def probe(paths):
    for p in paths:
        try:
            preprocess(p)
            print(p)
        except Exception:
            pass


def run(paths, seconds):
    done, start = 0, time.perf_counter()
    while True:
        for p in paths:
            preprocess(p)
            done += 1
        if time.perf_counter() - start >= seconds:
            return done, time.perf_counter() - start


def bench(paths, seconds):
    n, t = run(paths, seconds)
    one = n / t
    cpus = os.cpu_count() or 1
    start = time.perf_counter()
    with mp.Pool(cpus) as pool:
        results = pool.starmap(run, [(paths, seconds)] * cpus)
    wall = time.perf_counter() - start
    allc = sum(n for n, _ in results) / max(t for _, t in results)
    print(json.dumps({"peer": "python", "files": len(paths), "one_core_files_per_s": one,
                      "all_cores_files_per_s": allc, "cores": cpus, "wall_s": wall}))


if __name__ == "__main__":
    mode, listfile = sys.argv[1], sys.argv[2]
    files = [l.strip() for l in open(listfile) if l.strip()]
    if mode == "probe":
        probe(files)
    else:
        bench(files, float(sys.argv[3]))
