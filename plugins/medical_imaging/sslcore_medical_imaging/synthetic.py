"""Synthetic frontal chest radiographs with and without pneumonia, vectorized in torch.

Each image is a different patient, drawn as a projection: soft tissue whose thickness follows
a cylinder (body outline, neck and shoulders, sometimes the arms), two air-filled lung fields
cut by the diaphragm domes (the right one higher, inspiration depth varies), heart and
mediastinum over the medial lung, spine, clavicles, posterior and anterior ribs, vascular
markings fanning out from the hila, and patient-level confounders that are not pneumonia:
breast shadows over the lower zones, nipple shadows, ECG electrodes. Position varies (small
rotation, shift and scale).

Pneumonia (label 1) replaces air in the lung fields with fluid-density tissue, in one of three
patterns (as in Kermany et al., Cell 2018, where most pediatric pneumonia is bacterial or
viral): lobar consolidation (a lobe, one side, irregular), patchy bronchopneumonia (2 to 6
blobs of different size in one or both lungs) or interstitial (bilateral perihilar reticular
haze), sometimes with a small pleural effusion. A fifth of the positives are subtle (faint
or small opacities), the rest moderate to severe.

Acquisition: four scanner profiles with different photon counts (quantum noise), detector
blur, edge enhancement, display gamma, exposure and collimation borders; the image is the log
of the transmitted intensity, auto-windowed per image and quantized to 8 bits. Scanner, marker
and confounders are independent of the label, so none is a shortcut.

Deterministic by seed. Rendering is chunked (the chunk size is fixed, so results do not depend
on it) and takes a few seconds per thousand images at 64 px on one CPU thread.

Example::

    x, y, meta = generate_radiographs(2000, size=64, prevalence=0.3, seed=0)
    x.shape, x.dtype, y.mean()      # (2000, 1, 64, 64) float32 in [0, 1], ~0.3
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from sslcore_medical_imaging.sites import AcquisitionSite, display_window, resize_to

PATTERNS = ("none", "lobar", "patchy", "interstitial")
_PATTERN_P = (0.3, 0.45, 0.25)  # lobar, patchy, interstitial among positives
_CHUNK = 128
_MAX_BLOBS = 6

# Scanner profiles: photons per pixel (noise), detector blur (px at 64), edge enhancement,
# display gamma, collimation-border probability, share of the images.
SCANNERS = (
    {"photons": 900.0, "blur": 0.5, "sharpen": 0.6, "gamma": 0.7, "border": 0.1, "share": 0.35},
    {"photons": 350.0, "blur": 0.8, "sharpen": 0.2, "gamma": 0.6, "border": 0.3, "share": 0.3},
    {"photons": 2000.0, "blur": 0.4, "sharpen": 1.0, "gamma": 0.8, "border": 0.05, "share": 0.2},
    {"photons": 180.0, "blur": 1.1, "sharpen": 0.0, "gamma": 0.65, "border": 0.5, "share": 0.15},
)


def _sample_patients(rng: np.random.Generator, n: int, prevalence: float,
                     site: AcquisitionSite) -> dict[str, np.ndarray]:
    """Per-image parameters (anatomy, position, confounders, disease, scanner) as arrays."""
    u = rng.uniform
    p: dict[str, np.ndarray] = {}
    p["y"] = (u(size=n) < prevalence).astype(np.int64)
    shares = np.asarray(site.scanner_shares or [s["share"] for s in SCANNERS], dtype=np.float64)
    p["scanner"] = rng.choice(len(SCANNERS), size=n, p=shares / shares.sum())
    # position
    p["rot"] = np.clip(rng.normal(0, 3.0, n), -8, 8) * math.pi / 180
    p["scale"] = u(0.9, 1.08, n)
    p["tx"], p["ty"] = rng.normal(0, 0.04, n), rng.normal(0.02, 0.04, n)
    # body and lungs
    p["bw"], p["bx"] = u(0.68, 0.9, n), rng.normal(0, 0.02, n)
    p["shoulder"] = u(-0.98, -0.78, n)
    p["arms"] = (u(size=n) < 0.3).astype(np.float32)
    p["lsep"] = u(0.42, 0.52, n)
    p["ly"], p["ay"] = u(-0.2, -0.06, n), u(0.5, 0.62, n)
    p["ax"] = u(0.27, 0.34, n)
    p["dome"] = u(0.5, 0.78, n)  # diaphragm top, as a share of the lung half-height
    p["dome_r"] = u(0.02, 0.07, n)  # the right hemidiaphragm sits higher
    p["dcurv"] = u(0.1, 0.22, n)
    # heart, mediastinum, bones
    p["hx"], p["ctr"], p["hay"] = u(0.05, 0.13, n), u(0.34, 0.5, n), u(0.2, 0.28, n)
    p["mw"] = u(0.08, 0.12, n)
    p["rib_sp"], p["rib_slope"] = u(0.115, 0.15, n), u(0.25, 0.45, n)
    p["rib_curv"], p["rib_phase"] = u(0.15, 0.45, n), u(0, 1, n)
    p["rib_amp"], p["clav_y"] = u(0.1, 0.22, n), u(-0.74, -0.6, n)
    p["clav_slope"] = u(0.08, 0.3, n)
    p["vessels"] = u(0.3, 0.5, n)
    # confounders, independent of the label
    p["breast"] = np.where(u(size=n) < 0.35, u(0.08, 0.25, n), 0.0)
    p["nipple"] = (u(size=n) < 0.15).astype(np.float32)
    p["ecg"] = (u(size=(n, 3)) < 0.2).astype(np.float32)
    p["ecg_xy"] = u(-0.6, 0.6, (n, 3, 2))
    p["marker"] = (u(size=n) < 0.6).astype(np.float32)
    p["marker_corner"] = rng.integers(0, 4, n)
    # acquisition
    p["exposure"] = np.exp(rng.normal(0, 0.35, n))
    p["window_lo"], p["window_hi"] = u(0.0, 0.06, n), u(0.94, 1.0, n)
    border_p = np.array([s["border"] for s in SCANNERS])[p["scanner"]]
    if site.collimation is not None:
        border_p = np.full(n, site.collimation)
    p["border"] = np.where(u(size=n) < border_p, u(*site.collimation_width, n), 0.0)
    # disease: pattern, severity skewed to mild, side and shape
    pattern = rng.choice([1, 2, 3], size=n, p=_PATTERN_P)
    p["pattern"] = np.where(p["y"] == 1, pattern, 0)
    # a fifth subtle (small or faint), the rest moderate to severe; calibrated so that a
    # supervised ResNet-18 on 2,000 labeled 64 px images reaches test AUROC ~0.9 (the
    # PneumoniaMNIST reference: 0.944 at 28 px, see ANCHORS.md)
    subtle = u(size=n) < 0.2
    sev = np.where(subtle, u(0.2, 0.4, n), u(0.4, 0.95, n))
    p["severity"] = np.where(p["y"] == 1, sev, 0.0)
    p["side"] = np.where(u(size=n) < 0.6, -1.0, 1.0)  # right lung (image left) more often
    p["lower_lobe"] = (u(size=n) < 0.65).astype(np.float32)
    p["fissure"] = u(-0.1, 0.3, n)
    n_blobs = rng.integers(2, _MAX_BLOBS + 1, n)
    p["blob_on"] = (np.arange(_MAX_BLOBS)[None] < n_blobs[:, None]).astype(np.float32)
    both = u(size=n) < 0.4
    p["blob_side"] = np.where(both[:, None], np.sign(u(-1, 1, (n, _MAX_BLOBS))),
                              p["side"][:, None])
    p["blob_uv"] = np.stack([u(-0.7, 0.7, (n, _MAX_BLOBS)), u(-0.5, 0.85, (n, _MAX_BLOBS))], -1)
    p["blob_r"] = u(0.06, 0.18, (n, _MAX_BLOBS))
    p["blob_d"] = u(0.5, 1.0, (n, _MAX_BLOBS))
    p["effusion"] = np.where((p["y"] == 1) & (u(size=n) < 0.15), u(0.05, 0.15, n), 0.0)
    return p


def _noise(gen: torch.Generator, b: int, res: int, octaves: tuple[int, ...]) -> torch.Tensor:
    """Smooth random fields (B, res, res): upsampled white noise over a few octaves, unit std."""
    out = torch.zeros(b, 1, res, res)
    for i, cells in enumerate(octaves):
        coarse = torch.randn(b, 1, cells, cells, generator=gen)
        out += 0.6 ** i * F.interpolate(coarse, size=(res, res), mode="bicubic",
                                        align_corners=False)
    out = out[:, 0]
    return out / out.flatten(1).std(dim=1).clamp_min(1e-6)[:, None, None]


def _soft(x: torch.Tensor, width: float) -> torch.Tensor:
    """A soft step: 1 where x >> 0, 0 where x << 0, over ``width``."""
    return torch.sigmoid(x / width)


def _gauss_blur(img: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image Gaussian blur of (B, H, W) with sigma (B,) in pixels (grouped conv)."""
    b = img.shape[0]
    r = 3
    k = torch.arange(-r, r + 1, dtype=img.dtype)
    w = torch.exp(-k[None] ** 2 / (2 * sigma[:, None].clamp_min(0.05) ** 2))
    w = w / w.sum(dim=1, keepdim=True)
    x = F.pad(img[None], (r, r, r, r), mode="replicate")
    x = F.conv2d(x, w.view(b, 1, 1, -1), groups=b)
    return F.conv2d(x, w.view(b, 1, -1, 1), groups=b)[0]


def _render(p: dict[str, torch.Tensor], gen: torch.Generator, size: int,
            supersample: int, site: AcquisitionSite) -> torch.Tensor:
    """Render one chunk -> (B, size, size) in [0, 1]."""
    b = p["y"].shape[0]
    res = size * supersample
    lin = (torch.arange(res, dtype=torch.float32) + 0.5) / res * 2 - 1
    gy, gx = torch.meshgrid(lin, lin, indexing="ij")

    def col(name: str) -> torch.Tensor:
        return p[name].float().view(b, 1, 1)

    # patient coordinates: undo the shift, rotation and scale of the positioning
    c, s = torch.cos(col("rot")), torch.sin(col("rot"))
    dx, dy = gx - col("tx"), gy - col("ty")
    X = (c * dx + s * dy) / col("scale")
    Y = (-s * dx + c * dy) / col("scale")
    xb = X - col("bx")
    ax_b = xb.abs()

    # soft tissue: a cylinder's projected thickness, narrower above the shoulders
    bw = col("bw") * (1 - 0.55 * _soft(col("shoulder") - Y, 0.04))
    rb = ax_b / bw
    body = _soft(1 - rb, 0.02)
    thick = body * (0.35 + 0.65 * (1 - rb.clamp(max=1) ** 2).clamp_min(0).sqrt())
    arms = col("arms") * _soft(ax_b - col("bw") * 1.04, 0.02) * _soft(col("bw") * 1.3 - ax_b, 0.03)
    thick = thick + 0.6 * arms * _soft(Y - col("shoulder") - 0.05, 0.04)

    # lungs, diaphragm, heart, mediastinum
    ly, ay = col("ly"), col("ay")
    dome_top = ly + ay * col("dome")
    hx = col("bx") + col("hx")
    hay = col("hay")
    hy = dome_top - 0.55 * hay
    heart = _soft(1 - ((X - hx) / (col("ctr") * col("bw"))) ** 2 - ((Y - hy) / hay) ** 2, 0.06)
    medi = _soft(col("mw") - (xb - 0.02).abs(), 0.02) * _soft(hy - Y, 0.1)
    # ridged noise: thin branching bright lines, like vessels seen end-on and along
    vessel_field = (1 - _noise(gen, b, res, (5, 10, 20)).abs().clamp(max=1)) ** 4
    texture = _noise(gen, b, res, (4, 8))
    fine = _noise(gen, b, res, (16, 32))
    air = torch.zeros_like(X)
    lungs = torch.zeros_like(X)
    pos = torch.nonzero(p["y"] == 1).flatten()
    for side in (-1.0, 1.0):
        lx = col("bx") + side * col("lsep") * col("bw")
        ax = col("ax") * col("bw") / 0.8 * (0.92 if side > 0 else 1.0)
        ax_y = ax * (0.82 + 0.25 * (Y - ly) / ay).clamp_min(0.3)
        r = ((X - lx) / ax_y) ** 2 + ((Y - ly) / ay) ** 2
        top = dome_top - (col("dome_r") if side < 0 else 0.0)
        dome = top + col("dcurv") * ((X - lx) / ax) ** 2
        effusion = col("effusion") * (side == 1.0) * ((X - lx) * side / ax).clamp(0, 1)
        lung = _soft(1 - r, 0.06) * _soft(dome - effusion * 3 - Y, 0.015)
        depth = 0.6 + 0.4 * (1 - r).clamp(0, 1).sqrt()
        hilum_d2 = (X - (col("bx") + side * 0.17)) ** 2 + (Y - (ly + 0.05)) ** 2
        vessels = col("vessels") * (1.5 * torch.exp(-hilum_d2 / 0.1) + 0.4) * vessel_field
        opacity = torch.zeros_like(X)
        if len(pos):  # pneumonia is drawn on the positive images only
            opacity[pos] = _opacity({k: v[pos] for k, v in p.items()}, side, X[pos], Y[pos],
                                    lx[pos], ax[pos], ly[pos], ay[pos], hilum_d2[pos],
                                    texture[pos], fine[pos])
        lungs = lungs + lung
        air = air + lung * depth * (1 - opacity) * (1 - vessels).clamp_min(0)
    air = air * (1 - 0.85 * heart) * (1 - medi)

    # bones: spine, posterior and anterior ribs, clavicles
    thorax = _soft(1 - rb, 0.03) * _soft(dome_top + 0.12 - Y, 0.04) * _soft(Y + 0.85, 0.04)
    spine = 0.22 * _soft(0.07 - ax_b, 0.01) * (1 + 0.25 * torch.cos(2 * math.pi * Y / 0.09))
    bend = col("rib_slope") * ax_b + col("rib_curv") * xb ** 2
    phase = (Y - bend) / col("rib_sp") + col("rib_phase")
    post = torch.cos(2 * math.pi * phase).clamp_min(0) ** 3
    ant = torch.cos(2 * math.pi * ((Y + 0.6 * bend) / (1.25 * col("rib_sp")))).clamp_min(0) ** 3
    # ribs stand out over air; over soft tissue they blend in
    ribs = col("rib_amp") * thorax * (post + 0.4 * ant) * _soft(ax_b - 0.06, 0.02) \
        * (0.35 + 0.65 * lungs.clamp(max=1))
    clav_line = col("clav_y") - col("clav_slope") * (ax_b - 0.1)
    clav = 0.25 * torch.exp(-((Y - clav_line) / 0.028) ** 2) * _soft(ax_b - 0.06, 0.02) \
        * _soft(0.62 * col("bw") - ax_b, 0.03)

    # confounders: breast and nipple shadows, ECG electrodes
    extra = torch.zeros_like(X)
    for side in (-1.0, 1.0):
        cx = col("bx") + side * (col("lsep") * col("bw") + 0.08)
        r_breast = ((X - cx) / 0.3) ** 2 + ((Y - dome_top - 0.02) / 0.22) ** 2
        extra = extra + col("breast") * _soft(1 - r_breast, 0.35)
        r_nip = ((X - cx) ** 2 + (Y - dome_top + 0.1) ** 2).sqrt()
        extra = extra + 0.2 * col("nipple") * _soft(0.025 - r_nip, 0.006)
    for k in range(p["ecg"].shape[1]):
        ex, ey = p["ecg_xy"][:, k, 0].view(b, 1, 1), p["ecg_xy"][:, k, 1].view(b, 1, 1)
        d = ((X - ex) ** 2 + (Y - ey) ** 2).sqrt()
        extra = extra + 1.2 * p["ecg"][:, k].view(b, 1, 1) * _soft(0.03 - d, 0.005)

    atten = thick * (1 - 0.85 * air) + ribs + clav + spine + extra
    atten = atten + 0.5 * _marker(p, gx, gy)  # on the detector, not the patient
    if supersample > 1:
        atten = F.avg_pool2d(atten[:, None], supersample)[:, 0]
        thick = F.avg_pool2d(thick[:, None], supersample)[:, 0]
    return _acquire(p, atten, thick > 0.3, gen, size, site)


def _opacity(p: dict[str, torch.Tensor], side: float, X: torch.Tensor, Y: torch.Tensor,
             lx: torch.Tensor, ax: torch.Tensor, ly: torch.Tensor, ay: torch.Tensor,
             hilum_d2: torch.Tensor, texture: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
    """Share of this lung's air replaced by fluid-density tissue (0..1), by pattern."""
    b = X.shape[0]

    def col(name: str) -> torch.Tensor:
        return p[name].float().view(b, 1, 1)

    sev = col("severity")
    pattern = p["pattern"].view(b, 1, 1)
    on_side = (col("side") == side).float()
    # lobar: a lower or upper lobe behind a fissure, irregular edge, one side
    lower = col("lower_lobe")
    fissure = ly + col("fissure") * ay
    region = lower * _soft(Y - fissure, 0.04) + (1 - lower) * _soft(fissure - 0.35 * ay - Y, 0.04)
    lobar = on_side * region * (0.8 + 0.2 * torch.tanh(texture)) * sev
    # patchy: up to six blobs placed in lung coordinates
    patchy = torch.zeros_like(X)
    for k in range(_MAX_BLOBS):
        on = (p["blob_on"][:, k] * (p["blob_side"][:, k] == side)).view(b, 1, 1)
        cx = lx + p["blob_uv"][:, k, 0].view(b, 1, 1) * ax
        cy = ly + p["blob_uv"][:, k, 1].view(b, 1, 1) * ay
        r = p["blob_r"][:, k].view(b, 1, 1)
        d2 = (X - cx) ** 2 + (Y - cy) ** 2
        patchy = patchy + on * p["blob_d"][:, k].view(b, 1, 1) * torch.exp(-d2 / (2 * r * r))
    patchy = patchy.clamp(max=1) * (0.55 + 0.45 * torch.sigmoid(2 * fine)) * sev
    # interstitial: bilateral perihilar reticular haze
    inter = 0.8 * sev * torch.exp(-hilum_d2 / 0.16) * (0.4 + 0.6 * torch.sigmoid(3 * fine))
    out = ((pattern == 1) * lobar + (pattern == 2) * patchy + (pattern == 3) * inter)
    return out.clamp(0, 0.95)


def _marker(p: dict[str, torch.Tensor], gx: torch.Tensor, gy: torch.Tensor) -> torch.Tensor:
    """A lead side marker in one corner of the detector (present or not, any corner)."""
    b = p["y"].shape[0]
    corner = p["marker_corner"].view(b, 1, 1)
    mx = torch.where(corner % 2 == 0, -0.82, 0.82)
    my = torch.where(corner < 2, -0.85, 0.8)
    box = _soft(0.05 - (gx - mx).abs(), 0.01) * _soft(0.035 - (gy - my).abs(), 0.01)
    return p["marker"].float().view(b, 1, 1) * box


def _acquire(p: dict[str, torch.Tensor], atten: torch.Tensor, body: torch.Tensor,
             gen: torch.Generator, size: int, site: AcquisitionSite) -> torch.Tensor:
    """Detector physics and processing: quantum noise, blur, log, auto-window, LUT, 8 bits."""
    b = atten.shape[0]
    sc = p["scanner"]
    prof = {k: torch.tensor([s[k] for s in SCANNERS], dtype=torch.float32)[sc]
            for k in ("photons", "blur", "sharpen", "gamma")}
    # the site's detectors and LUT (identity at the defaults: x 1.0, + 0.0)
    prof["photons"] = prof["photons"] * site.dose
    prof["blur"] = prof["blur"] + site.extra_blur
    prof["gamma"] = prof["gamma"] * site.gamma
    scale = size / 64
    k_att = 2.2
    intensity = torch.exp(-k_att * atten) * p["exposure"].float().view(b, 1, 1)
    photons = prof["photons"].view(b, 1, 1) * intensity
    noisy = photons + photons.clamp_min(1.0).sqrt() * torch.randn(atten.shape, generator=gen)
    signal = _gauss_blur(-torch.log(noisy.clamp_min(0.5) / prof["photons"].view(b, 1, 1)),
                         prof["blur"] * scale)
    # auto-window on the body (percentiles), as a detector's processing does, then the LUT;
    # pixels outside the body are set to the body's median so they do not move the window
    median = torch.where(body, signal, torch.nan).flatten(1).nanmedian(dim=1).values
    flat = torch.where(body, signal, median.view(b, 1, 1)).flatten(1)
    lo = torch.quantile(flat, 0.01, dim=1).view(b, 1, 1)
    hi = torch.quantile(flat, 0.995, dim=1).view(b, 1, 1)
    lo = lo - 0.12 * (hi - lo)  # headroom: lungs dark grey, direct exposure black
    img = ((signal - lo) / (hi - lo).clamp_min(1e-3)).clamp(0, 1)
    wl, wh = p["window_lo"].float().view(b, 1, 1), p["window_hi"].float().view(b, 1, 1)
    img = ((img - wl) / (wh - wl)).clamp(0, 1) ** prof["gamma"].view(b, 1, 1)
    smooth = _gauss_blur(img, torch.full((b,), 1.5 * scale))
    img = display_window(img + prof["sharpen"].view(b, 1, 1) * (img - smooth), site)
    # collimation: dark shutter borders on some images
    border = p["border"].float().view(b, 1, 1)
    lin = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    edge = torch.minimum(lin, 1 - lin)
    inside = _soft(edge.view(1, 1, -1) - border, 0.01) * _soft(edge.view(1, -1, 1) - border, 0.01)
    img = img * (0.08 + 0.92 * inside)
    return torch.round(img.clamp(0, 1) * 255) / 255


def generate_radiographs(n: int, *, size: int = 64, prevalence: float = 0.3, seed: int = 0,
                         supersample: int = 1, site: AcquisitionSite | None = None,
                         ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """``n`` synthetic chest radiographs -> (x, y, meta).

    Args:
        n: number of images (each a different patient).
        size: height and width in pixels (64 or 128 are typical).
        prevalence: probability that an image shows pneumonia.
        seed: everything is a function of (n, size, prevalence, seed, supersample, site).
        supersample: render at this multiple of ``size`` and average down (antialiasing).
        site: the acquisition site (:class:`~sslcore_medical_imaging.sites.AcquisitionSite`:
            dose, blur, LUT, native matrix, collimation, scanner mix); None: the built-in one.

    Returns:
        x: float32 ``(n, 1, size, size)`` in [0, 1] (8-bit steps); y: int64 (n,), 1 =
        pneumonia; meta: per-image ``scanner`` (0-3), ``pattern`` (index into
        :data:`PATTERNS`) and ``severity`` (0 for normal images).
    """
    if n < 0 or size < 8 or not 0.0 <= prevalence <= 1.0 or supersample < 1:
        raise ValueError(f"generate_radiographs: bad arguments n={n}, size={size}, "
                         f"prevalence={prevalence}, supersample={supersample}")
    site = site or AcquisitionSite()
    native = site.native_size or size
    rng = np.random.default_rng(seed)
    params = _sample_patients(rng, n, prevalence, site)
    noise_seed = int(rng.integers(0, 2**62))
    x = np.empty((n, 1, size, size), dtype=np.float32)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        for i, start in enumerate(range(0, n, _CHUNK)):
            gen = torch.Generator().manual_seed(noise_seed + i)
            chunk = {k: torch.as_tensor(v[start:start + _CHUNK]) for k, v in params.items()}
            chunk = {k: v.float() if v.is_floating_point() else v for k, v in chunk.items()}
            img = _render(chunk, gen, native, supersample, site)
            x[start:start + _CHUNK, 0] = resize_to(img, size).numpy()
    meta = {"scanner": params["scanner"].astype(np.int64),
            "pattern": params["pattern"].astype(np.int64),
            "severity": params["severity"].astype(np.float32)}
    return x, params["y"], meta
