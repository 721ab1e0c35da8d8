"""Synthetic card transactions with per-user habits, legitimate oddities and three fraud patterns.

Fraud is defined against each user's OWN normal, the way issuers see it, and legitimate behaviour
contains the same single-factor oddities (travel, a new phone, a big purchase, a late night), so
no single-feature rule separates the classes:

* account takeover (ATO): a new device, usually in a new region, mostly online, a short burst,
  often but not always high-value categories;
* card testing: 3-10 tiny online amounts at new merchants within minutes;
* out-of-pattern purchase: high value, at a category the user rarely uses, at an odd hour, on the
  user's own device in the home region.

Everything is vectorised numpy (no loop over rows or users) and deterministic by ``seed``; one
million rows take about a second.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from sslcore_fraud_transactions.markets import FraudMix, Market

# name, popularity, amount multiplier vs the user's level, share paid online
CATEGORIES: tuple[tuple[str, float, float, float], ...] = (
    ("grocery", 0.20, 1.0, 0.05), ("restaurants", 0.12, 0.9, 0.10),
    ("fuel", 0.07, 1.3, 0.0), ("coffee_shops", 0.08, 0.2, 0.05),
    ("pharmacy", 0.05, 0.7, 0.10), ("clothing", 0.06, 1.8, 0.40),
    ("electronics", 0.03, 4.0, 0.50), ("travel", 0.03, 6.0, 0.60),
    ("online_retail", 0.10, 1.3, 1.0), ("entertainment", 0.05, 1.0, 0.50),
    ("utilities", 0.04, 2.5, 0.80), ("gaming", 0.03, 0.5, 1.0),
    ("jewelry", 0.01, 5.0, 0.20), ("gift_cards", 0.02, 1.5, 0.70),
    ("atm_withdrawal", 0.06, 3.0, 0.0),
)
CATEGORY_NAMES = [c[0] for c in CATEGORIES]
CHANNELS = ["pos", "online", "atm"]
N_REGIONS = 30
_CAT = {name: i for i, name in enumerate(CATEGORY_NAMES)}
_POP = np.array([c[1] for c in CATEGORIES]) / sum(c[1] for c in CATEGORIES)
_MULT = np.log([c[2] for c in CATEGORIES])
_ONLINE_P = np.array([c[3] for c in CATEGORIES])
_ATM = _CAT["atm_withdrawal"]


def _ids(*names: str) -> np.ndarray:
    return np.array([_CAT[n] for n in names])


_HIGH_VALUE = _ids("electronics", "gift_cards", "jewelry", "online_retail", "travel")
_OOP_CATS = _ids("electronics", "jewelry", "travel", "gift_cards", "clothing")
_TESTING_CATS = _ids("gaming", "gift_cards", "online_retail", "entertainment")
_TRAVEL_SHIFT = _ids("restaurants", "travel", "fuel")
_SCAM_CATS = _ids("gift_cards", "online_retail", "electronics")
# merchants: one block per (region, category) for in-person purchases plus one region-free
# online block per category; ids are stable across seeds so chunks of a big file share them
_BLOCK_SIZE = np.maximum(8, np.round(400 * _POP)).astype(np.int64)
_ONLINE_BLOCK_SIZE = 4 * _BLOCK_SIZE
_FRAUD_DEVICE_BASE = 10**12
_DAY_S = 86_400.0


def _merchant_id(region: np.ndarray, cat: np.ndarray, online: np.ndarray,
                 j: np.ndarray) -> np.ndarray:
    """Merchant id of slot ``j`` in the (region, category) or online block; ``j`` is reduced."""
    size = np.where(online, _ONLINE_BLOCK_SIZE[cat], _BLOCK_SIZE[cat])
    block = np.where(online, N_REGIONS * len(CATEGORIES) + cat, region * len(CATEGORIES) + cat)
    return block * 10_000 + (j % size)


def _hash(*parts: np.ndarray) -> np.ndarray:
    """Cheap deterministic integer hash, used to give each (user, category) habitual merchants."""
    h = np.uint64(1469598103934665603)
    for p in parts:
        h = (h ^ np.asarray(p).astype(np.uint64)) * np.uint64(1099511628211)
    return (h >> np.uint64(17)).astype(np.int64)


def _sample_categories(profile_cum: np.ndarray, users: np.ndarray,
                       rng: np.random.Generator) -> np.ndarray:
    """Inverse-CDF draw of one category per row from each row's user profile, without an
    (n_rows x n_categories) matrix: offsetting user u's CDF by u makes one sorted array."""
    n_cat = profile_cum.shape[1]
    flat = (profile_cum + np.arange(len(profile_cum))[:, None]).ravel()
    idx = np.searchsorted(flat, users + rng.random(len(users)) * 0.999999, side="right")
    return np.clip(idx - users * n_cat, 0, n_cat - 1)


def _hours(center: np.ndarray, spread: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.mod(center + spread * rng.standard_normal(len(center)), 24.0)


def _burst_sizes(budget: int, low: int, high: int, rng: np.random.Generator) -> np.ndarray:
    """Event sizes in [low, high] summing exactly to ``budget`` rows (the last one trimmed)."""
    if budget <= 0:
        return np.zeros(0, dtype=np.int64)
    sizes = rng.integers(low, high + 1, size=budget // low + 1)
    cum = np.cumsum(sizes)
    k = int(np.searchsorted(cum, budget)) + 1
    sizes = sizes[:k]
    sizes[-1] -= cum[k - 1] - budget
    return sizes


def generate_transactions(n_rows: int, n_users: int | None = None, fraud_rate: float = 0.005,
                          seed: int = 0, days: int = 90,
                          market: Market | None = None) -> pl.DataFrame:
    """Generate ``n_rows`` card transactions of ``n_users`` users over ``days`` days.

    Args:
        n_rows: total rows, legitimate and fraudulent.
        n_users: number of card holders; default one per 100 rows (at least 10).
        fraud_rate: share of fraudulent rows, split 45/30/25 over ATO, card testing and
            out-of-pattern purchases.
        seed: the same seed gives the same frame.
        days: length of the timeline, starting 2024-01-01 (or ``market.start``).
        market: another market or period (:class:`~sslcore_fraud_transactions.markets.Market`:
            amounts, ids, phone switches, travel, fraud mix); None: the built-in one.

    Returns:
        A frame sorted by timestamp with columns transaction_id, user_id, timestamp (Datetime[us]),
        amount, merchant_id, merchant_category, region, device_id, channel, is_fraud (int8).

    Raises:
        ValueError: on non-positive sizes or a fraud rate outside [0, 0.5].

    Examples:
        >>> df = generate_transactions(10_000, seed=1)
        >>> df.height, round(df["is_fraud"].mean(), 3)
        (10000, 0.005)
    """
    if n_rows <= 0 or days <= 0:
        raise ValueError(f"n_rows and days must be positive, got n_rows={n_rows}, days={days}")
    if not 0.0 <= fraud_rate <= 0.5:
        raise ValueError(f"fraud_rate must be in [0, 0.5], got {fraud_rate}")
    n_users = max(10, n_rows // 100) if n_users is None else n_users
    if n_users <= 0:
        raise ValueError(f"n_users must be positive, got {n_users}")
    market = market or Market()
    rng = np.random.default_rng(seed)
    users = _users(n_users, days, rng, market)
    n_fraud = min(int(round(fraud_rate * n_rows)), n_rows - 1)
    legit = _legit_rows(users, n_rows - n_fraud, days, rng)
    fraud = _fraud_rows(users, legit["user"], n_fraud, days, rng, market.fraud_mix)
    cols = {k: np.concatenate([legit[k], fraud[k]]) for k in legit}
    order = np.argsort(cols["t"], kind="stable")
    cols = {k: v[order] for k, v in cols.items()}
    if market.amount_scale != 1.0:  # skipped at the default, so the built-in rows stay bit-exact
        cols["amount"] = cols["amount"] * market.amount_scale
    for key in ("user", "merchant", "device"):
        cols[key] = cols[key] + market.id_offset
    amount = np.round(np.clip(cols["amount"], 0.5, 50_000.0), 2)
    return pl.DataFrame({
        "transaction_id": np.arange(n_rows, dtype=np.int64),
        "user_id": cols["user"].astype(np.int64),
        "timestamp": pl.Series(market.epoch_us() + np.round(cols["t"] * 1e6).astype(np.int64))
        .cast(pl.Datetime("us")),
        "amount": amount,
        "merchant_id": cols["merchant"].astype(np.int64),
        "merchant_category": pl.Series(CATEGORY_NAMES).gather(cols["cat"]),
        "region": cols["region"].astype(np.int64),
        "device_id": cols["device"].astype(np.int64),
        "channel": pl.Series(CHANNELS).gather(cols["channel"]),
        "is_fraud": cols["fraud"].astype(np.int8),
    })


def _users(n: int, days: int, rng: np.random.Generator, market: Market) -> dict[str, np.ndarray]:
    """Per-user habits: spending level, category profile, hours, home, devices, rate, trips."""
    night_owl = rng.random(n) < 0.08
    profile = rng.dirichlet(_POP * 6.0, size=n)
    gamer = rng.random(n) < 0.1  # frequent small in-game / app-store purchases
    profile[gamer, _CAT["gaming"]] += 0.15
    profile /= profile.sum(axis=1, keepdims=True)
    n_trips = np.minimum(rng.poisson(market.trips_per_90_days * days / 90.0, size=n), 3)
    trip_start = rng.uniform(0, days, size=(n, 3)) * _DAY_S
    trip_len = rng.uniform(2, 8, size=(n, 3)) * _DAY_S
    trip_start[np.arange(3)[None, :] >= n_trips[:, None]] = np.inf  # unused slots never match
    home = rng.choice(N_REGIONS, size=n, p=_zipf(N_REGIONS))
    # a new phone for ~12% of users; rarely it happens on a trip (a legit new-device-AND-new-region)
    switch = np.where(rng.random(n) < market.new_device_rate, rng.uniform(0, days, n) * _DAY_S,
                      np.inf)
    on_trip = (rng.random(n) < 0.04) & (n_trips > 0)
    switch = np.where(on_trip, trip_start[:, 0] + _DAY_S, switch)
    return {
        "mu": rng.normal(np.log(35.0), 0.6, n), "sigma": rng.uniform(0.45, 0.85, n),
        "profile_cum": np.cumsum(profile, axis=1), "profile": profile,
        "hour_center": np.where(night_owl, rng.normal(23.0, 1.5, n), rng.normal(13.5, 2.5, n)),
        "hour_spread": rng.uniform(2.5, 4.5, n),
        "gamer": gamer, "home": home, "two_devices": rng.random(n) < 0.35, "switch": switch,
        "habit": rng.uniform(0.55, 0.9, n), "rate": rng.lognormal(0.0, 0.8, n),
        "trip_start": trip_start, "trip_len": trip_len,
        "trip_dest": (home[:, None] + rng.integers(1, N_REGIONS, size=(n, 3))) % N_REGIONS,
    }


def _zipf(k: int) -> np.ndarray:
    w = 1.0 / np.arange(1, k + 1) ** 0.8
    return w / w.sum()


def _device(users: dict[str, np.ndarray], u: np.ndarray, t: np.ndarray,
            rng: np.random.Generator) -> np.ndarray:
    """The user's own device at time t: slot 0, slot 1 if they have two, slot 2 after a switch."""
    second = users["two_devices"][u] & (rng.random(len(u)) < 0.3)
    slot = np.where(t >= users["switch"][u], 2, second.astype(np.int64))
    return u.astype(np.int64) * 4 + slot


def _legit_rows(users: dict[str, np.ndarray], n: int, days: int,
                rng: np.random.Generator) -> dict[str, np.ndarray]:
    n_users = len(users["mu"])
    counts = rng.multinomial(n, users["rate"] / users["rate"].sum())
    u = np.repeat(np.arange(n_users), counts)
    hour = _hours(users["hour_center"][u], users["hour_spread"][u], rng)
    odd = rng.random(n) < 0.015  # everyone is up late now and then
    hour[odd] = rng.uniform(0, 24, int(odd.sum()))
    t = rng.integers(0, days, n) * _DAY_S + hour * 3600.0
    # people shop in sessions: a share of rows follow the user's previous row within minutes
    follow = (rng.random(n) < 0.2) & (np.r_[-1, u[:-1]] == u)
    prev = np.flatnonzero(follow) - 1
    t[follow] = np.minimum(t[prev] + rng.exponential(900.0, len(prev)) + 60.0, days * _DAY_S - 1.0)

    rel = t[:, None] - users["trip_start"][u]
    in_trip = (rel >= 0) & (rel < users["trip_len"][u])
    travelling = in_trip.any(axis=1)
    region = np.where(travelling, users["trip_dest"][u, in_trip.argmax(axis=1)], users["home"][u])

    cat = _sample_categories(users["profile_cum"], u, rng)
    shift = travelling & (rng.random(n) < 0.4)  # trips mean restaurants, hotels, fuel
    cat[shift] = rng.choice(_TRAVEL_SHIFT, int(shift.sum()))
    amount = np.exp(users["mu"][u] + _MULT[cat] + users["sigma"][u] * rng.standard_normal(n))
    big = rng.random(n) < 0.004  # the occasional laptop or flight, at the user's usual hours
    cat[big] = rng.choice(_OOP_CATS[:3], int(big.sum()))
    amount[big] = np.exp(users["mu"][u[big]] + _MULT[cat[big]]) * rng.uniform(5, 20, int(big.sum()))
    micro = (cat == _CAT["gaming"]) & users["gamer"][u]
    amount[micro] = rng.choice([0.99, 1.99, 2.99, 4.99, 9.99], int(micro.sum()))
    atm = cat == _ATM
    amount[atm] = np.maximum(20.0, np.round(amount[atm] / 20.0) * 20.0)

    online = ~atm & (rng.random(n) < _ONLINE_P[cat])
    channel = np.where(atm, 2, online.astype(np.int64))
    # habitual merchants at home and online; strangers on trips and when exploring
    habitual = (rng.random(n) < users["habit"][u]) & (online | ~travelling)
    slot = rng.choice(3, n, p=[0.6, 0.3, 0.1])
    j = np.where(habitual, _hash(u, cat, slot), rng.integers(0, 1 << 30, n))
    return {"user": u, "t": t, "amount": amount, "cat": cat, "region": region,
            "merchant": _merchant_id(region, cat, online, j), "device": _device(users, u, t, rng),
            "channel": channel, "fraud": np.zeros(n, dtype=np.int8)}


def _fraud_rows(users: dict[str, np.ndarray], legit_user: np.ndarray, n: int, days: int,
                rng: np.random.Generator, mix: FraudMix) -> dict[str, np.ndarray]:
    """Fraud events: victims weighted by activity; by default 45% ATO, 30% card testing, 25%
    out-of-pattern (``mix``; scams, when asked for, come last so the default draws no more)."""
    n_ato = int(round(mix.ato * n))
    n_test = int(round(mix.testing * n))
    n_scam = min(int(round(mix.scam * n)), n - n_ato - n_test)
    kinds = [("ato", _burst_sizes(n_ato, 1, 5, rng)),
             ("testing", _burst_sizes(n_test, 3, 10, rng)),
             ("oop", _burst_sizes(n - n_ato - n_test - n_scam, 1, 2, rng)),
             ("scam", _burst_sizes(n_scam, 1, 3, rng))]
    n_devices_pool = max(5, n // 12)  # fraud rings reuse devices across victims
    parts = []
    for kind, sizes in kinds:
        sizes = sizes[sizes > 0]
        if not len(sizes):
            continue
        m = int(sizes.sum())
        victim = legit_user[rng.integers(0, len(legit_user), len(sizes))]
        event_of_row = np.repeat(np.arange(len(sizes)), sizes)
        u = victim[event_of_row]
        start = rng.uniform(0, days * _DAY_S, len(sizes))
        mean_gap = {"ato": 600.0, "testing": 45.0, "oop": 3600.0, "scam": 1800.0}[kind]
        gaps = rng.exponential(mean_gap, m)
        first = np.cumsum(sizes) - sizes
        gaps[first] = 0.0
        cum = np.cumsum(gaps)
        t = start[event_of_row] + cum - cum[first][event_of_row]
        own_device = np.where(t >= users["switch"][u], u * 4 + 2, u * 4)
        ring = rng.integers(0, n_devices_pool, len(sizes))
        fraud_device = _FRAUD_DEVICE_BASE + ring[event_of_row]
        home = users["home"][u]
        elsewhere = (home + rng.integers(1, N_REGIONS, m)) % N_REGIONS
        base = users["mu"][u]
        if kind == "ato":
            region = np.where((rng.random(len(sizes)) < 0.8)[event_of_row], elsewhere, home)
            online = rng.random(m) < 0.75
            valuable = rng.random(m) < 0.6
            cat = np.where(valuable, rng.choice(_HIGH_VALUE, m),
                           _sample_categories(users["profile_cum"], u, rng))
            cat = np.where(cat == _ATM, _CAT["online_retail"], cat)
            boost = np.where(valuable, rng.normal(0.8, 0.8, m), 0.0)
            amount = np.exp(base + _MULT[cat] + boost + users["sigma"][u] * rng.standard_normal(m))
            device = fraud_device
        elif kind == "testing":
            region = np.where((rng.random(len(sizes)) < 0.5)[event_of_row], elsewhere, home)
            online = np.ones(m, dtype=bool)
            cat = rng.choice(_TESTING_CATS, m)
            amount = rng.uniform(0.5, 5.0, m)
            amount = np.where(rng.random(m) < 0.4, np.ceil(amount), amount)
            from_ring = (rng.random(len(sizes)) < 0.8)[event_of_row]
            device = np.where(from_ring, fraud_device, own_device)
        elif kind == "scam":
            # the card holder pays a scammer: own device, home, usual hours, a new online merchant
            region = home
            online = np.ones(m, dtype=bool)
            cat = rng.choice(_SCAM_CATS, m)
            amount = np.exp(base + _MULT[cat]) * rng.uniform(3, 12, m)
            hour = _hours(users["hour_center"][u], users["hour_spread"][u], rng)
            t = np.floor(t / _DAY_S) * _DAY_S + hour * 3600.0
            device = own_device
        else:
            # the high-value category this user uses least, at the opposite end of their day
            region = home
            online = rng.random(m) < 0.5
            cat = _OOP_CATS[np.argmin(users["profile"][u][:, _OOP_CATS], axis=1)]
            amount = np.exp(base + _MULT[cat]) * rng.uniform(4, 25, m)
            odd_hour = users["hour_center"][u] + 12.0 + rng.normal(0, 2.0, m)
            usual = rng.random(m) < 0.2
            hour = np.where(usual, _hours(users["hour_center"][u], users["hour_spread"][u], rng),
                            np.mod(odd_hour, 24.0))
            t = np.floor(t / _DAY_S) * _DAY_S + hour * 3600.0
            device = np.where(t >= users["switch"][u], u * 4 + 2, u * 4)  # own, known device
        t = np.clip(t, 0.0, days * _DAY_S - 1.0)
        j = rng.integers(0, 1 << 30, m)
        parts.append({"user": u, "t": t, "amount": amount, "cat": cat, "region": region,
                      "merchant": _merchant_id(region, cat, online, j), "device": device,
                      "channel": online.astype(np.int64), "fraud": np.ones(m, dtype=np.int8)})
    if not parts:
        return {k: np.zeros(0, dtype=np.float64 if k in ("t", "amount") else np.int64)
                for k in ("user", "t", "amount", "cat", "region", "merchant", "device", "channel",
                          "fraud")}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
