"""Writes what pydicom (the independent oracle) reads from every file under ROOT, as JSON.

Usage: PYTHONPATH=<unpacked pydicom wheel> python3 pydicom_expect.py ROOT > expected.json

Header only (no numpy needed): rows, columns, frames, samples per pixel, bits, photometric
interpretation, transfer syntax and whether the file has pixel data. The Rust test decodes
each file and compares.
"""
import json
import os
import sys
import warnings

import pydicom

warnings.simplefilter("ignore")


def number(ds, key, default):
    try:
        return int(ds.get(key, default) or default)
    except (TypeError, ValueError):
        return None  # unparseable (e.g. NumberOfFrames "1A")


def main(root):
    out = []
    for dirpath, _, files in os.walk(root):
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if name.endswith((".py", ".pyc", ".json", ".txt", ".md", ".dump", ".icc", ".gz")):
                continue
            try:
                ds = pydicom.dcmread(path)
            except Exception as e:  # not DICOM Part 10 as far as pydicom is concerned
                out.append({"file": rel, "pydicom_error": type(e).__name__})
                continue
            meta = getattr(ds, "file_meta", None)
            out.append({
                "file": rel,
                "transfer_syntax": str(getattr(meta, "TransferSyntaxUID", "") or ""),
                "pixel_data": "PixelData" in ds,
                "rows": number(ds, "Rows", 0),
                "columns": number(ds, "Columns", 0),
                "frames": number(ds, "NumberOfFrames", 1),
                "samples_per_pixel": number(ds, "SamplesPerPixel", 1),
                "bits_allocated": number(ds, "BitsAllocated", 0),
                "photometric": str(ds.get("PhotometricInterpretation", "")),
                "modality": str(ds.get("Modality", "")),
                "patient_id": str(ds.get("PatientID", "") or ""),
                "issuer": str(ds.get("IssuerOfPatientID", "") or ""),
                "sop_instance_uid": str(ds.get("SOPInstanceUID", "") or ""),
            })
    json.dump(sorted(out, key=lambda r: r["file"]), sys.stdout, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
