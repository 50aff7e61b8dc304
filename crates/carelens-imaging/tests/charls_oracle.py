"""CharLS's decode of the pydicom wheels' JPEG-LS files: the oracle of `jpeg_ls_matches_charls`.

Run once in a venv with `pip install pyjpegls==1.5.1 numpy pydicom==3.0.2` (pyjpegls wraps
CharLS 2.4), on the directory `cargo xtask fixtures` prints as CARELENS_PYDICOM_DIR:

    python charls_oracle.py "$CARELENS_PYDICOM_DIR"

Prints, per file, the SHA-256 of every frame's samples as little-endian u16, channel-major.
"""
import sys, hashlib, numpy as np, pydicom, jpeg_ls
from pydicom.encaps import generate_frames
D=sys.argv[1]
for f in ["data_store/data/emri_small_jpeg_ls_lossless.dcm","pydicom/data/test_files/JPEGLSNearLossless_08.dcm","pydicom/data/test_files/JPEGLSNearLossless_16.dcm","pydicom/data/test_files/MR_small_jpeg_ls_lossless.dcm","pydicom/data/test_files/SC_rgb_jls_lossy_line.dcm","pydicom/data/test_files/SC_rgb_jls_lossy_sample.dcm"]:
    ds=pydicom.dcmread(D+"/files/"+f)
    nf=int(getattr(ds,"NumberOfFrames",1) or 1)
    h=hashlib.sha256()
    for fr in generate_frames(ds.PixelData, number_of_frames=nf):
        a=jpeg_ls.decode(np.frombuffer(fr,dtype=np.uint8))
        if a.ndim==3: a=np.moveaxis(a,2,0)
        h.update(a.astype('<u2').tobytes())
    print(f, getattr(ds,'RescaleSlope',None), getattr(ds,'RescaleIntercept',None), ds.PixelRepresentation, ds.BitsStored, h.hexdigest())
