"""Header checks that ITK does not make for NRRD, MetaImage and NIfTI files, run before any voxel is read.

ITK reads several broken headers without a word, and the result is a plausible-looking but wrong image:

- an origin of NaN (NRRD ``space origin: (nan,nan,nan)``, MetaImage ``Offset = nan nan nan``) becomes (0, 0, 0);
- NIfTI ``pixdim`` 0 or NaN becomes 1 mm; a NaN quaternion component, or one with b² + c² + d² > 1, becomes
  another rotation (a flip of L-R and A-P, or an oblique rotation);
- raw voxel data longer than the header's sizes announce is cut silently (wrong sizes);
- a detached header (``.nhdr``, ``.mhd``) may name any file on disk as its data file, a device such as
  ``/dev/urandom`` or a FIFO included: only regular files are read, and the message names the data file;
- a ``.nii.gz`` cut short is zero-filled; the gzip trailer's size can be wrong (or forged), so the
  decompressed bytes are counted instead.
"""

from __future__ import annotations

import math
import os
import stat
import struct
import zlib
from pathlib import Path

import numpy as np

from SmoothSegNetLib.errors import VolumeReadError, VolumeValidationError

#: Most header bytes read from a NRRD/MetaImage file (text headers are a few hundred bytes).
MAX_TEXT_HEADER_BYTES = 1 << 20

#: NRRD ``type`` names and MetaImage ``ElementType`` values -> bytes per value.
_NRRD_TYPE_NAMES = {
    1: "char|signed char|int8|int8_t|uchar|unsigned char|uint8|uint8_t",
    2: "short|short int|signed short|signed short int|int16|int16_t|ushort|unsigned short|unsigned short int|uint16"
    "|uint16_t",
    4: "int|signed int|int32|int32_t|uint|unsigned int|uint32|uint32_t|float",
    8: "longlong|long long|long long int|signed long long|signed long long int|int64|int64_t|ulonglong"
    "|unsigned long long|unsigned long long int|uint64|uint64_t|double",
}
_NRRD_TYPE_BYTES = {name: size for size, names in _NRRD_TYPE_NAMES.items() for name in names.split("|")}
_META_TYPE_BYTES = {
    "MET_CHAR": 1,
    "MET_UCHAR": 1,
    "MET_SHORT": 2,
    "MET_USHORT": 2,
    "MET_INT": 4,
    "MET_UINT": 4,
    "MET_LONG": 4,
    "MET_ULONG": 4,
    "MET_LONG_LONG": 8,
    "MET_ULONG_LONG": 8,
    "MET_FLOAT": 4,
    "MET_DOUBLE": 8,
}


def check_file_header(path: Path, image_io: str, *, max_dimension: int = 3) -> None:
    """Run the checks of this module that apply to ``path`` read with the SimpleITK ``image_io``.

    Raises:
        VolumeReadError: a data file that is missing, not a regular file, or longer/shorter than announced.
        VolumeValidationError: an unknown (NaN) origin, a missing voxel size or an invalid orientation.
    """
    if image_io == "NrrdImageIO":
        _check_nrrd(path, max_dimension)
    elif image_io == "MetaImageIO":
        _check_meta(path)
    elif image_io == "NiftiImageIO":
        check_nifti(path)


# -- text headers ---------------------------------------------------------------------------------------
def _read_text_header(path: Path, *, nrrd: bool) -> tuple[list[str], int]:
    """The header lines of a NRRD/MetaImage file and the byte offset where its attached data start."""
    with path.open("rb") as handle:
        head = handle.read(MAX_TEXT_HEADER_BYTES)
    lines: list[str] = []
    offset = 0
    for raw in head.splitlines(keepends=True):
        offset += len(raw)
        line = raw.decode("latin-1").rstrip("\r\n")
        if nrrd and not line:  # the blank line ending a NRRD header
            break
        lines.append(line)
        if not nrrd and line.split("=", 1)[0].strip() == "ElementDataFile":  # the last MetaImage field
            break
    return lines, offset


def _fields(lines: list[str], separator: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in lines:
        if line.startswith("#") or separator not in line or ":=" in line:
            continue
        key, value = line.split(separator, 1)
        fields[key.strip().lower()] = value.strip()
    return fields


def _check_origin_text(values: list[str], *, source: Path, field: str) -> None:
    try:
        origin = [float(v) for v in values]
    except ValueError:
        return  # ITK refuses what it cannot parse
    if not all(math.isfinite(o) for o in origin):
        raise VolumeValidationError(
            f"{source} has an unknown or invalid origin in its header ({field} {' '.join(values)}): where the "
            "image lies in the patient is unknown (a reader would put it at 0, 0, 0); export the CT again with "
            "its geometry"
        )


def _check_nrrd(path: Path, max_dimension: int) -> None:
    lines, data_offset = _read_text_header(path, nrrd=True)
    fields = _fields(lines[1:], ":")
    _check_nrrd_dimension(fields, max_dimension, source=path)
    origin = fields.get("space origin", "").strip("() ")
    if origin:
        _check_origin_text([v.strip() for v in origin.split(",")], source=path, field="space origin")
    data_field = fields.get("data file") or fields.get("datafile")
    expected = _expected_bytes(fields.get("sizes", "").split(), _NRRD_TYPE_BYTES.get(fields.get("type", "")), 1)
    raw = fields.get("encoding", "") == "raw" and not ({"byte skip", "line skip", "byteskip", "lineskip"} & set(fields))
    if data_field is None:
        if raw and expected is not None:
            _check_raw_length(path, path.stat().st_size - data_offset, expected, source=path)
        return
    if data_field.upper().startswith("LIST"):
        index = next(n for n, line in enumerate(lines) if line.lower().startswith(("data file", "datafile")))
        names = [line.strip() for line in lines[index + 1 :] if line.strip()]
        for name in names:
            check_data_file(path, name)
        return
    if "%" in data_field:  # a file name pattern ("slice%03d.raw 1 40 1"): each file is checked by ITK
        return
    data = check_data_file(path, data_field)
    if raw and expected is not None:
        _check_raw_length(data, data.stat().st_size, expected, source=path)


#: NRRD axis kinds of a per-voxel vector or colour (read as components, refused as RGB/vector images).
_VECTOR_KINDS = {
    *("rgb-color", "rgba-color", "hsv-color", "xyz-color", "2-vector", "3-vector", "4-vector", "3-color"),
    *("4-color", "vector", "covariant-vector", "normal", "3-normal", "3-gradient", "complex", "quaternion"),
}


def _check_nrrd_dimension(fields: dict[str, str], max_dimension: int, *, source: Path) -> None:
    """Name a 4D NRRD (time points, phases, a list axis) as 4D: ITK reads one as a 3D vector image."""
    try:
        dimension = int(fields.get("dimension", "3"))
    except ValueError:
        return
    kinds = {kind.lower() for kind in fields.get("kinds", "").split()}
    if dimension > max_dimension and not kinds & _VECTOR_KINDS:
        raise VolumeValidationError(
            f"{source} is a {dimension}D image (sizes {fields.get('sizes', '?')}, kinds "
            f"{fields.get('kinds', 'not given')}), but a 3D CT is needed: extract one 3D volume (e.g. one time "
            "point or phase) first"
        )


def _check_meta(path: Path) -> None:
    lines, data_offset = _read_text_header(path, nrrd=False)
    fields = {key.lower(): value for key, value in _fields(lines, "=").items()}
    for key in ("offset", "origin", "position"):
        if key in fields:
            _check_origin_text(fields[key].split(), source=path, field=key.capitalize())
    data_field = fields.get("elementdatafile", "")
    channels = int(fields.get("elementnumberofchannels", "1") or 1)
    expected = _expected_bytes(
        fields.get("dimsize", "").split(), _META_TYPE_BYTES.get(fields.get("elementtype", "")), channels
    )
    raw = fields.get("compresseddata", "false").lower() != "true" and "headersize" not in fields
    if data_field.upper() == "LOCAL":
        if raw and expected is not None:
            _check_raw_length(path, path.stat().st_size - data_offset, expected, source=path)
        return
    if not data_field or data_field.upper().startswith("LIST") or " " in data_field or "%" in data_field:
        return  # several files or a pattern: ITK opens each
    data = check_data_file(path, data_field)
    if raw and expected is not None:
        _check_raw_length(data, data.stat().st_size, expected, source=path)


def _expected_bytes(sizes: list[str], value_bytes: int | None, channels: int) -> int | None:
    try:
        counts = [int(n) for n in sizes]
    except ValueError:
        return None
    if value_bytes is None or not counts:
        return None
    return int(np.prod(counts, dtype=np.int64)) * value_bytes * channels


def _check_raw_length(data: Path, length: int, expected: int, *, source: Path) -> None:
    """Refuse raw voxel data longer than the header announces (ITK would drop the rest without a word)."""
    if length > expected:
        where = "" if data == source else f" (data file {data})"
        raise VolumeReadError(
            f"{source} holds {length:,} bytes of raw voxel data{where} but its header's sizes and type account "
            f"for {expected:,}: the sizes in the header are wrong, and reading it would drop or shift voxels; "
            "fix the header's sizes or export the volume again"
        )


def check_data_file(header: Path, name: str) -> Path:
    """The data file a detached header names (relative to the header's folder), if it is a readable file.

    Raises:
        VolumeReadError: missing, unreadable, or not a regular file (a device, FIFO, socket or folder).
    """
    data = Path(name) if os.path.isabs(name) else header.parent / name
    try:
        mode = os.stat(data).st_mode
    except OSError as exc:
        raise VolumeReadError(
            f"the data file {data} named in the header of {header} cannot be opened ({exc.strerror}): "
            "copy the data file next to its header or fix the header's data file name"
        ) from exc
    if not stat.S_ISREG(mode):
        raise VolumeReadError(
            f"the data file {data} named in the header of {header} is {_file_kind(mode)}, not a regular file: "
            "only voxel data stored in a file is read; fix the header's data file name"
        )
    if not os.access(data, os.R_OK):
        raise VolumeReadError(f"permission denied reading {data} (the data file of {header}): make it readable")
    return data


def _file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "a special file")


def has_dicom_preamble(path: Path) -> bool:
    """True if ``path`` holds the DICOM Part 10 marker ``DICM`` after its 128-byte preamble (False if unreadable)."""
    try:
        with path.open("rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def file_kind(path: Path) -> str | None:
    """``None`` for a regular file (or a folder), else what ``path`` is ("a character device", ...)."""
    mode = os.stat(path).st_mode
    return None if stat.S_ISREG(mode) or stat.S_ISDIR(mode) else _file_kind(mode)


# -- NIfTI ----------------------------------------------------------------------------------------------
#: Byte offsets in NIfTI-1 / NIfTI-2 headers: (struct code of a float, pixdim, qform_code, sform_code,
#: quatern_b, qoffset_x, srow_x, code of the two form codes).
_NIFTI_LAYOUT = {
    348: ("f", 76, 252, 254, 256, 268, 280, "h"),
    540: ("d", 104, 344, 348, 352, 376, 400, "i"),
}

#: Largest b² + c² + d² of a NIfTI quaternion taken as a rotation (float32 rounding of a 180° rotation).
QUATERNION_TOLERANCE = 1e-5


def check_nifti(path: Path) -> None:
    """Check a NIfTI file's voxel size, orientation and length (see the module docstring).

    Raises:
        VolumeValidationError: pixdim 0/negative/NaN, a NaN or non-unit quaternion, a NaN sform row.
        VolumeReadError: the file holds fewer voxel bytes than its header announces.
    """
    header, length = _nifti_header_and_length(path)
    for endian in "<>":
        size = struct.unpack(f"{endian}i", header[:4])[0] if len(header) >= 4 else 0
        if size in _NIFTI_LAYOUT and len(header) >= size:
            _check_nifti_geometry(header, endian, size, source=path)
            break
    end = nifti_data_end(header)
    if end is not None and length < end:
        raise VolumeReadError(
            f"cannot read the voxels of {path}: the file is truncated or corrupt ({length:,} bytes of data where "
            f"the header announces {end:,}); export the volume again"
        )


def _check_nifti_geometry(header: bytes, endian: str, size: int, *, source: Path) -> None:
    real, pixdim_at, qcode_at, scode_at, quat_at, qoff_at, srow_at, code = _NIFTI_LAYOUT[size]
    width = struct.calcsize(real)
    floats = lambda at, n: struct.unpack(f"{endian}{n}{real}", header[at : at + n * width])  # noqa: E731
    dim_code, dim_at = ("h", 40) if size == 348 else ("q", 16)
    ndim = struct.unpack(f"{endian}{dim_code}", header[dim_at : dim_at + struct.calcsize(dim_code)])[0]
    pixdim = floats(pixdim_at, 4)[1 : 1 + min(max(int(ndim), 1), 3)]  # only the axes the image has
    for axis, value in zip("ijk", pixdim):
        if not math.isfinite(value) or value <= 0:
            raise VolumeValidationError(
                f"{source} has an invalid voxel size in its header: pixdim along {axis} is {value} mm "
                f"(pixdim {tuple(pixdim)}); a reader would take 1 mm: fix the header or export the CT again"
            )
    qform_code = struct.unpack(f"{endian}{code}", header[qcode_at : qcode_at + struct.calcsize(code)])[0]
    sform_code = struct.unpack(f"{endian}{code}", header[scode_at : scode_at + struct.calcsize(code)])[0]
    if qform_code > 0:
        quaternion = floats(quat_at, 3)
        offsets = floats(qoff_at, 3)
        if not all(math.isfinite(v) for v in (*quaternion, *offsets)):
            raise VolumeValidationError(
                f"{source} has an invalid qform in its header (quaternion b, c, d = {quaternion}, offset "
                f"{offsets}): the orientation is unknown (a reader would flip axes); export the CT again"
            )
        norm2 = sum(v * v for v in quaternion)
        if norm2 > 1.0 + QUATERNION_TOLERANCE:
            raise VolumeValidationError(
                f"{source} has an invalid qform quaternion in its header (b, c, d = {quaternion}, b²+c²+d² = "
                f"{norm2:.4g} > 1): it is not a rotation (a reader would make up an oblique one); export the CT "
                "again"
            )
    if sform_code > 0:
        rows = floats(srow_at, 12)
        if not all(math.isfinite(v) for v in rows):
            raise VolumeValidationError(
                f"{source} has an invalid sform in its header (rows {rows}): the orientation is unknown; export "
                "the CT again"
            )


def _nifti_header_and_length(path: Path) -> tuple[bytes, int]:
    """The first 540 bytes (decompressed) and the total decompressed length, counted without keeping it.

    For ``.nii.gz`` every byte is decompressed: the gzip trailer's size field cannot be trusted (a stream
    cut short and given a new trailer would pass), and gzip's own CRC/length check runs at the end.
    """
    try:
        if path.name.lower().endswith(".gz"):
            return _gunzip_count(path)
        with path.open("rb") as stream:
            header = stream.read(540)
        return header, path.stat().st_size
    except (OSError, EOFError, zlib.error) as exc:
        raise VolumeReadError(
            f"cannot read the voxels of {path}: the file is truncated or corrupt ({exc}); export the volume again"
        ) from exc


def _gunzip_count(path: Path, keep: int = 540) -> tuple[bytes, int]:
    """The first ``keep`` decompressed bytes of a gzip file and its decompressed length (members concatenated).

    zlib directly, in bounded steps (a small file may inflate to gigabytes): about 25 % faster than
    :mod:`gzip`, which matters as every ``.nii.gz`` is decompressed once more by ITK. A stream cut short
    ends without its trailer and simply counts fewer bytes; corrupt data raise ``zlib.error``.
    """
    head = bytearray()
    length = 0
    inflater = zlib.decompressobj(31)
    with path.open("rb") as stream:
        pending = stream.read(1 << 20)
        while pending:
            out = inflater.decompress(pending, 1 << 24)
            length += len(out)
            if len(head) < keep:
                head += out[: keep - len(head)]
            pending = inflater.unconsumed_tail
            if inflater.eof and inflater.unused_data:  # another gzip member follows
                pending, inflater = inflater.unused_data + pending, zlib.decompressobj(31)
            if not pending:
                pending = stream.read(1 << 20)
    return bytes(head), length


def nifti_data_end(header: bytes) -> int | None:
    """Byte offset where a NIfTI-1/-2 file's voxel data end, from its header (None if unrecognised)."""
    for endian in "<>":
        if len(header) >= 348 and struct.unpack(f"{endian}i", header[:4])[0] == 348:
            dims = struct.unpack(f"{endian}8h", header[40:56])
            bitpix = struct.unpack(f"{endian}h", header[72:74])[0]
            offset = int(struct.unpack(f"{endian}f", header[108:112])[0])
        elif len(header) >= 540 and struct.unpack(f"{endian}i", header[:4])[0] == 540:
            bitpix = struct.unpack(f"{endian}h", header[14:16])[0]
            dims = struct.unpack(f"{endian}8q", header[16:80])
            offset = int(struct.unpack(f"{endian}q", header[168:176])[0])
        else:
            continue
        count = int(np.prod([max(int(d), 1) for d in dims[1 : int(dims[0]) + 1]], dtype=np.int64))
        return offset + count * int(bitpix) // 8
    return None
