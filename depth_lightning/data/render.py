"""The ray caster behind the synthetic scenes: procedural RGB-D frames (no download).

Indoor: a room (floor, walls, ceiling) with boxes, spheres and cylinders, textured surfaces,
Lambertian shading, a pinhole camera with NYU-like intrinsics. Outdoor: a road scene with a
ground plane to the horizon, box buildings and cars, sky as invalid depth, KITTI-like intrinsics.
A frame is a pure function of the generator it is drawn with; rendering is vectorised NumPy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

EPS = 1e-4
# Intrinsics of the datasets the variants imitate, as fractions of the frame size.
NYU_INTRINSICS = (518.86 / 640, 519.47 / 480, 325.58 / 640, 253.74 / 480)
KITTI_INTRINSICS = (721.54 / 1242, 721.54 / 375, 609.56 / 1242, 172.85 / 375)


def _rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


@dataclass
class Texture:
    """Two colours mixed by a pattern of physical scale ``scale`` metres, plus value noise."""

    kind: str
    c1: np.ndarray
    c2: np.ndarray
    scale: float
    noise: np.ndarray = field(repr=False)
    noise_amp: float = 0.15

    @staticmethod
    def random(rng: np.random.Generator, kinds=("checker", "stripes", "noise", "plain", "tiles")) -> Texture:
        c1 = rng.uniform(0.15, 0.95, 3)
        c2 = np.clip(c1 * rng.uniform(0.3, 0.8) + rng.uniform(-0.15, 0.15, 3), 0.02, 1.0)
        return Texture(
            kind=str(rng.choice(kinds)),
            c1=c1,
            c2=c2,
            scale=float(rng.uniform(0.15, 0.6)),
            noise=rng.random((17, 17)),
            noise_amp=float(rng.uniform(0.05, 0.25)),
        )

    def _value_noise(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        u, v = np.mod(u, 16.0), np.mod(v, 16.0)
        iu, iv = u.astype(np.int64), v.astype(np.int64)
        fu, fv = u - iu, v - iv
        g = self.noise
        top = g[iv, iu] * (1 - fu) + g[iv, iu + 1] * fu
        bot = g[iv + 1, iu] * (1 - fu) + g[iv + 1, iu + 1] * fu
        return top * (1 - fv) + bot * fv

    def __call__(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        su, sv = u / self.scale, v / self.scale
        if self.kind == "checker":
            m = (np.floor(su) + np.floor(sv)) % 2
        elif self.kind == "stripes":
            m = np.floor(su) % 2
        elif self.kind == "tiles":  # grout lines between square tiles
            m = ((su % 1) < 0.08) | ((sv % 1) < 0.08)
        elif self.kind == "noise":
            m = self._value_noise(su * 2, sv * 2)
        else:
            m = np.zeros_like(su)
        m = np.asarray(m, dtype=np.float64)[:, None]
        col = self.c1 * (1 - m) + self.c2 * m
        fine = self._value_noise(su * 4 + 3.7, sv * 4 + 1.3)[:, None] - 0.5
        return col * (1 + self.noise_amp * fine)


@dataclass
class Hit:
    t: np.ndarray  # ray parameter = camera-z depth (directions have camera-z 1); inf where missed
    normal: np.ndarray  # (N, 3)
    uv: np.ndarray  # (N, 2) surface coordinates in metres
    texture: Texture | list[Texture]
    face: np.ndarray | None = None  # index into a list of textures


def _inf_like(o: np.ndarray) -> np.ndarray:
    return np.full(o.shape[0], np.inf)


def room_hit(o, d, lo, hi, textures) -> Hit:
    """Inside of an axis-aligned box: floor, ceiling and four walls."""
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = np.where(d > 0, hi, lo)
        ts = (bound - o) / d
    ts[~np.isfinite(ts) | (ts <= 0)] = np.inf
    axis = ts.argmin(1)
    t = ts[np.arange(len(t_ := ts)), axis] if len(ts) else ts[:, 0]
    del t_
    p = o + t[:, None] * d
    sign = np.sign(d[np.arange(len(d)), axis])
    normal = np.zeros_like(d)
    normal[np.arange(len(d)), axis] = -sign
    # face: 0 floor, 1 ceiling, 2 walls along x, 3 walls along z
    face = np.where(axis == 1, np.where(sign < 0, 0, 1), np.where(axis == 0, 2, 3))
    uv = np.where((axis == 1)[:, None], p[:, [0, 2]], np.where((axis == 0)[:, None], p[:, [2, 1]], p[:, [0, 1]]))
    return Hit(t, normal, uv, textures, face)


def plane_hit(o, d, texture, height=0.0) -> Hit:
    """The horizontal plane y = height, seen from above."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (height - o[:, 1]) / d[:, 1]
    t[~np.isfinite(t) | (t <= EPS)] = np.inf
    p = o + np.where(np.isfinite(t), t, 0)[:, None] * d
    normal = np.broadcast_to(np.array([0.0, 1.0, 0.0]), d.shape)
    return Hit(t, normal, p[:, [0, 2]], texture)


def box_hit(o, d, centre, half, yaw, textures) -> Hit:
    """Outside of a box rotated by ``yaw`` about the vertical axis."""
    r = _rot_y(-yaw)
    ol, dl = (o - centre) @ r.T, d @ r.T
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (-half - ol) / dl, (half - ol) / dl
    tmin, tmax = np.minimum(t1, t2), np.maximum(t1, t2)
    tmin = np.where(np.isnan(tmin), -np.inf, tmin)
    tmax = np.where(np.isnan(tmax), np.inf, tmax)
    axis = tmin.argmax(1)
    near, far = tmin.max(1), tmax.min(1)
    t = np.where((near <= far) & (near > EPS), near, np.inf)
    idx = np.arange(len(d))
    nl = np.zeros_like(d)
    nl[idx, axis] = -np.sign(dl[idx, axis])
    pl = ol + np.where(np.isfinite(t), t, 0)[:, None] * dl
    uv = np.where((axis == 1)[:, None], pl[:, [0, 2]], np.where((axis == 0)[:, None], pl[:, [2, 1]], pl[:, [0, 1]]))
    return Hit(t, nl @ r, uv + half[[0, 1]], textures, np.where(axis == 1, 0, 1))


def sphere_hit(o, d, centre, radius, texture) -> Hit:
    oc = o - centre
    a = (d * d).sum(1)
    b = (oc * d).sum(1)
    c = (oc * oc).sum(1) - radius**2
    disc = b * b - a * c
    with np.errstate(invalid="ignore"):
        t = (-b - np.sqrt(disc)) / a
    t = np.where((disc >= 0) & (t > EPS), t, np.inf)
    p = o + np.where(np.isfinite(t), t, 0)[:, None] * d
    n = (p - centre) / radius
    uv = np.stack([np.arctan2(n[:, 0], n[:, 2]) * radius, p[:, 1]], 1)
    return Hit(t, n, uv, texture)


def cylinder_hit(o, d, base, radius, height, texture) -> Hit:
    """A vertical cylinder standing on ``base`` (x, y, z), with its top cap."""
    ox, oz = o[:, 0] - base[0], o[:, 2] - base[2]
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    b = ox * d[:, 0] + oz * d[:, 2]
    c = ox**2 + oz**2 - radius**2
    disc = b * b - a * c
    with np.errstate(invalid="ignore", divide="ignore"):
        ts = (-b - np.sqrt(disc)) / a
        y = o[:, 1] + ts * d[:, 1]
        side = np.where((disc >= 0) & (ts > EPS) & (y >= base[1]) & (y <= base[1] + height), ts, np.inf)
        tc = (base[1] + height - o[:, 1]) / d[:, 1]
    pc = o + np.where(np.isfinite(tc), tc, 0)[:, None] * d
    on_cap = ((pc[:, 0] - base[0]) ** 2 + (pc[:, 2] - base[2]) ** 2 <= radius**2) & (tc > EPS)
    cap = np.where(on_cap, tc, np.inf)
    t = np.minimum(side, cap)
    p = o + np.where(np.isfinite(t), t, 0)[:, None] * d
    n = np.stack([(p[:, 0] - base[0]) / radius, np.zeros_like(t), (p[:, 2] - base[2]) / radius], 1)
    is_cap = cap < side
    n[is_cap] = (0.0, 1.0, 0.0)
    uv = np.stack([np.arctan2(n[:, 0], n[:, 2]) * radius, p[:, 1]], 1)
    uv[is_cap] = p[is_cap][:, [0, 2]]
    return Hit(t, n, uv, texture)


def _box_corners(centre: np.ndarray, half: np.ndarray, yaw: float = 0.0) -> np.ndarray:
    signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
    return centre + (signs * half) @ _rot_y(yaw).T


class _Canvas:
    """Rays of one camera and the surfaces hit along them.

    Each primitive is intersected only with the rays inside its projected bounding box (all rays
    when the box reaches behind the camera): most objects cover a small part of the frame.
    """

    def __init__(self, height: int, width: int, intrinsics, rotation: np.ndarray, eye: np.ndarray) -> None:
        self.h, self.w, self.rotation, self.eye = height, width, rotation, eye
        fx, fy, cx, cy = intrinsics
        self.fx, self.fy, self.cx, self.cy = fx * width, fy * height, cx * width, cy * height
        v, u = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
        cam = np.stack([(u - self.cx) / self.fx, -(v - self.cy) / self.fy, np.ones_like(u)], -1).reshape(-1, 3)
        self.d = cam @ rotation.T  # camera-z component 1 before rotation: t is z-depth
        self.o = np.broadcast_to(eye, self.d.shape)
        self.hits: list[tuple[Hit, np.ndarray | None]] = []

    def _region(self, corners: np.ndarray | None) -> np.ndarray | None:
        if corners is None:
            return None
        cam = (corners - self.eye) @ self.rotation
        if (cam[:, 2] < 0.05).any():
            return None
        u = self.fx * cam[:, 0] / cam[:, 2] + self.cx - 0.5
        v = self.cy - self.fy * cam[:, 1] / cam[:, 2] - 0.5
        c0, c1 = max(0, int(np.floor(u.min())) - 1), min(self.w, int(np.ceil(u.max())) + 2)
        r0, r1 = max(0, int(np.floor(v.min())) - 1), min(self.h, int(np.ceil(v.max())) + 2)
        if c0 >= c1 or r0 >= r1:
            return np.empty(0, dtype=np.int64)
        return (np.arange(r0, r1)[:, None] * self.w + np.arange(c0, c1)[None, :]).ravel()

    def add(self, intersect, corners: np.ndarray | None, *args) -> None:
        idx = self._region(corners)
        if idx is not None and idx.size == 0:
            return
        o, d = (self.o, self.d) if idx is None else (self.o[idx], self.d[idx])
        self.hits.append((intersect(o, d, *args), idx))

    def shade(self, light, ambient: float, background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest hit per ray, Lambertian shading from a point light plus ambient."""
        n = self.d.shape[0]
        t = np.full(n, np.inf)
        owner = np.full(n, -1)
        for k, (hit, idx) in enumerate(self.hits):
            sel = slice(None) if idx is None else idx
            better = hit.t < t[sel]
            where = np.nonzero(better)[0] if idx is None else idx[better]
            t[where] = hit.t[better]
            owner[where] = k
        rgb = np.tile(background, (n, 1)) if background.ndim == 1 else background.copy()
        for k, (hit, idx) in enumerate(self.hits):
            local = owner[slice(None) if idx is None else idx] == k
            if not local.any():
                continue
            pix = np.nonzero(local)[0] if idx is None else idx[local]
            uv = hit.uv[local]
            if isinstance(hit.texture, list):
                albedo = np.zeros((len(pix), 3))
                faces = hit.face[local]
                for f, tex in enumerate(hit.texture):
                    fm = faces == f
                    if fm.any():
                        albedo[fm] = tex(uv[fm, 0], uv[fm, 1])
            else:
                albedo = hit.texture(uv[:, 0], uv[:, 1])
            p = self.o[pix] + t[pix, None] * self.d[pix]
            to_light = light - p
            dist = np.linalg.norm(to_light, axis=1, keepdims=True)
            lambert = np.clip((hit.normal[local] * to_light).sum(1, keepdims=True) / dist, 0, 1)
            falloff = 1.0 / (1.0 + 0.02 * dist**2)
            rgb[pix] = albedo * (ambient + (1 - ambient) * lambert * falloff * 1.3)
        return rgb, t


def render_indoor(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A room seen from near one wall. Returns RGB uint8 (H,W,3) and depth (H,W) in metres."""
    size = np.array([rng.uniform(3.0, 7.0), rng.uniform(2.4, 3.2), rng.uniform(4.0, 9.0)])
    lo, hi = np.zeros(3), size
    eye = np.array([rng.uniform(0.3, 0.7) * size[0], rng.uniform(1.0, 1.7), rng.uniform(0.2, 0.8)])
    yaw, pitch, roll = rng.uniform(-0.45, 0.45), rng.uniform(-0.05, 0.35), rng.uniform(-0.05, 0.05)
    rotation = _rot_y(yaw) @ _rot_x(pitch) @ _rot_z(roll)
    canvas = _Canvas(height, width, NYU_INTRINSICS, rotation, eye)
    walls = [
        Texture.random(rng, ("checker", "tiles", "stripes", "noise")),  # floor
        Texture.random(rng, ("plain", "noise")),  # ceiling
        Texture.random(rng, ("stripes", "noise", "plain", "tiles")),
        Texture.random(rng, ("stripes", "noise", "plain", "tiles")),
    ]
    canvas.add(room_hit, None, lo, hi, walls)
    forward = rotation @ np.array([0.0, 0.0, 1.0])
    for _ in range(rng.integers(3, 8)):
        dist = rng.uniform(1.0, 7.0)
        side = rng.uniform(-0.8, 0.8) * dist * 0.6
        pos = eye + forward * dist + np.cross([0.0, 1.0, 0.0], forward) * side
        pos = np.clip(pos, lo + 0.4, hi - 0.4)
        kind = rng.choice(["box", "sphere", "cylinder"], p=[0.5, 0.25, 0.25])
        tex = Texture.random(rng)
        if kind == "box":
            half = np.array([rng.uniform(0.15, 0.8), rng.uniform(0.15, 0.9), rng.uniform(0.15, 0.8)])
            centre, yaw_b = np.array([pos[0], half[1], pos[2]]), rng.uniform(0, np.pi)
            canvas.add(box_hit, _box_corners(centre, half, yaw_b), centre, half, yaw_b, [Texture.random(rng), tex])
        elif kind == "sphere":
            r = rng.uniform(0.15, 0.5)
            centre = np.array([pos[0], r if rng.random() < 0.7 else rng.uniform(r, 1.5), pos[2]])
            canvas.add(sphere_hit, _box_corners(centre, np.full(3, r)), centre, r, tex)
        else:
            r, h = rng.uniform(0.1, 0.4), rng.uniform(0.3, 2.0)
            base = np.array([pos[0], 0.0, pos[2]])
            bounds = _box_corners(base + [0, h / 2, 0], np.array([r, h / 2, r]))
            canvas.add(cylinder_hit, bounds, base, r, h, tex)
    light = np.array([rng.uniform(0.2, 0.8) * size[0], size[1] - 0.1, rng.uniform(0.3, 0.8) * size[2]])
    rgb, t = canvas.shade(light, rng.uniform(0.25, 0.45), np.zeros(3))
    rgb = rgb * rng.uniform(0.8, 1.2) + rng.normal(0, 0.01, rgb.shape)
    depth = np.where(np.isfinite(t), t, 0.0)
    return _to_frame(rgb, depth, height, width)


def render_outdoor(
    rng: np.random.Generator, height: int, width: int, max_depth: float = 80.0
) -> tuple[np.ndarray, np.ndarray]:
    """A street: ground to the horizon, buildings, cars; sky and depth beyond ``max_depth`` are 0."""
    eye = np.array([rng.uniform(-1.5, 1.5), rng.uniform(1.5, 1.8), 0.0])
    rotation = _rot_y(rng.uniform(-0.08, 0.08)) @ _rot_x(rng.uniform(-0.04, 0.03))
    canvas = _Canvas(height, width, KITTI_INTRINSICS, rotation, eye)
    road = Texture("stripes", np.array([0.25, 0.25, 0.27]), np.array([0.3, 0.3, 0.3]), 3.0, rng.random((17, 17)))
    canvas.add(plane_hit, None, road)
    half_road = rng.uniform(3.5, 6.0)
    for sgn in (-1.0, 1.0):
        z = rng.uniform(2.0, 8.0)
        while z < 120:
            depth_b, length = rng.uniform(4, 10), rng.uniform(6, 25)
            half = np.array([depth_b / 2, rng.uniform(4, 15) / 2, length / 2])
            x = sgn * (half_road + rng.uniform(1.5, 4.0) + half[0])
            facade = Texture(
                "tiles",
                rng.uniform(0.3, 0.9, 3),
                rng.uniform(0.05, 0.3, 3),
                rng.uniform(1.5, 3.0),
                rng.random((17, 17)),
            )
            centre = np.array([x, half[1], z + half[2]])
            canvas.add(box_hit, _box_corners(centre, half), centre, half, 0.0, [Texture.random(rng), facade])
            z += length + rng.uniform(0.5, 10.0)
    for _ in range(rng.integers(2, 9)):
        half = np.array([0.9, 0.75, 2.1])
        lane = rng.choice([-1.0, 1.0]) * rng.uniform(1.2, half_road - 1.0)
        body = Texture("plain", rng.uniform(0.05, 0.95, 3), np.zeros(3), 1.0, rng.random((17, 17)), 0.05)
        centre, yaw_c = np.array([lane, 0.75, rng.uniform(5, 60)]), rng.uniform(-0.1, 0.1)
        canvas.add(box_hit, _box_corners(centre, half, yaw_c), centre, half, yaw_c, [body, body])
    for _ in range(rng.integers(0, 6)):  # poles and tree trunks by the road
        x = rng.choice([-1.0, 1.0]) * (half_road + rng.uniform(0.3, 1.2))
        base, r, h = np.array([x, 0.0, rng.uniform(4, 70)]), rng.uniform(0.1, 0.3), rng.uniform(3, 8)
        bounds = _box_corners(base + [0, h / 2, 0], np.array([r, h / 2, r]))
        canvas.add(cylinder_hit, bounds, base, r, h, Texture.random(rng, ("noise", "plain")))
    d = canvas.d
    sky_t = np.clip(d[:, 1] / np.linalg.norm(d, axis=1) * 4, 0, 1)[:, None]
    sky = np.array([0.75, 0.85, 0.95]) * (1 - sky_t) + np.array([0.35, 0.55, 0.9]) * sky_t
    sun = eye + np.array([rng.uniform(-50, 50), 60.0, rng.uniform(0, 60)])
    rgb, t = canvas.shade(sun, 0.45, sky)
    rgb = rgb + rng.normal(0, 0.01, rgb.shape)
    depth = np.where(np.isfinite(t) & (t <= max_depth), t, 0.0)
    return _to_frame(rgb, depth, height, width)


def _to_frame(rgb: np.ndarray, depth: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Quantise colour to 8 bits, as a camera would; depth stays float32 metres."""
    rgb8 = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8).reshape(height, width, 3)
    return rgb8, depth.reshape(height, width).astype(np.float32)


RENDERERS = {"indoor": render_indoor, "outdoor": render_outdoor}
