"""Moving voxel arrays between grids: canonical orientations, resampling, exact reorientation and crops.

Conventions (see :mod:`SmoothSegNetLib.volume`): arrays are indexed ``[k, j, i]``; a
:class:`~SmoothSegNetLib.volume.Geometry` gives spacing, origin and direction per image axis ``(i, j, k)``
in LPS millimetres.

Orientation codes. A code is three letters, one per image axis in ``(i, j, k)`` order; letter ``n`` is the
patient direction the ``n``-th axis points *to* (the direction of increasing index): ``L``/``R`` (left/right),
``P``/``A`` (posterior/anterior), ``S``/``I`` (superior/inferior). ``"LPS"`` is the identity direction matrix
in LPS, ``"RAS"`` is ``diag(-1, -1, 1)``, and ``"PLI"`` (the paper's network orientation, as MONAI's
``Orientation(axcodes="PLI")``) has i pointing posterior, j left and k inferior. This is the convention of
nibabel / MONAI axis codes and of ITK's "to" codes; DICOM and ITK's older ``RAI``-style "from" codes name the
opposite letters.

Exactness. When the destination grid is a signed permutation of the source grid with integer offsets (a
reorientation, a crop, a paste back, or a canonical grid at the same spacing of an axis-aligned input),
:func:`resample` copies voxels with numpy indexing: no interpolation, values bit-identical. Otherwise it uses
SimpleITK's ``ResampleImageFilter`` with an identity transform, i.e. every destination voxel takes the source
value at the same LPS point. Where SimpleITK cannot be imported (a training machine that carries only
PyTorch, NumPy and SciPy), nearest and linear resampling fall back to :func:`_resample_scipy`, which follows
ITK's rules (see there) and gives the same voxels, except that a destination centre lying exactly half-way
between two source centres may take the other one under nearest (both are nearest; ITK's floating-point steps land
on either side). ``SMOOTHSEGNET_RESAMPLER=scipy`` forces it; bspline needs SimpleITK.
"""

from __future__ import annotations

import enum
import itertools
import os
from typing import Any

import numpy as np

from SmoothSegNetLib.volume import Geometry

#: LPS unit vector of each orientation letter.
_LETTERS: dict[str, tuple[float, float, float]] = {
    "L": (1.0, 0.0, 0.0),
    "R": (-1.0, 0.0, 0.0),
    "P": (0.0, 1.0, 0.0),
    "A": (0.0, -1.0, 0.0),
    "S": (0.0, 0.0, 1.0),
    "I": (0.0, 0.0, -1.0),
}
#: Index offsets closer than this (in voxels) to an integer are treated as exact grid alignment.
GRID_TOLERANCE_VOXELS = 1e-4


class Interpolation(str, enum.Enum):
    """How values between voxel centres are computed.

    ``NEAREST`` for labels (no new values), ``LINEAR`` for CT and probabilities, ``BSPLINE`` (cubic) for
    smooth upsampling of CT (may overshoot at edges).
    """

    NEAREST = "nearest"
    LINEAR = "linear"
    BSPLINE = "bspline"


def orientation_direction(orientation: str) -> np.ndarray:
    """The 3x3 LPS direction matrix (columns = i, j, k axes) of an orientation code like ``"PLI"``."""
    code = orientation.upper() if isinstance(orientation, str) else orientation
    valid = isinstance(code, str) and len(code) == 3 and all(c in _LETTERS for c in code)
    if valid:
        axes = {"LR": 0, "PA": 0, "SI": 0}
        for c in code:
            axes[next(k for k in axes if c in k)] += 1
        valid = all(n == 1 for n in axes.values())
    if not valid:
        raise ValueError(
            f"orientation must be three letters naming where the i, j, k axes point, one from each of "
            f"L/R, P/A, S/I (e.g. 'LPS', 'RAS', 'PLI'), got {orientation!r}"
        )
    return np.array([_LETTERS[c] for c in code], dtype=float).T


def orientation_code(geometry: Geometry) -> str:
    """The orientation code closest to ``geometry``'s direction (exact for axis-aligned grids)."""
    direction = geometry.direction_array
    letters = []
    for n in range(3):
        axis = direction[:, n]
        world = int(np.argmax(np.abs(axis)))
        letters.append("LPS"[world] if axis[world] > 0 else "RAI"[world])
    return "".join(letters)


def _match_axes(direction: np.ndarray, target: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """For each target axis ``n``: the source axis ``perm[n]`` closest to it and the sign to flip it with."""
    cosines = direction.T @ target  # [source axis, target axis]
    perm = max(itertools.permutations(range(3)), key=lambda p: sum(abs(cosines[p[n], n]) for n in range(3)))
    signs = tuple(1 if cosines[perm[n], n] >= 0 else -1 for n in range(3))
    return tuple(perm), signs


def _check_spacing(spacing_mm: Any) -> tuple[float, float, float]:
    values = np.broadcast_to(np.asarray(spacing_mm, dtype=float), (3,))
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(
            f"spacing_mm must be one or three finite values > 0 (mm, in i, j, k order), got {spacing_mm!r}"
        )
    return (float(values[0]), float(values[1]), float(values[2]))


def canonical_geometry(geometry: Geometry, spacing_mm: Any = None, orientation: str = "LPS") -> Geometry:
    """A grid with axes along ``orientation`` that covers the whole physical extent of ``geometry``.

    The extent is the bounding box (in the new axes) of the corners of all voxels, so no voxel of the input
    falls outside. When the new spacing does not divide the extent, the grid is centred on it.

    Args:
        geometry: the input grid (any direction, including oblique ones).
        spacing_mm: new voxel size in mm, one value or three in the new (i, j, k) order; ``None`` keeps, for
            each new axis, the spacing of the input axis closest to it (exactly the input spacing when the input
            is axis-aligned, in which case the result is the input grid reoriented, voxel for voxel).
        orientation: orientation code of the new axes (see the module docstring), e.g. ``"LPS"``, ``"RAS"``,
            ``"PLI"``.

    Returns:
        The canonical geometry (direction exactly the code's matrix).
    """
    target = orientation_direction(orientation)
    perm, _ = _match_axes(geometry.direction_array, target)
    if spacing_mm is None:
        spacing = tuple(geometry.spacing_mm[perm[n]] for n in range(3))
    else:
        spacing = _check_spacing(spacing_mm)
    size_ijk = np.asarray(geometry.size_ijk, dtype=float)
    corners_ijk = np.array(list(itertools.product(*[(-0.5, n - 0.5) for n in size_ijk])))
    along = geometry.index_to_lps(corners_ijk) @ target  # corner coordinates along the new axes (mm)
    low, high = along.min(axis=0), along.max(axis=0)
    extent = high - low
    step = np.asarray(spacing)
    sizes = np.maximum(1, np.ceil(extent / step - GRID_TOLERANCE_VOXELS)).astype(int)
    first_centre = low + (extent - sizes * step) / 2.0 + step / 2.0
    origin = target @ first_centre
    return Geometry.create((sizes[2], sizes[1], sizes[0]), spacing, origin, target)


def reoriented_geometry(geometry: Geometry, orientation: str) -> Geometry:
    """The same voxels with axes permuted and flipped so they point as closely as possible along ``orientation``.

    For an axis-aligned input the result's direction is exactly the code's; for an oblique one it stays
    oblique (no voxel moves, nothing is interpolated).
    """
    perm, signs = _match_axes(geometry.direction_array, orientation_direction(orientation))
    direction = geometry.direction_array
    size = geometry.size_ijk
    first = [0.0, 0.0, 0.0]  # source index of the new first voxel
    for n in range(3):
        if signs[n] < 0:
            first[perm[n]] = size[perm[n]] - 1
    new_direction = np.column_stack([signs[n] * direction[:, perm[n]] for n in range(3)]) + 0.0  # no -0.0
    return Geometry.create(
        (size[perm[2]], size[perm[1]], size[perm[0]]),
        [geometry.spacing_mm[perm[n]] for n in range(3)],
        geometry.index_to_lps(first),
        new_direction,
    )


def reorient_to(array_kji: np.ndarray, geometry: Geometry, orientation: str) -> tuple[np.ndarray, Geometry]:
    """Permute and flip ``array_kji`` (and its geometry) towards ``orientation``, exactly (no interpolation).

    Leading axes before ``[k, j, i]`` (e.g. channels) are kept. Returns ``(array, geometry)``.
    """
    target = reoriented_geometry(geometry, orientation)
    return resample(array_kji, geometry, target, Interpolation.NEAREST), target


def crop_geometry(geometry: Geometry, kji_slices: tuple[slice, slice, slice]) -> Geometry:
    """The geometry of ``array[kji_slices]``: same spacing and direction, origin moved to the first kept voxel.

    Args:
        geometry: the full grid.
        kji_slices: three slices in ``[k, j, i]`` order with step 1 (or ``None``); bounds follow numpy rules
            (negative counts from the end, out of range is clipped), and each must keep at least one voxel.
    """
    if not isinstance(kji_slices, tuple) or len(kji_slices) != 3 or not all(isinstance(s, slice) for s in kji_slices):
        raise ValueError(f"kji_slices must be a tuple of three slices in [k, j, i] order, got {kji_slices!r}")
    starts, sizes = [], []
    for axis, (s, n) in enumerate(zip(kji_slices, geometry.shape_kji)):
        start, stop, step = s.indices(n)
        if step != 1 or stop <= start:
            raise ValueError(f"kji_slices[{axis}] must have step 1 and keep at least one of {n} voxels, got {s!r}")
        starts.append(start)
        sizes.append(stop - start)
    k0, j0, i0 = starts
    return Geometry.create(sizes, geometry.spacing_mm, geometry.index_to_lps([i0, j0, k0]), geometry.direction_array)


def paste_crop(
    crop_kji: np.ndarray, kji_slices: tuple[slice, slice, slice], full: Geometry, default_value: float = 0
) -> np.ndarray:
    """Put a crop (``array[kji_slices]`` of a grid ``full``) back into a full-size array filled with ``default_value``.

    The inverse of cropping: ``paste_crop(a[s], s, g)[s] == a[s]``. Leading (channel) axes are kept.
    """
    crop_geom = crop_geometry(full, kji_slices)
    return resample(crop_kji, crop_geom, full, Interpolation.NEAREST, default_value)


def _exact_mapping(src: Geometry, dst: Geometry) -> tuple[list[int], list[int], list[int]] | None:
    """If every dst voxel centre is a src voxel centre: per dst axis n, (src axis, sign, src index of dst 0)."""
    to_src = np.linalg.inv(src.ijk_to_lps()) @ dst.ijk_to_lps()
    linear, offset = to_src[:3, :3], to_src[:3, 3]
    rounded = np.round(linear)
    if not np.allclose(linear, rounded, atol=GRID_TOLERANCE_VOXELS):
        return None
    if not np.allclose(np.abs(rounded).sum(axis=0), 1) or not np.allclose(np.abs(rounded).sum(axis=1), 1):
        return None
    if not np.allclose(offset, np.round(offset), atol=GRID_TOLERANCE_VOXELS):
        return None
    axes = [int(np.argmax(np.abs(rounded[:, n]))) for n in range(3)]
    signs = [int(rounded[axes[n], n]) for n in range(3)]
    starts = [int(np.round(offset[axes[n]])) for n in range(3)]
    return axes, signs, starts


def _resample_exact(
    array: np.ndarray, src: Geometry, dst: Geometry, mapping: tuple[list[int], list[int], list[int]], default: Any
) -> np.ndarray:
    axes, signs, starts = mapping
    lead = array.ndim - 3
    # Array axis p (0=k, 1=j, 2=i) of dst is image axis 2-p; it reads source image axis axes[2-p].
    order = [lead + 2 - axes[2 - p] for p in range(3)]
    moved = np.transpose(array, [*range(lead), *order])
    index, valid = [], []
    for p in range(3):
        n = 2 - p
        idx = starts[n] + signs[n] * np.arange(dst.shape_kji[p])
        ok = (idx >= 0) & (idx < src.size_ijk[axes[n]])
        index.append(idx[ok])
        valid.append(np.flatnonzero(ok))
    out = np.full(array.shape[:lead] + dst.shape_kji, default, dtype=array.dtype)
    if all(v.size for v in valid):
        target: Any = (Ellipsis, *np.ix_(*valid))
        source: Any = (Ellipsis, *np.ix_(*index))
        out[target] = moved[source]
    return out


def _working_array(array: np.ndarray, method: Interpolation) -> np.ndarray:
    """The array a backend resamples: masks, and integer data interpolated smoothly, in float32 (so that they
    are rounded back rather than truncated, as ITK would); anything else as it is."""
    integer = np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_
    smooth = method is not Interpolation.NEAREST
    return array.astype(np.float32) if (integer and smooth) or array.dtype == np.bool_ else array


def _in_input_dtype(result: np.ndarray, array: np.ndarray) -> np.ndarray:
    """A backend's result back in ``array``'s dtype: masks at 0.5, integers rounded and clipped to the type."""
    if array.dtype == np.bool_:
        return np.asarray(result >= 0.5)
    if np.issubdtype(array.dtype, np.integer) and result.dtype != array.dtype:
        info = np.iinfo(array.dtype)
        return np.clip(np.rint(result), info.min, info.max).astype(array.dtype)
    return result


_SITK_INTERPOLATORS = {Interpolation.NEAREST: "sitkNearestNeighbor", Interpolation.LINEAR: "sitkLinear"}


def _resample_sitk(array: np.ndarray, src: Geometry, dst: Geometry, method: Interpolation, default: Any) -> np.ndarray:
    import SimpleITK as sitk

    work = _working_array(array, method)
    image = sitk.GetImageFromArray(np.ascontiguousarray(work))
    src.apply_to(image)
    interpolator = getattr(sitk, _SITK_INTERPOLATORS.get(method, "sitkBSpline"))
    resampler = sitk.ResampleImageFilter()
    resampler.SetSize([int(n) for n in dst.size_ijk])
    resampler.SetOutputSpacing(dst.spacing_mm)
    resampler.SetOutputOrigin(dst.origin_lps_mm)
    resampler.SetOutputDirection(tuple(dst.direction_array.ravel()))
    resampler.SetTransform(sitk.Transform())
    resampler.SetInterpolator(interpolator)
    resampler.SetDefaultPixelValue(float(default))
    return _in_input_dtype(sitk.GetArrayFromImage(resampler.Execute(image)), array)


#: Destination voxels resampled per block by the SciPy path (bounds its index arrays to about 100 MB).
_SCIPY_BLOCK_VOXELS = 2_000_000
#: The environment variable that forces the SciPy path (``scipy``) even where SimpleITK is installed.
RESAMPLER_ENV = "SMOOTHSEGNET_RESAMPLER"


def _use_scipy(method: Interpolation) -> bool:
    """Whether :func:`resample` takes the SciPy path: forced by the environment, or SimpleITK is missing."""
    forced = os.environ.get(RESAMPLER_ENV, "").strip().lower()
    if forced not in ("", "scipy", "simpleitk"):
        raise ValueError(f"{RESAMPLER_ENV} must be 'scipy' or 'simpleitk' (or unset), got {forced!r}")
    if forced == "scipy":
        scipy_path = True
    elif forced == "simpleitk":
        scipy_path = False
    else:
        try:
            import SimpleITK  # noqa: F401
        except ImportError:
            scipy_path = True
        else:
            scipy_path = False
    if scipy_path and method is Interpolation.BSPLINE:
        raise RuntimeError(
            "bspline resampling needs SimpleITK (pip install SimpleITK); nearest and linear work without it"
        )
    return scipy_path


def _resample_scipy(array: np.ndarray, src: Geometry, dst: Geometry, method: Interpolation, default: Any) -> np.ndarray:
    """Nearest or linear resampling with NumPy and SciPy, by ITK's rules, for machines without SimpleITK.

    The rules of ``itk::ResampleImageFilter`` with an identity transform: a destination voxel whose continuous
    source index lies in ``[-0.5, n - 0.5)`` on every axis takes a value, the others ``default``; nearest rounds
    half-way indices up (``floor(x + 0.5)``); linear interpolates between the two neighbouring voxel centres and,
    in the outer half voxel, takes the edge voxel's value. The index of each destination voxel is computed in
    float64 from the two grids' matrices, one block of destination slices at a time.
    """
    from scipy import ndimage

    work = _working_array(array, method)
    to_src = np.linalg.inv(src.ijk_to_lps()) @ dst.ijk_to_lps()
    linear, offset = to_src[:3, :3], to_src[:3, 3]
    size = np.asarray(src.size_ijk)
    nk, nj, ni = dst.shape_kji
    out = np.empty(dst.shape_kji, dtype=work.dtype)
    fill = np.asarray(default).astype(work.dtype)
    plane = np.stack(np.meshgrid(np.arange(nj, dtype=float), np.arange(ni, dtype=float), indexing="ij"), -1)
    step = max(1, _SCIPY_BLOCK_VOXELS // max(1, nj * ni))
    for k0 in range(0, nk, step):
        ks = np.arange(k0, min(nk, k0 + step), dtype=float)
        # destination (i, j, k) of each voxel of the block, [k, j, i, 3] -> continuous source (i, j, k)
        ijk = np.empty((ks.size, nj, ni, 3))
        ijk[..., 0] = plane[None, :, :, 1]
        ijk[..., 1] = plane[None, :, :, 0]
        ijk[..., 2] = ks[:, None, None]
        index = ijk @ linear.T + offset
        inside = np.all((index >= -0.5) & (index < size - 0.5), axis=-1)
        values = np.full(inside.shape, fill, dtype=work.dtype)
        chosen = index[inside]
        if method is Interpolation.NEAREST:
            nearest = np.clip(np.floor(chosen + 0.5).astype(np.intp), 0, size - 1)
            values[inside] = work[nearest[:, 2], nearest[:, 1], nearest[:, 0]]
        else:
            coords = chosen[:, ::-1].T  # (k, j, i) rows for the [k, j, i] array
            values[inside] = ndimage.map_coordinates(work, coords, order=1, mode="nearest", prefilter=False)
        out[k0 : k0 + ks.size] = values
    return _in_input_dtype(out, array)


def resample(
    array_kji: np.ndarray,
    src: Geometry,
    dst: Geometry,
    interpolation: Interpolation | str = Interpolation.LINEAR,
    default_value: float = 0,
) -> np.ndarray:
    """The values of ``array_kji`` (on ``src``) at the voxel centres of ``dst``; same LPS point, same value.

    Args:
        array_kji: ``[k, j, i]`` array on ``src``, or ``[c, k, j, i]`` (each channel resampled alike).
        src: grid of ``array_kji``.
        dst: grid to resample onto.
        interpolation: ``nearest`` (labels), ``linear`` or ``bspline``; ignored where the grids align exactly.
        default_value: value of dst voxels outside the src grid.

    Returns:
        Array on ``dst`` (shape ``dst.shape_kji``, with leading axes kept), same dtype as ``array_kji``;
        integer data interpolated with ``linear``/``bspline`` is rounded to the nearest integer and clipped to
        the type's range.
    """
    array = np.asarray(array_kji)
    try:
        method = Interpolation(interpolation)
    except ValueError as exc:
        allowed = ", ".join(m.value for m in Interpolation)
        raise ValueError(f"interpolation must be one of {allowed}, got {interpolation!r}") from exc
    if array.ndim not in (3, 4) or array.shape[-3:] != src.shape_kji:
        raise ValueError(
            f"array_kji has shape {array.shape} but src has shape_kji {src.shape_kji}: "
            "give a [k, j, i] (or [c, k, j, i]) array on src"
        )
    mapping = _exact_mapping(src, dst)
    if mapping is not None:
        return _resample_exact(array, src, dst, mapping, default_value)
    backend = _resample_scipy if _use_scipy(method) else _resample_sitk
    if array.ndim == 4:
        return np.stack([backend(channel, src, dst, method, default_value) for channel in array])
    return backend(array, src, dst, method, default_value)
