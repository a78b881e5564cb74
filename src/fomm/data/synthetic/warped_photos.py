"""The "warped-photos" dataset: real photographs deformed by smooth thin-plate-spline warps.

Photos are scikit-image's sample images that ship inside the wheel (loaded offline; nothing is
downloaded). Each video takes a random crop of one photo (grey photos get a random two-colour
tint, half the crops are mirrored) and deforms it over time.

The warp and what the ground truth means
-----------------------------------------
For frame ``t`` the *backward map* ``Φ_t`` sends a point ``p`` of frame ``t`` to the point of
frame 0 it shows (all points ``(x, y)`` in the normalised [-1, 1] pixel-centre convention)::

    Φ_t(p) = A_t(p + D_t(p)),     Φ_0 = identity

where ``D_t`` is a thin-plate spline interpolating displacements ``d_k(t)`` at 16 fixed,
jittered control points (each a sum of sinusoids minus its value at t = 0) and ``A_t`` a mild
global similarity about the frame centre (also identity at t = 0).

* ``flow[t, row, col] = Φ_t(x_col, y_row)``, so
  ``F.grid_sample(frame0, flow[t][None], align_corners=True)`` reproduces frame ``t`` wherever
  ``flow`` lies inside [-1, 1] (outside, frame ``t`` shows photo content from beyond the crop
  that frame 0 does not contain).
* Frames are rendered *from* that map: frame ``t`` is the bilinear sample, at ``Φ_t`` of its
  pixel grid, of a base image that is frame 0 plus a margin of real photo around it. Frame 0 is
  the base image's centre, so the flow is exact up to bilinear interpolation and 8-bit rounding.
* ``keypoints[t, i]`` is the forward motion of the fixed frame-0 point ``q_i``: the point ``p``
  with ``Φ_t(p) = q_i``, found by Newton's method on the analytic Jacobian of ``Φ_t`` (residual
  checked below 1e-6). So bilinearly sampling ``flow[t]`` at ``keypoints[t, i]`` gives back
  ``q_i`` (up to interpolation of the flow between pixel centres). Visibility is "inside the
  frame" (|x|, |y| <= 1): warps do not occlude.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from fomm.geometry import to_pixels
from fomm.data.synthetic.common import SmoothTrajectory, SyntheticVideo, random_colour, video_rng

#: scikit-image sample images bundled in the wheel (checked to load without network access).
COLOUR_PHOTOS: tuple[str, ...] = (
    "astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "motorcycle",
)
GREY_PHOTOS: tuple[str, ...] = ("camera", "brick", "grass", "gravel", "moon", "coins", "clock")
PHOTOS: tuple[str, ...] = COLOUR_PHOTOS + GREY_PHOTOS

#: Number of tracked points (a jittered 4x4 grid in frame 0) and of TPS control points.
NUM_KEYPOINTS = 16
KEYPOINT_NAMES: tuple[str, ...] = tuple(f"p{r}{c}" for r in range(4) for c in range(4))
#: 4-neighbour edges of the keypoint grid (for drawing only; no anatomy here).
KEYPOINT_EDGES: tuple[tuple[int, int], ...] = tuple(
    [(4 * r + c, 4 * r + c + 1) for r in range(4) for c in range(3)]
    + [(4 * r + c, 4 * r + c + 4) for r in range(3) for c in range(4)]
)


@functools.lru_cache(maxsize=None)
def load_photo(name: str) -> np.ndarray:
    """A bundled photo as ``(H, W, 3)`` uint8 RGB or ``(H, W)`` uint8 grey (cached per process)."""
    import skimage.data  # lazy: only this dataset needs scikit-image

    if name == "motorcycle":
        image = skimage.data.stereo_motorcycle()[0]
    else:
        image = getattr(skimage.data, name)()
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[..., :3]
    return np.ascontiguousarray(image.astype(np.uint8))


def _tps_kernel(r2: np.ndarray) -> np.ndarray:
    """Thin-plate radial basis ``U = r^2 log r^2`` (0 at r = 0) from squared distances."""
    return r2 * np.log(np.maximum(r2, 1e-20))


@dataclass
class WarpField:
    """The backward maps ``Φ_t`` of one video (see the module docstring).

    Attributes:
        control: ``(K, 2)`` TPS control points (normalised).
        tps_weights: ``(T, K, 2)`` radial weights per frame.
        tps_affine: ``(T, 3, 2)`` TPS affine part per frame (rows: 1, x, y).
        global_matrix: ``(T, 2, 2)`` global linear part ``A_t``.
        global_shift: ``(T, 2)`` global translation of ``A_t``.
    """

    control: np.ndarray
    tps_weights: np.ndarray
    tps_affine: np.ndarray
    global_matrix: np.ndarray
    global_shift: np.ndarray

    def displacement(self, points: np.ndarray) -> np.ndarray:
        """``D_t(points)`` for all frames: ``points`` ``(N, 2)`` -> ``(T, N, 2)``."""
        r2 = ((points[:, None, :] - self.control[None]) ** 2).sum(-1)  # (N, K)
        basis = _tps_kernel(r2)
        poly = np.concatenate([np.ones((len(points), 1)), points], 1)  # (N, 3)
        # matmul (BLAS) rather than einsum: this runs over every pixel of every frame.
        return basis[None] @ self.tps_weights + poly[None] @ self.tps_affine

    def apply(self, points: np.ndarray) -> np.ndarray:
        """``Φ_t(points)`` for all frames: ``(N, 2)`` -> ``(T, N, 2)``."""
        q = points[None] + self.displacement(points)
        return q @ self.global_matrix.transpose(0, 2, 1) + self.global_shift[:, None]

    def apply_at(self, t: int, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``Φ_t`` and its Jacobian at ``points`` ``(N, 2)`` -> ``(N, 2)``, ``(N, 2, 2)``."""
        diff = points[:, None, :] - self.control[None]  # (N, K, 2)
        r2 = (diff ** 2).sum(-1)
        w, a = self.tps_weights[t], self.tps_affine[t]
        disp = _tps_kernel(r2) @ w + a[0] + points @ a[1:]
        # d/dp [r^2 log r^2] = (2 log r^2 + 2) (p - c)
        grad_u = (2.0 * np.log(np.maximum(r2, 1e-20)) + 2.0)[..., None] * diff  # (N, K, 2)
        # J_D[n, c, j] = sum_k w[k, c] dU_k/dp_j + a[1 + j, c]
        jac_d = np.einsum("kc,nkj->ncj", w, grad_u) + a[1:].T[None]
        m = self.global_matrix[t]
        value = (points + disp) @ m.T + self.global_shift[t]
        jac = np.einsum("ij,njk->nik", m, np.eye(2)[None] + jac_d)
        return value, jac

    def track(self, points: np.ndarray, iterations: int = 30) -> np.ndarray:
        """Forward-carry frame-0 ``points`` ``(N, 2)``: solve ``Φ_t(p) = q`` -> ``(T, N, 2)``."""
        T = self.tps_weights.shape[0]
        out = np.empty((T, len(points), 2))
        guess = points.copy()
        for t in range(T):
            p = guess.copy()  # the previous frame's answer: the warp moves smoothly
            for _ in range(iterations):
                value, jac = self.apply_at(t, p)
                step = np.linalg.solve(jac, (value - points)[..., None])[..., 0]
                p = p - step
                if np.abs(step).max() < 1e-12:
                    break
            residual = np.abs(self.apply_at(t, p)[0] - points).max()
            if residual > 1e-6:  # cannot happen for fold-free warps; guard the ground truth
                raise RuntimeError(f"keypoint inversion did not converge (residual {residual})")
            out[t] = p
            guess = p
        return out


def sample_warp(rng: np.random.Generator, frames: int, strength: float = 1.0) -> WarpField:
    """Draw a smooth random warp for ``frames`` frames (random draws independent of ``frames``).

    ``strength`` scales the TPS displacements; :func:`generate_warped_video` lowers it when a
    draw would fold the image (Jacobian determinant too small).
    """
    grid = np.linspace(-1.0, 1.0, 4)
    control = np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2)
    control = control + rng.uniform(-0.15, 0.15, control.shape)
    k = len(control)
    amp = rng.uniform(0.04, 0.12)
    disp_traj = SmoothTrajectory.sample(rng, np.zeros(2 * k), np.full(2 * k, amp), components=2,
                                        min_period=16.0, max_period=90.0)
    glob = SmoothTrajectory.sample(
        rng, np.zeros(4), np.array([rng.uniform(0.0, 0.12), rng.uniform(0.0, 0.08),
                                    rng.uniform(0.0, 0.1), rng.uniform(0.0, 0.1)]),
        components=2, min_period=20.0, max_period=100.0)
    t = np.arange(frames, dtype=np.float64)
    # Subtract the t = 0 value so frame 0 is the undeformed crop and Φ_0 is the identity.
    disp = (disp_traj(t) - disp_traj(0.0)).reshape(frames, k, 2) * strength
    g = glob(t) - glob(0.0)  # rotation, log-scale, shift x, shift y
    c, s, sc = np.cos(g[:, 0]), np.sin(g[:, 0]), np.exp(g[:, 1])
    matrix = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2) * sc[:, None, None]

    # TPS system [[K + λI, P], [P^T, 0]] is the same for every frame: invert it once.
    basis = _tps_kernel(((control[:, None] - control[None]) ** 2).sum(-1))
    poly = np.concatenate([np.ones((k, 1)), control], 1)
    system = np.zeros((k + 3, k + 3))
    system[:k, :k] = basis + 1e-8 * np.eye(k)
    system[:k, k:] = poly
    system[k:, :k] = poly.T
    rhs = np.concatenate([disp, np.zeros((frames, 3, 2))], 1)  # (T, K + 3, 2)
    coef = np.einsum("ij,tjc->tic", np.linalg.inv(system), rhs)
    return WarpField(control, coef[:, :k], coef[:, k:], matrix, g[:, 2:4])


def _min_jacobian_det(flow: np.ndarray) -> float:
    """Smallest Jacobian determinant of a ``(T, H, W, 2)`` map (finite differences, per pixel)."""
    dx = np.diff(flow, axis=2)[:, :-1]
    dy = np.diff(flow, axis=1)[:, :, :-1]
    det = dx[..., 0] * dy[..., 1] - dx[..., 1] * dy[..., 0]
    h, w = flow.shape[1:3]
    return float(det.min() * (w - 1) * (h - 1) / 4.0)


@dataclass
class PhotoCrop:
    """Where a video's frame 0 comes from: photo, crop square (photo pixels), flip, tint."""

    photo: str
    x0: float
    y0: float
    side: float
    flip: bool
    tint: tuple[np.ndarray, np.ndarray] | None

    @classmethod
    def sample(cls, rng: np.random.Generator) -> PhotoCrop:
        """Random crop covering 30-75% of the photo's shorter side, kept inside the photo."""
        name = PHOTOS[int(rng.integers(len(PHOTOS)))]
        h, w = load_photo(name).shape[:2]
        side = rng.uniform(0.3, 0.75) * min(h, w)
        x0 = rng.uniform(0.0, w - side)
        y0 = rng.uniform(0.0, h - side)
        flip = bool(rng.uniform() < 0.5)
        tint = None
        if name in GREY_PHOTOS:
            dark = random_colour(rng, val=(0.0, 0.35))
            light = random_colour(rng, sat=(0.0, 0.5), val=(0.7, 1.0))
            tint = (dark, light)
        return cls(name, float(x0), float(y0), float(side), flip, tint)

    def base_image(self, size: int, margin: int) -> np.ndarray:
        """Frame 0 with ``margin`` extra pixels each side: ``(size+2m, size+2m, 3)`` float32 [0, 1].

        Sample ``i`` (``-margin <= i < size + margin``) of the output covers photo pixels
        ``x0 + [i, i+1) * side / size``; the photo is low-passed first so the downscale does
        not alias.
        """
        photo = load_photo(self.photo).astype(np.float32) / 255.0
        if photo.ndim == 2:
            dark, light = self.tint
            photo = dark.astype(np.float32) + photo[..., None] * (light - dark).astype(np.float32)
        if self.flip:
            photo = photo[:, ::-1]
        step = self.side / size
        if step > 1.0:
            sigma = 0.5 * np.sqrt(step * step - 1.0)
            photo = cv2.GaussianBlur(np.ascontiguousarray(photo), (0, 0), sigma)
        idx = np.arange(-margin, size + margin, dtype=np.float64)
        xs = (self.x0 + (idx + 0.5) * step - 0.5).astype(np.float32)
        ys = (self.y0 + (idx + 0.5) * step - 0.5).astype(np.float32)
        mapx, mapy = np.meshgrid(xs, ys)
        return cv2.remap(np.ascontiguousarray(photo), mapx, mapy, interpolation=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT_101)


def bilinear_sample(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample ``image`` ``(H, W, C)`` at pixel coordinates ``x``, ``y`` (any shape ``S``), with
    exact float weights (as ``grid_sample``), clamping to the border -> ``(*S, C)``."""
    h, w = image.shape[:2]
    flat = image.reshape(h * w, -1)
    x = np.clip(x, 0.0, w - 1.0)
    y = np.clip(y, 0.0, h - 1.0)
    x0 = np.minimum(x.astype(np.int64), w - 2)  # floor, as x >= 0
    y0 = np.minimum(y.astype(np.int64), h - 2)
    fx = (x - x0).astype(np.float32)[..., None]
    fy = (y - y0).astype(np.float32)[..., None]
    i00 = y0 * w + x0
    top = flat[i00] + fx * (flat[i00 + 1] - flat[i00])
    bottom = flat[i00 + w] + fx * (flat[i00 + w + 1] - flat[i00 + w])
    return top + fy * (bottom - top)


@dataclass
class WarpedScene:
    """Everything a warped-photo video is made from: its appearance (``crop``, the frame-0
    ``points`` that are tracked) and its motion (``warp`` and its backward maps ``flow``
    ``(T, size, size, 2)``, identity at frame 0)."""

    crop: PhotoCrop
    points: np.ndarray
    warp: WarpField
    flow: np.ndarray


def sample_warped_scene(seed: int, index: int, frames: int, size: int) -> WarpedScene:
    """The crop, tracked points and warp of warped-photo video ``index`` of the dataset with
    ``seed`` (the warp is weakened until it does not fold, see :func:`sample_warp`)."""
    rng = video_rng(seed, "warped-photos", index)
    crop = PhotoCrop.sample(rng)
    grid = np.linspace(-0.75, 0.75, 4)
    points = np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2)
    points = points + rng.uniform(-0.12, 0.12, points.shape)
    warp_seed = int(rng.integers(2**63))

    coords = np.linspace(-1.0, 1.0, size)
    pixels = np.stack(np.meshgrid(coords, coords), -1).reshape(-1, 2)  # row-major (y, x) order
    # Draw the warp from its own generator so lowering the strength re-uses the same draws.
    strength = 1.0
    for _ in range(6):
        warp = sample_warp(np.random.default_rng(warp_seed), frames, strength)
        flow = warp.apply(pixels).reshape(frames, size, size, 2)
        if frames < 2 or _min_jacobian_det(flow) > 0.3:
            break
        strength *= 0.6
    return WarpedScene(crop, points, warp, flow)


def render_warped_frames(crop: PhotoCrop, flow: np.ndarray) -> np.ndarray:
    """Frames ``(T, size, size, 3)`` uint8 of ``crop`` under the backward maps ``flow``
    ``(T, size, size, 2)``: frame ``t`` samples, at ``flow[t]``, frame 0 with a margin of real
    photo around it; frame 0 (identity map) is the crop itself, exactly."""
    size = flow.shape[1]
    margin = int(np.ceil(0.6 * size)) + 2
    base = crop.base_image(size, margin)
    # Frame-0 pixel coordinates of Φ_t(p), shifted into the base image.
    pixels_0 = to_pixels(flow, size, size) + margin
    px, py = pixels_0[..., 0], pixels_0[..., 1]
    video = bilinear_sample(base, px, py)
    video[0] = base[margin:margin + size, margin:margin + size]  # exactly, not re-interpolated
    return (np.clip(video, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def generate_warped_video(seed: int, index: int, frames: int, size: int) -> SyntheticVideo:
    """Generate warped-photo video ``index`` of the dataset with ``seed``.

    Returns:
        :class:`SyntheticVideo` with frames ``(T, size, size, 3)`` uint8, keypoints
        ``(T, 16, 2)`` float32, visibility ``(T, 16)`` bool, flow ``(T, size, size, 2)``
        float32 (backward map to frame 0, see the module docstring), labels None.
    """
    scene = sample_warped_scene(seed, index, frames, size)
    keypoints = scene.warp.track(scene.points)
    return SyntheticVideo(
        name=f"photo{index:05d}",
        frames=render_warped_frames(scene.crop, scene.flow),
        keypoints=keypoints.astype(np.float32),
        visibility=(np.abs(keypoints) <= 1.0).all(-1),
        flow=scene.flow.astype(np.float32),
        labels=None,
    )
