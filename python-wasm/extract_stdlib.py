"""Extract the CPython standard library that componentize-py embeds.

componentize-py carries the standard library of its CPython build as a
zstd-compressed tar inside its native extension and mounts it at /python
only while building. The runtime needs the same files at run time, so that
modules not imported at build time (e.g. encodings.idna, __future__) can
still be imported lazily: the sandbox mounts this directory read-only at
/python in every instance.

Usage: extract_stdlib.py OUT_DIR
"""

import io
import pathlib
import shutil
import sys
import tarfile

import componentize_py
import zstandard

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# The first member of the standard library archive (sorted by name).
MARKER = b"_apple_support.py"


def main(out_dir):
    lib = next(pathlib.Path(componentize_py.__file__).parent.glob("componentize_py*.so"))
    data = lib.read_bytes()
    start = 0
    while (start := data.find(ZSTD_MAGIC, start)) >= 0:
        try:
            reader = zstandard.ZstdDecompressor().stream_reader(
                io.BytesIO(data[start:]), read_across_frames=False)
            head = reader.read(512)
        except zstandard.ZstdError:
            head = b""
        if head.startswith(MARKER) or (b"os.py" in head[:100] and head[100:108].strip(b"\0 ")):
            break
        start += len(ZSTD_MAGIC)
    else:
        sys.exit(f"no standard library archive found in {lib}")
    out = pathlib.Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    reader = zstandard.ZstdDecompressor().stream_reader(
        io.BytesIO(data[start:]), read_across_frames=False)
    with tarfile.open(fileobj=reader, mode="r|") as tar:
        tar.extractall(out, filter="data")
    if not (out / "os.py").is_file() or not (out / "encodings" / "idna.py").is_file():
        sys.exit(f"extracted archive at offset {start} is not the standard library")
    print(f"standard library extracted to {out}")


if __name__ == "__main__":
    main(sys.argv[1])
