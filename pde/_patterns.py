"""Statistics of spatial patterns: connected components and the dominant wavelength.

Used to check that pattern-forming models make patterns (spots, stripes) without comparing
pixels. Plain numpy, on host arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["connected_components", "radial_power_spectrum", "dominant_wavelength"]


def connected_components(mask: Any, *, periodic: bool = True) -> tuple[np.ndarray, int]:
    """Label the 4-connected components of a boolean ``[H, W]`` mask.

    Returns ``(labels, n)``: ``labels`` is ``-1`` off the mask and ``0 .. n-1`` on it. With
    ``periodic`` the grid wraps around (a torus). Labels propagate as the minimum over
    neighbours until nothing changes.
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"mask must have shape [H, W]; got shape {m.shape}")
    big = m.size
    labels = np.where(m, np.arange(m.size).reshape(m.shape), big)
    while True:
        best = labels.copy()
        for axis in (0, 1):
            for shift in (1, -1):
                if periodic:
                    nb = np.roll(labels, shift, axis)
                else:
                    nb = np.full_like(labels, big)
                    src = [slice(None)] * 2
                    dst = [slice(None)] * 2
                    src[axis] = slice(None, -1) if shift == 1 else slice(1, None)
                    dst[axis] = slice(1, None) if shift == 1 else slice(None, -1)
                    nb[tuple(dst)] = labels[tuple(src)]
                best = np.minimum(best, nb)
        best = np.where(m, best, big)
        if np.array_equal(best, labels):
            break
        labels = best
    roots = np.unique(labels[m])
    out = np.full(m.shape, -1)
    out[m] = np.searchsorted(roots, labels[m])
    return out, int(roots.size)


def radial_power_spectrum(field: Any, dx: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of a square ``[N, N]`` field (mean removed).

    Returns ``(k, P)``: wavenumbers ``k = 2π m / (N dx)`` for shells ``m = 1 .. N/2`` and the
    mean of ``|FFT|²`` over each shell ``m - 1/2 <= |m_vec| < m + 1/2``.
    """
    f = np.asarray(field, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] != f.shape[1]:
        raise ValueError(f"field must have shape [N, N]; got shape {f.shape}")
    n = f.shape[0]
    power = np.abs(np.fft.fft2(f - f.mean())) ** 2
    m = np.fft.fftfreq(n, d=1.0 / n)
    radius = np.sqrt(m[:, None] ** 2 + m[None, :] ** 2)
    shells = np.rint(radius).astype(int)
    counts = np.bincount(shells.ravel())
    sums = np.bincount(shells.ravel(), weights=power.ravel())
    idx = np.arange(1, n // 2 + 1)
    return 2 * np.pi * idx / (n * dx), sums[idx] / np.maximum(counts[idx], 1)


def dominant_wavelength(field: Any, dx: float = 1.0) -> float:
    """The wavelength ``2π / k*`` of the strongest shell of `radial_power_spectrum`."""
    k, p = radial_power_spectrum(field, dx)
    return float(2 * np.pi / k[int(np.argmax(p))])
