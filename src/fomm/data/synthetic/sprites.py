"""The "sprites" dataset: articulated, textured 2-D figures moving over textured backgrounds.

A figure has a torso, a head and four two-segment limbs (10 parts), each drawn as a tapered
capsule (the set of points within a linearly varying radius of a segment) with its own
procedural texture attached to the part. Joints follow smooth random angle trajectories; the
whole figure also translates, rotates and scales. Parts are drawn in a per-video depth order in
which each limb is either in front of or behind the torso, so limbs occlude the torso and each
other.

Ground truth: 15 joint tracks ``(T, 15, 2)`` float32 (x, y) in [-1, 1] (pixel-centre convention,
see :mod:`fomm.data.synthetic.common`), visibility ``(T, 15)`` bool and, on request, per-frame
part-label maps ``(T, H, W)`` uint8 (0 background, ``k`` = part ``k - 1`` of :data:`PART_NAMES`).

Visibility rule (the same test that builds the label map, so the two agree exactly): a joint is
visible iff it lies inside the frame (|x|, |y| <= 1) and the front-most part whose shape contains
the joint is one of the joint's *owner* parts (:data:`JOINT_OWNERS`, the parts meeting there).
The label map labels each pixel centre with the front-most part containing it.

Rendering is anti-aliased twice over: shapes get analytic coverage from their signed distance
(a one-sample-wide ramp) on a ``supersample``-times finer grid, which is then box-averaged down.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fomm.data.synthetic.common import (
    SmoothTrajectory,
    SyntheticVideo,
    TransferredTrajectory,
    pixel_to_norm,
    video_rng,
)
from fomm.data.synthetic.textures import Background, PartTexture
from fomm.geometry import pixel_scale

JOINT_NAMES: tuple[str, ...] = (
    "head", "neck", "pelvis",
    "l_shoulder", "l_elbow", "l_wrist",
    "r_shoulder", "r_elbow", "r_wrist",
    "l_hip", "l_knee", "l_ankle",
    "r_hip", "r_knee", "r_ankle",
)
_J = {name: i for i, name in enumerate(JOINT_NAMES)}

#: Bones as pairs of joint indices (for drawing skeletons and graph priors).
SKELETON_EDGES: tuple[tuple[int, int], ...] = tuple(
    (_J[a], _J[b]) for a, b in (
        ("head", "neck"), ("neck", "pelvis"),
        ("neck", "l_shoulder"), ("l_shoulder", "l_elbow"), ("l_elbow", "l_wrist"),
        ("neck", "r_shoulder"), ("r_shoulder", "r_elbow"), ("r_elbow", "r_wrist"),
        ("pelvis", "l_hip"), ("l_hip", "l_knee"), ("l_knee", "l_ankle"),
        ("pelvis", "r_hip"), ("r_hip", "r_knee"), ("r_knee", "r_ankle"),
    )
)

PART_NAMES: tuple[str, ...] = (
    "torso", "head",
    "l_upper_arm", "l_lower_arm", "r_upper_arm", "r_lower_arm",
    "l_upper_leg", "l_lower_leg", "r_upper_leg", "r_lower_leg",
)
_P = {name: i for i, name in enumerate(PART_NAMES)}

#: For each joint, the parts that meet at it; the joint is visible when one of these is in front.
JOINT_OWNERS: tuple[frozenset[int], ...] = tuple(
    frozenset(_P[p] for p in parts) for parts in (
        ("head",), ("torso", "head"), ("torso",),
        ("torso", "l_upper_arm"), ("l_upper_arm", "l_lower_arm"), ("l_lower_arm",),
        ("torso", "r_upper_arm"), ("r_upper_arm", "r_lower_arm"), ("r_lower_arm",),
        ("torso", "l_upper_leg"), ("l_upper_leg", "l_lower_leg"), ("l_lower_leg",),
        ("torso", "r_upper_leg"), ("r_upper_leg", "r_lower_leg"), ("r_lower_leg",),
    )
)

# Limb table: (side, upper part, lower part, root joint, middle joint, end joint, is_arm).
# Side +1 is screen-right (the figure's left when it faces the viewer).
_LIMBS = (
    (+1, "l_upper_arm", "l_lower_arm", "l_shoulder", "l_elbow", "l_wrist", True),
    (-1, "r_upper_arm", "r_lower_arm", "r_shoulder", "r_elbow", "r_wrist", True),
    (+1, "l_upper_leg", "l_lower_leg", "l_hip", "l_knee", "l_ankle", False),
    (-1, "r_upper_leg", "r_lower_leg", "r_hip", "r_knee", "r_ankle", False),
)


@dataclass
class SpriteFigure:
    """Appearance and proportions of one figure (fixed for a whole video).

    Lengths and radii are in body units; multiply by the global scale to get normalised image
    units (where the frame spans [-1, 1]).

    Attributes:
        torso_length, chest_radius, waist_radius: torso capsule from neck to pelvis.
        head_radius, head_half_length, neck_length: head capsule, centred ``neck_length`` above
            the neck, with a segment of half-length ``head_half_length`` along the head axis.
        shoulder_width, hip_width: lateral offsets of shoulders (from the neck) and hips (from
            the pelvis).
        arm_lengths, leg_lengths: ``(2,)`` upper and lower segment lengths.
        arm_radii, leg_radii: ``(3,)`` radii at the root, middle and end joints.
        textures: one :class:`PartTexture` per part, in :data:`PART_NAMES` order.
        depth: ``(10,)`` drawing depth per part; larger is nearer (drawn later).
        background: the static :class:`Background`.
    """

    torso_length: float
    chest_radius: float
    waist_radius: float
    head_radius: float
    head_half_length: float
    neck_length: float
    shoulder_width: float
    hip_width: float
    arm_lengths: np.ndarray
    leg_lengths: np.ndarray
    arm_radii: np.ndarray
    leg_radii: np.ndarray
    textures: list[PartTexture]
    depth: np.ndarray
    background: Background

    @property
    def draw_order(self) -> np.ndarray:
        """Part indices ``(10,)`` from back to front."""
        return np.argsort(self.depth, kind="stable")

    @classmethod
    def sample(cls, rng: np.random.Generator) -> SpriteFigure:
        """Draw random proportions, textures, depth order and background."""
        u = rng.uniform
        chest = u(0.12, 0.17)
        waist = u(0.7, 0.95) * chest
        head_r = u(0.09, 0.13)
        depth = np.zeros(len(PART_NAMES))
        depth[_P["head"]] = 0.5  # head in front of the torso (covers the top of the neck)
        for k, (_, upper, lower, *_rest) in enumerate(_LIMBS):
            side = 1.0 if u() < 0.5 else -1.0  # in front of or behind the torso
            depth[_P[upper]] = side * (1.0 + 0.1 * k)
            depth[_P[lower]] = side * (1.0 + 0.1 * k) + 0.05  # forearm/shin over upper segment
        return cls(
            torso_length=u(0.38, 0.5),
            chest_radius=chest,
            waist_radius=waist,
            head_radius=head_r,
            head_half_length=u(0.15, 0.45) * head_r,
            neck_length=u(0.9, 1.2) * head_r,
            shoulder_width=u(0.6, 0.8) * chest,
            hip_width=u(0.45, 0.65) * waist,
            arm_lengths=np.array([u(0.22, 0.3), u(0.2, 0.28)]),
            leg_lengths=np.array([u(0.26, 0.34), u(0.24, 0.32)]),
            arm_radii=np.array([u(0.055, 0.075), u(0.048, 0.062), u(0.04, 0.055)]),
            leg_radii=np.array([u(0.07, 0.095), u(0.058, 0.075), u(0.048, 0.065)]),
            textures=[PartTexture.sample(rng) for _ in PART_NAMES],
            depth=depth,
            background=Background.sample(rng),
        )


@dataclass
class SpriteMotion:
    """Smooth random trajectories of one video.

    Channels of ``global_``: centre x, centre y (normalised units, of the pelvis-neck midpoint
    region), rotation (radians), log-scale. ``angles``: torso lean, head tilt, then per limb (in
    ``_LIMBS`` order) the root angle (radians away from hanging straight down, outwards
    positive) and the bend at the middle joint.
    """

    global_: SmoothTrajectory | TransferredTrajectory
    angles: SmoothTrajectory | TransferredTrajectory

    def transferred_to(self, start: SpriteMotion) -> SpriteMotion:
        """This motion performed from ``start``'s first pose: every channel (position, rotation,
        log-scale, joint angles) moves as this one does, from where ``start`` is at frame 0.

        It is relative motion transfer in the space the figures are generated in, the ground truth
        of relative animation: ``value(t) = start(0) + self(t) - self(0)``.
        """
        return SpriteMotion(
            global_=TransferredTrajectory(self.global_, start.global_(0.0)),
            angles=TransferredTrajectory(self.angles, start.angles(0.0)),
        )

    @classmethod
    def sample(cls, rng: np.random.Generator) -> SpriteMotion:
        """Draw trajectories; amplitudes keep the figure mostly in frame and joints plausible."""
        u = rng.uniform
        g_off = np.array([u(-0.15, 0.15), u(-0.05, 0.12), u(-0.25, 0.25), np.log(u(0.85, 1.1))])
        g_amp = np.array([u(0.1, 0.25), u(0.05, 0.15), u(0.1, 0.35), u(0.03, 0.12)])
        a_off = [u(-0.15, 0.15), u(-0.2, 0.2)]
        a_amp = [u(0.05, 0.25), u(0.1, 0.4)]
        for _, *_rest, is_arm in _LIMBS:
            if is_arm:  # arms swing widely, sometimes across the torso (negative root angle)
                a_off += [u(0.0, 1.0), u(0.5, 1.2)]
                a_amp += [u(0.6, 1.4), u(0.3, 0.8)]
            else:
                a_off += [u(0.0, 0.3), u(0.35, 0.7)]
                a_amp += [u(0.2, 0.55), u(0.1, 0.45)]
        return cls(
            global_=SmoothTrajectory.sample(rng, g_off, g_amp),
            angles=SmoothTrajectory.sample(rng, np.array(a_off), np.array(a_amp)),
        )


@dataclass
class SpritePose:
    """Geometry of a figure over ``T`` frames, in normalised image units.

    Attributes:
        joints: ``(T, 15, 2)`` (x, y) joint positions.
        segments: ``(T, 10, 2, 2)`` capsule end points per part (start, end), each (x, y).
        radii: ``(T, 10, 2)`` capsule radii at the start and end point.
        scale: ``(T,)`` body-unit -> image-unit factor (for texture coordinates).
    """

    joints: np.ndarray
    segments: np.ndarray
    radii: np.ndarray
    scale: np.ndarray


def _unit(angle: np.ndarray) -> np.ndarray:
    """Direction vectors ``(..., 2)`` for image-space angles (0 = +x, pi/2 = +y i.e. down)."""
    return np.stack([np.cos(angle), np.sin(angle)], axis=-1)


def compute_pose(figure: SpriteFigure, motion: SpriteMotion, frames: int) -> SpritePose:
    """Forward kinematics for frames ``0 .. frames-1`` -> :class:`SpritePose`."""
    t = np.arange(frames, dtype=np.float64)
    g = motion.global_(t)  # (T, 4)
    a = motion.angles(t)   # (T, 2 + 8)
    T = frames
    joints_body = np.zeros((T, len(JOINT_NAMES), 2))
    # Body frame: pelvis at origin, "up" is -y. Torso axis leans by a[:, 0].
    up_angle = -np.pi / 2 + a[:, 0]
    e_up = _unit(up_angle)
    e_right = _unit(up_angle + np.pi / 2)
    down_angle = up_angle + np.pi
    pelvis = np.zeros((T, 2))
    neck = pelvis + figure.torso_length * e_up
    head = neck + figure.neck_length * _unit(up_angle + a[:, 1])
    joints_body[:, _J["pelvis"]] = pelvis
    joints_body[:, _J["neck"]] = neck
    joints_body[:, _J["head"]] = head
    for k, (side, _up, _lo, root, mid, end, is_arm) in enumerate(_LIMBS):
        if is_arm:
            root_pos = neck + side * figure.shoulder_width * e_right \
                - 0.35 * figure.chest_radius * e_up
            lengths = figure.arm_lengths
        else:
            root_pos = pelvis + side * figure.hip_width * e_right
            lengths = figure.leg_lengths
        swing, bend = a[:, 2 + 2 * k], a[:, 3 + 2 * k]
        upper_angle = down_angle - side * swing
        # Elbows bend outwards/upwards, knees back towards the midline, like a front-facing body.
        lower_angle = upper_angle - side * bend if is_arm else upper_angle + side * bend
        mid_pos = root_pos + lengths[0] * _unit(upper_angle)
        end_pos = mid_pos + lengths[1] * _unit(lower_angle)
        joints_body[:, _J[root]] = root_pos
        joints_body[:, _J[mid]] = mid_pos
        joints_body[:, _J[end]] = end_pos

    # Body -> image: rotate, scale, then translate so the torso middle follows the trajectory.
    rot, scale = g[:, 2], np.exp(g[:, 3])
    c, s = np.cos(rot), np.sin(rot)
    R = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2) * scale[:, None, None]
    centre_body = 0.5 * figure.torso_length * np.array([0.0, -1.0])
    centre = g[:, :2]

    def to_image(p: np.ndarray) -> np.ndarray:
        return np.einsum("tij,t...j->t...i", R, p - centre_body) + centre.reshape(
            (T,) + (1,) * (p.ndim - 2) + (2,))

    joints = to_image(joints_body)

    segments = np.zeros((T, len(PART_NAMES), 2, 2))
    radii = np.zeros((T, len(PART_NAMES), 2))
    segments[:, _P["torso"]] = np.stack([joints[:, _J["neck"]], joints[:, _J["pelvis"]]], 1)
    radii[:, _P["torso"]] = [figure.chest_radius, figure.waist_radius]
    head_axis = _unit(up_angle + a[:, 1]) * figure.head_half_length
    head_seg = np.stack([joints_body[:, _J["head"]] - head_axis,
                         joints_body[:, _J["head"]] + head_axis], 1)
    segments[:, _P["head"]] = to_image(head_seg)
    radii[:, _P["head"]] = figure.head_radius
    for side, upper, lower, root, mid, end, is_arm in _LIMBS:
        r = figure.arm_radii if is_arm else figure.leg_radii
        segments[:, _P[upper]] = np.stack([joints[:, _J[root]], joints[:, _J[mid]]], 1)
        segments[:, _P[lower]] = np.stack([joints[:, _J[mid]], joints[:, _J[end]]], 1)
        radii[:, _P[upper]] = r[:2]
        radii[:, _P[lower]] = r[1:]
    radii = radii * scale[:, None, None]
    return SpritePose(joints=joints, segments=segments, radii=radii, scale=scale)


def capsule_signed_distance(
    x: np.ndarray, y: np.ndarray, p0: np.ndarray, p1: np.ndarray, r0: np.ndarray, r1: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Signed distance (negative inside) of points to tapered capsules, plus part coordinates.

    All arguments broadcast together; ``p0``/``p1`` are split as ``(..., 2)`` (x, y).
    Returns ``(sd, u, v)`` where ``u`` is the coordinate along the axis from ``p0`` and ``v`` the
    signed coordinate across it, both in the units of the inputs. The radius varies linearly
    with the clamped projection, which defines the shape (a close approximation of the convex
    hull of the two end discs); rendering, labels and visibility all use this one definition.
    """
    dx, dy = p1[..., 0] - p0[..., 0], p1[..., 1] - p0[..., 1]
    length = np.maximum(np.sqrt(dx * dx + dy * dy), 1e-9)
    ex, ey = dx / length, dy / length
    px, py = x - p0[..., 0], y - p0[..., 1]
    u = px * ex + py * ey
    v = -px * ey + py * ex
    t = np.clip(u / length, 0.0, 1.0)
    du = u - t * length
    dist = np.sqrt(du * du + v * v)
    return dist - (r0 + (r1 - r0) * t), u, v


def joint_visibility(figure: SpriteFigure, pose: SpritePose) -> np.ndarray:
    """Visibility ``(T, 15)`` bool by the rule in the module docstring."""
    joints = pose.joints  # (T, J, 2)
    seg, rad = pose.segments, pose.radii  # (T, P, 2, 2), (T, P, 2)
    sd, _, _ = capsule_signed_distance(
        joints[:, :, None, 0], joints[:, :, None, 1],
        seg[:, None, :, 0], seg[:, None, :, 1], rad[:, None, :, 0], rad[:, None, :, 1],
    )  # (T, J, P)
    inside = sd < 0
    # Front-most containing part: highest depth among containing parts.
    depth = np.where(inside, figure.depth[None, None, :], -np.inf)
    front = np.argmax(depth, axis=-1)  # (T, J)
    any_inside = inside.any(-1)
    owner = np.zeros_like(inside)
    for j, parts in enumerate(JOINT_OWNERS):
        owner[:, j, list(parts)] = True
    front_is_owner = np.take_along_axis(owner, front[..., None], -1)[..., 0]
    in_frame = (np.abs(joints) <= 1.0).all(-1)
    return in_frame & any_inside & front_is_owner


class SpriteRenderer:
    """Draws one figure's frames at a fixed size (holds the grid and the background).

    Args:
        figure: the figure's appearance.
        size: output frame side in pixels (frames are square).
        supersample: integer factor of the internal grid, box-averaged down (1 disables).
    """

    def __init__(self, figure: SpriteFigure, size: int, supersample: int = 2) -> None:
        if size < 8:
            raise ValueError(f"size must be >= 8, got {size}")
        self.figure = figure
        self.size = size
        self.ss = int(supersample)
        n_hi = size * self.ss
        k = np.arange(n_hi, dtype=np.float64)
        # Hi-res sample k sits at output pixel coordinate (k - (ss-1)/2) / ss, so that box
        # averaging ss samples lands exactly on the output pixel centre.
        self.grid_hi = pixel_to_norm((k - (self.ss - 1) / 2.0) / self.ss, size)
        self.grid_hi32 = self.grid_hi.astype(np.float32)
        self.grid_out = pixel_to_norm(np.arange(size, dtype=np.float64), size)
        self.pixel_hi = 1.0 / (pixel_scale(size, size)[0] * self.ss)  # one hi-res sample in normalised units
        self.background = figure.background.render(self.grid_hi, self.grid_hi)

    def _box(self, p: np.ndarray, r: np.ndarray, grid: np.ndarray, pad: float
             ) -> tuple[int, int, int, int] | None:
        """Index ranges ``(y0, y1, x0, x1)`` of ``grid`` covering a capsule, or None if off-frame."""
        lo = np.minimum(p[0] - r[0], p[1] - r[1]) - pad
        hi = np.maximum(p[0] + r[0], p[1] + r[1]) + pad
        x0, x1 = np.searchsorted(grid, lo[0]), np.searchsorted(grid, hi[0], side="right")
        y0, y1 = np.searchsorted(grid, lo[1]), np.searchsorted(grid, hi[1], side="right")
        if x1 <= x0 or y1 <= y0:
            return None
        return int(y0), int(y1), int(x0), int(x1)

    def render_frame(self, segments: np.ndarray, radii: np.ndarray, scale: float) -> np.ndarray:
        """One frame ``(H, W, 3)`` uint8 from ``segments`` ``(10, 2, 2)`` and ``radii`` ``(10, 2)``."""
        canvas = self.background.copy()
        g = self.grid_hi32
        # float32 geometry for drawing (numpy would upcast to float64 on float64 scalars).
        seg32, rad32 = segments.astype(np.float32), radii.astype(np.float32)
        inv_scale = np.float32(1.0 / scale)
        inv_pixel = np.float32(1.0 / self.pixel_hi)
        for part in self.figure.draw_order:
            box = self._box(segments[part], radii[part], self.grid_hi, 2 * self.pixel_hi)
            if box is None:
                continue
            y0, y1, x0, x1 = box
            p, r = seg32[part], rad32[part]
            sd, u, v = capsule_signed_distance(g[None, x0:x1], g[y0:y1, None], p[0], p[1],
                                               r[0], r[1])
            # Analytic coverage: a ramp one sample wide across the boundary.
            alpha = np.clip(0.5 - sd * inv_pixel, 0.0, 1.0)
            colour = self.figure.textures[part].evaluate(u * inv_scale, v * inv_scale)
            block = canvas[y0:y1, x0:x1]
            block += alpha[..., None] * (colour - block)
        if self.ss > 1:
            canvas = cv2.resize(canvas, (self.size, self.size), interpolation=cv2.INTER_AREA)
        return (np.clip(canvas, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)

    def render_labels(self, segments: np.ndarray, radii: np.ndarray) -> np.ndarray:
        """Part-label map ``(H, W)`` uint8 at output pixel centres (0 background, part + 1)."""
        return self.surface(segments, radii, 1.0)[0]

    def surface(self, segments: np.ndarray, radii: np.ndarray, scale: float, grid: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """What each point of ``grid`` x ``grid`` shows (default: the output pixel centres): the
        part-label map ``(N, N)`` uint8 (0 background, ``part + 1``) and the part coordinates
        ``(N, N, 2)`` float64 of the point shown, in body units (the texture's coordinates: along
        the part's axis from its start point, and across it; 0 on the background).

        The part coordinates name a point of the figure's material, so the same coordinates in
        another frame's pose give where that point was then (see :func:`sprite_backward_map`).
        """
        g = self.grid_out if grid is None else grid
        labels = np.zeros((len(g), len(g)), dtype=np.uint8)
        coords = np.zeros((len(g), len(g), 2))
        for part in self.figure.draw_order:
            p, r = segments[part], radii[part]
            box = self._box(p, r, g, 0.0)
            if box is None:
                continue
            y0, y1, x0, x1 = box
            sd, u, v = capsule_signed_distance(g[None, x0:x1], g[y0:y1, None], p[0], p[1],
                                               r[0], r[1])
            inside = sd < 0
            labels[y0:y1, x0:x1][inside] = part + 1
            coords[y0:y1, x0:x1][inside] = np.stack([u, v], -1)[inside] / scale
        return labels, coords


def sample_sprite(seed: int, index: int) -> tuple[SpriteFigure, SpriteMotion]:
    """The figure and the motion of sprite video ``index`` of the dataset with ``seed``."""
    rng = video_rng(seed, "sprites", index)
    figure = SpriteFigure.sample(rng)
    return figure, SpriteMotion.sample(rng)


def render_sprite_video(
    figure: SpriteFigure,
    motion: SpriteMotion,
    frames: int,
    size: int,
    name: str,
    supersample: int = 2,
    return_labels: bool = False,
) -> SyntheticVideo:
    """Draw ``figure`` performing ``motion`` for ``frames`` frames of ``size`` x ``size``.

    Returns:
        :class:`SyntheticVideo` named ``name`` (see :func:`generate_sprite_video`).
    """
    pose = compute_pose(figure, motion, frames)
    renderer = SpriteRenderer(figure, size, supersample)
    out = np.empty((frames, size, size, 3), dtype=np.uint8)
    labels = np.empty((frames, size, size), dtype=np.uint8) if return_labels else None
    for t in range(frames):
        out[t] = renderer.render_frame(pose.segments[t], pose.radii[t], float(pose.scale[t]))
        if labels is not None:
            labels[t] = renderer.render_labels(pose.segments[t], pose.radii[t])
    return SyntheticVideo(
        name=name,
        frames=out,
        keypoints=pose.joints.astype(np.float32),
        visibility=joint_visibility(figure, pose),
        flow=None,
        labels=labels,
    )


def generate_sprite_video(
    seed: int,
    index: int,
    frames: int,
    size: int,
    supersample: int = 2,
    return_labels: bool = False,
) -> SyntheticVideo:
    """Generate sprite video ``index`` of the dataset with ``seed``.

    The content depends only on ``(seed, index)``: the size changes resolution, not the scene,
    and more frames extend the same motion.

    Returns:
        :class:`SyntheticVideo` with frames ``(T, size, size, 3)`` uint8, keypoints
        ``(T, 15, 2)`` float32, visibility ``(T, 15)`` bool, labels ``(T, size, size)`` uint8 if
        ``return_labels`` else None, flow None.
    """
    figure, motion = sample_sprite(seed, index)
    return render_sprite_video(figure, motion, frames, size, f"sprite{index:05d}", supersample,
                               return_labels)


def sprite_backward_map(figure: SpriteFigure, motion: SpriteMotion, frames: int, size: int,
                        supersample: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Where each point of each frame was at frame 0, and what it shows, on a grid of
    ``size * supersample`` points a side (the renderer's sub-pixel samples; 1: the pixel centres).

    Returns ``(backward, labels)``: ``backward`` ``(T, N, N, 2)`` float64, the ``(x, y)``
    position in [-1, 1] at frame 0 of the point that sample ``(row, col)`` of frame ``t`` shows
    (the figure's material point for a figure sample, the sample itself for the static
    background), and ``labels`` ``(T, N, N)`` uint8, the part-label maps (0 background,
    ``part + 1``). A sample moved between frame 0 and frame ``t`` when its backward position is
    not the sample itself or the surface it shows changed (``labels[t] != labels[0]``).
    """
    pose = compute_pose(figure, motion, frames)
    renderer = SpriteRenderer(figure, size, supersample)
    grid = renderer.grid_hi if supersample > 1 else renderer.grid_out
    points = np.stack(np.meshgrid(grid, grid), -1)  # (N, N, 2), x then y
    start, end = pose.segments[0, :, 0], pose.segments[0, :, 1]  # (P, 2) each, at frame 0
    axis = end - start
    axis = axis / np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), 1e-9)
    across = np.stack([-axis[:, 1], axis[:, 0]], -1)  # v's direction in capsule_signed_distance
    backward = np.broadcast_to(points, (frames,) + points.shape).copy()
    labels = np.empty((frames, len(grid), len(grid)), dtype=np.uint8)
    for t in range(frames):
        labels[t], coords = renderer.surface(pose.segments[t], pose.radii[t], float(pose.scale[t]), grid)
        figure_points = labels[t] > 0
        part = labels[t][figure_points].astype(np.int64) - 1
        body = coords[figure_points] * pose.scale[0]  # part coordinates in frame-0 image units
        backward[t][figure_points] = start[part] + body[:, :1] * axis[part] + body[:, 1:] * across[part]
    return backward, labels
